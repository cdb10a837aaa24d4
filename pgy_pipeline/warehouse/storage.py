"""Partition writes and reads of the warehouse (DuckDB, no Dagster).

Every write replaces whole partitions, delete-then-insert inside one explicit transaction, so a
reader sees a partition's old rows or its new rows, never half of either, and a failure (or a killed
process) leaves the old rows. On the lake profile a transaction that conflicts with another
writer's commit is rerun whole (:func:`~pgy_pipeline.warehouse.lake.retry_on_conflict`). Loads are bulk: Arrow tables for raw pages, SQL over stored JSON for
the rest.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pgy_pipeline import clock
from pgy_pipeline.api.client import Page
from pgy_pipeline.errors import DataSourceMismatchError, DuckDBLockedError, StorageFormatError
from pgy_pipeline.warehouse.fileformat import (
    READABLE_BY,
    UNREADABLE_FORMAT,
    convert_in_place,
    file_storage_version,
    needs_conversion,
    storage_config,
)
from pgy_pipeline.warehouse.keys import PartitionKey
from pgy_pipeline.warehouse.lake import (
    LakeSettings,
    display_name,
    is_lake,
    is_lake_connection,
    open_lake,
    retry_on_conflict,
)
from pgy_pipeline.warehouse.replica import file_backed
from pgy_pipeline.warehouse.schema import ensure_schema
from pgy_pipeline.warehouse.sql_files import sql_file
from pgy_pipeline.warehouse.tables import (
    CREATOR_ENGAGEMENT_METRICS,
    CREATOR_SNAPSHOTS,
    CREATORS,
    IRREGULAR_NOTE_COUNTS,
    NOTE_REJECTS,
    RAW_NOTE_PAGES,
    RAW_PAGE_ITEMS,
    RAW_PAGES,
    Relation,
    quote_ident,
)

__all__ = ["PartitionKey", "connect", "ensure_schema", "transaction"]

log = logging.getLogger(__name__)


@contextmanager
def connect(
    database: str,
    *,
    lock_wait_s: float = 120.0,
    config: dict[str, Any] | None = None,
    on_wait: Callable[[float, str], None] | None = None,
    report_every_s: float = 15.0,
    lake: LakeSettings | None = None,
    on_convert: Callable[[str], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to ``database``, waiting a bounded time for another process's lock.

    DuckDB lets one process open the file for writing, and any reader (even read-only) blocks it.
    This waits up to ``lock_wait_s`` and then names the process holding the lock, so a person knows
    whom to ask. ``on_wait(seconds_waited, holder)`` is called every ``report_every_s`` while waiting.

    A ``ducklake:`` database (the lake profile, see :mod:`pgy_pipeline.warehouse.lake`) has no such
    lock: it is attached in an in-memory DuckDB and made current, with ``lake`` saying where its
    data files live.

    A new file is created in the storage format every DuckDB from 1.1 opens; a file in a newer one
    (written by an earlier release on DuckDB 2.0) is converted first, keeping a backup, and
    ``on_convert`` (default: a warning in the log) is told what was done (see
    :mod:`pgy_pipeline.warehouse.fileformat`).
    """
    if is_lake(database):
        conn = open_lake(database, lake or LakeSettings(), config=config)
        try:
            yield conn
        finally:
            conn.close()
        return
    on_disk = file_backed(database)
    if on_disk:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "custom_user_agent": "pgy_pipeline",
        # A bounded memory limit: DuckDB spills to disk beyond it instead of taking up to 80% of the
        # machine, which matters on a small worker or a shared Kubernetes node.
        "memory_limit": "1GB",
        **(config or {}),
        # A new file is created in the format every DuckDB from 1.1 opens (see fileformat).
        **(storage_config() if on_disk else {}),
    }
    conn = _open_waiting(database, settings, lock_wait_s, on_wait, report_every_s)
    if on_disk and needs_conversion(file_storage_version(conn)):
        try:
            conversion = convert_in_place(conn, database)
        finally:
            conn.close()
        (on_convert or log.warning)(conversion.message())
        conn = _open_waiting(database, settings, lock_wait_s, on_wait, report_every_s)
    try:
        yield conn
    finally:
        conn.close()


