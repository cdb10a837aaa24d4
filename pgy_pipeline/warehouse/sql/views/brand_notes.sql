-- Cooperation notes (marked as ads, or tagged with a brand) that name a brand, each at its latest
-- snapshot, with the reads gained since its first. Brand names are trimmed of ASCII, no-break and
-- ideographic spaces (tables.BRAND_TRIM_CHARS), then matched exactly.
CREATE OR REPLACE VIEW analytics.brand_notes AS
WITH per_note AS (
    SELECT
        creator_id,
        note_id,
        min(snapshot_date)                          AS first_seen_date,
        max(snapshot_date)                          AS latest_snapshot_date,
        arg_min(read_num, snapshot_date)            AS first_read_num,
        arg_max(
            {'brand': nullif(trim(brand_name, ' ' || chr(9) || chr(10) || chr(13) || chr(160) || chr(12288)), ''),
             'title': title, 'published_date': published_date, 'is_advertise': is_advertise,
             'read_num': read_num, 'like_num': like_num, 'collect_num': collect_num,
             'interaction_num': interaction_num},
            snapshot_date
        )                                           AS latest
    FROM analytics.notes
    WHERE is_advertise OR brand_name IS NOT NULL
    GROUP BY creator_id, note_id
)
SELECT
    latest.brand                                    AS brand_name,
    creator_id,
    note_id,
    latest.title                                    AS title,
    latest.published_date                           AS published_date,
    latest.is_advertise                             AS is_advertise,
    first_seen_date,
    latest_snapshot_date,
    latest.read_num                                 AS read_num,
    latest.like_num                                 AS like_num,
    latest.collect_num                              AS collect_num,
    latest.interaction_num                          AS interaction_num,
    latest.read_num - first_read_num                AS read_gain_since_first_seen
FROM per_note
WHERE latest.brand IS NOT NULL;
