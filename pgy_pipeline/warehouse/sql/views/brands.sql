-- One row per brand across every creator, from analytics.brand_notes.
CREATE OR REPLACE VIEW analytics.brands AS
SELECT
    brand_name,
    count(DISTINCT creator_id)                                AS creators,
    count(*)                                                  AS cooperation_notes,
    sum(read_num)::BIGINT                                     AS read_num,
    median(read_num)::DOUBLE                                  AS read_median,
    sum(interaction_num)::BIGINT                              AS interaction_num,
    sum(interaction_num) / nullif(sum(read_num), 0)::DOUBLE   AS engagement_rate,
    min(published_date)                                       AS first_published_date,
    max(published_date)                                       AS last_published_date,
    sum(read_gain_since_first_seen)::BIGINT                   AS read_gain_since_first_seen
FROM analytics.brand_notes
GROUP BY brand_name;
