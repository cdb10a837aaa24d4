-- Each creator's latest snapshot, 30-day window, all notes, with registry names and tags and the
-- scan's status: a creator whose snapshot came back empty is listed too, flagged no_pugongying_data.
CREATE OR REPLACE VIEW analytics.creator_leaderboard AS
SELECT
    m.creator_id,
    c.display_name,
    c.tags,
    m.snapshot_date,
    m.note_count,
    m.read_median,
    m.interaction_median,
    m.engagement_rate,
    m.hundred_like_rate,
    m.thousand_like_rate,
    m.notes_per_week,
    m.days_since_last_note,
    m.read_gain,
    m.notes_total_reported,
    s.scan_status,
    s.scan_status = 'empty' AS no_pugongying_data,
    m.interaction_per_note_median
FROM analytics.creator_engagement_metrics AS m
LEFT JOIN analytics.creators AS c USING (creator_id)
LEFT JOIN analytics.creator_snapshots AS s USING (creator_id, snapshot_date)
WHERE m."window" = '30d' AND m.segment = 'all'
QUALIFY m.snapshot_date = max(m.snapshot_date) OVER (PARTITION BY m.creator_id)
ORDER BY m.read_median DESC NULLS LAST;
