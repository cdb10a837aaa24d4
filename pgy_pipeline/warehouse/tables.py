"""The SQL contract: every table and view of the warehouse, declared once.

Analysts write their own SQL against these relations, so their layout is a public contract. Each
relation is declared here exactly once (columns, types, nullability, units, descriptions) and
everything else follows from the declaration:

* the DuckDB DDL of a new table (:meth:`Relation.create_sql`), which the migrations check against;
* the Arrow schema of bulk loads (:meth:`Relation.arrow_schema`);
* ``INSERT`` column lists (:meth:`Relation.column_list`), so no insert is positional;
* DuckDB ``COMMENT ON`` text, so analysts see the descriptions in their own SQL tools;
* the Dagster ``dagster/column_schema`` metadata (built in the Dagster layer from these objects);
* ``docs/tables.md`` (:mod:`pgy_pipeline.warehouse.docs`; a test keeps it current).

Changing a table's columns also needs a migration (``sql/migrations/``): a test compares the
migrated layout of a new file with these declarations, so a forgotten migration fails the suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    """One column: its DuckDB type, whether it may be NULL, its unit, and what it means."""

    name: str
    type: str
    description: str
    nullable: bool = True
    unit: str = ""

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
    partitioned: bool = False  # replaced per (creator_id, snapshot_date) partition
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

    def column_list(self) -> str:
        """``(a, b, "window", ...)``: the explicit column list of an INSERT."""
        return "(" + ", ".join(c.quoted for c in self.columns) + ")"

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
        return ", ".join(f"{c.quoted}::JSON" if c.type == "JSON" else c.quoted for c in cols)


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


def _c(name: str, type_: str, description: str, *, null: bool = True, unit: str = "") -> Column:
    return Column(name, type_, description, nullable=null, unit=unit)


CREATOR_ID = _c("creator_id", "VARCHAR", "Xiaohongshu user id of the creator (24 lowercase hex).", null=False)
SNAPSHOT_DATE = _c(
    "snapshot_date", "DATE", "Snapshot day: the day in Asia/Shanghai on which the API was read.", null=False
)

RAW_NOTE_PAGES = Relation(
    name="raw.note_pages",
    description="One row per API response page, body verbatim. Written only when a creator's whole scan succeeded.",
    notes=(
        "A `'window'` scan pages newest first (orderType LATEST, default filters) and stops after the first "
        "page whose every note is dated before `scan_window_from` minus 7 days (in order, every date "
        "readable), or at `total`: it holds every note the 30d and 90d metrics need, even if the list's "
        "order is off by up to a week. A `'full'` scan pages to `total`. Full scans run on a creator's "
        "first snapshot, when its last full scan is `PGY_FULL_SCAN_EVERY_DAYS` (7) days old or more, for "
        "any other query, and when the run config says `scan: full`."
    ),
    partitioned=True,
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
            "The response body verbatim, unknown fields included (a lone UTF-16 surrogate escape, "
            "half an emoji, which DuckDB's JSON cannot hold, becomes \\ufffd).",
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

NOTES = Relation(
    name="analytics.notes",
    description="One row per (creator_id, snapshot_date, note_id), rebuilt from raw.note_pages with no API call.",
    notes=(
        'Values that are missing or cannot be typed (a count sent as `"abc"`, a negative count, a date '
        "that is not a date) become NULL and are named in `quality_issues`; counts sent as numeric "
        "strings are typed and flagged `... was sent as text`. Nulls stay nulls."
    ),
    partitioned=True,
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
    ),
)

NOTE_REJECTS = Relation(
    name="analytics.note_rejects",
    description=(
        "List items that are not in analytics.notes, so that nothing is dropped silently: an item that is "
        "not a JSON object, has no noteId, or repeats a noteId already kept (list drift while paging)."
    ),
    partitioned=True,
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

CREATOR_ENGAGEMENT_METRICS = Relation(
    name="analytics.creator_engagement_metrics",
    description="Per-creator engagement metrics: one row per creator, snapshot, window (30d, 90d, all) and segment (all, organic, cooperation).",
    notes=(
        "3 windows x 3 segments = 9 rows per snapshot. Notes with an unknown `published_date` count only "
        "in window `all`; notes with an unknown `is_advertise` only in segment `all`. Rates count notes "
        'with a known `like_num`. `window` is a reserved word in SQL: quote it, `"window"`.\n\n'
        "On a window-scan day (`analytics.creator_snapshots.scan_status = 'window'`) the scan read only "
        "the notes of the last 90 days and a margin, so the rows of window `all` keep `notes_total_reported` "
        "and `days_since_last_note` (the newest note is always read) and leave every other figure NULL, "
        "`note_count` and `read_gain` included: nothing is invented from notes the scan did not read. "
        "Windows `30d` and `90d` are exactly what a full scan gives. For all-time figures use the latest "
        "day whose scan_status is `'full'`."
    ),
    partitioned=True,
    columns=(
        _c("creator_id", "VARCHAR", "Xiaohongshu user id of the creator.", null=False),
        _c("snapshot_date", "DATE", "Snapshot day (Asia/Shanghai).", null=False),
        _c(
            "window",
            "VARCHAR",
            "'30d' or '90d': notes published in (snapshot_date - N days, snapshot_date]; 'all': every note.",
            null=False,
        ),
        _c(
            "segment",
            "VARCHAR",
            "'all', 'organic' (is_advertise false) or 'cooperation' (is_advertise true).",
            null=False,
        ),
        _c(
            "note_count",
            "BIGINT",
            "Notes in the window and segment; NULL for window 'all' on a window-scan day.",
            unit="notes",
        ),
        _c("video_note_count", "BIGINT", "Of those, video notes (NULL where note_count is).", unit="notes"),
        _c("read_median", "DOUBLE", "Median read_num (DuckDB median).", unit="reads"),
        _c("read_mean", "DOUBLE", "Mean read_num.", unit="reads"),
        _c("interaction_median", "DOUBLE", "Median interaction_num.", unit="interactions"),
        _c("like_median", "DOUBLE", "Median like_num.", unit="likes"),
        _c("collect_median", "DOUBLE", "Median collect_num.", unit="collects"),
        _c(
            "engagement_rate",
            "DOUBLE",
            "sum(interaction_num) / sum(read_num); NULL when there are no reads.",
            unit="ratio 0-1",
        ),
        _c(
            "hundred_like_rate",
            "DOUBLE",
            "Share of notes with like_num >= 100 (notes with a known like_num).",
            unit="ratio 0-1",
        ),
        _c("thousand_like_rate", "DOUBLE", "Share of notes with like_num >= 1000.", unit="ratio 0-1"),
        _c(
            "notes_per_week",
            "DOUBLE",
            "note_count / (window days / 7); NULL for window 'all'.",
            unit="notes/week",
        ),
        _c(
            "days_since_last_note",
            "INTEGER",
            "snapshot_date minus the latest published_date in the cell.",
            unit="days",
        ),
        _c(
            "read_gain",
            "BIGINT",
            "Sum of read_num now minus at the previous snapshot, over notes in both; NULL without a previous snapshot.",
            unit="reads",
        ),
        _c("previous_snapshot_date", "DATE", "The creator's previous snapshot used for read_gain."),
        _c("notes_total_reported", "INTEGER", "The API's total on the last page read.", unit="notes"),
    ),
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
        "removed while paging). Rebuilt with analytics.notes from the stored pages; `billed_calls` comes "
        "from the billing ledger meta.api_calls."
    ),
    partitioned=True,
    columns=(
        CREATOR_ID,
        SNAPSHOT_DATE,
        _c(
            "scan_status",
            "VARCHAR",
            "'full', 'window', 'empty' or 'partial' (see the table's notes).",
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
        "The billing ledger: one row per HTTP call to the notes endpoint, retries and failures included, "
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
        "analytics.creators; ordered by read_median."
    ),
    columns=(
        CREATOR_ENGAGEMENT_METRICS.column("creator_id"),
        CREATORS.column("display_name"),
        CREATORS.column("tags"),
        CREATOR_ENGAGEMENT_METRICS.column("snapshot_date"),
        *(CREATOR_ENGAGEMENT_METRICS.column(n) for n in _LEADERBOARD_FROM_METRICS),
    ),
)

RELATIONS: tuple[Relation, ...] = (
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
    API_CALLS_DAILY,
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
