-- Stored pages, calls and notes reported for each partition in _keys that has raw pages.
SELECT p.creator_id, p.snapshot_date, count(*) AS pages, sum(p.attempts) AS calls,
       sum(p.attempts) - count(*) AS retries, sum(p.item_count) AS items,
       arg_max(p.total, p.page_number) AS total_reported
FROM raw.pages AS p
JOIN _keys USING (creator_id, snapshot_date)
GROUP BY ALL
ORDER BY p.creator_id, p.snapshot_date;
