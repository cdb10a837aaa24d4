-- Storage per note-day: list items stored apart from their pages (a note's text once, its counts per day); raw.note_pages and analytics.notes become views
-- The pages' bodies are split as sql/raw_pages.sql splits new ones: raw.pages (each page without its
-- items), raw.item_texts (each item's text without its four counts, once per creator and distinct
-- text) and raw.page_items (each item's day: its text's key and its counts). Of analytics.notes, the
-- typed text goes to analytics.note_details (once per text key), and the typed counts of the notes
-- whose item is kept whole to analytics.irregular_note_counts; a note row is matched to its list item
-- by page and position, and every row is kept. The old tables are then dropped, and
-- the views of the same names (created from the declarations after the migrations) read the new ones.

CREATE TABLE raw.pages (
    "creator_id" VARCHAR NOT NULL,
    "snapshot_date" DATE NOT NULL,
    "page_number" INTEGER NOT NULL,
    "request_params" JSON NOT NULL,
    "fetched_at" TIMESTAMP NOT NULL,
    "attempts" INTEGER NOT NULL,
    "code" INTEGER NOT NULL,
    "total" INTEGER,
    "item_count" INTEGER NOT NULL,
    "scan" VARCHAR NOT NULL,
    "scan_window_from" DATE,
    "envelope" JSON NOT NULL,
    "list_split" BOOLEAN NOT NULL,
    "items_before" INTEGER NOT NULL,
    "params_trimmed" BOOLEAN NOT NULL
);
CREATE TABLE raw.item_texts (
    "item_key" BIGINT NOT NULL,
    "creator_id" VARCHAR NOT NULL,
    "note_id" VARCHAR,
    "static" JSON NOT NULL,
    "text_hash" UBIGINT NOT NULL
);
CREATE TABLE raw.page_items (
    "creator_id" VARCHAR NOT NULL,
    "snapshot_date" DATE NOT NULL,
    "page_number" INTEGER NOT NULL,
    "item_index" INTEGER NOT NULL,
    "item_key" BIGINT,
    "read_num" BIGINT,
    "like_num" BIGINT,
    "collect_num" BIGINT,
    "third_read_user_num" BIGINT,
    "item" JSON
);
CREATE TABLE analytics.note_details (
    "item_key" BIGINT NOT NULL,
    "creator_id" VARCHAR NOT NULL,
    "note_id" VARCHAR NOT NULL,
    "title" VARCHAR,
    "published_date" DATE,
    "is_video" BOOLEAN,
    "is_advertise" BOOLEAN,
    "brand_name" VARCHAR,
    "img_url" VARCHAR,
    "segment" VARCHAR,
    "static_issues" VARCHAR[] NOT NULL
);
CREATE TABLE analytics.irregular_note_counts (
    "creator_id" VARCHAR NOT NULL,
    "snapshot_date" DATE NOT NULL,
    "item_key" BIGINT NOT NULL,
    "read_num" BIGINT,
    "like_num" BIGINT,
    "collect_num" BIGINT,
    "third_read_user_num" BIGINT,
    "list_position" INTEGER NOT NULL,
    "page_number" INTEGER NOT NULL,
    "fetched_at" TIMESTAMP NOT NULL,
    "quality_issues" VARCHAR[] NOT NULL
);

CREATE OR REPLACE TEMP MACRO _plain_count_0009(v) AS
    coalesce(json_type(v) = 'UBIGINT' AND TRY_CAST(v ->> '$' AS BIGINT) IS NOT NULL, false);

CREATE OR REPLACE TEMP TABLE _split_0009 AS
SELECT
    creator_id, snapshot_date, page_number, item_index, item,
    CASE WHEN is_object THEN json_merge_patch(
        item, '{"readNum": null, "likeNum": null, "collectNum": null, "thirdReadUserNum": null}'
    ) END AS static,
    CASE WHEN is_object THEN item ->> '$.noteId' END AS note_id,
    is_object AND _plain_count_0009(f[1]) AND _plain_count_0009(f[2]) AND _plain_count_0009(f[3])
        AND _plain_count_0009(f[4]) AND first_of_note IS TRUE AS plain,
    TRY_CAST(f[1] ->> '$' AS BIGINT) AS read_num,
    TRY_CAST(f[2] ->> '$' AS BIGINT) AS like_num,
    TRY_CAST(f[3] ->> '$' AS BIGINT) AS collect_num,
    TRY_CAST(f[4] ->> '$' AS BIGINT) AS third_read_user_num
