-- Our metrics beside Pugongying's own: photo and video notes together, the windows and segments both have.
CREATE OR REPLACE VIEW analytics.metrics_vs_pugongying AS
SELECT
    m.creator_id,
    m.snapshot_date,
    m."window",
    m.segment,
    m.note_count,
    p.note_count                                        AS pgy_note_count,
    m.note_count - p.note_count                         AS note_count_diff,
    m.read_median,
    p.read_median                                       AS pgy_read_median,
    m.read_median - p.read_median                       AS read_median_diff,
    m.like_median,
    p.like_median                                       AS pgy_like_median,
    m.like_median - p.like_median                       AS like_median_diff,
    m.collect_median,
    p.collect_median                                    AS pgy_collect_median,
    m.collect_median - p.collect_median                 AS collect_median_diff,
    m.interaction_median,
    p.interaction_median                                AS pgy_interaction_median,
    m.interaction_median - p.interaction_median         AS interaction_median_diff,
    p.comment_median                                    AS pgy_comment_median,
    p.share_median                                      AS pgy_share_median,
    m.interaction_median + p.comment_median             AS interaction_median_with_comments,
    m.engagement_rate,
    p.interaction_rate                                  AS pgy_interaction_rate,
    m.engagement_rate - p.interaction_rate              AS engagement_rate_diff,
    p.impression_median                                 AS pgy_impression_median,
    p.read_median_beyond                                AS pgy_read_median_beyond
FROM analytics.creator_engagement_metrics AS m
JOIN analytics.pugongying_note_rates AS p
    ON p.creator_id = m.creator_id
    AND p.snapshot_date = m.snapshot_date
    AND p."window" = m."window"
    AND p.segment = m.segment
    AND p.note_type = 'PHOTO_TEXT_AND_VIDEO';
