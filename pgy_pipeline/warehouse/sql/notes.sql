-- Normalize raw.note_pages into analytics.notes for the partitions in the temp table _keys(creator_id,
-- snapshot_date), which storage.partition_keys() fills before this runs.
-- Runs inside the caller's transaction, after the partitions' old rows are deleted.
-- Every list item lands in exactly one place: analytics.notes (first occurrence of each noteId)
-- or analytics.note_rejects (not an object, no noteId, or a repeat), so nothing is dropped silently.
-- Each item's JSON is parsed once (one json_extract of every field), and only typed columns are kept
-- in the temporary tables; a rejected item's JSON is read back from its page (rejects are rare).

-- A count must be a whole number >= 0; anything else becomes NULL and is named in quality_issues.
-- (a cast to HUGEINT rounds 12.5 to 13, so the value must also equal itself as a DOUBLE).
CREATE OR REPLACE TEMP MACRO _whole(t) AS
    CASE WHEN TRY_CAST(t AS DOUBLE) = TRY_CAST(t AS HUGEINT) THEN TRY_CAST(t AS HUGEINT) END;
CREATE OR REPLACE TEMP MACRO _count(t) AS
    CASE WHEN _whole(t) BETWEEN 0 AND 9223372036854775807 THEN _whole(t)::BIGINT END;
-- v: the field's JSON value, NULL when the key is missing
CREATE OR REPLACE TEMP MACRO _count_issue(v, field) AS
    CASE
        WHEN v IS NULL THEN field || ' missing'
        WHEN (v ->> '$') IS NULL THEN NULL
        WHEN _whole(v ->> '$') IS NULL THEN field || ' is not a whole number: ' || left(v ->> '$', 40)
        WHEN _whole(v ->> '$') < 0 THEN field || ' is negative: ' || (v ->> '$')
        WHEN _whole(v ->> '$') > 9223372036854775807 THEN field || ' is out of range: ' || (v ->> '$')
        WHEN json_type(v) = 'VARCHAR' THEN field || ' was sent as text'
    END;
CREATE OR REPLACE TEMP MACRO _typed_issue(v, field, typed) AS
    CASE
        WHEN v IS NULL THEN field || ' missing'
        WHEN (v ->> '$') IS NOT NULL AND typed IS NULL THEN field || ' could not be read: ' || left(v ->> '$', 40)
    END;

-- The segment rule, in one place: a note marked as an ad, or tagged with a brand (a brandName with any
-- character that is not white space), is cooperation, even when isAdvertise is false, as Pugongying
-- leaves such notes out of its daily (organic) figures; neither is organic; NULL when isAdvertise is
-- unknown and there is no brand.
CREATE OR REPLACE TEMP MACRO _segment(is_advertise, brand_name) AS
    CASE
        WHEN is_advertise OR coalesce(regexp_matches(brand_name, '[^\s\pZ]'), false) THEN 'cooperation'
        WHEN NOT is_advertise THEN 'organic'
    END;

CREATE OR REPLACE TEMP TABLE _items AS
SELECT
    creator_id, snapshot_date, page_number, fetched_at, idx, item_type,
    CASE WHEN item_type = 'OBJECT' THEN nullif(f[1] ->> '$', '') END AS note_id,
    (items_before + idx)::INTEGER AS list_position,
    f[2] ->> '$'                                   AS title,
    TRY_CAST(f[3] ->> '$' AS DATE)                 AS published_date,
    TRY_CAST(f[4] ->> '$' AS BOOLEAN)              AS is_video,
    TRY_CAST(f[5] ->> '$' AS BOOLEAN)              AS is_advertise,
    f[6] ->> '$'                                   AS brand_name,
    _count(f[7] ->> '$')                           AS read_num,
    _count(f[8] ->> '$')                           AS like_num,
    _count(f[9] ->> '$')                           AS collect_num,
    _count(f[10] ->> '$')                          AS third_read_user_num,
    f[11] ->> '$'                                  AS img_url,
    list_filter([
        _count_issue(f[7], 'readNum'),
        _count_issue(f[8], 'likeNum'),
        _count_issue(f[9], 'collectNum'),
        _count_issue(f[10], 'thirdReadUserNum'),
        _typed_issue(f[3], 'date', TRY_CAST(f[3] ->> '$' AS DATE)),
        _typed_issue(f[4], 'isVideo', TRY_CAST(f[4] ->> '$' AS BOOLEAN)),
        _typed_issue(f[5], 'isAdvertise', TRY_CAST(f[5] ->> '$' AS BOOLEAN)),
        _typed_issue(f[2], 'title', f[2] ->> '$')
    ], lambda x: x IS NOT NULL)                    AS quality_issues
FROM (
    SELECT
        p.creator_id, p.snapshot_date, p.page_number, p.fetched_at, p.items_before, u.idx,
        json_type(u.item) AS item_type,
        json_extract(u.item, ['$.noteId', '$.title', '$.date', '$.isVideo', '$.isAdvertise', '$.brandName',
                              '$.readNum', '$.likeNum', '$.collectNum', '$.thirdReadUserNum', '$.imgUrl']) AS f
    FROM (
        -- one row per page: its list, and how many items the partition's earlier pages hold
        SELECT creator_id, snapshot_date, page_number, fetched_at, list,
               coalesce(sum(len(list)) OVER (PARTITION BY creator_id, snapshot_date ORDER BY page_number
                                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS items_before
        FROM (
            SELECT p.creator_id, p.snapshot_date, p.page_number, p.fetched_at,
                   CAST(coalesce(json_extract(p.body, '$.data.list'), '[]') AS JSON[]) AS list
            FROM raw.note_pages AS p
            JOIN _keys AS k USING (creator_id, snapshot_date)
        )
    ) AS p,
        unnest(p.list) WITH ORDINALITY AS u(item, idx)
);

-- _ranked names every column of analytics.notes (interaction_num and segment are derived here), so
-- the insert below picks the declared columns by name.
CREATE OR REPLACE TEMP TABLE _ranked AS
SELECT
    *,
    like_num + collect_num                                                     AS interaction_num,
    _segment(is_advertise, brand_name)                                         AS segment,
    min(list_position) OVER (PARTITION BY creator_id, snapshot_date, note_id) AS first_position
FROM _items;

INSERT INTO analytics.note_rejects ({columns:analytics.note_rejects})
WITH rejects AS (
    SELECT
        r.*,
        CASE
            WHEN r.item_type IS DISTINCT FROM 'OBJECT' THEN 'list item is not a JSON object'
            WHEN r.note_id IS NULL THEN 'noteId missing, null or empty'
            ELSE 'repeat of noteId already kept at list position ' || r.first_position
        END AS reason,
        nullif(json_extract(p.body, '$.data.list[' || (r.idx - 1) || ']'), 'null') AS item
    FROM _ranked AS r
    JOIN raw.note_pages AS p USING (creator_id, snapshot_date, page_number)
    WHERE r.note_id IS NULL OR r.list_position <> r.first_position
)
SELECT {columns:analytics.note_rejects}
FROM rejects;

INSERT INTO analytics.notes ({columns:analytics.notes})
SELECT {columns:analytics.notes}
FROM _ranked
WHERE note_id IS NOT NULL AND list_position = first_position;

DROP TABLE _ranked;
DROP TABLE _items;
