-- After metrics_window_scans.sql: the staged rows of the partitions in _keys, written to the table once
-- (see metrics.sql for why they are staged), inside the caller's transaction. Both column lists are
-- the table's declared columns (sql_files.py fills them from tables.py), picked from _metrics by name.
INSERT INTO analytics.creator_engagement_metrics ({columns:analytics.creator_engagement_metrics})
SELECT {columns:analytics.creator_engagement_metrics}
FROM _metrics;

DROP TABLE _metrics;
