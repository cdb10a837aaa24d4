"""Helpers shared by the benchmarks: statistics, the machine, ids, quiet Dagster runs, memory."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Every benchmark talks to loopback only: keep dlt's telemetry off (Dagster's is off in the instance config).
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

warnings.filterwarnings("ignore", message=".*is currently in beta.*")
warnings.filterwarnings("ignore", category=DeprecationWarning)

# Dagster's own console logger, at a level that keeps a benchmark's output readable.
QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
# A temporary Dagster instance that sends nothing anywhere.
INSTANCE_OVERRIDES: dict[str, Any] = {"telemetry": {"enabled": False}}


def creator_ids(n: int, prefix: str = "bench") -> list[str]:
    """``n`` deterministic, valid 24-hex creator ids."""
    return [hashlib.sha1(f"{prefix}{i}".encode()).hexdigest()[:24] for i in range(n)]


def load_pages(conn: Any, select_sql: str) -> list[tuple[str, date]]:
    """Store the pages ``select_sql`` yields (the columns of ``raw.note_pages``, bodies whole) as the
    pipeline stores fetched pages: the temp table ``_load_pages``, then ``store_loaded_pages``, in one
    transaction. The partitions must be new (nothing is deleted first); returns their keys."""
    from pgy_pipeline.warehouse.storage import store_loaded_pages, transaction

    with transaction(conn):
        conn.execute(f"CREATE OR REPLACE TEMP TABLE _load_pages AS {select_sql}")
        keys = conn.execute(
            "SELECT DISTINCT creator_id, snapshot_date FROM _load_pages ORDER BY ALL"
        ).fetchall()
        store_loaded_pages(conn)
    return [(c, d) for c, d in keys]


def range_tags(creators: list[str], day: str) -> dict[str, str]:
    """Run tags for one run over ``creators`` (contiguous in registration order) on ``day``."""
    from pgy_pipeline.orchestration.automation import range_tags as snapshot_range_tags

    return snapshot_range_tags(creators[0], creators[-1], date.fromisoformat(day))


def spread(values: Iterable[float]) -> dict[str, Any]:
    """Median and spread (min, max) of repeated measurements."""
    vals = [float(v) for v in values]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
        "values": vals,
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB.

    ``VmHWM`` from ``/proc/self/status``: unlike ``ru_maxrss``, which on Linux carries over the parent's
    peak across fork and exec, it belongs to this program alone.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_worker(module: str, args: list[str], timeout_s: float = 600.0) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process (its own peak RSS) and parse its last JSON line."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {module} {args} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(
            f"worker {module} {args} printed no JSON:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return json.loads(lines[-1])


@contextmanager
def quiet_loggers(*names: str, level: int = logging.WARNING):
    """Raise the level of chatty loggers (httpx logs every request at INFO) for the duration."""
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(level)
    try:
        yield
    finally:
        for n, lvl in saved.items():
            logging.getLogger(n).setLevel(lvl)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu or platform.processor() or "unknown",
        "memory_gib": round(mem_gib, 1) if mem_gib else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("dagster", "dagster-duckdb", "duckdb", "httpx", "pyarrow", "dlt")
        },
    }
