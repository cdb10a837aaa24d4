"""The billing ledger ``meta.api_calls``: every HTTP call, journaled as it happens, stored with the pages.

A fetch step appends each call to a journal file in the spool the moment its answer arrives
(``<spool>/calls/<run>.<pid>.open.jsonl``, one JSON object a line, flushed each time), closes the
journal when fetching ends, and writes every journal waiting in the spool into ``meta.api_calls`` in
the same transaction as the pages (or in a transaction of its own when there are no pages). So:

* a failed run's calls are written by that run, with or without pages;
* a run killed mid-fetch leaves an open journal whose process is gone: the next write picks it up;
* a crash after the commit but before the journal is deleted cannot count a call twice: rows are
  inserted only if their ``call_id`` is not already in the ledger.

A journal still being written by a live process on this machine is left alone. No Dagster here.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from pgy_pipeline.api.ledger import ApiCall
from pgy_pipeline.locks import pid_alive
from pgy_pipeline.warehouse.keys import SHANGHAI
from pgy_pipeline.warehouse.storage import transaction
from pgy_pipeline.warehouse.tables import API_CALLS

_OPEN = ".open.jsonl"
_CLOSED = ".jsonl"
# An open journal untouched this long is taken as abandoned even if its PID is alive again (reused).
_ABANDONED_AFTER_S = 24 * 3600.0


def journal_dir(spool_root: str | Path) -> Path:
    return Path(spool_root) / "calls"


class CallJournal:
    """Append-only journal of one step's calls; thread-safe."""

    def __init__(self, spool_root: str | Path, run_id: str | None, snapshot_date: date) -> None:
        folder = journal_dir(spool_root)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{run_id or 'norun'}.{os.getpid()}.{time.time_ns()}"
        self.path = folder / f"{stem}{_OPEN}"
        self.closed_path = folder / f"{stem}{_CLOSED}"
        self.run_id = run_id
        self.snapshot_date = snapshot_date
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.calls: list[ApiCall] = []

    def append(self, call: ApiCall) -> None:
        line = json.dumps(
            {**call.to_json(), "run_id": self.run_id, "snapshot_date": self.snapshot_date.isoformat()}
        )
        with self._lock:
            self.calls.append(call)
            if self._file.closed:
                return
            self._file.write(line + "\n")
            # Flushed to the OS each time: a killed process loses nothing already answered.
            self._file.flush()

    def close(self) -> Path:
        """Close the journal and mark it complete; returns its final path."""
        with self._lock:
            if not self._file.closed:
                self._file.close()
                if self.calls:
                    os.replace(self.path, self.closed_path)
                else:
                    self.path.unlink(missing_ok=True)
        return self.closed_path

    def totals(self) -> dict[str, int]:
        with self._lock:
            return {"calls": len(self.calls), "billed_calls": sum(c.billed for c in self.calls)}


def pending_journals(spool_root: str | Path) -> list[Path]:
    """Journals ready to be written: closed ones, and open ones whose process is gone."""
    folder = journal_dir(spool_root)
    if not folder.is_dir():
        return []
    ready = []
    now = time.time()
    for path in sorted(folder.iterdir()):
        if path.name.endswith(_OPEN):
            parts = path.name.split(".")
            pid = int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else -1
            try:
                stale = now - path.stat().st_mtime > _ABANDONED_AFTER_S
            except FileNotFoundError:
                continue
            if pid == os.getpid() or (pid_alive(pid) and not stale):
                continue  # still being written (by this process's own journal, or a live run)
            ready.append(path)
        elif path.name.endswith(_CLOSED):
            ready.append(path)
    return ready


@dataclass(frozen=True)
class PendingCalls:
    """Journaled calls read from the spool, and the files they came from."""

    table: pa.Table
    files: list[Path]

    @property
    def count(self) -> int:
        return int(self.table.num_rows)


def _rows(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line cut by a kill mid-write: that call's answer never got recorded whole


def read_pending(spool_root: str | Path) -> PendingCalls:
    """Every call waiting in the spool, as an Arrow table in the layout of ``meta.api_calls``."""
    files = pending_journals(spool_root)
    cols: dict[str, list[Any]] = {name: [] for name in API_CALLS.column_names}
    for path in files:
        for r in _rows(path):
            when = datetime.fromisoformat(r["called_at"])
            cols["call_id"].append(r["call_id"])
            cols["called_at"].append(when.astimezone(UTC).replace(tzinfo=None))
            cols["run_id"].append(r.get("run_id"))
            cols["creator_id"].append(r["creator_id"])
            cols["snapshot_date"].append(date.fromisoformat(r["snapshot_date"]))
            cols["page_number"].append(r["page_number"])
            cols["attempt"].append(r["attempt"])
            cols["http_status"].append(r.get("http_status"))
            cols["code"].append(r.get("code"))
            cols["outcome"].append(r["outcome"])
            cols["billed"].append(bool(r["billed"]))
            cols["latency_ms"].append(float(r["latency_ms"]))
            cols["bytes"].append(int(r["bytes"]))
            cols["endpoint"].append(r.get("endpoint") or "notes")
    return PendingCalls(pa.table(cols, schema=API_CALLS.arrow_schema()), files)


def insert_calls(conn: duckdb.DuckDBPyConnection, pending: PendingCalls) -> int:
    """Insert the calls not yet in the ledger (inside the caller's transaction); returns rows added."""
    if not pending.count:
        return 0
    before = conn.execute("SELECT count(*) FROM meta.api_calls").fetchall()[0][0]
    conn.register("_calls_arrow", pending.table)
    try:
        names = API_CALLS.quoted_columns()
        conn.execute(
            f"INSERT INTO meta.api_calls ({names}) SELECT DISTINCT ON (call_id) {names} FROM _calls_arrow "
            "WHERE call_id NOT IN (SELECT call_id FROM meta.api_calls)"
        )
    finally:
        conn.unregister("_calls_arrow")
    after = conn.execute("SELECT count(*) FROM meta.api_calls").fetchall()[0][0]
    return int(after - before)


def discard(pending: PendingCalls) -> None:
    """Remove journals whose calls are committed to the ledger."""
    for path in pending.files:
        path.unlink(missing_ok=True)


def write_pending(conn: duckdb.DuckDBPyConnection, spool_root: str | Path) -> int:
    """Write every journal waiting in the spool into the ledger, in its own transaction."""
    pending = read_pending(spool_root)
    if not pending.files:
        return 0
    with transaction(conn):
        added = insert_calls(conn, pending)
    discard(pending)
    return added


def shanghai_day_bounds_utc(day: date) -> tuple[datetime, datetime]:
    """The UTC instants (naive, as stored) at which ``day`` starts and ends in Asia/Shanghai."""
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    end = start + timedelta(days=1)
    return (start.astimezone(UTC).replace(tzinfo=None), end.astimezone(UTC).replace(tzinfo=None))


def billed_calls_on(conn: duckdb.DuckDBPyConnection, day: date) -> int:
    """Billed calls in the ledger during ``day`` (Asia/Shanghai), every run included."""
    start, end = shanghai_day_bounds_utc(day)
    rows = conn.execute(
        "SELECT count(*) FROM meta.api_calls WHERE billed AND called_at >= ? AND called_at < ?", [start, end]
    ).fetchall()
    return int(rows[0][0])


__all__ = [
    "CallJournal",
    "PendingCalls",
    "billed_calls_on",
    "discard",
    "insert_calls",
    "pending_journals",
    "read_pending",
    "write_pending",
]
