"""Benchmark 1: fetch at the service's limit.

N creators for one snapshot date against the simulator (in its own process) with a per-request latency
and a rate limit that answers code 302 above it. Three ways to do the same work:

* **pipeline**: the three assets as one Dagster range run launched as users launch it, a
  ``dagster asset materialize`` process on a persistent instance with the project's ``dagster.yaml``
  and executor, ``PgyApiResource`` with its ceiling at the limit (``max_rps`` = the rate limit);
* **sample loop**: the documentation's Python sample (``requests.get(url)``, ``print(response.json())``)
  given the obvious page loop, "next page until the list is empty", sequential, no pacing, no retry,
  no check of ``code``, then one bulk write of the notes into DuckDB;
* **dlt**: ``dlt.sources.rest_api`` with a ``page_number`` paginator into DuckDB, as documented: a
  creators resource and a dependent notes resource, token as an API-key query parameter. dlt has no
  client-side rate limit, so it keeps to the limit only by being sequential (its default); the
  ``parallelized`` variant is what one turns on to make it faster.

Each run gets a fresh simulator (a fresh rate window) and fresh storage. Figures: wall time over the
lower bound (minimum calls / rate limit), calls over the minimum, 302s received, notes lost (note ids
served by the simulator and missing from the result).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.common import (
    PROJECT_ROOT,
    creator_ids,
    quiet_loggers,
    spread,
)
from benchmarks.simproc import SimProcess

TOKEN = "bench-token-0f3c9a"
NOTES_PATH = "/api/xiaohongshu-pgy/api/solar/kol/dataV2/notesDetail/v1"


def note_counts(creators: list[str], max_notes: int) -> dict[str, int]:
    """A deterministic spread of note counts, 0..max_notes: creator i has (17 i) mod (max_notes + 1)."""
    return {c: (17 * i) % (max_notes + 1) for i, c in enumerate(creators)}


def min_calls(counts: dict[str, int], page_size: int) -> int:
    """Fewest calls that read every note: one page per ``page_size`` notes, and one call for none."""
    return sum(max(1, math.ceil(n / page_size)) for n in counts.values())


def _call_figures(
    calls: list[dict[str, Any]],
    counts: dict[str, int],
    page_size: int,
    latency_s: float,
    rate_rps: float | None,
) -> dict[str, Any]:
    """What the simulator saw: calls, 302s, calls past a creator's last page, and the fetch phase."""
    if not calls:
        return {
            "calls": 0,
            "calls_302": 0,
            "calls_other_errors": 0,
            "calls_past_last_page": 0,
            "fetch_s": 0.0,
            "first_at": None,
        }
    last_page = {c: max(1, math.ceil(n / page_size)) for c, n in counts.items()}
    past = sum(
        1
        for c in calls
        if c["outcome"] == 0 and c["page"] is not None and c["page"] > last_page.get(c["user_id"], 1)
    )
    ats = [c["at"] for c in calls]
    out = {
        "calls": len(calls),
        "calls_302": sum(1 for c in calls if c["outcome"] == 302),
        "calls_other_errors": sum(1 for c in calls if c["outcome"] not in (0, 302)),
        "calls_past_last_page": past,
        # the first request's arrival to the last response's departure
        "fetch_s": ats[-1] - ats[0] + latency_s,
        "first_at": ats[0],
        "last_at": ats[-1],
    }
    if rate_rps and len(ats) > rate_rps:
        # The service answers 302 when a request arrives with `rate` accepted ones in the second before it:
        # the tightest span of rate + 1 consecutive arrivals shows how close the client came (< 1 s: over).
        r = int(math.ceil(rate_rps))
        out["tightest_window_s"] = min(b - a for a, b in zip(ats, ats[r:], strict=False))
        gaps = sorted(b - a for a, b in zip(ats, ats[1:], strict=False))
        out["arrival_gap_min_s"] = gaps[0]
        out["arrival_gap_median_s"] = gaps[len(gaps) // 2]
    return out


def _lost(expected: dict[str, list[str]], got: set[tuple[str, str]]) -> dict[str, Any]:
    missing = [(c, n) for c, ids in expected.items() for n in ids if (c, n) not in got]
    creators_short = sorted({c for c, _ in missing})
    return {
        "notes_expected": sum(len(v) for v in expected.values()),
        "notes_lost": len(missing),
        "creators_short": len(creators_short),
    }


# ---------------------------------------------------------------------------------------------------
# The pipeline: one Dagster range run
# ---------------------------------------------------------------------------------------------------


def _step_times(instance, run_id: str, t0_epoch: float) -> dict[str, dict[str, float]]:
    from dagster import DagsterEventType

    steps: dict[str, dict[str, float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or not event.step_key:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            steps.setdefault(event.step_key, {})["start_s"] = record.timestamp - t0_epoch
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            steps.setdefault(event.step_key, {})["end_s"] = record.timestamp - t0_epoch
    for s in steps.values():
        if "start_s" in s and "end_s" in s:
            s["seconds"] = s["end_s"] - s["start_s"]
    return steps


def run_pipeline(
    creators: list[str],
    counts: dict[str, int],
    *,
    latency_s: float,
    rate_rps: float,
    page_size: int,
    max_concurrency: int,
    workdir: Path,
) -> dict[str, Any]:
    """One range run as users launch it: a ``dagster asset materialize`` process on a persistent
    instance (the project's ``dagster.yaml``), the project's own executor, the client at the limit."""
    import os
    import shutil

    from dagster import DagsterInstance

    from pgy_pipeline.orchestration.partitions import today_shanghai

    day = today_shanghai()
    db_path = workdir / "pipeline.duckdb"
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("creators", creators)
    with SimProcess(
        token=TOKEN, note_counts=counts, latency_s=latency_s, rate_limit_rps=rate_rps, page_size=page_size
    ) as sim:
        expected = sim.expected(creators)
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PGY_BENCH_SIM_URL": sim.base_url,
            "PGY_BENCH_TOKEN": TOKEN,
            "PGY_BENCH_DB": str(db_path),
            "PGY_BENCH_MAX_RPS": str(rate_rps),
            "PYTHONWARNINGS": "ignore",
        }
        cmd = [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "benchmarks.orch_defs",
            "--select",
            "raw/note_pages,analytics/notes,analytics/creator_engagement_metrics",
            "--partition-range",
            f"{creators[0]}|{day}...{creators[-1]}|{day}",
        ]
        t0_epoch, t0 = time.time(), time.monotonic()
        proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1800)
        wall = time.monotonic() - t0
        calls = sim.calls()
    if proc.returncode != 0:
        raise RuntimeError(f"dagster asset materialize failed:\n{proc.stderr[-4000:]}")
    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        steps = _step_times(instance, run.run_id, t0_epoch)
        success = run.is_success
    figures = _call_figures(calls, counts, page_size, latency_s, rate_rps)
    with duckdb.connect(str(db_path), read_only=True) as conn:
        got = set(
            conn.execute(
                "SELECT creator_id, note_id FROM analytics.notes WHERE snapshot_date = ?", [day]
            ).fetchall()
        )
        metric_rows = conn.execute(
            "SELECT count(*) FROM analytics.creator_engagement_metrics WHERE snapshot_date = ?", [day]
        ).fetchall()[0][0]
        ledger_calls = conn.execute("SELECT count(*) FROM meta.api_calls").fetchall()[0][0]
    out = {
        "success": success,
        "wall_s": wall,
        **figures,
        **_lost(expected, got),
        "metric_rows": metric_rows,
        "ledger_calls": ledger_calls,
        "steps": steps,
    }
    if figures["first_at"] is not None:
        out["before_fetch_s"] = figures["first_at"] - t0
        out["after_fetch_s"] = wall - out["before_fetch_s"] - figures["fetch_s"]
        fetch_step = steps.get("raw__note_pages", {})
        if "start_s" in fetch_step and "end_s" in fetch_step:
            ends = [s["end_s"] for s in steps.values() if "end_s" in s]
            fetch_end = out["before_fetch_s"] + figures["fetch_s"]
            out["timeline_s"] = {
                "process start to first step (imports, definitions, run and planned events)": fetch_step[
                    "start_s"
                ],
                "first step start to first request (pipeline setup)": out["before_fetch_s"]
                - fetch_step["start_s"],
                "fetch": figures["fetch_s"],
                "last response to end of the fetch step (raw write, events)": fetch_step["end_s"] - fetch_end,
                "later steps (notes, metrics)": max(ends) - fetch_step["end_s"],
                "last step end to process exit": wall - max(ends),
            }
    return out


# ---------------------------------------------------------------------------------------------------
# (a) The documentation's sample, with the obvious page loop
# ---------------------------------------------------------------------------------------------------


def run_sample_loop(creators: list[str], base_url: str, db_path: Path) -> dict[str, Any]:
    """The doc's ``requests.get(url)`` per page, next page until the list is empty, then one write."""
    import pyarrow as pa
    import requests

    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for creator in creators:
        page = 1
        while True:
            url = f"{base_url}{NOTES_PATH}?token={TOKEN}&userId={creator}&pageNumber={page}"
            response = requests.get(url, timeout=60)  # the sample shows no timeout; the doc asks for >= 60 s
            body = response.json()
            items = (body.get("data") or {}).get("list") or []
            if not items:
                break
            rows.extend({"creator_id": creator, **item} for item in items)
            page += 1
    table = (
        pa.Table.from_pylist(rows)
        if rows
        else pa.table({"creator_id": pa.array([], pa.string()), "noteId": pa.array([], pa.string())})
    )
    with duckdb.connect(str(db_path)) as conn:
        conn.register("fetched", table)
        conn.execute("CREATE OR REPLACE TABLE notes AS SELECT * FROM fetched")
        got = set(conn.execute('SELECT creator_id, "noteId" FROM notes').fetchall())
    return {"wall_s": time.monotonic() - t0, "got": got, "success": True}


# ---------------------------------------------------------------------------------------------------
# (b) dlt's rest_api source with a page-number paginator
# ---------------------------------------------------------------------------------------------------


def dlt_available() -> bool:
    try:
        import dlt  # noqa: F401
        from dlt.sources.rest_api import rest_api_source  # noqa: F401
    except ImportError:
        return False
    return True


def run_dlt(creators: list[str], base_url: str, workdir: Path, *, parallelized: bool) -> dict[str, Any]:
    import dlt
    from dlt.sources.rest_api import rest_api_source

    @dlt.resource(name="creators", selected=False)
    def creator_list():
        yield [{"id": c} for c in creators]

    notes_resource: dict[str, Any] = {
        "name": "notes",
        "endpoint": {
            "path": NOTES_PATH,
            "params": {"userId": "{resources.creators.id}"},
            "data_selector": "data.list",
            # data.total counts notes, not pages, so it cannot be PageNumberPaginator's total_path:
            # the paginator stops on the first empty page.
            "paginator": {
                "type": "page_number",
                "base_page": 1,
                "page_param": "pageNumber",
                "total_path": None,
                "stop_after_empty_page": True,
            },
        },
        "include_from_parent": ["id"],
        "write_disposition": "append",
    }
    if parallelized:
        notes_resource["parallelized"] = True
    source = rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "auth": {"type": "api_key", "name": "token", "api_key": TOKEN, "location": "query"},
            },
            "resources": [creator_list, notes_resource],
        }
    )
    name = "bench_dlt_parallel" if parallelized else "bench_dlt"
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=dlt.destinations.duckdb(str(workdir / f"{name}.duckdb")),
        dataset_name="pgy",
        pipelines_dir=str(workdir / "dlt_pipelines"),
        progress=None,
    )
    t0 = time.monotonic()
    error = None
    try:
        pipeline.run(source)
    except Exception as exc:  # a failed load is a result too: count what arrived
        error = f"{type(exc).__name__}: {str(exc)[:2000]}"
    wall = time.monotonic() - t0
    got: set[tuple[str, str]] = set()
    db = workdir / f"{name}.duckdb"
    if db.exists():
        with duckdb.connect(str(db), read_only=True) as conn:
            exists = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'pgy' AND table_name = 'notes'"
            ).fetchone()[0]
            if exists:
                got = set(conn.execute("SELECT _creators_id, note_id FROM pgy.notes").fetchall())
    return {"wall_s": wall, "got": got, "success": error is None, "error": error}


