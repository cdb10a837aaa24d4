-- Normalize the raw pages (raw.pages, raw.page_items, raw.item_texts) into analytics.notes (a view of
-- raw.page_items with analytics.note_details, and analytics.irregular_note_counts) for the partitions in the temp table _keys(creator_id,
-- snapshot_date), which storage.partition_keys() fills before this runs.
-- Runs inside the caller's transaction, after the partitions' old rows are deleted.
-- Every list item lands in exactly one place: analytics.notes (first occurrence of each noteId)
-- or analytics.note_rejects (not an object, no noteId, or a repeat), so nothing is dropped silently.
-- Each item's JSON is parsed once (one json_extract of every field); a rejected item is kept whole in
-- raw.page_items, so analytics.note_rejects.item is the item as sent.

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
    creator_id, snapshot_date, page_number, fetched_at, idx, item_type, item_key, kept_whole, item,
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
    ], lambda x: x IS NOT NULL)                    AS quality_issues,
    list_filter([
        _typed_issue(f[3], 'date', TRY_CAST(f[3] ->> '$' AS DATE)),
        _typed_issue(f[4], 'isVideo', TRY_CAST(f[4] ->> '$' AS BOOLEAN)),
        _typed_issue(f[5], 'isAdvertise', TRY_CAST(f[5] ->> '$' AS BOOLEAN)),
        _typed_issue(f[2], 'title', f[2] ->> '$')
    ], lambda x: x IS NOT NULL)                    AS static_issues
FROM (
    SELECT
        i.creator_id, i.snapshot_date, i.page_number, i.fetched_at, i.items_before, i.idx, i.item_key,
        i.kept_whole, i.item,
        json_type(i.item) AS item_type,
        json_extract(i.item, ['$.noteId', '$.title', '$.date', '$.isVideo', '$.isAdvertise', '$.brandName',
                              '$.readNum', '$.likeNum', '$.collectNum', '$.thirdReadUserNum', '$.imgUrl']) AS f
    FROM (
        -- one row per list item (raw.page_items): as kept whole, or its text with that day's counts
        SELECT
            pi.creator_id, pi.snapshot_date, pi.page_number, p.fetched_at, p.items_before,
            pi.item_index AS idx, pi.item_key, pi.item IS NOT NULL AS kept_whole,
            coalesce(pi.item, json_merge_patch(t.static, json_object(
                'readNum', pi.read_num, 'likeNum', pi.like_num,
                'collectNum', pi.collect_num, 'thirdReadUserNum', pi.third_read_user_num
            ))) AS item
        FROM raw.pages AS p
        JOIN _keys AS k USING (creator_id, snapshot_date)
        JOIN raw.page_items AS pi USING (creator_id, snapshot_date, page_number)
        LEFT JOIN raw.item_texts AS t ON t.item_key = pi.item_key
    ) AS i
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
        END AS reason
    FROM (SELECT * REPLACE (nullif(item, 'null') AS item) FROM _ranked) AS r
    WHERE r.note_id IS NULL OR r.list_position <> r.first_position
)
SELECT {columns:analytics.note_rejects}
FROM rejects;

-- analytics.notes reads each note's counts from raw.page_items, with its typed text, stored here once
-- per key (a key's text is fixed, so a details row, once written, stays right); a note whose item is
-- kept whole has its typed counts stored in analytics.irregular_note_counts
INSERT INTO analytics.irregular_note_counts ({columns:analytics.irregular_note_counts})
SELECT {columns:analytics.irregular_note_counts}
FROM _ranked
WHERE note_id IS NOT NULL AND list_position = first_position AND kept_whole;

INSERT INTO analytics.note_details ({columns:analytics.note_details})
SELECT {columns:analytics.note_details}
FROM (
    SELECT * FROM _ranked
    WHERE note_id IS NOT NULL AND list_position = first_position
    QUALIFY row_number() OVER (PARTITION BY item_key ORDER BY snapshot_date, list_position) = 1
)
WHERE item_key NOT IN (SELECT item_key FROM analytics.note_details WHERE item_key IN (SELECT item_key FROM _ranked));

DROP TABLE _ranked;
DROP TABLE _items;
