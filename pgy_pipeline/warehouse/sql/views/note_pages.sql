-- Each stored page with its body put back together: the envelope (raw.pages), its data.list set to
-- the page's items in order; an item is its text (raw.item_texts) with that day's four counts, or the
-- item as kept whole (raw.page_items.item).
CREATE OR REPLACE VIEW raw.note_pages AS
SELECT {columns:raw.note_pages}
FROM (
    SELECT
        p.* REPLACE (
            CASE WHEN p.params_trimmed THEN json_merge_patch(
                p.request_params, json_object('pageNumber', p.page_number::VARCHAR, 'userId', p.creator_id)
            ) ELSE p.request_params END AS request_params
        ),
        CASE
            WHEN p.list_split THEN json_merge_patch(
                p.envelope, json_object('data', json_object('list', coalesce(i.list, '[]'::JSON)))
            )
            ELSE p.envelope
        END AS body
    FROM raw.pages AS p
    LEFT JOIN (
        SELECT
            pi.creator_id, pi.snapshot_date, pi.page_number,
            to_json(list(
                coalesce(pi.item, json_merge_patch(t.static, json_object(
                    'readNum', pi.read_num, 'likeNum', pi.like_num,
                    'collectNum', pi.collect_num, 'thirdReadUserNum', pi.third_read_user_num
                )))
                ORDER BY pi.item_index
            )) AS list
        FROM raw.page_items AS pi
        LEFT JOIN raw.item_texts AS t ON t.item_key = pi.item_key
        GROUP BY pi.creator_id, pi.snapshot_date, pi.page_number
    ) AS i ON i.creator_id = p.creator_id AND i.snapshot_date = p.snapshot_date AND i.page_number = p.page_number
);
