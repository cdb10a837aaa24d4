-- Which notes each creator snapshot covered. The one place that decides coverage: analytics.anomalies
-- compares two snapshots only on notes both covered. Derived from the snapshot itself: a scan that
-- loaded fewer notes than the API's total is taken as bounded by publish date, covering the days
-- after its oldest loaded note's day (that day may be cut part way through a page, so it is left out).
-- Where a scan log records each scan's own bound, this view becomes a plain read of it, e.g.
--   SELECT creator_id, snapshot_date, total_reported, notes_loaded,
--          CASE WHEN scan_status = 'window' THEN covered_from END AS covered_from
--   FROM analytics.creator_snapshots
-- (a 'full' or 'empty' scan covers everything), and nothing else changes.
CREATE OR REPLACE VIEW analytics.snapshot_coverage AS
WITH
reported AS (
    SELECT creator_id, snapshot_date, arg_max(total, page_number) AS total_reported
    FROM raw.pages
    GROUP BY ALL
),
loaded AS (
    SELECT creator_id, snapshot_date, count(*) AS notes_loaded, min(published_date) AS oldest_published_date
    FROM analytics.notes
    GROUP BY ALL
)
SELECT
    r.creator_id,
    r.snapshot_date,
    r.total_reported,
    coalesce(l.notes_loaded, 0) AS notes_loaded,
    CASE
        WHEN r.total_reported IS NULL OR coalesce(l.notes_loaded, 0) >= r.total_reported THEN NULL
        WHEN l.oldest_published_date IS NULL THEN r.snapshot_date + 1  -- loaded nothing datable: covers nothing
        ELSE l.oldest_published_date + 1
    END AS covered_from
FROM reported AS r
LEFT JOIN loaded AS l USING (creator_id, snapshot_date);
