-- Partitions in _keys whose loaded notes differ from the service's total, or whose total changed
-- while paging (notes added or removed meanwhile).
WITH reported AS (
    SELECT p.creator_id, p.snapshot_date, arg_max(p.total, p.page_number) AS total,
           count(DISTINCT p.total) AS totals_seen
    FROM raw.note_pages AS p
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
WHERE r.total IS DISTINCT FROM coalesce(l.notes, 0) OR r.totals_seen > 1
ORDER BY r.creator_id, r.snapshot_date;
