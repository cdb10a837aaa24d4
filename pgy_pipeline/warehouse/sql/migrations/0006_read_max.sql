-- analytics.creator_engagement_metrics.read_max: the most-read note of each cell, filled for stored rows
ALTER TABLE analytics.creator_engagement_metrics ADD COLUMN read_max BIGINT;

-- Stored rows get the value a rebuild would give them, from their own snapshot's notes: windows of
-- N days end the day before the snapshot, and a cell left NULL (window 'all' on a window-scan day)
-- stays NULL.
UPDATE analytics.creator_engagement_metrics AS m
SET read_max = cell.read_max
FROM (
    SELECT c.creator_id, c.snapshot_date, c."window", c.segment, max(n.read_num) AS read_max
    FROM analytics.creator_engagement_metrics AS c
    JOIN analytics.notes AS n
        ON n.creator_id = c.creator_id
        AND n.snapshot_date = c.snapshot_date
        AND (c."window" = 'all'
             OR (n.published_date >= c.snapshot_date - CAST(rtrim(c."window", 'd') AS INTEGER)
                 AND n.published_date < c.snapshot_date))
        AND (c.segment = 'all' OR n.segment = c.segment)
    WHERE c.note_count IS NOT NULL
    GROUP BY ALL
) AS cell
WHERE m.creator_id = cell.creator_id
  AND m.snapshot_date = cell.snapshot_date
  AND m."window" = cell."window"
  AND m.segment = cell.segment;
