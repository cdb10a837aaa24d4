"""Benchmark 7: calls per creator-day, full scans every day versus window-bounded scans.

A realistic roster (``pgy_pipeline.simulator.roster``: note counts long-tailed from 5 to 600, posting
rates from once a month to daily) served by the simulator, snapshotted once a day for a week with the
simulator's clock moved a day at a time (new notes appear at each creator's rate). Two warehouses:

* **full**: every creator's whole list every day (what the pipeline did before);
* **window**: what the pipeline does now: the day's plan from the warehouse's own history
  (``plan_scans``: a full scan on the first snapshot and when the last full scan is
  ``PGY_FULL_SCAN_EVERY_DAYS`` = 7 days old, else a window scan), so one full scan in the week.

Both read the same simulator at the same clock, through the same client (``fetch_creators``) and the
same warehouse writes and rebuilds. Figures: calls per creator-day for each, the ratio, and whether
every 30d and 90d metric row (every column) is identical between the two warehouses.
"""

from __future__ import annotations

import math
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.common import quiet_loggers

TOKEN = "bench-scans-token-4b1d"
START = datetime(2026, 11, 20, 8, 30)  # Asia/Shanghai, the schedule's hour


def run(
    *, creators: int = 200, days: int = 7, seed: int = 0, full_every_days: int = 7, log=print
) -> dict[str, Any]:
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
    now = {"t": START.replace(tzinfo=SHANGHAI).astimezone()}
    sim = Simulator(token=TOKEN, now=lambda: now["t"])
    sim.load_roster(people, at=now["t"])
    base_url = sim.start()
    calls = {"full": 0, "window": 0}
    by_day: dict[str, list[int]] = {"full": [], "window": []}
    scans_run = {"full": {"full": 0, "window": 0}, "window": {"full": 0, "window": 0}}
    seconds = {"full": 0.0, "window": 0.0}
    with tempfile.TemporaryDirectory(prefix="pgy-bench-scans-") as tmp:
        dbs = {k: str(Path(tmp) / f"{k}.duckdb") for k in calls}
        for path in dbs.values():
            with connect(path) as conn:
                ensure_schema(conn)
        try:
            for d in range(days):
                now["t"] = (START + timedelta(days=d)).replace(tzinfo=SHANGHAI)
                day = today_shanghai(now["t"])
                for strategy, db in dbs.items():
                    with connect(db) as conn:
                        if strategy == "window":
                            plan = plan_scans(
                                ids,
                                scan_history(conn, ids, day),
                                day,
                                query=NotesQuery(),
                                full_every_days=full_every_days,
                            )
                            windows = plan.windows
                        else:
                            windows = {}
                    before = len(sim.calls)
                    t0 = time.monotonic()
                    with (
                        quiet_loggers("httpx", "httpcore"),
                        PgyClient(TOKEN, base_url=base_url, max_rps=None, max_concurrency=4) as client,
                    ):
                        outcome = fetch_creators(client, ids, windows=windows)
                    seconds[strategy] += time.monotonic() - t0
                    if outcome.failures:
                        raise RuntimeError(f"{strategy} day {d}: {len(outcome.failures)} creators failed")
                    calls[strategy] += len(sim.calls) - before
                    by_day[strategy].append(len(sim.calls) - before)
                    scans_run[strategy]["window"] += len(windows)
                    scans_run[strategy]["full"] += len(ids) - len(windows)
                    keys = [(c, day) for c in ids]
                    with connect(db) as conn:
                        replace_raw_pages(conn, {(c, day): outcome.scans[c].pages for c in ids})
                        rebuild_notes(conn, keys)
                        rebuild_metrics(conn, keys)
                log(
                    f"  scans/day {d + 1}: full {calls['full']} calls so far, window {calls['window']} "
                    f"({scans_run['window']['window']} window scans so far)"
                )
        finally:
            sim.stop()
        compare = (
            "SELECT * FROM {db}.analytics.creator_engagement_metrics WHERE \"window\" IN ('30d', '90d') "
            'ORDER BY creator_id, snapshot_date, "window", segment'
        )
        with duckdb.connect() as conn:
            for k, path in dbs.items():
                conn.execute(f"ATTACH '{path}' AS db_{k} (READ_ONLY)")
            full_rows = conn.execute(compare.format(db="db_full")).fetchall()
            window_rows = conn.execute(compare.format(db="db_window")).fetchall()
            statuses = dict(
                conn.execute(
                    "SELECT scan_status, count(*) FROM db_window.analytics.creator_snapshots GROUP BY ALL"
                ).fetchall()
            )
            notes_per_creator = [
                n
                for (n,) in conn.execute(
                    "SELECT total_reported FROM db_full.analytics.creator_snapshots WHERE snapshot_date = ("
                    "SELECT min(snapshot_date) FROM db_full.analytics.creator_snapshots)"
                ).fetchall()
            ]
            # Where a window scan's calls go: pages holding notes of the last 90 days, the margin, and the
            # page that proves the list is past it (the stop rule's "+1").
            overhead = conn.execute(
                """
                WITH w AS (
                    SELECT creator_id, snapshot_date, pages FROM db_window.analytics.creator_snapshots
                    WHERE scan_status = 'window'
                ), per_page AS (
                    SELECT n.creator_id, n.snapshot_date, n.page_number,
                           max(n.published_date) AS newest, min(n.published_date) AS oldest
                    FROM db_window.analytics.notes AS n JOIN w USING (creator_id, snapshot_date)
                    GROUP BY ALL
                ), per_scan AS (
                    SELECT w.creator_id, w.snapshot_date, w.pages,
                           coalesce(max(p.page_number) FILTER (WHERE p.newest >= w.snapshot_date - 90), 0) AS window_pages,
                           min(p.page_number) FILTER (WHERE p.oldest < w.snapshot_date - 97) AS crossing_page
                    FROM w JOIN per_page AS p USING (creator_id, snapshot_date)
                    GROUP BY ALL
                )
                SELECT count(*), sum(pages), sum(window_pages), sum(crossing_page) FROM per_scan
                """
            ).fetchall()[0]
    differing = sum(1 for a, b in zip(full_rows, window_rows, strict=False) if a != b) + abs(
        len(full_rows) - len(window_rows)
    )
    creator_days = creators * days
    notes_sorted = sorted(notes_per_creator)
    return {
        "setup": {
            "creators": creators,
            "days": days,
            "seed": seed,
            "full_scan_every_days": full_every_days,
            "page_size": sim.page_size,
            "notes_median": notes_sorted[len(notes_sorted) // 2],
            "notes_min": notes_sorted[0],
            "notes_max": notes_sorted[-1],
            "posts_per_day_range": [
                round(min(c.posts_per_day for c in people), 4),
                round(max(c.posts_per_day for c in people), 4),
            ],
        },
        "calls": calls,
        "calls_per_creator_day": {k: v / creator_days for k, v in calls.items()},
        "calls_by_day": by_day,
        "ratio_full_over_window": calls["full"] / calls["window"] if calls["window"] else math.inf,
        "scans": scans_run,
        "window_scan_statuses": statuses,
        "window_scan_pages": {
            "scans": overhead[0],
            "pages": overhead[1],
            "pages_with_90_day_notes": overhead[2],
            "pages_to_the_one_crossing_the_margin": overhead[3],
        },
        "metric_rows_compared": len(full_rows),
        "metric_rows_differing": differing,
        "fetch_seconds": seconds,
    }
