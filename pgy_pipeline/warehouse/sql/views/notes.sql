-- Each note of each snapshot: the day's list item (raw.page_items: its counts, its page and place)
-- with its text's typed fields (analytics.note_details, stored once per distinct text); for the few
-- items kept whole, the counts typed by the normalization (analytics.irregular_note_counts).
-- interaction_num = like + collect.
CREATE OR REPLACE VIEW analytics.notes AS
SELECT {columns:analytics.notes}
FROM (
    SELECT *, like_num + collect_num AS interaction_num
    FROM (
        SELECT
            i.creator_id, i.snapshot_date, d.* EXCLUDE (item_key, creator_id, static_issues),
            i.read_num, i.like_num, i.collect_num, i.third_read_user_num,
            (p.items_before + i.item_index)::INTEGER AS list_position, i.page_number, p.fetched_at,
            d.static_issues AS quality_issues
        FROM raw.page_items AS i
        JOIN raw.pages AS p
            ON p.creator_id = i.creator_id AND p.snapshot_date = i.snapshot_date AND p.page_number = i.page_number
        JOIN analytics.note_details AS d ON d.item_key = i.item_key
        WHERE i.item IS NULL
        UNION ALL BY NAME
        SELECT c.* EXCLUDE (item_key), d.* EXCLUDE (item_key, creator_id, static_issues)
        FROM analytics.irregular_note_counts AS c
        JOIN analytics.note_details AS d ON d.item_key = c.item_key
    )
);
