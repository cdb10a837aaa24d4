-- Per-creator engagement metrics for the partitions in the temp table _keys(creator_id, snapshot_date)
-- (filled by storage.partition_keys()), one row per
-- (creator_id, snapshot_date, window, segment). Reads only the partitions' own notes, their previous
-- snapshot's notes and the raw pages' reported total, so the cost follows one day's rows, not history.
-- Runs inside the caller's transaction, after the partitions' old rows are deleted. The rows go to the
-- temp table _metrics first (metrics_window_scans.sql corrects them there, metrics_publish.sql writes
-- them out): every row reaches analytics.creator_engagement_metrics once, as it stays. On a DuckLake an
-- UPDATE of rows inserted in the same transaction writes a transaction-local delete file, and DuckLake
-- 0.3 (DuckDB 1.4.4) deletes that file when it reruns the commit after another writer's, yet still
-- registers it: the table becomes unreadable.
-- The final SELECT names each column of the table once, where it is computed (AS name); the publish
-- picks them by name, so a declared column missing here fails the rebuild rather than staying NULL.

CREATE OR REPLACE TEMP TABLE _metrics AS
WITH
snapshot_dates AS (
    -- The creator's snapshots, from raw pages (one row per page, far fewer than notes).
    SELECT DISTINCT creator_id, snapshot_date
    FROM raw.pages
    WHERE creator_id IN (SELECT creator_id FROM _keys)
),
previous AS (
    SELECT k.creator_id, k.snapshot_date, max(s.snapshot_date) AS previous_snapshot_date
    FROM _keys AS k
    LEFT JOIN snapshot_dates AS s
        ON s.creator_id = k.creator_id AND s.snapshot_date < k.snapshot_date
    GROUP BY ALL
),
reported AS (
    -- The service's total as reported on the last page read.
    SELECT creator_id, snapshot_date, arg_max(total, page_number) AS notes_total_reported
    FROM raw.pages
    JOIN _keys USING (creator_id, snapshot_date)
    GROUP BY ALL
),
windows(window_name, window_days) AS (VALUES ('30d', 30), ('90d', 90), ('all', NULL)),
segments(segment) AS (VALUES ('all'), ('organic'), ('cooperation')),
cells AS (
    SELECT k.creator_id, k.snapshot_date, w.window_name, w.window_days, s.segment, p.previous_snapshot_date
    FROM _keys AS k
    JOIN previous AS p USING (creator_id, snapshot_date)
    CROSS JOIN windows AS w
    CROSS JOIN segments AS s
),
current_notes AS (
    SELECT n.*, prev.read_num AS previous_read_num
    FROM analytics.notes AS n
    JOIN previous AS p USING (creator_id, snapshot_date)
    LEFT JOIN analytics.notes AS prev
        ON prev.creator_id = n.creator_id
        AND prev.snapshot_date = p.previous_snapshot_date
        AND prev.note_id = n.note_id
),
members AS (
    SELECT c.*, n.* EXCLUDE (creator_id, snapshot_date, segment), n.segment AS note_segment
    FROM cells AS c
    LEFT JOIN current_notes AS n
        ON n.creator_id = c.creator_id
        AND n.snapshot_date = c.snapshot_date
        -- N days ending the day before the snapshot, as Pugongying's windows: a note published on the
        -- snapshot day is only a few hours old, and is in window 'all' only
        AND (c.window_days IS NULL
             OR (n.published_date >= c.snapshot_date - c.window_days AND n.published_date < c.snapshot_date))
        -- analytics.notes.segment holds the rule (brand-tagged notes are cooperation)
        AND (c.segment = 'all' OR n.segment = c.segment)
)
SELECT
    m.creator_id,
    m.snapshot_date,
    m.window_name                                              AS "window",
    m.segment,
    count(m.note_id)                                           AS note_count,
    count(m.note_id) FILTER (WHERE m.is_video)                 AS video_note_count,
    median(m.read_num)                                         AS read_median,
    avg(m.read_num)                                            AS read_mean,
    -- Pugongying's form, a sum of medians (its comments median is absent: the endpoint has none)
    median(m.like_num) + median(m.collect_num)                 AS interaction_median,
    median(m.like_num)                                         AS like_median,
    median(m.collect_num)                                      AS collect_median,
    sum(m.interaction_num) / nullif(sum(m.read_num), 0)        AS engagement_rate,
    avg(CASE WHEN m.like_num >= 100 THEN 1.0 WHEN m.like_num IS NOT NULL THEN 0.0 END) AS hundred_like_rate,
    avg(CASE WHEN m.like_num >= 1000 THEN 1.0 WHEN m.like_num IS NOT NULL THEN 0.0 END) AS thousand_like_rate,
    CASE WHEN m.window_days IS NOT NULL THEN count(m.note_id) / (m.window_days / 7.0) END AS notes_per_week,
    (m.snapshot_date - max(m.published_date))::INTEGER         AS days_since_last_note,
    CASE WHEN m.previous_snapshot_date IS NOT NULL
         THEN coalesce(sum(m.read_num - m.previous_read_num), 0) END AS read_gain,
    m.previous_snapshot_date,
    r.notes_total_reported,
    median(m.interaction_num)                                  AS interaction_per_note_median,
    count(m.note_id) FILTER (WHERE m.note_segment = 'cooperation' AND m.is_advertise = false)
                                                               AS brand_tagged_non_ad_count,
    max(m.read_num)                                            AS read_max
FROM members AS m
LEFT JOIN reported AS r USING (creator_id, snapshot_date)
GROUP BY m.creator_id, m.snapshot_date, m.window_name, m.window_days, m.segment,
         m.previous_snapshot_date, r.notes_total_reported;
