-- Each note at each snapshot, with its change since the creator's previous snapshot and the days
-- between them. The previous snapshot is the creator's, not the note's: a note missing from it is
-- first_seen and has no change. Joins rather than a window over notes, so a filter on creator_id or
-- note_id reaches the scans of analytics.notes.
CREATE OR REPLACE VIEW analytics.note_history AS
WITH snapshots AS (
    SELECT
        creator_id,
        snapshot_date,
        lag(snapshot_date) OVER (PARTITION BY creator_id ORDER BY snapshot_date) AS previous_snapshot_date
    FROM (SELECT DISTINCT creator_id, snapshot_date FROM raw.pages)
)
SELECT
    n.creator_id,
    n.note_id,
    n.snapshot_date,
    n.title,
    n.published_date,
    (n.snapshot_date - n.published_date)::INTEGER                         AS days_since_publish,
    n.is_advertise,
    n.brand_name,
    n.read_num,
    n.like_num,
    n.collect_num,
    n.interaction_num,
    s.previous_snapshot_date,
    (n.snapshot_date - s.previous_snapshot_date)::INTEGER                 AS days_between_snapshots,
    p.note_id IS NULL                                                     AS first_seen,
    n.read_num - p.read_num                                               AS read_num_change,
    n.like_num - p.like_num                                               AS like_num_change,
    n.collect_num - p.collect_num                                         AS collect_num_change,
    n.interaction_num - p.interaction_num                                 AS interaction_num_change,
    (n.read_num - p.read_num) / (n.snapshot_date - s.previous_snapshot_date)::DOUBLE AS read_num_change_per_day
FROM analytics.notes AS n
LEFT JOIN snapshots AS s USING (creator_id, snapshot_date)
LEFT JOIN analytics.notes AS p
    ON p.creator_id = n.creator_id
    AND p.snapshot_date = s.previous_snapshot_date
    AND p.note_id = n.note_id;