FROM (
    SELECT
        -- a JSON null in the list is kept as JSON null (unnest gives SQL NULL)
        p.creator_id, p.snapshot_date, p.page_number, u.idx::INTEGER AS item_index,
        coalesce(u.item, 'null'::JSON) AS item,
        coalesce(json_type(u.item) = 'OBJECT', false) AS is_object,
        json_extract(u.item, ['$.readNum', '$.likeNum', '$.collectNum', '$.thirdReadUserNum']) AS f,
        coalesce(
            json_type(u.item) = 'OBJECT'
            AND nullif(u.item ->> '$.noteId', '') IS NOT NULL
            AND row_number() OVER (
                PARTITION BY p.creator_id, p.snapshot_date,
                    CASE WHEN json_type(u.item) = 'OBJECT' THEN nullif(u.item ->> '$.noteId', '') END
                ORDER BY p.page_number, u.idx
            ) = 1,
            false
        ) AS first_of_note
    FROM (
        SELECT creator_id, snapshot_date, page_number, CAST(json_extract(body, '$.data.list') AS JSON[]) AS list
        FROM raw.note_pages
        WHERE json_type(body, '$.data.list') = 'ARRAY'
    ) AS p,
        unnest(p.list) WITH ORDINALITY AS u(item, idx)
);

CREATE OR REPLACE TEMP TABLE _texts_0009 AS
SELECT
    row_number() OVER (ORDER BY first_day, creator_id, first_place) AS item_key,
    creator_id, static, note_id, md5_number_lower(creator_id || static) AS text_hash
FROM (
    SELECT creator_id, static, any_value(note_id) AS note_id,
           min(snapshot_date) AS first_day, min(page_number * 100000 + item_index) AS first_place
    FROM _split_0009
    WHERE static IS NOT NULL
    GROUP BY creator_id, static
);

INSERT INTO raw.item_texts ("item_key", "creator_id", "note_id", "static", "text_hash")
SELECT item_key, creator_id, note_id, static, text_hash FROM _texts_0009;

INSERT INTO raw.pages (
    "creator_id", "snapshot_date", "page_number", "request_params", "fetched_at", "attempts", "code",
    "total", "item_count", "scan", "scan_window_from", "envelope", "list_split", "items_before",
    "params_trimmed"
)
SELECT
    p.creator_id, p.snapshot_date, p.page_number,
    CASE WHEN p.params_trimmed
         THEN json_merge_patch(p.request_params, '{"pageNumber": null, "userId": null}')
         ELSE p.request_params END,
    p.fetched_at, p.attempts, p.code,
    p.total, p.item_count, p.scan, p.scan_window_from,
    CASE WHEN json_type(p.body, '$.data.list') = 'ARRAY'
         THEN json_merge_patch(p.body, '{"data": {"list": []}}') ELSE p.body END,
    coalesce(json_type(p.body, '$.data.list') = 'ARRAY', false),
    coalesce(sum(coalesce(n.items, 0)) OVER (
        PARTITION BY p.creator_id, p.snapshot_date ORDER BY p.page_number
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    ), 0)::INTEGER,
    p.params_trimmed
FROM (
    SELECT p.*, coalesce(
                json_type(p.request_params, '$.userId') = 'VARCHAR' AND p.request_params ->> '$.userId' = p.creator_id
                AND json_type(p.request_params, '$.pageNumber') = 'VARCHAR'
                AND p.request_params ->> '$.pageNumber' = p.page_number::VARCHAR,
                false
            ) AS params_trimmed
    FROM raw.note_pages AS p
) AS p
LEFT JOIN (
    SELECT creator_id, snapshot_date, page_number, count(*) AS items FROM _split_0009 GROUP BY ALL
) AS n USING (creator_id, snapshot_date, page_number)
ORDER BY p.snapshot_date, p.creator_id, p.page_number;

