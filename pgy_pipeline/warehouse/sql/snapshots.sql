-- One analytics.creator_snapshots row per partition in the temp table _keys(creator_id, snapshot_date)
-- (filled by storage.partition_keys()), from its stored pages, the notes just rebuilt from them and the
-- billing ledger. Runs inside the caller's transaction, after notes.sql and after the partitions' old
-- rows are deleted.

INSERT INTO analytics.creator_snapshots ({columns:analytics.creator_snapshots})
WITH
pages AS (
    SELECT p.creator_id, p.snapshot_date,
           count(*)                          AS pages,
           sum(p.attempts)                   AS calls,
           sum(p.item_count)                 AS items,
           arg_max(p.total, p.page_number)   AS total_reported,
           max(p.fetched_at)                 AS fetched_at,
           bool_or(p.scan = 'window')        AS window_scan,
           count(DISTINCT p.total)           AS totals_seen,
           min(p.scan_window_from)           AS window_from
    FROM raw.pages AS p
    JOIN _keys USING (creator_id, snapshot_date)
    GROUP BY ALL
),
ledger AS (
    -- every call paid for this creator and day, in any run (a refresh pays again)
    SELECT c.creator_id, c.snapshot_date, count(*) FILTER (WHERE c.billed) AS billed_calls
    FROM meta.api_calls AS c
    JOIN _keys USING (creator_id, snapshot_date)
    GROUP BY ALL
),
loaded AS (
    SELECT n.creator_id, n.snapshot_date, count(*) AS notes
    FROM analytics.notes AS n
    JOIN _keys USING (creator_id, snapshot_date)
    GROUP BY ALL
),
without_id AS (
    -- list items that hold a place in the list but are not notes (no noteId): they count toward total
    SELECT r.creator_id, r.snapshot_date, count(*) AS items
    FROM analytics.note_rejects AS r
    JOIN _keys USING (creator_id, snapshot_date)
    WHERE r.reason NOT LIKE 'repeat of noteId%'
    GROUP BY ALL
),
status AS (
    SELECT
        p.*,
        coalesce(l.notes, 0) AS notes_loaded,
        CASE
            WHEN p.items = 0 AND coalesce(p.total_reported, 0) = 0 THEN 'empty'
            -- the list moved while paging: notes may have shifted between pages, missed or seen twice;
            -- not a full scan on record (the next snapshot is full), window 'all' left NULL
            WHEN p.totals_seen > 1 AND p.window_scan THEN 'window_drifted'
            WHEN p.totals_seen > 1 THEN 'full_drifted'
            WHEN coalesce(l.notes, 0) + coalesce(w.items, 0) >= coalesce(p.total_reported, 0) THEN 'full'
            WHEN p.window_scan THEN 'window'  -- stopped once past the window, as asked
            ELSE 'partial'
        END AS scan_status
    FROM pages AS p
    LEFT JOIN loaded AS l USING (creator_id, snapshot_date)
    LEFT JOIN without_id AS w USING (creator_id, snapshot_date)
),
snapshots AS (
    SELECT
        s.*,
        coalesce(b.billed_calls, s.pages)    AS billed_calls,  -- pages stored before the ledger: one call each
        CASE WHEN s.scan_status IN ('window', 'window_drifted') THEN s.window_from END AS covered_from
    FROM status AS s
    LEFT JOIN ledger AS b USING (creator_id, snapshot_date)
)
SELECT {columns:analytics.creator_snapshots}
FROM snapshots;
