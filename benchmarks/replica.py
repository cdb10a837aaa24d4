"""Benchmark 6: analysts read while the pipeline writes, through the read replica.

An analyst process opens ``<name>.read.duckdb`` read-only, queries ``analytics.creator_leaderboard``
and closes, every 20 ms, through whole snapshot runs (``dagster asset materialize`` of the three
assets for every creator, as in benchmark 2, on fresh DuckDB files). Measured:

* the analyst's failed queries (target 0) and how many versions of the data it saw;
* the run's wall time with the analyst polling against runs without it, interleaved (target:
  less than 10% longer);
* for contrast, one run with the same analyst polling the main file instead: its failures;
* what a publication costs as history grows (:mod:`benchmarks.replica_history`): a file of the
  pipeline's schema grown to 1 GB and then 10 GB of generated days, daily runs of one new day each
  published, timed with the bytes they wrote, against the previous release's whole copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import PROJECT_ROOT, creator_ids, spread
from benchmarks.fetch import note_counts
from benchmarks.orchestration import TOKEN, _materialize
from benchmarks.simproc import SimProcess

ANALYST_SCRIPT = r"""
import json, sys, threading, time
import duckdb
path, interval = sys.argv[1], float(sys.argv[2])
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
queries, errors, versions, samples, slowest = 0, 0, set(), [], 0.0
print("started", flush=True)
while not stop.is_set():
    t0 = time.monotonic()
    try:
        conn = duckdb.connect(path, read_only=True)
        try:
            rows = conn.execute(
                "SELECT count(*), max(snapshot_date) FROM analytics.creator_leaderboard"
            ).fetchall()
        finally:
            conn.close()
        versions.add(repr(rows))
    except Exception as exc:  # every failure counts, whatever its kind
        errors += 1
        if len(samples) < 3:
            samples.append(f"{type(exc).__name__}: {exc}"[:200])
    queries += 1
    slowest = max(slowest, time.monotonic() - t0)
    time.sleep(interval)
print(json.dumps({"queries": queries, "errors": errors, "versions": len(versions),
                  "error_samples": samples, "slowest_query_s": slowest}), flush=True)
"""


class AnalystProcess:
    """An analyst in another process: open read-only, query, close, every ``interval_s``."""

    def __init__(self, path: str | Path, interval_s: float = 0.02) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ANALYST_SCRIPT, str(path), str(interval_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "started":
            raise RuntimeError(f"analyst process did not start: {line!r}")

    def stop(self) -> dict[str, Any]:
        """End the loop; its figures: queries, errors, versions seen, a few error messages."""
        out, _ = self.proc.communicate("stop\n", timeout=60)
        return json.loads(out.strip().splitlines()[-1])


def _prepare(db: Path) -> None:
    """An empty warehouse with its replica, as after the pipeline's first write."""
    from pgy_pipeline.warehouse.replica import publish_replica
    from pgy_pipeline.warehouse.storage import connect, ensure_schema

    with connect(str(db)) as conn:
        ensure_schema(conn)
    publish_replica(str(db))


def _filesystem(path: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[1].split()[1]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def run(
    *,
    n_creators: int = 100,
    repeats: int = 3,
    max_notes: int = 40,
    executor: str = "multiprocess",
    history_gb: tuple[float, ...] = (1.0, 10.0),
    history_creators: int = 1000,
    interval_s: float = 0.02,
    log=print,
) -> dict[str, Any]:
    from dagster import DagsterInstance

    from pgy_pipeline.orchestration.partitions import today_shanghai
    from pgy_pipeline.warehouse.replica import replica_path

    creators = creator_ids(n_creators, prefix="replica")
    counts = note_counts(creators, max_notes)
    day = today_shanghai().isoformat()
    partition_range = ["--partition-range", f"{creators[0]}|{day}...{creators[-1]}|{day}"]
    with tempfile.TemporaryDirectory(prefix="pgy-bench-replica-", dir=os.environ.get("PGY_BENCH_TMP")) as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        with DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("creators", creators)
        plain, polled, analysts = [], [], []
        main_file: dict[str, Any] = {}
        with SimProcess(token=TOKEN, note_counts=counts) as sim:
            env = {
                **os.environ,
                "DAGSTER_HOME": str(home),
                "PGY_BENCH_SIM_URL": sim.base_url,
                "PGY_BENCH_TOKEN": TOKEN,
                "PYTHONWARNINGS": "ignore",
                "PGY_BENCH_EXECUTOR": executor,
            }
            for i in range(repeats):
                for mode in ("plain", "replica"):  # interleaved, so load on the machine hits both alike
                    db = Path(tmp) / f"{mode}{i}.duckdb"
                    _prepare(db)
                    run_env = {**env, "PGY_BENCH_DB": str(db)}
                    if mode == "plain":
                        plain.append(_materialize(run_env, partition_range))
                        log(f"  replica/run without an analyst #{i + 1}: {plain[-1]:.1f} s")
                        continue
                    analyst = AnalystProcess(replica_path(str(db)), interval_s)
                    try:
                        polled.append(_materialize(run_env, partition_range))
                    finally:
                        analysts.append(analyst.stop())
                    log(
                        f"  replica/run with an analyst polling the replica #{i + 1}: {polled[-1]:.1f} s, "
                        f"{analysts[-1]['queries']} queries, {analysts[-1]['errors']} failed"
                    )
            db = Path(tmp) / "main_file.duckdb"
            _prepare(db)
            analyst = AnalystProcess(db, interval_s)
            try:
                wall = _materialize({**env, "PGY_BENCH_DB": str(db)}, partition_range)
            except RuntimeError as exc:  # the run itself may fail on the analyst's lock: say so
                wall, main_file["run_error"] = None, str(exc)[-300:]
            finally:
                main_file.update(analyst.stop())
            main_file["wall_s"] = wall
            log(
                f"  replica/contrast, analyst polling the main file: {main_file['errors']} of {main_file['queries']} failed"
            )
        history = Path(tmp) / "history"
        history.mkdir()
        from benchmarks import replica_history

        growth = replica_history.run(
            sizes_gb=history_gb, creators=history_creators, repeats=3, workdir=history, log=log
        )
        growth["filesystem"] = _filesystem(history)
    plain_s, polled_s = spread(plain), spread(polled)
    return {
        "setup": {
            "creators": n_creators,
            "repeats": repeats,
            "interval_ms": interval_s * 1000,
            "query": "SELECT count(*), max(snapshot_date) FROM analytics.creator_leaderboard",
            "launch": "dagster asset materialize of the three assets, one range run, "
            + ("multiprocess executor" if executor == "multiprocess" else f"{executor} executor"),
        },
        "run_without_analyst_s": plain_s,
        "run_with_analyst_s": polled_s,
        "wall_growth": polled_s["median"] / plain_s["median"] - 1,
        "analyst": {
            "queries": sum(a["queries"] for a in analysts),
            "errors": sum(a["errors"] for a in analysts),
            "versions_seen": [a["versions"] for a in analysts],
            "slowest_query_s": max(a["slowest_query_s"] for a in analysts),
            "error_samples": [s for a in analysts for s in a["error_samples"]][:3],
        },
        "main_file": main_file,
        "history": growth,
    }
