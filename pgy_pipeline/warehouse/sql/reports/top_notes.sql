-- The ten most-read notes among the partitions in _keys, with the creator's name (a preview for the UI).
SELECT n.creator_id, c.display_name, n.note_id, n.title, n.published_date, n.read_num, n.like_num, n.collect_num
FROM analytics.notes AS n
JOIN _keys USING (creator_id, snapshot_date)
LEFT JOIN analytics.creators AS c USING (creator_id)
ORDER BY n.read_num DESC NULLS LAST
LIMIT 10;
