"""Benchmark 9: bytes per note-day, the previous layout against storage per note-day.

The simulator's realistic roster (``pgy_pipeline.simulator.roster``: 200 creators, note counts 5 to
600) is snapshotted once a day for ``days`` days with the simulator's clock moved a day at a time, as
the pipeline does it: the day's scan plan from the warehouse's own history (a full scan on the first
snapshot and every 7 days, window scans between), the raw pages written, then the notes and the
metrics rebuilt, each step in its own connection (so its own checkpoint), as the three assets do.

* **this release**: the file as written, its size on disk divided by the note-days it holds (rows of
  ``analytics.notes``);
* **previous layout**: the same rows written day by day into the previous release's tables
  (``raw.note_pages`` with whole bodies, ``analytics.notes`` with every column per day; the other
  tables as they are), a checkpoint after each day;
* **rebuild**: every stored day rebuilt from the raw pages with no call, on a copy; the rows of
  notes, rejects, snapshots and metrics that then differ (0 expected).

The ledger (``meta.api_calls``) is not written here: it is the same in both layouts.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.common import quiet_loggers

TOKEN = "bench-storage-token-77c2"
START = datetime(2026, 11, 1, 8, 30)  # Asia/Shanghai, the schedule's hour
COMPARED = (
    "analytics.notes",
    "analytics.note_rejects",
    "analytics.creator_snapshots",
    "analytics.creator_engagement_metrics",
)


def build(db: str, *, creators: int, days: int, seed: int = 0, log=print) -> None:
    """``days`` daily snapshots of the roster into ``db``, as the pipeline writes them."""
    from pgy_pipeline.api.client import NotesQuery, PgyClient
    from pgy_pipeline.api.ingest import fetch_creators
    from pgy_pipeline.simulator import Simulator, roster
    from pgy_pipeline.warehouse.keys import SHANGHAI, today_shanghai
    from pgy_pipeline.warehouse.scans import plan_scans, scan_history
    from pgy_pipeline.warehouse.storage import (
        connect,
        ensure_schema,
        rebuild_metrics,
        rebuild_notes,
        replace_raw_pages,
    )

    people = roster(creators, seed=seed)
    ids = [c.user_id for c in people]
    now = {"t": START.replace(tzinfo=SHANGHAI)}
    sim = Simulator(token=TOKEN, now=lambda: now["t"])
    sim.load_roster(people, at=now["t"])
    base_url = sim.start()
    with connect(db) as conn:
        ensure_schema(conn)
    try:
        for d in range(days):
            now["t"] = (START + timedelta(days=d)).replace(tzinfo=SHANGHAI)
            day = today_shanghai(now["t"])
            with connect(db) as conn:
                plan = plan_scans(
                    ids, scan_history(conn, ids, day), day, query=NotesQuery(), full_every_days=7
                )
            with (
                quiet_loggers("httpx", "httpcore"),
                PgyClient(TOKEN, base_url=base_url, max_rps=None) as client,
            ):
                outcome = fetch_creators(client, ids, windows=plan.windows)
            if outcome.failures:
                raise RuntimeError(f"day {d}: {len(outcome.failures)} creators failed")
            keys = [(c, day) for c in ids]
            with connect(db) as conn:
                replace_raw_pages(conn, {k: outcome.scans[k[0]].pages for k in keys})
            with connect(db) as conn:
                rebuild_notes(conn, keys)
            with connect(db) as conn:
                rebuild_metrics(conn, keys)
            if (d + 1) % 10 == 0:
                log(f"  storage/day {d + 1} of {days}")
    finally:
        sim.stop()


def previous_layout(source: str, target: str) -> None:
    """The rows of ``source`` written day by day into the previous release's layout."""
    with duckdb.connect(target, config={"storage_compatibility_version": "v1.1.0"}) as conn:
        conn.execute(f"ATTACH '{source}' AS s (READ_ONLY)")
        tables = ("raw.note_pages", *COMPARED)
        for name in ("raw", "analytics"):
            conn.execute(f"CREATE SCHEMA {name}")
        for t in tables:
            conn.execute(f"CREATE TABLE {t} AS SELECT * FROM s.{t} LIMIT 0")
        days = [
            d for (d,) in conn.execute("SELECT DISTINCT snapshot_date FROM s.raw.pages ORDER BY 1").fetchall()
        ]
        for day in days:
            for t in tables:
                conn.execute(
                    f"INSERT INTO {t} SELECT * FROM s.{t} WHERE snapshot_date = ? ORDER BY ALL", [day]
                )
            conn.execute("CHECKPOINT")
        conn.execute("DETACH s")
        conn.execute("CHECKPOINT")


def rebuilt_differences(db: str) -> int:
    """Rows of the compared tables that differ after every stored day is rebuilt from raw, no call."""
    from pgy_pipeline.warehouse.storage import connect, rebuild_metrics, rebuild_notes

    copy = db + ".rebuilt.duckdb"
    shutil.copyfile(db, copy)
    with connect(copy) as conn:
        keys = [
            (c, d)
            for c, d in conn.execute("SELECT DISTINCT creator_id, snapshot_date FROM raw.pages").fetchall()
        ]
        rebuild_notes(conn, keys)
        rebuild_metrics(conn, keys)
    differing = 0
    with duckdb.connect(copy, read_only=True) as conn:
        conn.execute(f"ATTACH '{db}' AS before (READ_ONLY)")
        for t in COMPARED:
            for a, b in ((t, f"before.{t}"), (f"before.{t}", t)):
                differing += conn.execute(
                    f"SELECT count(*) FROM ((SELECT * FROM {a}) EXCEPT ALL (SELECT * FROM {b}))"
                ).fetchall()[0][0]
    return differing


def run(*, creators: int = 200, days: int = 30, log=print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pgy-bench-storage-") as tmp:
        db, old = str(Path(tmp) / "pgy.duckdb"), str(Path(tmp) / "previous.duckdb")
        started = time.monotonic()
        build(db, creators=creators, days=days, log=log)
        build_s = time.monotonic() - started
        with duckdb.connect(db, read_only=True) as conn:
            note_days = conn.execute("SELECT count(*) FROM analytics.notes").fetchall()[0][0]
            texts = conn.execute("SELECT count(*) FROM raw.item_texts").fetchall()[0][0]
        previous_layout(db, old)
        new_bytes, old_bytes = Path(db).stat().st_size, Path(old).stat().st_size
        differing = rebuilt_differences(db)
    return {
        "creators": creators,
        "days": days,
        "note_days": note_days,
        "distinct_texts": texts,
        "bytes": new_bytes,
        "bytes_previous_layout": old_bytes,
        "bytes_per_note_day": new_bytes / note_days,
        "bytes_per_note_day_previous_layout": old_bytes / note_days,
        "ratio": old_bytes / new_bytes,
        "rebuild_differing_rows": differing,
        "build_s": build_s,
    }
