"""Pugongying's own note figures in DuckDB: answers verbatim in ``raw.pugongying_note_rates``, typed in
``analytics.pugongying_note_rates`` (``sql/pugongying_note_rates.sql``), both replaced per partition in
one transaction; ``analytics.metrics_vs_pugongying`` puts them beside ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, date
from typing import Any

import duckdb
import pyarrow as pa

from pgy_pipeline.api.notes_rate import NoteRateAnswer
from pgy_pipeline.warehouse.keys import PartitionKey
from pgy_pipeline.warehouse.lake import retry_on_conflict
from pgy_pipeline.warehouse.sql_files import sql_file
from pgy_pipeline.warehouse.storage import insert_arrow, partition_keys, transaction
from pgy_pipeline.warehouse.tables import PUGONGYING_NOTE_RATES, RAW_PUGONGYING_NOTE_RATES


def answers_table(answers_by_key: dict[PartitionKey, list[NoteRateAnswer]]) -> pa.Table:
    """Answers as an Arrow table in the layout of ``raw.pugongying_note_rates``."""
    cols: dict[str, list[Any]] = {name: [] for name in RAW_PUGONGYING_NOTE_RATES.column_names}
    for (creator_id, snapshot_date), answers in answers_by_key.items():
        for a in answers:
            cols["creator_id"].append(creator_id)
            cols["snapshot_date"].append(snapshot_date)
            cols["business"].append(str(a.query.business))
            cols["note_type"].append(str(a.query.note_type))
            cols["date_type"].append(str(a.query.date_type))
            cols["advertise_switch"].append(str(a.query.advertise_switch))
            cols["fetched_at"].append(a.fetched_at.astimezone(UTC).replace(tzinfo=None))
            cols["attempts"].append(a.attempts)
            cols["body"].append(json.dumps(json.loads(a.body_text), ensure_ascii=False))
    return pa.table(cols, schema=RAW_PUGONGYING_NOTE_RATES.arrow_schema())


def _replace_typed(conn: duckdb.DuckDBPyConnection) -> None:
    """Inside a transaction with ``_keys`` filled: type the partitions' answers again."""
    conn.execute(
        f"DELETE FROM {PUGONGYING_NOTE_RATES.name} WHERE (creator_id, snapshot_date) IN (SELECT * FROM _keys)"
    )
    conn.execute(sql_file("pugongying_note_rates.sql"))


def replace_note_rates(
    conn: duckdb.DuckDBPyConnection,
    answers_by_key: dict[PartitionKey, list[NoteRateAnswer]],
    also: Callable[[duckdb.DuckDBPyConnection], object] | None = None,
) -> int:
    """Replace the answers of every partition in ``answers_by_key`` in one transaction; ``also`` runs
    inside it (the ledger's rows go in with the answers they paid for). :func:`rebuild_note_rates`
    types them."""
    table = answers_table(answers_by_key)

    def write() -> None:
        with partition_keys(conn, answers_by_key.keys()), transaction(conn):
            conn.execute(
                f"DELETE FROM {RAW_PUGONGYING_NOTE_RATES.name} "
                "WHERE (creator_id, snapshot_date) IN (SELECT * FROM _keys)"
            )
            insert_arrow(conn, RAW_PUGONGYING_NOTE_RATES, table)
            if also is not None:
                also(conn)

    retry_on_conflict(conn, write, what=f"{RAW_PUGONGYING_NOTE_RATES.name} write")
    return int(table.num_rows)


def rebuild_note_rates(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> None:
    """Type the stored answers of ``keys`` again, with zero calls."""

    def write() -> None:
        with partition_keys(conn, keys), transaction(conn):
            _replace_typed(conn)

    retry_on_conflict(conn, write, what=f"{PUGONGYING_NOTE_RATES.name} rebuild")


def last_fetched_on(conn: duckdb.DuckDBPyConnection, creator_ids: list[str]) -> dict[str, date]:
    """The last snapshot day each creator's figures were fetched on (for the weekly cadence)."""
    rows = conn.execute(
        f"SELECT creator_id, max(snapshot_date) FROM {RAW_PUGONGYING_NOTE_RATES.name} "
        "WHERE creator_id IN (SELECT unnest($ids::VARCHAR[])) GROUP BY creator_id",
        {"ids": creator_ids},
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def listed_notes(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> dict[PartitionKey, int]:
    """How many notes the notes list held for each partition (0 when nothing is stored)."""
    with partition_keys(conn, keys):
        rows = conn.execute(
            "SELECT k.creator_id, k.snapshot_date, count(n.note_id) FROM _keys AS k "
            "LEFT JOIN analytics.notes AS n USING (creator_id, snapshot_date) GROUP BY ALL"
        ).fetchall()
    return {(r[0], r[1]): int(r[2]) for r in rows}


def typed_rows(conn: duckdb.DuckDBPyConnection, keys: Iterable[PartitionKey]) -> dict[PartitionKey, int]:
    """Rows of ``analytics.pugongying_note_rates`` per partition among ``keys``."""
    with partition_keys(conn, keys):
        rows = conn.execute(
            f"SELECT creator_id, snapshot_date, count(*) FROM {PUGONGYING_NOTE_RATES.name} "
            "JOIN _keys USING (creator_id, snapshot_date) GROUP BY ALL"
        ).fetchall()
    return {(r[0], r[1]): int(r[2]) for r in rows}
