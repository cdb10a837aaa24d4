-- Each note of each snapshot: the day's list item (raw.page_items: its counts, its page and place)
-- with its text's typed fields (analytics.note_details, stored once per distinct text); for the few
-- items kept whole, the counts typed by the normalization (analytics.irregular_note_counts).
-- interaction_num = like + collect. (Joins USING and no EXCLUDE list: DuckDB prints an EXCLUDE
-- list in no fixed order, and a view's stored text is compared to know whether it is current.)
CREATE OR REPLACE VIEW analytics.notes AS
SELECT {columns:analytics.notes}
FROM (
    SELECT *, like_num + collect_num AS interaction_num
    FROM (
        SELECT *, (items_before + item_index)::INTEGER AS list_position, static_issues AS quality_issues
        FROM raw.page_items
        JOIN raw.pages USING (creator_id, snapshot_date, page_number)
        JOIN analytics.note_details USING (item_key, creator_id)
        WHERE item IS NULL
        UNION ALL BY NAME
        SELECT *
        FROM analytics.irregular_note_counts
        JOIN analytics.note_details USING (item_key, creator_id)
    )
);
