-- The ten most-read notes among the partitions in _keys (a preview for the UI).
SELECT n.creator_id, n.note_id, n.title, n.published_date, n.read_num, n.like_num, n.collect_num
FROM analytics.notes AS n
JOIN _keys USING (creator_id, snapshot_date)
ORDER BY n.read_num DESC NULLS LAST
LIMIT 10;
