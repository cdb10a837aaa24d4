-- Each partition's own 30-day headline (creator layout: one creator per partition), for its
-- materialization in the UI: the creator's name next to the figures people look for first.
SELECT k.creator_id, k.snapshot_date, c.display_name, m.note_count, m.read_median, m.engagement_rate
FROM _keys AS k
LEFT JOIN analytics.creators AS c USING (creator_id)
LEFT JOIN analytics.creator_engagement_metrics AS m
    ON m.creator_id = k.creator_id AND m.snapshot_date = k.snapshot_date
    AND m."window" = '30d' AND m.segment = 'all'
ORDER BY k.creator_id, k.snapshot_date;