def run_alternative(
    kind: str,
    creators: list[str],
    counts: dict[str, int],
    *,
    latency_s: float,
    rate_rps: float,
    page_size: int,
    workdir: Path,
) -> dict[str, Any]:
    """One alternative against a fresh simulator; the figures, without the notes themselves."""
    with SimProcess(
        token=TOKEN, note_counts=counts, latency_s=latency_s, rate_limit_rps=rate_rps, page_size=page_size
    ) as sim:
        expected = sim.expected(creators)
        with quiet_loggers("httpx", "httpcore", "dlt", "urllib3", level=40):
            if kind == "sample_loop":
                res = run_sample_loop(creators, sim.base_url, workdir / "sample.duckdb")
            elif kind in ("dlt", "dlt_parallel"):
                res = run_dlt(creators, sim.base_url, workdir, parallelized=(kind == "dlt_parallel"))
            else:
                raise ValueError(f"unknown alternative {kind!r}")
        calls = sim.calls()
    got = res.pop("got")
    return {**res, **_call_figures(calls, counts, page_size, latency_s, rate_rps), **_lost(expected, got)}


def _alternative_worker(argv: list[str]) -> None:
    """``python -m benchmarks.fetch KIND N LATENCY RATE PAGE_SIZE MAX_NOTES``: one alternative, JSON out."""
    kind, n, latency_s, rate_rps, page_size, max_notes = argv
    creators = creator_ids(int(n), prefix="fetch")
    counts = note_counts(creators, int(max_notes))
    with tempfile.TemporaryDirectory(prefix=f"pgy-bench-{kind}-") as tmp:
        res = run_alternative(
            kind,
            creators,
            counts,
            latency_s=float(latency_s),
            rate_rps=float(rate_rps),
            page_size=int(page_size),
            workdir=Path(tmp),
        )
    print(json.dumps(res))


