-- Display names of the creators in _keys, from the registry's copy in analytics.creators (for UI labels).
SELECT DISTINCT c.creator_id, c.display_name
FROM analytics.creators AS c
JOIN _keys USING (creator_id)
WHERE c.display_name IS NOT NULL AND c.display_name <> '';
