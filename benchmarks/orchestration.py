"""Benchmark 2: orchestration overhead, one range run versus one run per creator.

Both through ``dagster asset materialize`` (one process per run, Dagster's default multiprocess
executor: one process per step), on one persistent instance (a temporary ``DAGSTER_HOME`` with the
project's ``dagster.yaml``), against a simulator with no latency and no rate limit and a client with
a very high ``max_rps``, so that what is measured is orchestration, not waiting on the API.

* range run: all N creators for one date, repeated on fresh DuckDB files;
* run per creator: what a naive per-partition schedule launches. Each run costs about the same, so
  K of them (``sample``) are timed and the median is multiplied by N; the report says so.

Also reported: the share of the range run's wall time that is not fetching (the fetch window is the
first to the last request the simulator received during that run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PROJECT_ROOT, creator_ids, spread
from benchmarks.fetch import note_counts
from benchmarks.simproc import SimProcess

TOKEN = "bench-orch-token-5e1d"
SELECTION = "raw/note_pages,analytics/notes,analytics/creator_engagement_metrics"


def _materialize(env: dict[str, str], partition_args: list[str]) -> float:
    cmd = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "benchmarks.orch_defs",
        "--select",
        SELECTION,
        *partition_args,
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"dagster asset materialize {partition_args} failed:\n{proc.stderr[-4000:]}")
    return wall


def run(
    *,
    n_creators: int = 100,
    sample: int = 5,
    repeats: int = 3,
    max_notes: int = 40,
    executor: str = "multiprocess",
    log=print,
) -> dict[str, Any]:
    from dagster import DagsterInstance

    from pgy_pipeline.orchestration.partitions import today_shanghai

    creators = creator_ids(n_creators, prefix="orch")
    counts = note_counts(creators, max_notes)
    day = today_shanghai().isoformat()
    sample = max(1, min(sample, n_creators))
    with tempfile.TemporaryDirectory(prefix="pgy-bench-orch-") as tmp:
        home = Path(tmp) / "dagster_home"
        home.mkdir()
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
        with DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("creators", creators)
        with SimProcess(token=TOKEN, note_counts=counts) as sim:
            base_env = {
                **os.environ,
                "DAGSTER_HOME": str(home),
                "PGY_BENCH_SIM_URL": sim.base_url,
                "PGY_BENCH_TOKEN": TOKEN,
                "PYTHONWARNINGS": "ignore",
                "PGY_BENCH_EXECUTOR": executor,
            }
            range_walls, fetch_windows = [], []
            for i in range(repeats):
                seen = len(sim.calls())
                env = {**base_env, "PGY_BENCH_DB": str(Path(tmp) / f"range{i}.duckdb")}
                wall = _materialize(env, ["--partition-range", f"{creators[0]}|{day}...{creators[-1]}|{day}"])
                calls = sim.calls()[seen:]
                fetch_s = calls[-1]["at"] - calls[0]["at"] if calls else 0.0
                range_walls.append(wall)
                fetch_windows.append(fetch_s)
                log(
                    f"  orchestration/range run #{i + 1}: {n_creators} creators in {wall:.1f} s "
                    f"({len(calls)} calls over {fetch_s:.2f} s)"
                )
            per_walls = []
            env = {**base_env, "PGY_BENCH_DB": str(Path(tmp) / "per_creator.duckdb")}
            for creator in creators[:sample]:
                wall = _materialize(env, ["--partition", f"{creator}|{day}"])
                per_walls.append(wall)
                log(f"  orchestration/one run for creator {creator[:8]}: {wall:.1f} s")
    range_s = spread(range_walls)
    per_s = spread(per_walls)
    per_creator_total = per_s["median"] * n_creators
    return {
        "setup": {
            "creators": n_creators,
            "per_creator_runs_timed": sample,
            "repeats": repeats,
            "launch": "dagster asset materialize, one process per run, "
            + (
                "Dagster's default multiprocess executor (one process per step)"
                if executor == "multiprocess"
                else f"{executor} executor"
            ),
            "simulator": "no latency, no rate limit; client max_rps 10000, max_concurrency 4",
        },
        "range_run_s": range_s,
        "per_creator_run_s": per_s,
        "per_creator_total_s": per_creator_total,
        "per_creator_total_measured_s": sum(per_walls),
        "ratio_per_creator_over_range": per_creator_total / range_s["median"],
        "range_fetch_s": spread(fetch_windows),
        "range_non_fetch_share": spread(1 - f / w for f, w in zip(fetch_windows, range_walls, strict=True)),
        "extrapolated": sample < n_creators,
    }