# ---------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------


def run(
    *,
    n_creators: int = 100,
    latency_s: float = 0.2,
    rate_rps: float = 10.0,
    page_size: int = 8,
    max_notes: int = 40,
    max_concurrency: int = 4,
    repeats: int = 3,
    alternative_repeats: int = 1,
    alternatives: tuple[str, ...] = ("sample_loop", "dlt", "dlt_parallel"),
    concurrent_alternatives: bool = True,
    log=print,
) -> dict[str, Any]:
    creators = creator_ids(n_creators, prefix="fetch")
    counts = note_counts(creators, max_notes)
    minimum = min_calls(counts, page_size)
    bound_s = minimum / rate_rps
    report: dict[str, Any] = {
        "setup": {
            "creators": n_creators,
            "latency_ms": latency_s * 1000,
            "rate_limit_rps": rate_rps,
            "page_size": page_size,
            "note_counts": f"creator i has (17*i) mod {max_notes + 1} notes: 0..{max_notes}",
            "notes_total": sum(counts.values()),
            "max_concurrency": max_concurrency,
            "repeats": repeats,
            "alternative_repeats": alternative_repeats,
            "concurrent_alternatives": concurrent_alternatives,
        },
        "min_calls": minimum,
        "lower_bound_s": bound_s,
        "runs": {},
    }
    results: dict[str, list[dict[str, Any]]] = {}
    for i in range(repeats):
        with tempfile.TemporaryDirectory(prefix="pgy-bench-pipeline-") as tmp:
            res = run_pipeline(
                creators,
                counts,
                latency_s=latency_s,
                rate_rps=rate_rps,
                page_size=page_size,
                max_concurrency=max_concurrency,
                workdir=Path(tmp),
            )
        _log_one(log, "pipeline", i, res)
        results.setdefault("pipeline", []).append(res)

    kinds = [k for k in alternatives if not (k.startswith("dlt") and not dlt_available())]
    if alternative_repeats < 1:
        kinds = []
    for k in alternatives:
        if k not in kinds:
            report["runs"][k] = {"skipped": "dlt is not installed (pip install -e '.[bench]')"}
    args = [str(n_creators), str(latency_s), str(rate_rps), str(page_size), str(max_notes)]
    for i in range(alternative_repeats):
        # Each alternative in its own process against its own simulator (its own rate window). They are
        # sequential HTTP clients waiting on the latency almost all the time, so by default they run at
        # the same time to keep the whole benchmark inside its time budget.
        batches = [kinds] if concurrent_alternatives else [[k] for k in kinds]
        for batch in batches:
            procs = {
                k: subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.fetch", k, *args],
                    cwd=PROJECT_ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for k in batch
            }
            for k, proc in procs.items():
                out, err = proc.communicate(timeout=1800)
                if proc.returncode != 0:
                    raise RuntimeError(f"fetch alternative {k} failed:\n{err[-3000:]}")
                res = json.loads(out.strip().splitlines()[-1])
                _log_one(log, k, i, res)
                results.setdefault(k, []).append(res)

    for kind, rs in results.items():
        report["runs"][kind] = summarize_runs(rs, bound_s, minimum)
    pipe = report["runs"]["pipeline"]
    for kind in kinds:
        alt = report["runs"][kind]
        alt["wall_over_pipeline"] = alt["wall_s"]["median"] / pipe["wall_s"]["median"]
    return report


