"""DuckDB side of the pipeline: the connection resource, the schema, and partition writes.

Every write replaces whole partitions, delete-then-insert inside one explicit transaction, so a
reader sees a partition's old rows or its new rows, never half of either, and a failure (or a killed
process) leaves the old rows. Loads are bulk: Arrow tables for raw pages, SQL over stored JSON for
the rest.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from pydantic import Field

from pgy_pipeline.client import Page
from pgy_pipeline.errors import DataSourceMismatchError, DuckDBLockedError

PartitionKey = tuple[str, date]  # (creator_id, snapshot_date)

RAW_PAGES_SCHEMA = pa.schema(
    [
        ("creator_id", pa.string()),
        ("snapshot_date", pa.date32()),
        ("page_number", pa.int32()),
        ("request_params", pa.string()),
        ("fetched_at", pa.timestamp("us")),
        ("attempts", pa.int32()),
        ("code", pa.int32()),
        ("total", pa.int32()),
        ("item_count", pa.int32()),
        ("body", pa.string()),
    ]
)


def sql_file(name: str) -> str:
    """The text of ``pgy_pipeline/sql/<name>``."""
    return resources.files("pgy_pipeline").joinpath("sql", name).read_text(encoding="utf-8")


class PgyDuckDBResource(DuckDBResource):
    """dagster-duckdb's resource, with a bounded, explained wait for DuckDB's single-writer lock.

    DuckDB lets one process open the file for writing, and any reader (even read-only) blocks it.
    The stock resource retries about 100 s and then re-raises DuckDB's error; this one waits up to
    ``lock_wait_s`` and then names the process holding the lock, so a person knows whom to ask.
    """

    lock_wait_s: float = Field(default=120.0, description="How long to wait for another process's lock.")
    spool_dir: str = Field(
        default="",
        description="Where fetched pages wait for their DuckDB write; empty: '<database>.spool' beside the file.",
    )

    @property
    def spool_path(self) -> Path:
        if self.spool_dir:
            return Path(self.spool_dir)
        if self.database.startswith("md:") or self.database == ":memory:":
            return Path("data") / "spool"
        return Path(self.database + ".spool")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.database not in (":memory:",) and not self.database.startswith("md:"):
            Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.05
        while True:
            try:
                conn = duckdb.connect(
                    self.database,
                    read_only=False,
                    # A bounded memory limit: DuckDB spills to disk beyond it instead of taking up to
                    # 80% of the machine, which matters on a small worker or a shared Kubernetes node.
                    config={
                        "custom_user_agent": "pgy_pipeline",
                        "memory_limit": "1GB",
                        **self.connection_config,
                    },
                )
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise DuckDBLockedError(
                        f"DuckDB file {self.database} stayed locked for {self.lock_wait_s:g} s by "
                        f"{_lock_holder(str(exc))}. DuckDB allows one writer and no readers while it "
                        "writes: close that session (or open it only between runs) and rerun; any pages "
                        "already fetched are kept in the spool and will not be fetched again."
                    ) from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 2.0)
        try:
            yield conn
        finally:
            conn.close()


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


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create schemas, tables and views if they are missing."""
    conn.execute(sql_file("schema.sql"))


def claim_data_source(conn: duckdb.DuckDBPyConnection, source: str, database: str) -> None:
    """Record which service feeds this file, and refuse to mix simulated and real data."""
    rows = conn.execute("SELECT source FROM meta.data_source LIMIT 1").fetchall()
    row = rows[0] if rows else None
    if row is None:
        conn.execute(
            "INSERT INTO meta.data_source VALUES (?, ?)", [source, datetime.now(UTC).replace(tzinfo=None)]
        )
    elif row[0] != source:
        raise DataSourceMismatchError(
            f"the DuckDB file {database} holds {row[0]} data, and this run would write {source} data "
            "into it. Point PGY_DUCKDB_PATH at another file (the demo's default is data/pgy_demo.duckdb) "
            "or set JUSTONEAPI_TOKEN consistently."
        )


