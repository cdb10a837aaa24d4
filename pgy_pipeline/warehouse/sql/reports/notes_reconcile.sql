-- Partitions in _keys whose loaded notes differ from the service's total, or whose total changed
-- while paging (notes added or removed meanwhile). A window scan stops early on purpose: it is
-- expected to hold fewer notes than the total, and is reported only if it holds more.
WITH reported AS (
    SELECT p.creator_id, p.snapshot_date, arg_max(p.total, p.page_number) AS total,
           count(DISTINCT p.total) AS totals_seen, bool_or(p.scan = 'window') AS window_scan
    FROM raw.pages AS p
    JOIN _keys USING (creator_id, snapshot_date)
    GROUP BY ALL
), loaded AS (
    SELECT n.creator_id, n.snapshot_date, count(*) AS notes
    FROM analytics.notes AS n
    JOIN _keys USING (creator_id, snapshot_date)
    GROUP BY ALL
)
SELECT r.creator_id, r.snapshot_date, r.total, coalesce(l.notes, 0) AS notes, r.totals_seen
FROM reported AS r
LEFT JOIN loaded AS l USING (creator_id, snapshot_date)
WHERE (CASE WHEN r.window_scan THEN coalesce(l.notes, 0) > r.total
            ELSE r.total IS DISTINCT FROM coalesce(l.notes, 0) END)
   OR r.totals_seen > 1
ORDER BY r.creator_id, r.snapshot_date;
