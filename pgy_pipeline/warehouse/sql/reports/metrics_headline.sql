-- The 30-day headline of the partitions in _keys, best read median first (a preview for the UI).
SELECT m.creator_id, c.display_name, m.snapshot_date, m.note_count, m.read_median, m.interaction_median,
       m.engagement_rate, m.hundred_like_rate, m.notes_per_week, m.read_gain
FROM analytics.creator_engagement_metrics AS m
JOIN _keys USING (creator_id, snapshot_date)
LEFT JOIN analytics.creators AS c USING (creator_id)
WHERE m."window" = '30d' AND m.segment = 'all'
ORDER BY m.read_median DESC NULLS LAST
LIMIT 20;
