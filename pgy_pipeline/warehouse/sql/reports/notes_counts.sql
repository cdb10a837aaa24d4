-- Rows and rows with quality issues among the notes of the partitions in _keys.
SELECT count(*) AS notes, count(*) FILTER (WHERE len(n.quality_issues) > 0) AS notes_with_issues
FROM analytics.notes AS n
JOIN _keys USING (creator_id, snapshot_date);