def _register_keys(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> None:
    keys = sorted(set(keys))
    table = pa.table(
        {"creator_id": [k[0] for k in keys], "snapshot_date": [k[1] for k in keys]},
        schema=pa.schema([("creator_id", pa.string()), ("snapshot_date", pa.date32())]),
    )
    conn.register("_keys_arrow", table)
    conn.execute("CREATE OR REPLACE TEMP TABLE _keys AS SELECT * FROM _keys_arrow")
    conn.unregister("_keys_arrow")


def stored_raw_keys(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> set[PartitionKey]:
    """The partitions among ``keys`` that already have raw pages."""
    _register_keys(conn, keys)
    rows = conn.execute(
        "SELECT DISTINCT creator_id, snapshot_date FROM raw.note_pages JOIN _keys USING (creator_id, snapshot_date)"
    ).fetchall()
    return {(r[0], r[1]) for r in rows}


def pages_table(pages_by_key: dict[PartitionKey, list[Page]]) -> pa.Table:
    """Raw pages as an Arrow table in the layout of ``raw.note_pages``."""
    cols: dict[str, list] = {name: [] for name in RAW_PAGES_SCHEMA.names}
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
    return pa.table(cols, schema=RAW_PAGES_SCHEMA)


def replace_raw_pages(conn: duckdb.DuckDBPyConnection, pages_by_key: dict[PartitionKey, list[Page]]) -> int:
    """Replace the raw pages of every partition in ``pages_by_key`` in one transaction."""
    if not pages_by_key:
        return 0
    table = pages_table(pages_by_key)
    _register_keys(conn, pages_by_key.keys())
    conn.register("_pages_arrow", table)
    try:
        with transaction(conn):
            conn.execute(
                "DELETE FROM raw.note_pages WHERE (creator_id, snapshot_date) IN (SELECT * FROM _keys)"
            )
            conn.execute(
                """
                INSERT INTO raw.note_pages
                SELECT creator_id, snapshot_date, page_number, request_params::JSON, fetched_at,
                       attempts, code, total, item_count, body::JSON
                FROM _pages_arrow
                """
            )
    finally:
        conn.unregister("_pages_arrow")
    return table.num_rows


def _rebuild_from_raw(
    conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey], tables: tuple[str, ...], sql_name: str
) -> set[PartitionKey]:
    """Replace the ``keys`` partitions of ``tables`` by running ``sql/<sql_name>``, in one transaction.

    Only partitions that have raw pages are touched; the others are returned, untouched.
    """
    keys = set(keys)
    present = stored_raw_keys(conn, keys)
    _register_keys(conn, present)
    with transaction(conn):
        for table in tables:
            conn.execute(f"DELETE FROM {table} WHERE (creator_id, snapshot_date) IN (SELECT * FROM _keys)")
        conn.execute(sql_file(sql_name))
    return keys - present


def rebuild_notes(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> set[PartitionKey]:
    """Rebuild ``analytics.notes`` and ``analytics.note_rejects`` from raw pages; returns keys without any."""
    return _rebuild_from_raw(conn, keys, ("analytics.notes", "analytics.note_rejects"), "notes.sql")


def rebuild_metrics(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> set[PartitionKey]:
    """Rebuild ``analytics.creator_engagement_metrics`` from notes; returns keys without raw pages."""
    return _rebuild_from_raw(conn, keys, ("analytics.creator_engagement_metrics",), "metrics.sql")


def replace_creators(conn: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Replace ``analytics.creators`` with the registry's rows, in one transaction."""
    conn.register("_creators_arrow", table)
    try:
        with transaction(conn):
            conn.execute("DELETE FROM analytics.creators")
            conn.execute(
                """
                INSERT INTO analytics.creators
                SELECT creator_id, display_name, tags, active, ? AS updated_at
                FROM _creators_arrow
                """,
                [datetime.now(UTC).replace(tzinfo=None)],
            )
    finally:
        conn.unregister("_creators_arrow")
