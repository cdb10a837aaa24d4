-- Store the pages in the temp table _load_pages (the columns of raw.note_pages, body whole) split
-- for storage per note-day: the page without its items in raw.pages; each list item's text without
-- its four counts once per creator and distinct text in raw.item_texts; each item's day in
-- raw.page_items (its text's key and its counts typed). _key_scheme(hashed) says how new texts get
-- their keys: the next numbers (one writer at a time, a DuckDB file), or from the text's hash (a
-- lake, where writers commit concurrently). Runs inside the caller's transaction, after the
-- partitions' old rows are deleted.

-- An item is kept as its text's key and its counts typed when it is a note analytics.notes keeps (a
-- JSON object with a noteId, the first with that noteId in the creator's list that day) and each count
-- is a whole number of 0 or more that fits a BIGINT. Any other item (a count missing, null, text,
-- negative or fractional; a reject of analytics.note_rejects) is also kept whole, so that what the
-- normalization reads of it is the item exactly as sent.
CREATE OR REPLACE TEMP MACRO _plain_count(v) AS
    coalesce(json_type(v) = 'UBIGINT' AND TRY_CAST(v ->> '$' AS BIGINT) IS NOT NULL, false);

-- userId and pageNumber are left out of the stored request_params when they are the page's own
-- creator_id and page_number (raw.note_pages puts them back): the rest is the same on every page.
-- (The parentheses around ->> are needed by DuckDB 1.4, the lake's, inside a macro.)
CREATE OR REPLACE TEMP MACRO _params_trimmed(params, creator_id, page_number) AS coalesce(
    json_type(params, '$.userId') = 'VARCHAR' AND (params ->> '$.userId') = creator_id
    AND json_type(params, '$.pageNumber') = 'VARCHAR' AND (params ->> '$.pageNumber') = page_number::VARCHAR,
    false
);

CREATE OR REPLACE TEMP TABLE _split_items AS
SELECT
    creator_id, snapshot_date, page_number, item_index, item,
    CASE WHEN is_object THEN json_merge_patch(
        item, '{"readNum": null, "likeNum": null, "collectNum": null, "thirdReadUserNum": null}'
    ) END AS static,
    CASE WHEN is_object THEN item ->> '$.noteId' END AS note_id,
    is_object AND _plain_count(f[1]) AND _plain_count(f[2]) AND _plain_count(f[3]) AND _plain_count(f[4])
        AND first_of_note IS TRUE AS plain,
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
        FROM _load_pages
        WHERE json_type(body, '$.data.list') = 'ARRAY'
    ) AS p,
        unnest(p.list) WITH ORDINALITY AS u(item, idx)
);

CREATE OR REPLACE TEMP TABLE _texts AS
SELECT creator_id, static, any_value(note_id) AS note_id, md5_number_lower(creator_id || static) AS text_hash,
       min(snapshot_date) AS first_day, min(page_number * 100000 + item_index) AS first_place
FROM _split_items
WHERE static IS NOT NULL
GROUP BY creator_id, static;

-- the texts already stored: the hash finds candidates (reading two numbers per stored text), the text
-- decides
CREATE OR REPLACE TEMP TABLE _text_keys AS
SELECT n.creator_id, n.static, t.item_key
FROM _texts AS n
JOIN raw.item_texts AS t ON t.text_hash = n.text_hash AND t.creator_id = n.creator_id AND t.static = n.static
WHERE t.item_key IN (SELECT item_key FROM raw.item_texts WHERE text_hash IN (SELECT text_hash FROM _texts));

CREATE OR REPLACE TEMP TABLE _new_texts AS
SELECT
    n.creator_id, n.note_id, n.static, n.text_hash,
    CASE
        WHEN (SELECT hashed FROM _key_scheme) THEN (n.text_hash >> 1)::BIGINT
        ELSE (SELECT coalesce(max(item_key), 0) FROM raw.item_texts)
            + row_number() OVER (ORDER BY n.first_day, n.creator_id, n.first_place)
    END AS item_key
FROM _texts AS n
ANTI JOIN _text_keys AS k ON k.creator_id = n.creator_id AND k.static = n.static;

INSERT INTO raw.item_texts ({columns:raw.item_texts})
SELECT {columns:raw.item_texts} FROM _new_texts;

-- a key taken from a hash must name one text (two texts with one hash would need a new release)
SELECT error('two item texts share the key ' || item_key || ' in raw.item_texts')
FROM raw.item_texts
WHERE item_key IN (SELECT item_key FROM _new_texts)
GROUP BY item_key
HAVING count(*) > 1;

INSERT INTO _text_keys SELECT creator_id, static, item_key FROM _new_texts;

INSERT INTO raw.pages ({columns:raw.pages})
SELECT {columns:raw.pages}
FROM (
    SELECT
        p.* REPLACE (
            CASE WHEN _params_trimmed(p.request_params, p.creator_id, p.page_number)
                THEN json_merge_patch(p.request_params, '{"pageNumber": null, "userId": null}')
                 ELSE p.request_params END AS request_params
        ),
        _params_trimmed(p.request_params, p.creator_id, p.page_number) AS params_trimmed,
        coalesce(json_type(p.body, '$.data.list') = 'ARRAY', false) AS list_split,
        CASE WHEN json_type(p.body, '$.data.list') = 'ARRAY'
             THEN json_merge_patch(p.body, '{"data": {"list": []}}') ELSE p.body END AS envelope,
        coalesce(sum(coalesce(n.items, 0)) OVER (
            PARTITION BY p.creator_id, p.snapshot_date ORDER BY p.page_number
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0)::INTEGER AS items_before
    FROM _load_pages AS p
    LEFT JOIN (
        SELECT creator_id, snapshot_date, page_number, count(*) AS items FROM _split_items GROUP BY ALL
    ) AS n USING (creator_id, snapshot_date, page_number)
);

INSERT INTO raw.page_items ({columns:raw.page_items})
SELECT {columns:raw.page_items}
FROM (
    SELECT
        s.creator_id, s.snapshot_date, s.page_number, s.item_index, t.item_key,
        CASE WHEN s.plain THEN s.read_num END AS read_num,
        CASE WHEN s.plain THEN s.like_num END AS like_num,
        CASE WHEN s.plain THEN s.collect_num END AS collect_num,
        CASE WHEN s.plain THEN s.third_read_user_num END AS third_read_user_num,
        CASE WHEN NOT s.plain THEN s.item END AS item
    FROM _split_items AS s
    LEFT JOIN _text_keys AS t ON t.creator_id = s.creator_id AND t.static = s.static
    ORDER BY s.creator_id, s.snapshot_date, s.page_number, s.item_index
);

DROP TABLE _new_texts;
DROP TABLE _text_keys;
DROP TABLE _texts;
DROP TABLE _split_items;
