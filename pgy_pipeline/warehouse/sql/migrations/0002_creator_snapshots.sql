-- analytics.creator_snapshots: one row per creator x snapshot (scan status, totals, calls), filled for every stored snapshot
CREATE TABLE analytics.creator_snapshots (
    "creator_id" VARCHAR NOT NULL,
    "snapshot_date" DATE NOT NULL,
    "scan_status" VARCHAR NOT NULL,
    "total_reported" INTEGER,
    "notes_loaded" BIGINT NOT NULL,
    "pages" INTEGER NOT NULL,
    "calls" INTEGER NOT NULL,
    "billed_calls" INTEGER NOT NULL,
    "fetched_at" TIMESTAMP NOT NULL,
    "covered_from" DATE
);

-- every snapshot already stored gets its row, as the notes rebuild would write it
CREATE OR REPLACE TEMP TABLE _keys AS SELECT DISTINCT creator_id, snapshot_date FROM raw.note_pages;

INSERT INTO analytics.creator_snapshots (
    creator_id, snapshot_date, scan_status, total_reported, notes_loaded, pages, calls, billed_calls,
    fetched_at, covered_from
)
WITH
pages AS (
    SELECT p.creator_id, p.snapshot_date,
           count(*)                          AS pages,
           sum(p.attempts)                   AS calls,
           count(*)                          AS billed_calls,  -- each stored page: one call answered code 0
           sum(p.item_count)                 AS items,
           arg_max(p.total, p.page_number)   AS total_reported,
           max(p.fetched_at)                 AS fetched_at
    FROM raw.note_pages AS p
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
)
SELECT
    p.creator_id,
    p.snapshot_date,
    CASE
        WHEN p.items = 0 AND coalesce(p.total_reported, 0) = 0 THEN 'empty'
        WHEN coalesce(l.notes, 0) + coalesce(w.items, 0) >= coalesce(p.total_reported, 0) THEN 'full'
        ELSE 'partial'
    END                                  AS scan_status,
    p.total_reported,
    coalesce(l.notes, 0)                 AS notes_loaded,
    p.pages,
    p.calls,
    p.billed_calls,
    p.fetched_at,
    NULL::DATE                           AS covered_from
FROM pages AS p
LEFT JOIN loaded AS l USING (creator_id, snapshot_date)
LEFT JOIN without_id AS w USING (creator_id, snapshot_date);

DROP TABLE _keys;
