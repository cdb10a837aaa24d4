"""The analyst's desk in the warehouse: peer percentiles and anomalies, rebuilt per snapshot date.

Both tables are replaced whole for the dates asked, delete-then-insert in one transaction, from
tables already stored (no API call): ``analytics.creator_peer_percentiles`` from the 30d/all metrics
and the registry's tags, ``analytics.anomalies`` from notes, raw page totals and
``analytics.snapshot_coverage``. The SQL lives in ``sql/analyst/``; it reads the dates it works on
from the temp table ``_dates``, which only :func:`snapshot_dates` writes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
import pyarrow as pa

from pgy_pipeline.errors import InvalidInputError
from pgy_pipeline.warehouse.sql_files import sql_file
from pgy_pipeline.warehouse.storage import transaction
from pgy_pipeline.warehouse.tables import (
    ANOMALIES,
    CREATOR_PEER_PERCENTILES,
    QUIET_DAYS,
    QUIET_EARLIER_DAYS,
    QUIET_MIN_EARLIER_NOTES,
    SPIKE_BASELINE_DAYS,
    SPIKE_FACTOR,
    SPIKE_FLOOR_READS_PER_DAY,
)


@dataclass(frozen=True)
class AnomalyRules:
    """The thresholds of ``analytics.anomalies`` (defaults documented in docs/tables.md)."""

    spike_factor: float = SPIKE_FACTOR
    spike_floor: float = SPIKE_FLOOR_READS_PER_DAY
    spike_baseline_days: int = SPIKE_BASELINE_DAYS
    quiet_days: int = QUIET_DAYS
    quiet_earlier_days: int = QUIET_EARLIER_DAYS
    quiet_min_notes: int = QUIET_MIN_EARLIER_NOTES

    def validate(self) -> None:
        """Refuse thresholds that would make every note, or none, a finding."""
        if not (math.isfinite(self.spike_factor) and self.spike_factor > 1):
            raise InvalidInputError(f"spike_factor must be a number above 1, got {self.spike_factor!r}")
        if not (math.isfinite(self.spike_floor) and self.spike_floor >= 0):
            raise InvalidInputError(f"spike_floor must be a number >= 0, got {self.spike_floor!r}")
        for name in ("spike_baseline_days", "quiet_days", "quiet_earlier_days", "quiet_min_notes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a whole number >= 1, got {value!r}")


@contextmanager
def snapshot_dates(conn: duckdb.DuckDBPyConnection, dates: Iterable[date]) -> Iterator[list[date]]:
    """Fill the temp table ``_dates(snapshot_date)`` for the block's SQL; dropped when it ends."""
    ordered = sorted(set(dates))
    conn.register("_dates_arrow", pa.table({"snapshot_date": pa.array(ordered, pa.date32())}))
    try:
        conn.execute("CREATE OR REPLACE TEMP TABLE _dates AS SELECT snapshot_date FROM _dates_arrow")
    finally:
        conn.unregister("_dates_arrow")
    try:
        yield ordered
    finally:
        conn.execute("DROP TABLE IF EXISTS _dates")


def _rows_per_date(conn: duckdb.DuckDBPyConnection, table: str, dates: list[date]) -> dict[date, int]:
    counts = {d: 0 for d in dates}
    rows = conn.execute(
        f"SELECT snapshot_date, count(*) FROM {table} "
        "WHERE snapshot_date IN (SELECT snapshot_date FROM _dates) GROUP BY 1"
    ).fetchall()
    counts.update({d: int(n) for d, n in rows})
    return counts


def rebuild_peer_percentiles(conn: duckdb.DuckDBPyConnection, dates: Iterable[date]) -> dict[date, int]:
    """Replace ``analytics.creator_peer_percentiles`` for ``dates``; returns the rows per date."""
    with snapshot_dates(conn, dates) as ordered:
        with transaction(conn):
            conn.execute(
                f"DELETE FROM {CREATOR_PEER_PERCENTILES.name} "
                "WHERE snapshot_date IN (SELECT snapshot_date FROM _dates)"
            )
            conn.execute(sql_file("analyst", "peer_percentiles.sql"))
        return _rows_per_date(conn, CREATOR_PEER_PERCENTILES.name, ordered)


