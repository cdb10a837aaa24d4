-- One row per brand and creator, from analytics.brand_notes.
CREATE OR REPLACE VIEW analytics.brand_cooperations AS
SELECT
    b.brand_name,
    b.creator_id,
    c.display_name,
    count(*)                                                  AS cooperation_notes,
    count(*) FILTER (WHERE b.is_advertise)                    AS advertised_notes,
    min(b.published_date)                                     AS first_published_date,
    max(b.published_date)                                     AS last_published_date,
    max(b.latest_snapshot_date)                               AS latest_snapshot_date,
    sum(b.read_num)::BIGINT                                   AS read_num,
    sum(b.interaction_num)::BIGINT                            AS interaction_num,
    median(b.read_num)::DOUBLE                                AS read_median,
    sum(b.interaction_num) / nullif(sum(b.read_num), 0)::DOUBLE AS engagement_rate,
    sum(b.read_gain_since_first_seen)::BIGINT                 AS read_gain_since_first_seen
FROM analytics.brand_notes AS b
LEFT JOIN analytics.creators AS c USING (creator_id)
GROUP BY b.brand_name, b.creator_id, c.display_name;
