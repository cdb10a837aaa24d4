-- Calls and billed calls per Asia/Shanghai day and creator, from the billing ledger.
CREATE OR REPLACE VIEW meta.api_calls_daily AS
SELECT
    CAST((c.called_at AT TIME ZONE 'UTC') AT TIME ZONE 'Asia/Shanghai' AS DATE) AS call_date,
    c.creator_id,
    count(*)                                                   AS calls,
    count(*) FILTER (WHERE c.billed)                           AS billed_calls,
    count(*) FILTER (WHERE c.code = 302 OR c.http_status = 429) AS rate_limited_calls,
    min(c.called_at)                                           AS first_call_at,
    max(c.called_at)                                           AS last_call_at
FROM meta.api_calls AS c
GROUP BY ALL
ORDER BY call_date, c.creator_id;