def _open_waiting(
    database: str,
    settings: dict[str, Any],
    lock_wait_s: float,
    on_wait: Callable[[float, str], None] | None,
    report_every_s: float,
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` read-write, retrying while another process holds the file's lock."""
    started = time.monotonic()
    deadline = started + lock_wait_s
    next_report = started + report_every_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(database, read_only=False, config=settings)
        except duckdb.IOException as exc:
            if UNREADABLE_FORMAT in str(exc):
                raise StorageFormatError(
                    f"the DuckDB file {database} is in a storage format that this DuckDB "
                    f"({duckdb.__version__}) cannot read: {str(exc).splitlines()[0]} It was written by a "
                    "newer DuckDB: run the pipeline once on DuckDB 2.0 (the default environment, .venv), "
                    f"which converts it to the format {READABLE_BY} open, keeping a backup; or point "
                    "PGY_DUCKDB_PATH at another file."
                ) from None
            if "lock" not in str(exc).lower():
                raise
            now = time.monotonic()
            if now >= deadline:
                raise DuckDBLockedError(
                    f"DuckDB file {database} stayed locked for {lock_wait_s:g} s by "
                    f"{_lock_holder(str(exc))}. DuckDB allows one writer and no readers while it "
                    "writes: close that session (or open it only between runs) and rerun; any pages "
                    "already fetched are kept in the spool and will not be fetched again."
                ) from None
            if on_wait is not None and now >= next_report:
                on_wait(now - started, _lock_holder(str(exc)))
                next_report = now + report_every_s
            time.sleep(min(delay, max(0.0, deadline - now)))
            delay = min(delay * 2, 2.0)


def _lock_holder(message: str) -> str:
    """'the process /usr/bin/python3 (PID 123)' from DuckDB's lock error, or 'another process'."""
    match = re.search(r"Conflicting lock is held in (.+?\(PID \d+\))", message)
    return f"the process {match.group(1)}" if match else "another process"


# A \uD800-\uDFFF escape that is not half of a pair: Python's json accepts it, DuckDB's JSON does not.
_LONE_SURROGATE = re.compile(
    r"(?<!\\)\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    r"|(?<![\\]u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def json_for_duckdb(text: str) -> str:
    """``text`` with lone surrogate escapes replaced by U+FFFD's, the only change DuckDB needs to
    store a body Python's json module accepted (one such note must not fail the whole load)."""
    return _LONE_SURROGATE.sub(r"\\ufffd", text) if "\\u" in text else text


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One explicit transaction: DuckDB otherwise commits each statement on its own."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def claim_data_source(conn: duckdb.DuckDBPyConnection, source: str, database: str) -> None:
    """Record which service feeds this file, and refuse to mix simulated and real data."""
    rows = conn.execute("SELECT source FROM meta.data_source LIMIT 1").fetchall()
    row = rows[0] if rows else None
    if row is None:
        conn.execute(
            "INSERT INTO meta.data_source (source, created_at) VALUES (?, ?)",
            [source, clock.now().replace(tzinfo=None)],
        )
    elif row[0] != source:
        raise DataSourceMismatchError(
            f"the DuckDB file {display_name(database)} holds {row[0]} data, and this run would write {source} data "
            "into it. Point PGY_DUCKDB_PATH at another file (the demo's default is data/pgy_demo.duckdb) "
            "or set JUSTONEAPI_TOKEN consistently."
        )


@contextmanager
def partition_keys(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> Iterator[None]:
    """Fill the temp table ``_keys(creator_id, snapshot_date)`` with ``keys`` for the block's SQL.

    This is the one hand-off between Python and the SQL files: ``notes.sql``, ``metrics.sql`` and the
    files under ``sql/reports/`` read the partitions they work on from ``_keys``, and only this
    function writes it. The table is dropped when the block ends.
    """
    ordered = sorted(set(keys))
    table = pa.table(
        {"creator_id": [k[0] for k in ordered], "snapshot_date": [k[1] for k in ordered]},
        schema=pa.schema([("creator_id", pa.string()), ("snapshot_date", pa.date32())]),
    )
    conn.register("_keys_arrow", table)
    try:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE _keys AS SELECT creator_id, snapshot_date FROM _keys_arrow"
        )
    finally:
        conn.unregister("_keys_arrow")
    try:
        yield
    finally:
        conn.execute("DROP TABLE IF EXISTS _keys")


def report(conn: duckdb.DuckDBPyConnection, name: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql/reports/<name>.sql`` over the partitions in ``_keys`` (see :func:`partition_keys`)."""
    return conn.execute(sql_file("reports", f"{name}.sql")).fetchall()


def stored_raw_keys(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> set[PartitionKey]:
    """The partitions among ``keys`` that already have raw pages."""
    with partition_keys(conn, keys):
        rows = conn.execute(
            "SELECT DISTINCT p.creator_id, p.snapshot_date FROM raw.pages AS p "
            "JOIN _keys USING (creator_id, snapshot_date)"
        ).fetchall()
    return {(r[0], r[1]) for r in rows}


def stored_raw_creators(conn: duckdb.DuckDBPyConnection, days: Iterable[date]) -> list[PartitionKey]:
    """Every (creator, date) with raw pages stored on one of ``days``, in creator order."""
    wanted = sorted(set(days))
    if not wanted:
        return []
    rows = conn.execute(
        "SELECT DISTINCT creator_id, snapshot_date FROM raw.pages "
        "WHERE snapshot_date IN (SELECT unnest($days::DATE[])) ORDER BY snapshot_date, creator_id",
        {"days": wanted},
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def pages_table(pages_by_key: dict[PartitionKey, list[Page]]) -> pa.Table:
    """Raw pages as an Arrow table in the layout of ``raw.note_pages``."""
    cols: dict[str, list[Any]] = {name: [] for name in RAW_NOTE_PAGES.column_names}
    for (creator_id, snapshot_date), pages in pages_by_key.items():
        for p in pages:
            cols["creator_id"].append(creator_id)
            cols["snapshot_date"].append(snapshot_date)
            cols["page_number"].append(p.page_number)
            cols["request_params"].append(json.dumps(p.params, ensure_ascii=False, sort_keys=True))
            cols["fetched_at"].append(p.fetched_at.astimezone(UTC).replace(tzinfo=None))
            cols["attempts"].append(p.attempts)
            cols["code"].append(p.code)
            cols["total"].append(p.total)
            cols["item_count"].append(len(p.items))
            cols["body"].append(json_for_duckdb(p.body_text))
            cols["scan"].append(p.scan)
            cols["scan_window_from"].append(p.scan_window_from)
    return pa.table(cols, schema=RAW_NOTE_PAGES.arrow_schema())


def insert_arrow(conn: duckdb.DuckDBPyConnection, relation: Relation, table: pa.Table) -> None:
    """Bulk-insert an Arrow table into ``relation``, naming every column (JSON text cast to JSON)."""
    conn.register("_load_arrow", table)
    try:
        names = table.column_names
        conn.execute(
            f"INSERT INTO {relation.name} ({', '.join(quote_ident(n) for n in names)}) "
            f"SELECT {relation.select_casts(names)} FROM _load_arrow"
        )
    finally:
        conn.unregister("_load_arrow")


def store_loaded_pages(conn: duckdb.DuckDBPyConnection) -> None:
    """Store the pages in the temp table ``_load_pages`` (the columns of ``raw.note_pages``, whole
    bodies) split into ``raw.pages``, ``raw.item_texts`` and ``raw.page_items`` (``sql/raw_pages.sql``),
    then drop it. The caller holds the transaction and has deleted the partitions' old rows.

    New item texts are numbered on from the highest key in a file, which has one writer at a time; on
    a lake, where writers commit concurrently, a text's key comes from its hash instead."""
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _key_scheme AS SELECT $hashed AS hashed",
        {"hashed": is_lake_connection(conn)},
    )
    try:
        conn.execute(sql_file("raw_pages.sql"))
    finally:
        conn.execute("DROP TABLE IF EXISTS _key_scheme")
        conn.execute("DROP TABLE IF EXISTS _load_pages")


def replace_raw_pages(
    conn: duckdb.DuckDBPyConnection,
    pages_by_key: dict[PartitionKey, list[Page]],
    also: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
) -> int:
    """Replace the raw pages of every partition in ``pages_by_key`` in one transaction; ``also`` runs
    inside it (the billing ledger's rows go in with the pages they paid for).

    The same transaction normalizes the pages' items (``sql/notes.sql``): ``analytics.notes`` is a view
    of the day's counts in ``raw.page_items``, so a partition's notes, rejects and typed texts must
    commit with its pages, or a reader would see a day's notes in part (those whose text was known)."""
    if not pages_by_key:
        return 0
    table = pages_table(pages_by_key)

    def write() -> None:
        with partition_keys(conn, pages_by_key.keys()), transaction(conn):
            for stored in (RAW_PAGES, RAW_PAGE_ITEMS):
                conn.execute(
                    f"DELETE FROM {stored.name} WHERE (creator_id, snapshot_date) IN (SELECT * FROM _keys)"
                )
            conn.register("_load_arrow", table)
            try:
                conn.execute(
                    f"CREATE OR REPLACE TEMP TABLE _load_pages AS SELECT {RAW_NOTE_PAGES.select_casts()} "
                    "FROM _load_arrow"
                )
            finally:
                conn.unregister("_load_arrow")
            store_loaded_pages(conn)
            _normalize_notes(conn)
            if also is not None:
                also(conn)

    retry_on_conflict(conn, write, what="raw pages write")
    return int(table.num_rows)


def _rebuild_from_raw(
    conn: duckdb.DuckDBPyConnection,
    keys: Iterable[PartitionKey],
    tables: tuple[str, ...],
    sql_names: tuple[str, ...],
) -> set[PartitionKey]:
    """Replace the ``keys`` partitions of ``tables`` by running ``sql/<sql_names>``, in one transaction.

    Only partitions that have raw pages are touched; the others are returned, untouched.
    """
    wanted = set(keys)
    present = stored_raw_keys(conn, wanted)

    def write() -> None:
        with partition_keys(conn, present), transaction(conn):
            for table in tables:
                conn.execute(
                    f"DELETE FROM {table} WHERE (creator_id, snapshot_date) IN (SELECT * FROM _keys)"
                )
            for sql_name in sql_names:
                conn.execute(sql_file(sql_name))

    retry_on_conflict(conn, write, what=f"{', '.join(tables)} rebuild")
    return wanted - present


def _normalize_notes(conn: duckdb.DuckDBPyConnection) -> None:
    """Normalize the raw pages of the partitions in ``_keys`` into ``analytics.note_details``,
    ``analytics.irregular_note_counts`` and ``analytics.note_rejects``; inside the caller's transaction."""
    for table in (IRREGULAR_NOTE_COUNTS.name, NOTE_REJECTS.name):
        conn.execute(f"DELETE FROM {table} WHERE (creator_id, snapshot_date) IN (SELECT * FROM _keys)")
    conn.execute(sql_file("notes.sql"))


def rebuild_notes(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> set[PartitionKey]:
    """Rebuild ``analytics.notes``, ``analytics.note_rejects`` and ``analytics.creator_snapshots`` from raw
    pages; returns the keys that have none."""
    return _rebuild_from_raw(
        conn,
        keys,
        (IRREGULAR_NOTE_COUNTS.name, NOTE_REJECTS.name, CREATOR_SNAPSHOTS.name),
        ("notes.sql", "snapshots.sql"),
    )


def rebuild_metrics(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> set[PartitionKey]:
    """Rebuild ``analytics.creator_engagement_metrics`` from notes; returns keys without raw pages."""
    return _rebuild_from_raw(
        conn,
        keys,
        (CREATOR_ENGAGEMENT_METRICS.name,),
        ("metrics.sql", "metrics_window_scans.sql", "metrics_publish.sql"),
    )


def replace_creators(conn: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Replace ``analytics.creators`` with the registry's rows, in one transaction."""
    now = clock.now().replace(tzinfo=None)
    table = table.append_column(
        pa.field("updated_at", pa.timestamp("us")), pa.array([now] * table.num_rows, pa.timestamp("us"))
    )

    def write() -> None:
        with transaction(conn):
            conn.execute("DELETE FROM analytics.creators")
            insert_arrow(conn, CREATORS, table)

    retry_on_conflict(conn, write, what="analytics.creators write")
