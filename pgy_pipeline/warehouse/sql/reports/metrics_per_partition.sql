-- Metric rows of each partition in _keys (per-partition metadata).
SELECT k.creator_id, k.snapshot_date,
       (SELECT count(*) FROM analytics.creator_engagement_metrics AS m
        WHERE m.creator_id = k.creator_id AND m.snapshot_date = k.snapshot_date) AS metric_rows
FROM _keys AS k
ORDER BY k.creator_id, k.snapshot_date;
