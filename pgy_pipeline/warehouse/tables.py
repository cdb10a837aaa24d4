"""The SQL contract: every table and view of the warehouse, declared once.

Analysts write their own SQL against these relations, so their layout is a public contract. Each
relation is declared here exactly once (columns, types, nullability, units, descriptions) and
everything else follows from the declaration:

* the DuckDB DDL of a new table (:meth:`Relation.create_sql`), which the migrations check against;
* the Arrow schema of bulk loads (:meth:`Relation.arrow_schema`);
* the ``INSERT`` and ``SELECT`` column lists of the SQL files, which write ``{columns:schema.name}``
  where :mod:`pgy_pipeline.warehouse.sql_files` puts the declared columns, and of the Python loads
  (:meth:`Relation.quoted_columns`), so no insert is positional and no column list is kept by hand;
* which metric columns window ``all`` leaves NULL on a window-scan day (:attr:`Column.needs_every_note`);
* DuckDB ``COMMENT ON`` text, so analysts see the descriptions in their own SQL tools;
* the Dagster ``dagster/column_schema`` metadata (built in the Dagster layer from these objects);
* ``docs/tables.md`` (:mod:`pgy_pipeline.warehouse.docs`; a test keeps it current).

Changing a table's columns also needs a migration (``sql/migrations/``): a test compares the
migrated layout of a new file with these declarations, so a forgotten migration fails the suite.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    """One column: its DuckDB type, whether it may be NULL, its unit, and what it means.

    ``needs_every_note``: in window ``all`` of ``analytics.creator_engagement_metrics`` the figure
    needs every note of the creator, so on a window-scan day (which reads only the recent notes) it
    is left NULL rather than computed from part of them (``sql/metrics_window_scans.sql``'s SET list
    is generated from these columns). Views that reuse such a column carry the flag along unused.
    """

    name: str
    type: str
    description: str
    nullable: bool = True
    unit: str = ""
    needs_every_note: bool = False

    @property
    def quoted(self) -> str:
        return quote_ident(self.name)


@dataclass(frozen=True)
class Relation:
    """A table or view of the warehouse, named ``schema.name``."""

    name: str
    description: str
    columns: tuple[Column, ...]
    kind: Literal["table", "view"] = "table"
    view_sql: str = ""  # for views: the file under sql/views/ that defines it
    notes: str = ""  # longer prose for docs/tables.md (rules, examples)
    primary_key: tuple[str, ...] = field(default_factory=tuple)

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def quoted_columns(self, names: list[str] | None = None) -> str:
        """``"a", "b", "window", ...``: every column (or ``names``) in declared order, quoted."""
        cols = self.columns if names is None else tuple(self.column(n) for n in names)
        return ", ".join(c.quoted for c in cols)

    def columns_needing_every_note(self) -> tuple[Column, ...]:
        """The columns that window ``all`` leaves NULL on a window-scan day (see :class:`Column`)."""
        return tuple(c for c in self.columns if c.needs_every_note)

    def create_sql(self) -> str:
        """``CREATE TABLE`` for this table as declared (new tables in migrations start from this)."""
        if self.kind != "table":
            raise ValueError(f"{self.name} is a view")
        lines = [f"    {c.quoted} {c.type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns]
        if self.primary_key:
            lines.append(f"    PRIMARY KEY ({', '.join(quote_ident(k) for k in self.primary_key)})")
        return f"CREATE TABLE {self.name} (\n" + ",\n".join(lines) + "\n);"

    def arrow_schema(self, names: list[str] | None = None) -> pa.Schema:
        """The Arrow schema of a bulk load into this table (JSON columns travel as text)."""
        cols = self.columns if names is None else tuple(self.column(n) for n in names)
        return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in cols])

    def select_casts(self, names: list[str] | None = None) -> str:
        """The SELECT list that turns an Arrow load into this table's types (text to JSON)."""
        cols = self.columns if names is None else tuple(self.column(n) for n in names)
        return ", ".join(f"{c.quoted}::JSON AS {c.quoted}" if c.type == "JSON" else c.quoted for c in cols)


def quote_ident(name: str) -> str:
    """A DuckDB identifier, quoted (``window`` is a keyword)."""
    return '"' + name.replace('"', '""') + '"'


_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "JSON": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "UBIGINT": pa.uint64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "VARCHAR[]": pa.list_(pa.string()),
}


def arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type that loads into a DuckDB column type."""
    try:
        return _ARROW_TYPES[duckdb_type]
    except KeyError:
        raise ValueError(f"no Arrow type declared for DuckDB type {duckdb_type!r}") from None


def _c(
    name: str, type_: str, description: str, *, null: bool = True, unit: str = "", every_note: bool = False
) -> Column:
    return Column(name, type_, description, nullable=null, unit=unit, needs_every_note=every_note)


CREATOR_ID = _c("creator_id", "VARCHAR", "Xiaohongshu user id of the creator (24 lowercase hex).", null=False)
SNAPSHOT_DATE = _c(
    "snapshot_date", "DATE", "Snapshot day: the day in Asia/Shanghai on which the API was read.", null=False
)

RAW_NOTE_PAGES = Relation(
    name="raw.note_pages",
    kind="view",
    view_sql="note_pages.sql",
    description=(
        "One row per API response page, its body put back together from raw.pages and raw.page_items "
        "(stored split so that a note's unchanged text is kept once, not once a day). Written only when a "
        "creator's whole scan succeeded."
    ),
    notes=(
        "A `'window'` scan pages newest first (orderType LATEST, default filters) and stops after the first "
        "page whose every note is dated before `scan_window_from` minus 7 days (in order, every date "
        "readable), or at `total`: it holds every note the 30d and 90d metrics need, even if the list's "
        "order is off by up to a week. A `'full'` scan pages to `total`. Full scans run on a creator's "
        "first snapshot, when its last full scan is `PGY_FULL_SCAN_EVERY_DAYS` (7) days old or more, for "
        "any other query, and when the run config says `scan: full`."
    ),
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c("page_number", "INTEGER", "pageNumber requested, from 1.", null=False),
        _c(
            "request_params",
            "JSON",
            "Query parameters sent (userId, filters, order, page); never the token.",
            null=False,
        ),
        _c("fetched_at", "TIMESTAMP", "When the page arrived, UTC.", null=False),
        _c("attempts", "INTEGER", "HTTP calls this page took; 1 means no retry.", null=False, unit="calls"),
        _c(
            "code",
            "INTEGER",
            "Business code of the response (always 0: failures are not stored).",
            null=False,
        ),
        _c("total", "INTEGER", "data.total as reported on this page.", unit="notes"),
        _c("item_count", "INTEGER", "Number of items in data.list on this page.", null=False, unit="items"),
        _c(
            "body",
            "JSON",
            "The response body, unknown fields included, as JSON: every key and value as sent, though in "
            "a list item the four counts come last and whitespace is not kept (a lone UTF-16 surrogate "
            "escape, half an emoji, which DuckDB's JSON cannot hold, becomes \\ufffd).",
            null=False,
        ),
        _c(
            "scan",
            "VARCHAR",
            "How the creator's scan was asked for: 'full' (to total) or 'window' (see the table's notes); "
            "pages stored before window scans existed are 'full'.",
            null=False,
        ),
        _c(
            "scan_window_from",
            "DATE",
            "For a 'window' scan, the oldest publish day it must cover (snapshot_date - 90 days); NULL for 'full'.",
        ),
    ),
)

_COUNT_KEYS = "readNum, likeNum, collectNum and thirdReadUserNum"

RAW_PAGES = Relation(
    name="raw.pages",
    description=(
        "What raw.note_pages stores per page: everything but the list's items, which are in "
        "raw.page_items. Query this table, not the view, for page figures (it reads no item)."
    ),
    notes=(
        "Storage per note-day. A page's list items are stored apart from the page: each item's text "
        f"without its four counts ({_COUNT_KEYS}) once per distinct text in raw.item_texts, and the "
        "counts per day in raw.page_items, typed. A note's title, cover, date and brand are so kept once, "
        "not once per snapshot. raw.note_pages puts each body back together (the counts come last in "
        "each item); rebuilding analytics from it gives the tables the verbatim bodies gave, which a "
        "test checks. An item whose counts are not all whole numbers of 0 or more, or which is not a "
        "JSON object, is kept whole in raw.page_items.item. Nothing is dropped: a text no page refers "
        "to any more (its day was fetched again and the note changed) stays in raw.item_texts."
    ),
    columns=tuple(
        _c(
            "request_params",
            "JSON",
            "Query parameters sent, never the token; without userId and pageNumber when params_trimmed.",
            null=False,
        )
        if c.name == "request_params"
        else c
        for c in RAW_NOTE_PAGES.columns
        if c.name != "body"
    )
    + (
        _c(
            "envelope",
            "JSON",
            "The body with data.list emptied when the items are in raw.page_items (list_split), else the "
            "whole body.",
            null=False,
        ),
        _c("list_split", "BOOLEAN", "True when data.list was an array, its items in raw.page_items.", null=False),
        _c(
            "items_before",
            "INTEGER",
            "List items on the creator's earlier pages that day (list_position = items_before + item_index).",
            null=False,
            unit="items",
        ),
        _c(
            "params_trimmed",
            "BOOLEAN",
            "True when userId and pageNumber, equal to creator_id and page_number, are left out of "
            "request_params (raw.note_pages puts them back).",
            null=False,
        ),
    ),
)

ITEM_KEY = _c(
    "item_key",
    "BIGINT",
    "The item text's key in raw.item_texts (and analytics.note_details); NULL for an item that is not a "
    "JSON object.",
)

NOTE_ITEM_KEY = _c("item_key", "BIGINT", "The note text's key in raw.item_texts.", null=False)

RAW_ITEM_TEXTS = Relation(
    name="raw.item_texts",
    description=(
        "Each distinct list-item text of a creator, without its four counts, once: a note's title, "
        "cover, date, brand and any field the service adds."
    ),
    columns=(
        _c("item_key", "BIGINT", "Key of this text (unique).", null=False),
        CREATOR_ID,
        _c("note_id", "VARCHAR", "noteId of the item as sent (as text); NULL when missing."),
        _c("static", "JSON", f"The item without {_COUNT_KEYS}.", null=False),
        _c("text_hash", "UBIGINT", "Lower 64 bits of md5(creator_id || static): finds a text again.", null=False),
    ),
)

_RAW_COUNT_DOC = "as sent, when the item's four counts are all whole numbers of 0 or more; else NULL (see item)."

RAW_PAGE_ITEMS = Relation(
    name="raw.page_items",
    description="One row per list item of a stored page: its text's key and its counts of that day.",
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c("page_number", "INTEGER", "Page of raw.pages the item is on.", null=False),
        _c("item_index", "INTEGER", "1-based position of the item in the page's data.list.", null=False),
        ITEM_KEY,
        _c("read_num", "BIGINT", f"readNum {_RAW_COUNT_DOC}", unit="reads"),
        _c("like_num", "BIGINT", f"likeNum {_RAW_COUNT_DOC}", unit="likes"),
        _c("collect_num", "BIGINT", f"collectNum {_RAW_COUNT_DOC}", unit="collects"),
        _c("third_read_user_num", "BIGINT", f"thirdReadUserNum {_RAW_COUNT_DOC}", unit="readers"),
        _c(
            "item",
            "JSON",
            "The whole item, when it is not a JSON object or a count is missing, null, text, negative or "
            "fractional; NULL otherwise (the item is item_texts.static plus the four counts).",
        ),
    ),
)

NOTES = Relation(
    name="analytics.notes",
    kind="view",
    view_sql="notes.sql",
    description=(
        "One row per (creator_id, snapshot_date, note_id), rebuilt from the raw pages with no API call: "
        "each day's counts (raw.page_items) with the note's typed text (analytics.note_details, once per "
        "distinct text). A day's pages and their normalization commit in one transaction, so a day's "
        "notes are here whole or not at all."
    ),
    notes=(
        'Values that are missing or cannot be typed (a count sent as `"abc"`, a negative count, a date '
        "that is not a date) become NULL and are named in `quality_issues`; counts sent as numeric "
        "strings are typed and flagged `... was sent as text`. Nulls stay nulls.\n\n"
        "`segment` is the one place the organic/cooperation rule lives (the metrics use it): "
        "`'cooperation'` when the note is marked as an ad (`is_advertise`) or tagged with a brand "
        "(`brand_name` with any character that is not white space), `'organic'` when it is neither, "
        "NULL when `is_advertise` is unknown and there is no brand. Both raw flags are kept as sent, so "
        "a brand-tagged note that is not marked as an ad reads `is_advertise = false`, "
        "`brand_name = '...'`, `segment = 'cooperation'`."
    ),
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c("note_id", "VARCHAR", "noteId; unique per (creator_id, snapshot_date).", null=False),
        _c("title", "VARCHAR", "Note title as sent."),
        _c("published_date", "DATE", "Publish day, from the item's date; NULL if missing or unreadable."),
        _c("is_video", "BOOLEAN", "isVideo."),
        _c("is_advertise", "BOOLEAN", "isAdvertise: true for notes marked as ads (sponsored)."),
        _c("brand_name", "VARCHAR", "brandName: the brand a note is tagged with; NULL when none."),
        _c("read_num", "BIGINT", "readNum: cumulative reads at snapshot time.", unit="reads"),
        _c("like_num", "BIGINT", "likeNum.", unit="likes"),
        _c("collect_num", "BIGINT", "collectNum.", unit="collects"),
        _c(
            "interaction_num",
            "BIGINT",
            "like_num + collect_num (the endpoint gives no comments or shares).",
            unit="interactions",
        ),
        _c("third_read_user_num", "BIGINT", "thirdReadUserNum.", unit="readers"),
        _c("img_url", "VARCHAR", "Cover image URL."),
        _c(
            "list_position",
            "INTEGER",
            "1-based position in the creator's list as paged (page order, then item order).",
            null=False,
        ),
        _c("page_number", "INTEGER", "Page the note was read from.", null=False),
        _c("fetched_at", "TIMESTAMP", "When that page arrived, UTC.", null=False),
        _c(
            "quality_issues",
            "VARCHAR[]",
            "Values that were missing or could not be typed (then NULL); empty when clean.",
            null=False,
        ),
        _c(
            "segment",
            "VARCHAR",
            "'cooperation' (marked as an ad, or tagged with a brand), 'organic' (neither: Pugongying's "
            "daily notes) or NULL (is_advertise unknown and no brand); see the table's notes.",
        ),
    ),
)

NOTE_DETAILS = Relation(
    name="analytics.note_details",
    description=(
        "What analytics.notes stores once per note text (raw.item_texts): the typed fields that do not "
        "change from day to day. A note's counts of each day are raw.page_items' own (or, for a list item "
        "kept whole, analytics.irregular_note_counts')."
    ),
    columns=(NOTE_ITEM_KEY, CREATOR_ID)
    + tuple(
        NOTES.column(n)
        for n in (
            "note_id",
            "title",
            "published_date",
            "is_video",
            "is_advertise",
            "brand_name",
            "img_url",
            "segment",
        )
    )
    + (
        _c(
            "static_issues",
            "VARCHAR[]",
            "The quality_issues of these fields (date, isVideo, isAdvertise, title); empty when clean.",
            null=False,
        ),
    ),
)

IRREGULAR_NOTE_COUNTS = Relation(
    name="analytics.irregular_note_counts",
    description=(
        "analytics.notes' rows for the notes whose list item raw.page_items keeps whole (a count missing, "
        "null, text, negative or fractional), typed: every other note's counts are read from raw.page_items."
    ),
    columns=(CREATOR_ID, SNAPSHOT_DATE, NOTE_ITEM_KEY)
    + tuple(
        NOTES.column(n)
        for n in (
            "read_num",
            "like_num",
            "collect_num",
            "third_read_user_num",
            "list_position",
            "page_number",
            "fetched_at",
            "quality_issues",
        )
    ),
)

NOTE_REJECTS = Relation(
    name="analytics.note_rejects",
    description=(
        "List items that are not in analytics.notes, so that nothing is dropped silently: an item that is "
        "not a JSON object, has no noteId, or repeats a noteId already kept (list drift while paging)."
    ),
    columns=(
        _c("creator_id", "VARCHAR", "Creator of the page the item came from.", null=False),
        _c("snapshot_date", "DATE", "Snapshot day.", null=False),
        _c("page_number", "INTEGER", "Page the item came from.", null=False),
        _c("list_position", "INTEGER", "1-based position in the list as paged.", null=False),
        _c(
            "reason",
            "VARCHAR",
            "Why it is not in analytics.notes: not an object, no noteId, or a repeat.",
            null=False,
        ),
        _c("item", "JSON", "The list item verbatim."),
    ),
)

_METRIC_COLUMNS: tuple[Column, ...] = (
    _c("creator_id", "VARCHAR", "Xiaohongshu user id of the creator.", null=False),
    _c("snapshot_date", "DATE", "Snapshot day (Asia/Shanghai).", null=False),
    _c(
        "window",
        "VARCHAR",
        "'30d' or '90d': notes published from snapshot_date - N to snapshot_date - 1, both days "
        "included; 'all': every note (a note published on the snapshot day is in 'all' only).",
        null=False,
    ),
    _c(
        "segment",
        "VARCHAR",
        "'all'; 'organic': neither marked as an ad nor tagged with a brand; 'cooperation': marked as "
        "an ad (is_advertise) or tagged with a brand (brand_name not blank).",
        null=False,
    ),
    _c(
        "note_count",
        "BIGINT",
        "Notes in the window and segment; NULL for window 'all' on a window-scan day.",
        unit="notes",
        every_note=True,
    ),
    _c(
        "video_note_count",
        "BIGINT",
        "Of those, video notes (NULL where note_count is).",
        unit="notes",
        every_note=True,
    ),
    _c(
        "read_median",
        "DOUBLE",
        "Median read_num (DuckDB median); NULL for an empty cell.",
        unit="reads",
        every_note=True,
    ),
    _c("read_mean", "DOUBLE", "Mean read_num; NULL for an empty cell.", unit="reads", every_note=True),
    _c(
        "interaction_median",
        "DOUBLE",
        "median(like_num) + median(collect_num): a sum of medians, Pugongying's interactionMedian "
        "form. Pugongying adds median comments too; this endpoint returns no comments, so they are "
        "absent here. NULL for an empty cell.",
        unit="interactions",
        every_note=True,
    ),
    _c("like_median", "DOUBLE", "Median like_num; NULL for an empty cell.", unit="likes", every_note=True),
    _c(
        "collect_median",
        "DOUBLE",
        "Median collect_num; NULL for an empty cell.",
        unit="collects",
        every_note=True,
    ),
    _c(
        "engagement_rate",
        "DOUBLE",
        "sum(interaction_num) / sum(read_num): likes and collects over reads (Pugongying's "
        "interactionRate also counts comments); NULL when there are no reads.",
        unit="ratio 0-1",
        every_note=True,
    ),
    _c(
        "hundred_like_rate",
        "DOUBLE",
        "Share of notes with like_num >= 100 (of notes with a known like_num); NULL for an empty cell.",
        unit="ratio 0-1",
        every_note=True,
    ),
    _c(
        "thousand_like_rate",
        "DOUBLE",
        "Share of notes with like_num >= 1000; NULL for an empty cell.",
        unit="ratio 0-1",
        every_note=True,
    ),
    # NULL for window 'all' anyway; flagged because it counts notes, as note_count does.
    _c(
        "notes_per_week",
        "DOUBLE",
        "note_count / (window days / 7); 0 for an empty window; NULL for window 'all'.",
        unit="notes/week",
        every_note=True,
    ),
    _c(
        "days_since_last_note",
        "INTEGER",
        "snapshot_date minus the latest published_date in the cell; NULL for an empty cell.",
        unit="days",
    ),
    _c(
        "read_gain",
        "BIGINT",
        "Sum of read_num now minus at the previous snapshot, over notes in both; NULL without a previous snapshot.",
        unit="reads",
        every_note=True,
    ),
    # Left NULL with read_gain: on a window-scan day window 'all' compares no snapshot.
    _c(
        "previous_snapshot_date",
        "DATE",
        "The creator's previous snapshot used for read_gain.",
        every_note=True,
    ),
    _c("notes_total_reported", "INTEGER", "The API's total on the last page read.", unit="notes"),
    _c(
        "interaction_per_note_median",
        "DOUBLE",
        "Median of each note's interaction_num (like_num + collect_num): Pugongying's mEngagementNum "
        "without comments, which this endpoint does not return. NULL for an empty cell.",
        unit="interactions",
        every_note=True,
    ),
    _c(
        "brand_tagged_non_ad_count",
        "BIGINT",
        "Notes tagged with a brand but not marked as ads (is_advertise false): cooperation by their "
        "brand tag alone; always 0 in segment 'organic'; NULL for window 'all' on a window-scan day.",
        unit="notes",
        every_note=True,
    ),
    _c(
        "read_max",
        "BIGINT",
        "Most reads of any one note in the cell: the creator's best note of the window. NULL for an "
        "empty cell, for window 'all' on a window-scan day, and on rows computed before schema "
        "version 6 until they are rebuilt.",
        unit="reads",
        every_note=True,
    ),
)

_METRIC_GRAIN = ("creator_id", "snapshot_date", "window", "segment")  # a metric row's key, not figures


def _names(columns: Iterable[Column]) -> str:
    return ", ".join(f"`{c.name}`" for c in columns)


def _kept_on_window_days() -> tuple[Column, ...]:
    """The figures window 'all' keeps on a window-scan day: those that do not need every note."""
    return tuple(c for c in _METRIC_COLUMNS if c.name not in _METRIC_GRAIN and not c.needs_every_note)


CREATOR_ENGAGEMENT_METRICS = Relation(
    name="analytics.creator_engagement_metrics",
    description="Per-creator engagement metrics: one row per creator, snapshot, window (30d, 90d, all) and segment (all, organic, cooperation).",
    notes=(
        "3 windows x 3 segments = 9 rows for every stored snapshot, an `'empty'` one included (see "
        "analytics.creator_snapshots).\n\n"
        "**Windows end the day before the snapshot**, as Pugongying's do. `30d` and `90d` hold the notes "
        "published from `snapshot_date - N` to `snapshot_date - 1`, both days included (N days, by "
        "publish day in Asia/Shanghai); `all` holds every note. A note published on the snapshot day (a "
        "few hours old, with few reads) is in `all` only. Worked example, snapshot 2025-12-08: `30d` "
        "is 2025-11-08 to 2025-12-07, so a note of 2025-11-08 (30 days old) is in it and one of "
        "2025-11-07 (31 days old) is not, but is in `90d`, which is 2025-09-09 to 2025-12-07; a note of "
        "2025-12-08 counts in `all` only. Pugongying's 30-day figures read on 2025-12-08 cover exactly "
        "2025-11-08 to 2025-12-07 (its `dateKey` is 2025-12-07). Notes with an unknown "
        "`published_date` count in `all` only.\n\n"
        "**Segments follow brand tagging.** `cooperation` holds the notes marked as ads or tagged with "
        "a brand, `organic` the others (Pugongying's daily notes, 日常笔记), by `analytics.notes.segment`. "
        "Recorded Pugongying responses (one creator, December 2025) leave two notes that carry a "
        "`brandName` with `isAdvertise` false out of the daily-notes figures, so a brand tag alone "
        "makes a note cooperation here too; `brand_tagged_non_ad_count` counts such notes. A note with "
        "an unknown `is_advertise` and no brand counts in segment `all` only.\n\n"
        "**Empty cells.** With no note in the window and segment, every median, mean and rate is NULL "
        '(Pugongying shows 0, which there means "no notes"), as is `days_since_last_note`; the counts '
        "are 0, `notes_per_week` is 0 (nothing was posted in the window) and `read_gain` is 0 when there "
        "is a previous snapshot. Rates count notes with a known `like_num`. `window` is a reserved word "
        'in SQL: quote it, `"window"`. How each column compares with Pugongying\'s own figures: see '
        "*Pugongying's figures and ours* below.\n\n"
        "**Window-scan days.** On a day whose scan was window-bounded (`analytics.creator_snapshots."
        "scan_status = 'window'`) the scan read only the notes of the last 90 days and a margin, so the "
        "rows of window `all` keep what the scan does know (the newest note, which is always read, and "
        f"the service's total: {_names(_kept_on_window_days())}) and leave NULL every figure that needs "
        f"every note ({_names(c for c in _METRIC_COLUMNS if c.needs_every_note)}): nothing is "
        "invented from notes the scan did not read. The same holds on a day whose list moved while paging "
        "(`'full_drifted'`, `'window_drifted'`): a note may have been missed. `read_gain` of window `all` "
        "is also NULL on a full-scan day that follows a window-scan day. Windows `30d` and `90d` are "
        "exactly what a full scan gives. For all-time figures use the latest day whose scan_status is "
        "`'full'`."
    ),
    columns=_METRIC_COLUMNS,
)

CREATOR_SNAPSHOTS = Relation(
    name="analytics.creator_snapshots",
    description="One row per creator x snapshot: how the scan went, what the service reported and what was paid for.",
    notes=(
        "`scan_status` says how far the scan got: `'full'` when paging reached the service's `total` "
        "(every note listed was read), `'window'` when a window scan stopped once past the 90-day window "
        "and its margin (every note published on or after `covered_from` was read; see raw.note_pages), "
        "`'empty'` when the service answered code 0 with no notes and "
        "total 0 (the id is not on Pugongying: a wrong id, or the creator left the marketplace; that "
        "call is still billed), `'partial'` when a full scan ended before `total` (the page cap, or notes "
        "removed while paging), `'full_drifted'` or `'window_drifted'` when the service's `total` moved "
        "while paging (notes published or deleted meanwhile shift the list between pages, so one may be "
        "missed or read twice: window `all` is left NULL as on a window day, and the creator's next "
        "snapshot reads the whole list). Only `'full'` and `'empty'` count as the full scan on record. Rebuilt with analytics.notes from the stored pages; `billed_calls` comes "
        "from the billing ledger meta.api_calls."
    ),
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c(
            "scan_status",
            "VARCHAR",
            "'full', 'window', 'empty', 'partial', 'full_drifted' or 'window_drifted' (see the table's notes).",
            null=False,
        ),
        _c("total_reported", "INTEGER", "The service's total on the last page read.", unit="notes"),
        _c("notes_loaded", "BIGINT", "Notes in analytics.notes for this snapshot.", null=False, unit="notes"),
        _c("pages", "INTEGER", "Pages stored.", null=False, unit="pages"),
        _c(
            "calls",
            "INTEGER",
            "HTTP calls the stored pages took, retries included.",
            null=False,
            unit="calls",
        ),
        _c(
            "billed_calls",
            "INTEGER",
            "Calls billed by the vendor's rule (codes 0 and 201) for this creator and day, every run "
            "included, from meta.api_calls; snapshots older than the ledger count one per stored page.",
            null=False,
            unit="calls",
        ),
        _c("fetched_at", "TIMESTAMP", "When the last page arrived, UTC.", null=False),
        _c(
            "covered_from",
            "DATE",
            "Oldest publish date the scan is known to cover (a window scan: snapshot_date - 90 days); NULL "
            "when it covered the creator's whole list.",
        ),
    ),
)

API_CALLS = Relation(
    name="meta.api_calls",
    description=(
        "The billing ledger: one row per HTTP call to any endpoint, retries and failures included, "
        "written with the pages in one transaction. Never holds the token."
    ),
    notes=(
        "`billed` follows the vendor's guide: a call is billed when the answer carries code 0 or 201, and "
        "only then. The guide warns that a request abandoned on a client timeout may still be charged: "
        "such rows have `outcome = 'timeout'`, no code and `billed` false. Calls of a run that failed or "
        "was killed wait in the spool (`<spool>/calls/`) and are written by the next run. Day totals: "
        "meta.api_calls_daily."
    ),
    primary_key=("call_id",),
    columns=(
        _c("call_id", "VARCHAR", "Unique id of the call (32 hex characters).", null=False),
        _c("called_at", "TIMESTAMP", "When the request left, UTC.", null=False),
        _c("run_id", "VARCHAR", "Dagster run that made the call; NULL outside Dagster."),
        _c("creator_id", "VARCHAR", "Creator asked for.", null=False),
        _c("snapshot_date", "DATE", "Snapshot day the call was for (Asia/Shanghai).", null=False),
        _c("page_number", "INTEGER", "pageNumber asked for.", null=False),
        _c("attempt", "INTEGER", "1 for a page's first try, 2 for its first retry, ...", null=False),
        _c("http_status", "INTEGER", "HTTP status answered; NULL when none came (timeout, dropped)."),
        _c("code", "INTEGER", "Business code in the body; NULL when the body had none."),
        _c(
            "outcome",
            "VARCHAR",
            "The code as text, or http_<status>, timeout, connection_error.",
            null=False,
        ),
        _c("billed", "BOOLEAN", "Billed by the vendor's rule (code 0 or 201).", null=False),
        _c(
            "latency_ms",
            "DOUBLE",
            "Request start to the end of the body or the failure.",
            null=False,
            unit="ms",
        ),
        _c("bytes", "BIGINT", "Response body size received.", null=False, unit="bytes"),
        _c(
            "endpoint",
            "VARCHAR",
            "Which endpoint was called: 'notes' (User Published Notes) or 'notes_rate' (Pugongying's "
            "Note Performance Metrics). Calls stored before endpoints were recorded are 'notes'.",
            null=False,
        ),
    ),
)

API_CALLS_DAILY = Relation(
    name="meta.api_calls_daily",
    kind="view",
    view_sql="api_calls_daily.sql",
    description=(
        "Calls and billed calls per Asia/Shanghai day and creator, from meta.api_calls (the day the daily "
        "budget PGY_DAILY_CALL_BUDGET counts)."
    ),
    columns=(
        _c("call_date", "DATE", "Day of the calls in Asia/Shanghai."),
        _c("creator_id", "VARCHAR", "Creator asked for."),
        _c("calls", "BIGINT", "HTTP calls, retries and failures included.", unit="calls"),
        _c("billed_calls", "BIGINT", "Of those, billed (code 0 or 201).", unit="calls"),
        _c("rate_limited_calls", "BIGINT", "Of those, answered 302 or HTTP 429.", unit="calls"),
        _c("first_call_at", "TIMESTAMP", "First call of the day, UTC."),
        _c("last_call_at", "TIMESTAMP", "Last call of the day, UTC."),
    ),
)

CREATORS = Relation(
    name="analytics.creators",
    description="Creator names, tags and active flags from the registry file, replaced whole on every sync.",
    primary_key=("creator_id",),
    columns=(
        _c("creator_id", "VARCHAR", "Xiaohongshu user id.", null=False),
        _c("display_name", "VARCHAR", "Name from the creator registry file."),
        _c("tags", "VARCHAR[]", "Tags from the registry (campaign, category...)."),
        _c("active", "BOOLEAN", "Whether the creator is still fetched.", null=False),
        _c("updated_at", "TIMESTAMP", "When the registry was last synced, UTC.", null=False),
    ),
)

DATA_SOURCE = Relation(
    name="meta.data_source",
    description=(
        "One row: which service feeds this file, 'justoneapi' or 'simulator', set by the first write. The "
        "pipeline refuses to write simulated data into a file that holds real data, and the other way round."
    ),
    columns=(
        _c("source", "VARCHAR", "'justoneapi' or 'simulator'.", null=False),
        _c("created_at", "TIMESTAMP", "When the first write claimed the file, UTC.", null=False),
    ),
)

SCHEMA_MIGRATIONS = Relation(
    name="meta.schema_migrations",
    description="One row per schema migration applied to this file; the highest version is the file's layout version.",
    primary_key=("version",),
    columns=(
        _c("version", "INTEGER", "Migration number (sql/migrations/NNNN_*.sql).", null=False),
        _c("description", "VARCHAR", "What the migration does.", null=False),
        _c("applied_at", "TIMESTAMP", "When it was applied, UTC.", null=False),
        _c("package_version", "VARCHAR", "pgy_pipeline version that applied it.", null=False),
    ),
)

NOTES_LATEST = Relation(
    name="analytics.notes_latest",
    kind="view",
    view_sql="notes_latest.sql",
    description="Every column of analytics.notes, each note at its latest snapshot.",
    columns=NOTES.columns,
)

_LEADERBOARD_FROM_METRICS = (
    "note_count",
    "read_median",
    "interaction_median",
    "engagement_rate",
    "hundred_like_rate",
    "thousand_like_rate",
    "notes_per_week",
    "days_since_last_note",
    "read_gain",
    "notes_total_reported",
)

CREATOR_LEADERBOARD = Relation(
    name="analytics.creator_leaderboard",
    kind="view",
    view_sql="creator_leaderboard.sql",
    description=(
        "Each creator's latest snapshot, window 30d, segment all, with display_name and tags from "
        "analytics.creators and the scan's status; ordered by read_median."
    ),
    notes=(
        "A creator whose latest snapshot is `'empty'` is listed too, with `no_pugongying_data` true and "
        "counts of 0 (its medians NULL, so it sorts last): the service answered with no notes and "
        "total 0, so there is no Pugongying data for this id: check the id, or the creator left the "
        "marketplace. After 3 such snapshots in a row the daily schedule checks it only weekly."
    ),
    columns=(
        CREATOR_ENGAGEMENT_METRICS.column("creator_id"),
        CREATORS.column("display_name"),
        CREATORS.column("tags"),
        CREATOR_ENGAGEMENT_METRICS.column("snapshot_date"),
        *(CREATOR_ENGAGEMENT_METRICS.column(n) for n in _LEADERBOARD_FROM_METRICS),
        _c(
            "scan_status",
            "VARCHAR",
            "analytics.creator_snapshots.scan_status of that snapshot (see that table).",
        ),
        _c(
            "no_pugongying_data",
            "BOOLEAN",
            "True when that snapshot is 'empty': no Pugongying data for this id (a wrong id, or the "
            "creator left the marketplace).",
        ),
        CREATOR_ENGAGEMENT_METRICS.column("interaction_per_note_median"),
    ),
)

# ---------------------------------------------------------------------------------------------
# The analyst's desk: peers, brands, note histories and anomalies (see docs/tables.md).

BRAND_TRIM_CHARS = " \t\n\r\u00a0\u3000"  # what "trimmed" means for brand names (ASCII and CJK spaces)

SNAPSHOT_COVERAGE = Relation(
    name="analytics.snapshot_coverage",
    kind="view",
    view_sql="snapshot_coverage.sql",
    description=(
        "One row per creator snapshot (creator_id, snapshot_date): which of the creator's notes the "
        "scan covered, so that comparisons of two snapshots only look at what both of them saw."
    ),
    notes=(
        "A scan is taken as complete (`covered_from` NULL) when it loaded at least as many notes as "
        "the API's total. Otherwise it is taken as bounded by publish date: it covers notes published "
        "after the oldest loaded note's day (that day itself is left out, since a scan may stop part "
        "way through it); a scan that loaded nothing while the total was above zero covers nothing. "
        "`analytics.anomalies` reads coverage only from this view, so a scan log that records the "
        "scan's bound can replace this derivation in one file."
    ),
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c("total_reported", "INTEGER", "The API's total on the last page read.", unit="notes"),
        _c("notes_loaded", "BIGINT", "Notes stored in analytics.notes for this snapshot.", unit="notes"),
        _c(
            "covered_from",
            "DATE",
            "Oldest publish day the scan is taken to cover; NULL when it covered every note.",
        ),
    ),
)

NOTE_HISTORY = Relation(
    name="analytics.note_history",
    kind="view",
    view_sql="note_history.sql",
    description=(
        "One row per note and snapshot: counts at that snapshot and their change since the creator's "
        "previous snapshot, with the days in between, so a gain over a gap of several days is not read "
        "as one day's gain."
    ),
    notes=(
        "The creator's previous snapshot is its latest earlier snapshot date with stored raw pages, "
        "whether or not this note was in it. Changes are NULL when the note was not in that snapshot "
        "(`first_seen` true: a new note, or one the earlier scan did not reach) or when the creator has "
        "no earlier snapshot. `read_num_change_per_day` spreads a change evenly over the days between "
        "the two snapshots. Filter on `creator_id` or `note_id`: both are pushed down to the scan."
    ),
    columns=(
        CREATOR_ID,
        _c("note_id", "VARCHAR", "noteId.", null=False),
        SNAPSHOT_DATE,
        _c("title", "VARCHAR", "Note title at this snapshot."),
        _c("published_date", "DATE", "Publish day; NULL if unknown."),
        _c(
            "days_since_publish",
            "INTEGER",
            "snapshot_date minus published_date (0 on the publish day).",
            unit="days",
        ),
        _c("is_advertise", "BOOLEAN", "isAdvertise at this snapshot."),
        _c("brand_name", "VARCHAR", "brandName at this snapshot."),
        _c("read_num", "BIGINT", "Cumulative reads at this snapshot.", unit="reads"),
        _c("like_num", "BIGINT", "Likes at this snapshot.", unit="likes"),
        _c("collect_num", "BIGINT", "Collects at this snapshot.", unit="collects"),
        _c("interaction_num", "BIGINT", "like_num + collect_num.", unit="interactions"),
        _c("previous_snapshot_date", "DATE", "The creator's previous snapshot; NULL for its first."),
        _c(
            "days_between_snapshots",
            "INTEGER",
            "snapshot_date minus previous_snapshot_date.",
            unit="days",
        ),
        _c(
            "first_seen",
            "BOOLEAN",
            "True when the note is not in the creator's previous snapshot (or there is none).",
            null=False,
        ),
        _c("read_num_change", "BIGINT", "read_num minus its value at the previous snapshot.", unit="reads"),
        _c("like_num_change", "BIGINT", "like_num minus its value at the previous snapshot.", unit="likes"),
        _c(
            "collect_num_change",
            "BIGINT",
            "collect_num minus its value at the previous snapshot.",
            unit="collects",
        ),
        _c(
            "interaction_num_change",
            "BIGINT",
            "interaction_num minus its value at the previous snapshot.",
            unit="interactions",
        ),
        _c(
            "read_num_change_per_day",
            "DOUBLE",
            "read_num_change / days_between_snapshots: the average daily gain over the gap.",
            unit="reads/day",
        ),
    ),
)

BRAND_NOTES = Relation(
    name="analytics.brand_notes",
    kind="view",
    view_sql="brand_notes.sql",
    description=(
        "One row per cooperation note that names a brand, at the note's latest snapshot: the notes "
        "behind analytics.brand_cooperations and analytics.brands."
    ),
    notes=(
        "A cooperation note is one marked as an ad (`is_advertise`) or tagged with a brand "
        "(`brand_name`), at any of its snapshots. Brand names are matched exactly after trimming "
        "whitespace at both ends (spaces, tabs, line breaks, no-break and ideographic spaces): "
        "`' 花西子 '` and `'花西子'` are one brand, `'花西子 '` and `'花西子官方'` are two. Notes marked "
        "as ads without a brand name belong to no brand (they still count in the metrics' cooperation "
        "segment). A note's figures are those of its latest snapshot, so a note that later vanished "
        "keeps its last known counts; `read_gain_since_first_seen` is what it gained from the first "
        "snapshot that saw it to that latest one."
    ),
    columns=(
        _c("brand_name", "VARCHAR", "Brand, trimmed (see above).", null=False),
        CREATOR_ID,
        _c("note_id", "VARCHAR", "noteId.", null=False),
        _c("title", "VARCHAR", "Title at the latest snapshot."),
        _c("published_date", "DATE", "Publish day."),
        _c("is_advertise", "BOOLEAN", "Marked as an ad at the latest snapshot."),
        _c("first_seen_date", "DATE", "First snapshot that had the note.", null=False),
        _c("latest_snapshot_date", "DATE", "Latest snapshot that had the note.", null=False),
        _c("read_num", "BIGINT", "Reads at the latest snapshot.", unit="reads"),
        _c("like_num", "BIGINT", "Likes at the latest snapshot.", unit="likes"),
        _c("collect_num", "BIGINT", "Collects at the latest snapshot.", unit="collects"),
        _c("interaction_num", "BIGINT", "Interactions at the latest snapshot.", unit="interactions"),
        _c(
            "read_gain_since_first_seen",
            "BIGINT",
            "read_num at the latest snapshot minus read_num at the first.",
            unit="reads",
        ),
    ),
)

BRAND_COOPERATIONS = Relation(
    name="analytics.brand_cooperations",
    kind="view",
    view_sql="brand_cooperations.sql",
    description=(
        "One row per brand and creator: the creator's cooperation notes for the brand and how they did, "
        "from analytics.brand_notes (brand matching and latest-snapshot rules there)."
    ),
    columns=(
        _c("brand_name", "VARCHAR", "Brand, trimmed.", null=False),
        CREATOR_ID,
        CREATORS.column("display_name"),
        _c("cooperation_notes", "BIGINT", "Cooperation notes naming the brand.", null=False, unit="notes"),
        _c("advertised_notes", "BIGINT", "Of those, marked as ads.", null=False, unit="notes"),
        _c("first_published_date", "DATE", "Earliest publish day of those notes."),
        _c("last_published_date", "DATE", "Latest publish day of those notes."),
        _c("latest_snapshot_date", "DATE", "Latest snapshot of any of those notes.", null=False),
        _c("read_num", "BIGINT", "Sum of reads, each note at its latest snapshot.", unit="reads"),
        _c("interaction_num", "BIGINT", "Sum of interactions, likewise.", unit="interactions"),
        _c("read_median", "DOUBLE", "Median reads per note.", unit="reads"),
        _c(
            "engagement_rate",
            "DOUBLE",
            "interaction_num / read_num; NULL when there are no reads.",
            unit="ratio 0-1",
        ),
        _c(
            "read_gain_since_first_seen",
            "BIGINT",
            "Sum over the notes of reads gained since each was first seen.",
            unit="reads",
        ),
    ),
)

BRANDS = Relation(
    name="analytics.brands",
    kind="view",
    view_sql="brands.sql",
    description="One row per brand across every creator, from analytics.brand_notes.",
    columns=(
        _c("brand_name", "VARCHAR", "Brand, trimmed.", null=False),
        _c("creators", "BIGINT", "Creators with at least one cooperation note for it.", null=False),
        _c("cooperation_notes", "BIGINT", "Cooperation notes naming the brand.", null=False, unit="notes"),
        _c("read_num", "BIGINT", "Total reads, each note at its latest snapshot.", unit="reads"),
        _c("read_median", "DOUBLE", "Median reads per note.", unit="reads"),
        _c("interaction_num", "BIGINT", "Total interactions.", unit="interactions"),
        _c(
            "engagement_rate",
            "DOUBLE",
            "interaction_num / read_num; NULL when there are no reads.",
            unit="ratio 0-1",
        ),
        _c("first_published_date", "DATE", "Earliest publish day."),
        _c("last_published_date", "DATE", "Latest publish day."),
        _c(
            "read_gain_since_first_seen",
            "BIGINT",
            "Sum over the notes of reads gained since each was first seen.",
            unit="reads",
        ),
    ),
)


def _percentile(metric: str) -> Column:
    return _c(
        f"{metric}_percentile",
        "DOUBLE",
        f"Share of the other creators in the group, with a {metric} that day, whose {metric} is strictly "
        "lower, times 100; NULL when fewer than 3 creators of the group have one, or this one has none.",
        unit="percent 0-100",
    )


PEER_METRICS = ("read_median", "interaction_median", "engagement_rate", "hundred_like_rate")

CREATOR_PEER_PERCENTILES = Relation(
    name="analytics.creator_peer_percentiles",
    description=(
        "One row per creator, snapshot date and peer group: where the creator stands among its peers "
        '("beats X% of peers"), on the 30d/all metrics of analytics.creator_engagement_metrics.'
    ),
    notes=(
        "Peer groups are `'all'` (every creator with metrics that day) and each tag of "
        "analytics.creators (a creator is in every group of its tags; a tag spelled `all` is not a group "
        "of its own). A percentile is the share of the *other* creators of the group, among those with a "
        "value of that metric that day, whose value is strictly lower, times 100, as Pugongying's "
        "`readMedianBeyondRate`: the top creator of a group of 5 scores 100, the bottom one 0. Ties count "
        "as not beaten: two creators with equal values get the same percentile. Replaced whole per "
        "snapshot date by the `analytics/creator_peer_percentiles` asset."
    ),
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c("peer_group", "VARCHAR", "'all' or a registry tag.", null=False),
        _c(
            "peer_count",
            "INTEGER",
            "Creators of the group with a 30d/all metrics row that day, this one included.",
            null=False,
            unit="creators",
        ),
        *(CREATOR_ENGAGEMENT_METRICS.column(m) for m in PEER_METRICS),
        *(_percentile(m) for m in PEER_METRICS),
    ),
)

ANOMALY_KINDS = ("note_disappeared", "reads_decreased", "read_spike", "total_dropped", "creator_went_quiet")
SPIKE_FACTOR = 10.0  # k: a daily gain above k x the creator's median daily gain
SPIKE_FLOOR_READS_PER_DAY = 1000  # and at least this many reads a day, so small creators are not flagged
SPIKE_BASELINE_DAYS = 30  # the creator's usual daily gain is taken over this many days of snapshots
QUIET_DAYS = 30
QUIET_MIN_EARLIER_NOTES = 4
QUIET_EARLIER_DAYS = 60

ANOMALIES = Relation(
    name="analytics.anomalies",
    description=(
        "One row per finding on a creator's snapshot compared with its previous one: a note vanished, "
        "reads went down, reads jumped, the reported total dropped, or the creator went quiet."
    ),
    notes=(
        "The kinds, each comparing snapshot `snapshot_date` with the creator's previous snapshot "
        "`previous_snapshot_date`:\n\n"
        "- `note_disappeared`: the note was in the previous snapshot and is not in this one (deleted or "
        "hidden). Only notes both scans covered are compared (analytics.snapshot_coverage), so a scan "
        "bounded by publish date does not report the older notes it did not read. value_before: its "
        "reads then.\n"
        "- `reads_decreased`: the note's read_num went down (the service corrected it). value_before, "
        "value_after: read_num then and now.\n"
        f"- `read_spike`: the note's daily gain (change_per_day: its gain spread over the days between "
        f"the snapshots) is above k = {SPIKE_FACTOR:g} times the creator's median daily gain (baseline: "
        "the reads all of the creator's notes together gained per day, from `read_gain` of window `all` in "
        "analytics.creator_engagement_metrics, median over its earlier snapshots of the last "
        f"{SPIKE_BASELINE_DAYS} days, so a creator's second snapshot has none yet), and at least {SPIKE_FLOOR_READS_PER_DAY:,} reads a day, so that a "
        "small creator's note is not flagged for +50 reads. A new note's normal first days stay below "
        "that bound; one note outgaining the whole account tenfold does not. threshold: the larger of "
        "the two bounds.\n"
        "- `total_dropped`: the API's reported note total went down. value_before, value_after: the "
        "totals.\n"
        f"- `creator_went_quiet`: no note published in the {QUIET_DAYS} days up to the snapshot after at "
        f"least {QUIET_MIN_EARLIER_NOTES} in the {QUIET_EARLIER_DAYS} days before those; reported once, "
        "on the first snapshot where it holds. published_date: the last note's day; value_before: the "
        "notes of the earlier 60 days.\n\n"
        "Replaced whole per snapshot date by the `analytics/anomalies` asset, whose check warns when a "
        "date has findings."
    ),
    columns=(
        _c("kind", "VARCHAR", "One of: " + ", ".join(ANOMALY_KINDS) + ".", null=False),
        CREATOR_ID,
        _c("note_id", "VARCHAR", "The note concerned; NULL for total_dropped and creator_went_quiet."),
        SNAPSHOT_DATE,
        _c("previous_snapshot_date", "DATE", "The creator's previous snapshot compared with."),
        _c("title", "VARCHAR", "The note's title (its last known one)."),
        _c("published_date", "DATE", "The note's publish day; for creator_went_quiet the last note's."),
        _c("value_before", "DOUBLE", "The figure at the previous snapshot (see the kinds)."),
        _c("value_after", "DOUBLE", "The figure at this snapshot (see the kinds)."),
        _c("change_per_day", "DOUBLE", "read_spike: the note's daily gain.", unit="reads/day"),
        _c(
            "baseline",
            "DOUBLE",
            "read_spike: the creator's median daily gain, all notes together.",
            unit="reads/day",
        ),
        _c("threshold", "DOUBLE", "The bound the figure crossed."),
        _c("message", "VARCHAR", "The finding in one sentence.", null=False),
    ),
)


RAW_PUGONGYING_NOTE_RATES = Relation(
    name="raw.pugongying_note_rates",
    description=(
        "Pugongying's own note figures (Just One's Note Performance Metrics endpoint), one row per answer, "
        "body verbatim: per creator, snapshot day, business, note type and date type."
    ),
    notes=(
        "Opt-in (`PGY_PUGONGYING_FIGURES`: off, daily or weekly; off by default on real data, daily in the "
        "demo). A refresh asks for 90 days before 30 and daily notes before cooperation notes, at most 4 "
        "calls; a business with no note in 90 days skips its 30-day call, and a creator with no listed "
        "notes and no daily note on Pugongying costs one call. Typed in analytics.pugongying_note_rates."
    ),
    primary_key=("creator_id", "snapshot_date", "business", "note_type", "date_type"),
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c(
            "business",
            "VARCHAR",
            "DAILY_NOTE (daily notes) or COOPERATE_NOTE (cooperation notes).",
            null=False,
        ),
        _c("note_type", "VARCHAR", "PHOTO_TEXT_AND_VIDEO, PHOTO_TEXT or VIDEO.", null=False),
        _c("date_type", "VARCHAR", "DAY_30 or DAY_90.", null=False),
        _c("advertise_switch", "VARCHAR", "ALL or ORGANIC_ONLY, as sent.", null=False),
        _c("fetched_at", "TIMESTAMP", "When the answer arrived, UTC.", null=False),
        _c("attempts", "INTEGER", "HTTP calls this answer took; 1 means no retry.", null=False, unit="calls"),
        _c("body", "JSON", "The response body verbatim, unknown fields included.", null=False),
    ),
)

PUGONGYING_NOTE_RATES = Relation(
    name="analytics.pugongying_note_rates",
    description=(
        "Pugongying's figures typed, in our vocabulary: window '30d'/'90d', segment 'organic' (DAILY_NOTE) or "
        "'cooperation' (COOPERATE_NOTE). Rebuilt from raw.pugongying_note_rates."
    ),
    notes=(
        'Percent strings ("3.4") become fractions (0.034). When `note_count` is 0 Pugongying answers 0 for '
        "every median: those are NULL here, as in our own metrics of an empty cell; its beyond rates stay."
    ),
    primary_key=("creator_id", "snapshot_date", "window", "segment", "note_type"),
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c("window", "VARCHAR", "'30d' (DAY_30) or '90d' (DAY_90).", null=False),
        _c("segment", "VARCHAR", "'organic' (DAILY_NOTE) or 'cooperation' (COOPERATE_NOTE).", null=False),
        _c("note_type", "VARCHAR", "PHOTO_TEXT_AND_VIDEO, PHOTO_TEXT or VIDEO.", null=False),
        _c("note_count", "BIGINT", "noteNumber.", unit="notes"),
        _c("video_note_count", "BIGINT", "videoNoteNumber.", unit="notes"),
        _c("read_median", "DOUBLE", "readMedian; NULL when note_count is 0.", unit="reads"),
        _c("impression_median", "DOUBLE", "impMedian; NULL when note_count is 0.", unit="impressions"),
        _c("like_median", "DOUBLE", "likeMedian; NULL when note_count is 0.", unit="likes"),
        _c("collect_median", "DOUBLE", "collectMedian; NULL when note_count is 0.", unit="collects"),
        _c("comment_median", "DOUBLE", "commentMedian; NULL when note_count is 0.", unit="comments"),
        _c("share_median", "DOUBLE", "shareMedian; NULL when note_count is 0.", unit="shares"),
        _c(
            "interaction_median",
            "DOUBLE",
            "interactionMedian: like + collect + comment medians; NULL when note_count is 0.",
            unit="interactions",
        ),
        _c(
            "interaction_per_note_median",
            "DOUBLE",
            "mEngagementNum: the median of the notes' likes + collects + comments + shares.",
            unit="interactions",
        ),
        _c("interaction_rate", "DOUBLE", "interactionRate as a fraction: all interactions over all reads."),
        _c("hundred_like_share", "DOUBLE", "hundredLikePercent as a fraction: notes with 100+ likes."),
        _c("thousand_like_share", "DOUBLE", "thousandLikePercent as a fraction: notes with 1,000+ likes."),
        _c("read_median_beyond", "DOUBLE", "readMedianBeyondRate as a fraction: the share of peers beaten."),
        _c("impression_median_beyond", "DOUBLE", "impMedianBeyondRate as a fraction."),
        _c("interaction_beyond", "DOUBLE", "interactionBeyondRate as a fraction."),
        _c("fetched_at", "TIMESTAMP", "When the answer arrived, UTC.", null=False),
    ),
)

METRICS_VS_PUGONGYING = Relation(
    name="analytics.metrics_vs_pugongying",
    kind="view",
    view_sql="metrics_vs_pugongying.sql",
    description=(
        "Our metrics beside Pugongying's own, per creator, day, window (30d, 90d) and segment (organic, "
        "cooperation), for photo and video notes together, with the difference (ours minus theirs)."
    ),
    notes=(
        "Counts and read, like and collect medians are computed alike and should match. The interaction "
        "figures cannot: the notes list has no comments or shares, so our `interaction_median` is like + "
        "collect medians where Pugongying's adds the comment median, and our rate leaves comments and "
        "shares out. `interaction_median_with_comments` adds Pugongying's comment median to ours: where the "
        "like and collect medians match, it equals Pugongying's. analytics.creator_engagement_metrics keeps "
        "our own figures only."
    ),
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c("window", "VARCHAR", "'30d' or '90d'."),
        _c("segment", "VARCHAR", "'organic' or 'cooperation'."),
        _c("note_count", "BIGINT", "Ours.", unit="notes"),
        _c("pgy_note_count", "BIGINT", "Pugongying's noteNumber.", unit="notes"),
        _c("note_count_diff", "BIGINT", "Ours minus theirs.", unit="notes"),
        _c("read_median", "DOUBLE", "Ours.", unit="reads"),
        _c("pgy_read_median", "DOUBLE", "Pugongying's.", unit="reads"),
        _c("read_median_diff", "DOUBLE", "Ours minus theirs.", unit="reads"),
        _c("like_median", "DOUBLE", "Ours.", unit="likes"),
        _c("pgy_like_median", "DOUBLE", "Pugongying's.", unit="likes"),
        _c("like_median_diff", "DOUBLE", "Ours minus theirs.", unit="likes"),
        _c("collect_median", "DOUBLE", "Ours.", unit="collects"),
        _c("pgy_collect_median", "DOUBLE", "Pugongying's.", unit="collects"),
        _c("collect_median_diff", "DOUBLE", "Ours minus theirs.", unit="collects"),
        _c("interaction_median", "DOUBLE", "Ours: like + collect medians.", unit="interactions"),
        _c(
            "pgy_interaction_median",
            "DOUBLE",
            "Pugongying's: like + collect + comment medians.",
            unit="interactions",
        ),
        _c(
            "interaction_median_diff",
            "DOUBLE",
            "Ours minus theirs: minus their comment median.",
            unit="interactions",
        ),
        _c("pgy_comment_median", "DOUBLE", "Pugongying's comment median (the gap above).", unit="comments"),
        _c("pgy_share_median", "DOUBLE", "Pugongying's share median.", unit="shares"),
        _c(
            "interaction_median_with_comments",
            "DOUBLE",
            "Our like + collect medians plus Pugongying's comment median.",
            unit="interactions",
        ),
        _c("engagement_rate", "DOUBLE", "Ours: (likes + collects) / reads."),
        _c("pgy_interaction_rate", "DOUBLE", "Pugongying's: all interactions / reads (to 0.1%)."),
        _c("engagement_rate_diff", "DOUBLE", "Ours minus theirs."),
        _c("pgy_impression_median", "DOUBLE", "Pugongying's impression median.", unit="impressions"),
        _c("pgy_read_median_beyond", "DOUBLE", "Share of peers Pugongying says the read median beats."),
    ),
)


RELATIONS: tuple[Relation, ...] = (
    RAW_PAGES,
    RAW_ITEM_TEXTS,
    RAW_PAGE_ITEMS,
    NOTE_DETAILS,
    IRREGULAR_NOTE_COUNTS,
    RAW_NOTE_PAGES,
    NOTES,
    NOTE_REJECTS,
    CREATOR_ENGAGEMENT_METRICS,
    CREATOR_SNAPSHOTS,
    API_CALLS,
    CREATORS,
    DATA_SOURCE,
    SCHEMA_MIGRATIONS,
    NOTES_LATEST,
    CREATOR_LEADERBOARD,
    CREATOR_PEER_PERCENTILES,
    ANOMALIES,
    SNAPSHOT_COVERAGE,
    NOTE_HISTORY,
    BRAND_NOTES,
    BRAND_COOPERATIONS,
    BRANDS,
    API_CALLS_DAILY,
    RAW_PUGONGYING_NOTE_RATES,
    PUGONGYING_NOTE_RATES,
    METRICS_VS_PUGONGYING,
)


def relation(name: str) -> Relation:
    """The declared relation called ``schema.name``."""
    for r in RELATIONS:
        if r.name == name:
            return r
    raise KeyError(f"no relation {name!r} in the contract")


def tables() -> Iterator[Relation]:
    return (r for r in RELATIONS if r.kind == "table")


def views() -> Iterator[Relation]:
    return (r for r in RELATIONS if r.kind == "view")
