-- Metric rows of the partitions in _keys whose rates fall outside [0, 1] (should find nothing).
SELECT m.creator_id, m.snapshot_date, m."window", m.segment,
       m.engagement_rate, m.hundred_like_rate, m.thousand_like_rate
FROM analytics.creator_engagement_metrics AS m
JOIN _keys USING (creator_id, snapshot_date)
WHERE NOT (coalesce(m.hundred_like_rate, 0) BETWEEN 0 AND 1)
   OR NOT (coalesce(m.thousand_like_rate, 0) BETWEEN 0 AND 1)
   OR NOT (coalesce(m.engagement_rate, 0) BETWEEN 0 AND 1)
LIMIT 20;
