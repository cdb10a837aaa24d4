-- Normalize raw.note_pages into analytics.notes for the partitions in _keys(creator_id, snapshot_date).
-- Runs inside the caller's transaction, after the partitions' old rows are deleted.
-- Every list item lands in exactly one place: analytics.notes (first occurrence of each noteId)
-- or analytics.note_rejects (not an object, no noteId, or a repeat), so nothing is dropped silently.

CREATE OR REPLACE TEMP TABLE _items AS
SELECT
    p.creator_id,
    p.snapshot_date,
    p.page_number,
    p.fetched_at,
    u.item,
    CASE WHEN json_type(u.item) = 'OBJECT' THEN nullif(u.item ->> 'noteId', '') END AS note_id,
    row_number() OVER (
        PARTITION BY p.creator_id, p.snapshot_date ORDER BY p.page_number, u.idx
    )::INTEGER AS list_position
FROM raw.note_pages AS p
JOIN _keys AS k USING (creator_id, snapshot_date),
    unnest(CAST(coalesce(json_extract(p.body, '$.data.list'), '[]') AS JSON[])) WITH ORDINALITY AS u(item, idx);

CREATE OR REPLACE TEMP TABLE _ranked AS
SELECT
    *,
    min(list_position) OVER (PARTITION BY creator_id, snapshot_date, note_id) AS first_position
FROM _items;

INSERT INTO analytics.note_rejects
SELECT
    creator_id,
    snapshot_date,
    page_number,
    list_position,
    CASE
        WHEN json_type(item) <> 'OBJECT' THEN 'list item is not a JSON object'
        WHEN note_id IS NULL THEN 'noteId missing, null or empty'
        ELSE 'repeat of noteId already kept at list position ' || first_position
    END AS reason,
    item
FROM _ranked
WHERE note_id IS NULL OR list_position <> first_position;

-- A count must be a whole number >= 0; anything else becomes NULL and is named in quality_issues.
CREATE OR REPLACE TEMP MACRO _count(t) AS
    CASE WHEN TRY_CAST(t AS HUGEINT) BETWEEN 0 AND 9223372036854775807 THEN TRY_CAST(t AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO _count_issue(item, field) AS
    CASE
        WHEN NOT json_exists(item, '$.' || field) THEN field || ' missing'
        WHEN (item ->> field) IS NULL THEN NULL
        WHEN TRY_CAST(item ->> field AS HUGEINT) IS NULL THEN field || ' is not a whole number: ' || left(item ->> field, 40)
        WHEN TRY_CAST(item ->> field AS HUGEINT) < 0 THEN field || ' is negative: ' || (item ->> field)
        WHEN TRY_CAST(item ->> field AS HUGEINT) > 9223372036854775807 THEN field || ' is out of range: ' || (item ->> field)
        WHEN json_type(item -> field) = 'VARCHAR' THEN field || ' was sent as text'
    END;
CREATE OR REPLACE TEMP MACRO _typed_issue(item, field, typed) AS
    CASE
        WHEN NOT json_exists(item, '$.' || field) THEN field || ' missing'
        WHEN (item ->> field) IS NOT NULL AND typed IS NULL THEN field || ' could not be read: ' || left(item ->> field, 40)
    END;

INSERT INTO analytics.notes
SELECT
    creator_id,
    snapshot_date,
    note_id,
    item ->> 'title'                                   AS title,
    TRY_CAST(item ->> 'date' AS DATE)                  AS published_date,
    TRY_CAST(item ->> 'isVideo' AS BOOLEAN)            AS is_video,
    TRY_CAST(item ->> 'isAdvertise' AS BOOLEAN)        AS is_advertise,
    item ->> 'brandName'                               AS brand_name,
    _count(item ->> 'readNum')                         AS read_num,
    _count(item ->> 'likeNum')                         AS like_num,
    _count(item ->> 'collectNum')                      AS collect_num,
    _count(item ->> 'likeNum') + _count(item ->> 'collectNum') AS interaction_num,
    _count(item ->> 'thirdReadUserNum')                AS third_read_user_num,
    item ->> 'imgUrl'                                  AS img_url,
    list_position,
    page_number,
    fetched_at,
    list_filter([
        _count_issue(item, 'readNum'),
        _count_issue(item, 'likeNum'),
        _count_issue(item, 'collectNum'),
        _count_issue(item, 'thirdReadUserNum'),
        _typed_issue(item, 'date', TRY_CAST(item ->> 'date' AS DATE)),
        _typed_issue(item, 'isVideo', TRY_CAST(item ->> 'isVideo' AS BOOLEAN)),
        _typed_issue(item, 'isAdvertise', TRY_CAST(item ->> 'isAdvertise' AS BOOLEAN)),
        _typed_issue(item, 'title', item ->> 'title')
    ], lambda x: x IS NOT NULL)                             AS quality_issues
FROM _ranked
WHERE note_id IS NOT NULL AND list_position = first_position;

DROP TABLE _ranked;
DROP TABLE _items;
