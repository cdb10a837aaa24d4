-- Type raw.pugongying_note_rates into analytics.pugongying_note_rates for the partitions in _keys.
-- Runs inside the caller's transaction, after the partitions' old rows are deleted.
-- Percent strings ("3.4") become fractions; Pugongying's medians are 0 when noteNumber is 0, a
-- sentinel rather than a figure, so they become NULL, as our own medians of an empty cell are.
CREATE OR REPLACE TEMP MACRO _fraction(v) AS TRY_CAST(v ->> '$' AS DOUBLE) / 100;
CREATE OR REPLACE TEMP MACRO _median_or_null(v, n) AS
    CASE WHEN n > 0 THEN TRY_CAST(v ->> '$' AS DOUBLE) END;

INSERT INTO analytics.pugongying_note_rates ({columns:analytics.pugongying_note_rates})
WITH answers AS (
    SELECT
        r.*,
        r.body -> '$.data' AS d,
        TRY_CAST(r.body ->> '$.data.noteNumber' AS BIGINT) AS n
    FROM raw.pugongying_note_rates AS r
    JOIN _keys USING (creator_id, snapshot_date)
),
typed AS (
SELECT
    creator_id,
    snapshot_date,
    CASE date_type WHEN 'DAY_30' THEN '30d' WHEN 'DAY_90' THEN '90d' END                  AS "window",
    CASE business WHEN 'DAILY_NOTE' THEN 'organic' WHEN 'COOPERATE_NOTE' THEN 'cooperation' END AS segment,
    note_type,
    n                                                                   AS note_count,
    TRY_CAST(d ->> '$.videoNoteNumber' AS BIGINT)                       AS video_note_count,
    _median_or_null(d -> '$.readMedian', n)                             AS read_median,
    _median_or_null(d -> '$.impMedian', n)                              AS impression_median,
    _median_or_null(d -> '$.likeMedian', n)                             AS like_median,
    _median_or_null(d -> '$.collectMedian', n)                          AS collect_median,
    _median_or_null(d -> '$.commentMedian', n)                          AS comment_median,
    _median_or_null(d -> '$.shareMedian', n)                            AS share_median,
    _median_or_null(d -> '$.interactionMedian', n)                      AS interaction_median,
    _median_or_null(coalesce(d -> '$.mEngagementNum', d -> '$.mengagementNum'), n) AS interaction_per_note_median,
    CASE WHEN n > 0 THEN _fraction(d -> '$.interactionRate') END        AS interaction_rate,
    CASE WHEN n > 0 THEN _fraction(d -> '$.hundredLikePercent') END     AS hundred_like_share,
    CASE WHEN n > 0 THEN _fraction(d -> '$.thousandLikePercent') END    AS thousand_like_share,
    _fraction(d -> '$.readMedianBeyondRate')                            AS read_median_beyond,
    _fraction(d -> '$.impMedianBeyondRate')                             AS impression_median_beyond,
    _fraction(d -> '$.interactionBeyondRate')                           AS interaction_beyond,
    fetched_at
FROM answers
)
SELECT {columns:analytics.pugongying_note_rates}
FROM typed;
