"""Column descriptions of every table, attached to materializations as ``dagster/column_schema``.

``docs/tables.md`` documents the same columns for people writing SQL; a test keeps the two and the
DuckDB schema in step.
"""

from __future__ import annotations

from dagster import TableColumn, TableSchema

COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "raw.note_pages": [
        ("creator_id", "VARCHAR", "Xiaohongshu user id of the creator (24 lowercase hex)."),
        ("snapshot_date", "DATE", "Day in Asia/Shanghai on which the API was read."),
        ("page_number", "INTEGER", "pageNumber requested, from 1."),
        ("request_params", "JSON", "Query parameters sent (userId, filters, order, page); never the token."),
        ("fetched_at", "TIMESTAMP", "When the page arrived, UTC."),
        ("attempts", "INTEGER", "HTTP calls this page took; 1 means no retry."),
        ("code", "INTEGER", "Business code of the response (always 0: failures are not stored)."),
        ("total", "INTEGER", "data.total as reported on this page."),
        ("item_count", "INTEGER", "Number of items in data.list on this page."),
        (
            "body",
            "JSON",
            "The response body verbatim, unknown fields included (a lone UTF-16 surrogate escape, "
            "half an emoji, which DuckDB's JSON cannot hold, becomes \\ufffd).",
        ),
    ],
    "analytics.notes": [
        ("creator_id", "VARCHAR", "Xiaohongshu user id of the creator."),
        ("snapshot_date", "DATE", "Snapshot day (Asia/Shanghai)."),
        ("note_id", "VARCHAR", "noteId; unique per (creator_id, snapshot_date)."),
        ("title", "VARCHAR", "Note title as sent."),
        ("published_date", "DATE", "Publish day, from the item's date; NULL if missing or unreadable."),
        ("is_video", "BOOLEAN", "isVideo."),
        ("is_advertise", "BOOLEAN", "isAdvertise: true for cooperation (sponsored) notes."),
        ("brand_name", "VARCHAR", "brandName of a cooperation note; NULL for organic notes."),
        ("read_num", "BIGINT", "readNum: cumulative reads at snapshot time."),
        ("like_num", "BIGINT", "likeNum."),
        ("collect_num", "BIGINT", "collectNum."),
        ("interaction_num", "BIGINT", "like_num + collect_num (the endpoint gives no comments or shares)."),
        ("third_read_user_num", "BIGINT", "thirdReadUserNum."),
        ("img_url", "VARCHAR", "Cover image URL."),
        (
            "list_position",
            "INTEGER",
            "1-based position in the creator's list as paged (page order, then item order).",
        ),
        ("page_number", "INTEGER", "Page the note was read from."),
        ("fetched_at", "TIMESTAMP", "When that page arrived, UTC."),
        (
            "quality_issues",
            "VARCHAR[]",
            "Values that were missing or could not be typed (then NULL); empty when clean.",
        ),
    ],
    "analytics.note_rejects": [
        ("creator_id", "VARCHAR", "Creator of the page the item came from."),
        ("snapshot_date", "DATE", "Snapshot day."),
        ("page_number", "INTEGER", "Page the item came from."),
        ("list_position", "INTEGER", "1-based position in the list as paged."),
        ("reason", "VARCHAR", "Why it is not in analytics.notes: not an object, no noteId, or a repeat."),
        ("item", "JSON", "The list item verbatim."),
    ],
    "analytics.creator_engagement_metrics": [
        ("creator_id", "VARCHAR", "Xiaohongshu user id of the creator."),
        ("snapshot_date", "DATE", "Snapshot day (Asia/Shanghai)."),
        (
            "window",
            "VARCHAR",
            "'30d' or '90d': notes published in (snapshot_date - N days, snapshot_date]; 'all': every note.",
        ),
        ("segment", "VARCHAR", "'all', 'organic' (is_advertise false) or 'cooperation' (is_advertise true)."),
        ("note_count", "BIGINT", "Notes in the window and segment."),
        ("video_note_count", "BIGINT", "Of those, video notes."),
        ("read_median", "DOUBLE", "Median read_num (DuckDB median)."),
        ("read_mean", "DOUBLE", "Mean read_num."),
        ("interaction_median", "DOUBLE", "Median interaction_num."),
        ("like_median", "DOUBLE", "Median like_num."),
        ("collect_median", "DOUBLE", "Median collect_num."),
        ("engagement_rate", "DOUBLE", "sum(interaction_num) / sum(read_num); NULL when there are no reads."),
        ("hundred_like_rate", "DOUBLE", "Share of notes with like_num >= 100 (notes with a known like_num)."),
        ("thousand_like_rate", "DOUBLE", "Share of notes with like_num >= 1000."),
        ("notes_per_week", "DOUBLE", "note_count / (window days / 7); NULL for window 'all'."),
        ("days_since_last_note", "INTEGER", "snapshot_date minus the latest published_date in the cell."),
        (
            "read_gain",
            "BIGINT",
            "Sum of read_num now minus at the previous snapshot, over notes in both; NULL without a previous snapshot.",
        ),
        ("previous_snapshot_date", "DATE", "The creator's previous snapshot used for read_gain."),
        ("notes_total_reported", "INTEGER", "The API's total on the last page read."),
    ],
    "analytics.creators": [
        ("creator_id", "VARCHAR", "Xiaohongshu user id."),
        ("display_name", "VARCHAR", "Name from the creator registry file."),
        ("tags", "VARCHAR[]", "Tags from the registry (campaign, category...)."),
        ("active", "BOOLEAN", "Whether the creator is still fetched."),
        ("updated_at", "TIMESTAMP", "When the registry was last synced, UTC."),
    ],
}


def column_schema(table: str) -> TableSchema:
    """The Dagster table schema of one DuckDB table."""
    return TableSchema(columns=[TableColumn(name=n, type=t, description=d) for n, t, d in COLUMNS[table]])
