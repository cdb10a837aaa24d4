-- Note ids that repeat within a partition, or are missing (the notes check; should find nothing).
SELECT n.creator_id, n.snapshot_date, n.note_id, count(*) AS copies
FROM analytics.notes AS n
JOIN _keys USING (creator_id, snapshot_date)
GROUP BY ALL
HAVING copies > 1 OR n.note_id IS NULL OR n.note_id = ''
LIMIT 20;
