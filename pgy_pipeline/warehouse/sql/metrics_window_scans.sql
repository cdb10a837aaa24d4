-- After metrics.sql: on a window-scan day (the scan read only the notes of the 90-day window and its
-- margin) the all-time figures of window 'all' would come from a fraction of the notes. Leave them NULL
-- rather than invent them; keep what the scan does know (the service's total, the newest note).
-- Which columns: those declared needs_every_note in tables.py (sql_files.py writes the SET list from
-- them), so a new metric column is cleared or kept by its declaration, never by a list kept here.
-- A drifted scan (the list moved while paging) may have missed a note: treated alike.
-- Partitions in _keys, on the rows metrics.sql staged in _metrics, inside the caller's transaction.
UPDATE _metrics AS m
SET {set_null_needing_every_note:analytics.creator_engagement_metrics}
FROM analytics.creator_snapshots AS s
WHERE m."window" = 'all'
  AND s.creator_id = m.creator_id
  AND s.snapshot_date = m.snapshot_date
  AND s.scan_status IN ('window', 'window_drifted', 'full_drifted')
  AND (m.creator_id, m.snapshot_date) IN (SELECT creator_id, snapshot_date FROM _keys);

-- A full-scan day after a window-scan day: the all-time read gain would only compare the notes the
-- previous (window) scan read, so it is left NULL too.
UPDATE _metrics AS m
SET read_gain = NULL
FROM analytics.creator_snapshots AS prev
WHERE m."window" = 'all'
  AND prev.creator_id = m.creator_id
  AND prev.snapshot_date = m.previous_snapshot_date
  AND prev.scan_status IN ('window', 'window_drifted')
  AND (m.creator_id, m.snapshot_date) IN (SELECT creator_id, snapshot_date FROM _keys);