def rebuild_anomalies(
    conn: duckdb.DuckDBPyConnection, dates: Iterable[date], rules: AnomalyRules | None = None
) -> dict[date, int]:
    """Replace ``analytics.anomalies`` for ``dates``; returns the findings per date."""
    rules = rules or AnomalyRules()
    rules.validate()
    with snapshot_dates(conn, dates) as ordered:
        with transaction(conn):
            # Typed literals: the thresholds are validated numbers, and variables keep the SQL file plain.
            conn.execute(f"SET VARIABLE spike_factor = {float(rules.spike_factor)!r}::DOUBLE")
            conn.execute(f"SET VARIABLE spike_floor = {float(rules.spike_floor)!r}::DOUBLE")
            conn.execute(f"SET VARIABLE spike_baseline_days = {int(rules.spike_baseline_days)}::INTEGER")
            conn.execute(f"SET VARIABLE quiet_days = {int(rules.quiet_days)}::INTEGER")
            conn.execute(f"SET VARIABLE quiet_earlier_days = {int(rules.quiet_earlier_days)}::INTEGER")
            conn.execute(f"SET VARIABLE quiet_min_notes = {int(rules.quiet_min_notes)}::INTEGER")
            conn.execute(
                f"DELETE FROM {ANOMALIES.name} WHERE snapshot_date IN (SELECT snapshot_date FROM _dates)"
            )
            conn.execute(sql_file("analyst", "anomalies.sql"))
        return _rows_per_date(conn, ANOMALIES.name, ordered)


def anomalies_by_kind(conn: duckdb.DuckDBPyConnection, dates: Iterable[date]) -> dict[date, dict[str, int]]:
    """Findings per date and kind (dates without any map to an empty dict)."""
    ordered = sorted(set(dates))
    out: dict[date, dict[str, int]] = {d: {} for d in ordered}
    if not ordered:
        return out
    rows = conn.execute(
        f"SELECT snapshot_date, kind, count(*) FROM {ANOMALIES.name} "
        "WHERE snapshot_date BETWEEN ? AND ? GROUP BY ALL ORDER BY ALL",
        [ordered[0], ordered[-1]],
    ).fetchall()
    for day, kind, n in rows:
        if day in out:
            out[day][kind] = int(n)
    return out


def first_anomalies(conn: duckdb.DuckDBPyConnection, day: date, limit: int = 10) -> list[tuple[Any, ...]]:
    """The first ``limit`` findings of ``day`` (kind, creator, name, note, message), most telling first."""
    return conn.execute(
        f"""
        SELECT a.kind, a.creator_id, c.display_name, a.note_id, a.message
        FROM {ANOMALIES.name} AS a
        LEFT JOIN analytics.creators AS c USING (creator_id)
        WHERE a.snapshot_date = ?
        ORDER BY CASE a.kind WHEN 'note_disappeared' THEN 1 WHEN 'total_dropped' THEN 2
                 WHEN 'reads_decreased' THEN 3 WHEN 'read_spike' THEN 4 ELSE 5 END,
                 a.value_before DESC NULLS LAST, a.creator_id, a.note_id
        LIMIT ?
        """,
        [day, limit],
    ).fetchall()


def percentile_leaders(conn: duckdb.DuckDBPyConnection, day: date, limit: int = 10) -> list[tuple[Any, ...]]:
    """The creators beating most of the whole roster on read median that day (for a UI preview)."""
    return conn.execute(
        f"""
        SELECT p.creator_id, c.display_name, p.peer_count, p.read_median, p.read_median_percentile,
               p.engagement_rate_percentile
        FROM {CREATOR_PEER_PERCENTILES.name} AS p
        LEFT JOIN analytics.creators AS c USING (creator_id)
        WHERE p.snapshot_date = ? AND p.peer_group = 'all'
        ORDER BY p.read_median_percentile DESC NULLS LAST, p.creator_id
        LIMIT ?
        """,
        [day, limit],
    ).fetchall()
