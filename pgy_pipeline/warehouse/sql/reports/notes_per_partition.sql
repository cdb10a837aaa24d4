-- Notes, rejects and raw pages of each partition in _keys (per-partition metadata).
SELECT k.creator_id, k.snapshot_date,
       (SELECT count(*) FROM analytics.notes AS n
        WHERE n.creator_id = k.creator_id AND n.snapshot_date = k.snapshot_date) AS notes,
       (SELECT count(*) FROM analytics.note_rejects AS r
        WHERE r.creator_id = k.creator_id AND r.snapshot_date = k.snapshot_date) AS rejects
FROM _keys AS k
ORDER BY k.creator_id, k.snapshot_date;