INSERT INTO raw.page_items (
    "creator_id", "snapshot_date", "page_number", "item_index", "item_key",
    "read_num", "like_num", "collect_num", "third_read_user_num", "item"
)
SELECT
    s.creator_id, s.snapshot_date, s.page_number, s.item_index, t.item_key,
    CASE WHEN s.plain THEN s.read_num END,
    CASE WHEN s.plain THEN s.like_num END,
    CASE WHEN s.plain THEN s.collect_num END,
    CASE WHEN s.plain THEN s.third_read_user_num END,
    CASE WHEN NOT s.plain THEN s.item END
FROM _split_0009 AS s
LEFT JOIN _texts_0009 AS t ON t.creator_id = s.creator_id AND t.static = s.static
ORDER BY s.snapshot_date, s.creator_id, s.page_number, s.item_index;

-- each stored note row to its list item: the page, and the position within it
CREATE OR REPLACE TEMP TABLE _note_keys_0009 AS
SELECT n.creator_id, n.snapshot_date, n.list_position, i.item_key, i.item IS NOT NULL AS kept_whole
FROM analytics.notes AS n
JOIN raw.pages AS p USING (creator_id, snapshot_date, page_number)
JOIN raw.page_items AS i
    ON i.creator_id = n.creator_id AND i.snapshot_date = n.snapshot_date AND i.page_number = n.page_number
   AND i.item_index = n.list_position - p.items_before
JOIN raw.item_texts AS t ON t.item_key = i.item_key AND t.note_id = n.note_id;

-- a note row without its list item (its page was removed by hand): its text is made from its own
-- fields, and its counts are kept as irregular, so that the row is kept
CREATE OR REPLACE TEMP TABLE _orphans_0009 AS
SELECT
    (SELECT coalesce(max(item_key), 0) FROM raw.item_texts)
        + row_number() OVER (ORDER BY n.snapshot_date, n.creator_id, n.list_position) AS item_key,
    n.*,
    json_object('noteId', n.note_id, 'title', n.title, 'date', n.published_date, 'isVideo', n.is_video,
                'isAdvertise', n.is_advertise, 'brandName', n.brand_name, 'imgUrl', n.img_url) AS static
FROM analytics.notes AS n
ANTI JOIN _note_keys_0009 AS k USING (creator_id, snapshot_date, list_position);

INSERT INTO raw.item_texts ("item_key", "creator_id", "note_id", "static", "text_hash")
SELECT item_key, creator_id, note_id, static, md5_number_lower(creator_id || static) FROM _orphans_0009;

INSERT INTO _note_keys_0009 SELECT creator_id, snapshot_date, list_position, item_key, true FROM _orphans_0009;

-- the notes whose item is kept whole keep their typed counts; every other note's are raw.page_items'
INSERT INTO analytics.irregular_note_counts (
    "creator_id", "snapshot_date", "item_key", "read_num", "like_num", "collect_num",
    "third_read_user_num", "list_position", "page_number", "fetched_at", "quality_issues"
)
SELECT n.creator_id, n.snapshot_date, k.item_key, n.read_num, n.like_num, n.collect_num,
       n.third_read_user_num, n.list_position, n.page_number, n.fetched_at, n.quality_issues
FROM analytics.notes AS n
JOIN _note_keys_0009 AS k USING (creator_id, snapshot_date, list_position)
WHERE k.kept_whole
ORDER BY n.snapshot_date, n.creator_id, n.list_position;

INSERT INTO analytics.note_details (
    "item_key", "creator_id", "note_id", "title", "published_date", "is_video", "is_advertise",
    "brand_name", "img_url", "segment", "static_issues"
)
SELECT k.item_key, n.creator_id, n.note_id, n.title, n.published_date, n.is_video, n.is_advertise,
       n.brand_name, n.img_url, n.segment,
       list_filter(n.quality_issues, lambda x: NOT (
           x LIKE 'readNum %' OR x LIKE 'likeNum %' OR x LIKE 'collectNum %' OR x LIKE 'thirdReadUserNum %'
       ))
FROM analytics.notes AS n
JOIN _note_keys_0009 AS k USING (creator_id, snapshot_date, list_position)
QUALIFY row_number() OVER (PARTITION BY k.item_key ORDER BY n.snapshot_date, n.list_position) = 1;

DROP TABLE _note_keys_0009;
DROP TABLE _orphans_0009;
DROP TABLE _texts_0009;
DROP TABLE _split_0009;
DROP TABLE raw.note_pages;
DROP TABLE analytics.notes;
