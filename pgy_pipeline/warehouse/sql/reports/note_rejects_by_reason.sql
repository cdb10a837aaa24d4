-- Rejected list items of the partitions in _keys, by reason.
SELECT r.reason, count(*) AS items
FROM analytics.note_rejects AS r
JOIN _keys USING (creator_id, snapshot_date)
GROUP BY r.reason
ORDER BY items DESC;