def _log_one(log, kind: str, i: int, res: dict[str, Any]) -> None:
    log(
        f"  fetch/{kind} #{i + 1}: wall {res['wall_s']:.1f} s, fetch {res['fetch_s']:.1f} s, "
        f"{res['calls']} calls ({res['calls_302']} x 302), {res['notes_lost']} notes lost"
    )


def summarize_runs(results: list[dict[str, Any]], bound_s: float, minimum: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "wall_s": spread(r["wall_s"] for r in results),
        "fetch_s": spread(r["fetch_s"] for r in results),
        "wall_over_bound": spread(r["wall_s"] / bound_s for r in results),
        "fetch_over_bound": spread(r["fetch_s"] / bound_s for r in results),
        "calls": spread(r["calls"] for r in results),
        "calls_over_min": spread(r["calls"] / minimum for r in results),
        "calls_302": spread(r["calls_302"] for r in results),
        "calls_past_last_page": spread(r["calls_past_last_page"] for r in results),
        "calls_other_errors": spread(r.get("calls_other_errors", 0) for r in results),
        "notes_expected": results[0]["notes_expected"],
        "notes_lost": spread(r["notes_lost"] for r in results),
        "creators_short": spread(r["creators_short"] for r in results),
        "tightest_window_s": spread(r["tightest_window_s"] for r in results if "tightest_window_s" in r),
        "arrival_gap_min_s": spread(r["arrival_gap_min_s"] for r in results if "arrival_gap_min_s" in r),
        "success": all(r.get("success", True) for r in results),
        "errors": sorted({r["error"] for r in results if r.get("error")}),
    }
    if "before_fetch_s" in results[0]:
        out["before_fetch_s"] = spread(r["before_fetch_s"] for r in results)
        out["after_fetch_s"] = spread(r["after_fetch_s"] for r in results)
        out["non_fetch_share"] = spread(1 - r["fetch_s"] / r["wall_s"] for r in results)
        step_names = sorted({k for r in results for k in r["steps"]})
        out["steps_s"] = {
            k: spread(r["steps"][k]["seconds"] for r in results if "seconds" in r["steps"].get(k, {}))
            for k in step_names
        }
        out["metric_rows"] = results[0]["metric_rows"]
        out["ledger_calls"] = spread(r["ledger_calls"] for r in results)
        phases = [k for k in results[0].get("timeline_s", {})]
        out["timeline_s"] = {
            k: spread(r["timeline_s"][k] for r in results if "timeline_s" in r) for k in phases
        }
    return out


if __name__ == "__main__":
    _alternative_worker(sys.argv[1:])
