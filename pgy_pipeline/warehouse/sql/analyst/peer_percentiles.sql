-- Peer percentiles for the snapshot dates in the temp table _dates(snapshot_date): one row per
-- creator, date and peer group ('all' and each registry tag), on the 30d/all metrics. A percentile is
-- the share of the other creators of the group with a value whose value is strictly lower, x 100
-- (rank() - 1 counts them; ties beat nobody); NULL below 3 creators with a value, or without one.
-- Runs inside the caller's transaction, after the dates' old rows are deleted.
INSERT INTO analytics.creator_peer_percentiles ({columns:analytics.creator_peer_percentiles})
WITH
metrics AS (
    SELECT creator_id, snapshot_date, read_median, interaction_median, engagement_rate, hundred_like_rate
    FROM analytics.creator_engagement_metrics
    WHERE "window" = '30d' AND segment = 'all' AND snapshot_date IN (SELECT snapshot_date FROM _dates)
),
tags AS (
    SELECT DISTINCT creator_id, tag
    FROM (SELECT creator_id, unnest(tags) AS tag FROM analytics.creators)
    WHERE tag IS NOT NULL AND tag <> 'all'
),
members AS (
    SELECT m.*, 'all' AS peer_group FROM metrics AS m
    UNION ALL
    SELECT m.*, t.tag AS peer_group FROM metrics AS m JOIN tags AS t USING (creator_id)
),
ranked AS (
    SELECT
        *,
        count(*) OVER grp AS peer_count,
        count(read_median) OVER grp AS n_read,
        count(interaction_median) OVER grp AS n_interaction,
        count(engagement_rate) OVER grp AS n_engagement,
        count(hundred_like_rate) OVER grp AS n_hundred,
        rank() OVER (PARTITION BY snapshot_date, peer_group, read_median IS NULL ORDER BY read_median) - 1
            AS beaten_read,
        rank() OVER (PARTITION BY snapshot_date, peer_group, interaction_median IS NULL ORDER BY interaction_median) - 1
            AS beaten_interaction,
        rank() OVER (PARTITION BY snapshot_date, peer_group, engagement_rate IS NULL ORDER BY engagement_rate) - 1
            AS beaten_engagement,
        rank() OVER (PARTITION BY snapshot_date, peer_group, hundred_like_rate IS NULL ORDER BY hundred_like_rate) - 1
            AS beaten_hundred
    FROM members
    WINDOW grp AS (PARTITION BY snapshot_date, peer_group)
),
percentiles AS (
    SELECT
        *,
        CASE WHEN read_median IS NOT NULL AND n_read >= 3 THEN 100.0 * beaten_read / (n_read - 1) END
            AS read_median_percentile,
        CASE WHEN interaction_median IS NOT NULL AND n_interaction >= 3
             THEN 100.0 * beaten_interaction / (n_interaction - 1) END AS interaction_median_percentile,
        CASE WHEN engagement_rate IS NOT NULL AND n_engagement >= 3
             THEN 100.0 * beaten_engagement / (n_engagement - 1) END AS engagement_rate_percentile,
        CASE WHEN hundred_like_rate IS NOT NULL AND n_hundred >= 3
             THEN 100.0 * beaten_hundred / (n_hundred - 1) END AS hundred_like_rate_percentile
    FROM ranked
)
SELECT {columns:analytics.creator_peer_percentiles}
FROM percentiles;
