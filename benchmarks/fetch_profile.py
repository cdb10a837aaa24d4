"""Benchmark 1's profile: where each second of a whole run goes, as users launch it.

One repeat = one fresh Dagster instance (a temporary ``DAGSTER_HOME`` with the project's
``dagster.yaml``) and two ``dagster asset materialize`` processes on it, each a range run of the three
snapshot assets over every creator against a fresh simulator (a fresh rate window) and a fresh DuckDB
file, so both do the same work:

* **first run** (``default``): nothing learned, so the pace starts at the real-data default
  (``JUSTONEAPI_START_RPS``, 2 requests/s) and climbs;
* **second run** (``learned``): the pace the first run left in the instance's storage.

The process is the real code location, ``-m pgy_pipeline.definitions``, configured through the
environment as an operator does (``JUSTONEAPI_TOKEN``, ``JUSTONEAPI_BASE_URL`` at the simulator,
``JUSTONEAPI_MAX_RPS`` at its limit, ``PGY_DUCKDB_PATH``), started through
:mod:`benchmarks.profiled_cli` (Dagster's own console-script entry point, plus timestamps). The creators
are registered before the timing, as the registry sensor does before any scheduled run.

The timeline is cut at marks taken from the process (:mod:`benchmarks.profiled_cli`), Dagster's event
log (planned events, run and step events, the steps' log lines, one materialization per partition) and
the simulator (each request's arrival). Consecutive marks give the components, which add up to the
wall time; the fetch phase is further split into the bound itself, the pacer's margin below the ceiling
(5%), the last response's latency and the climb from the first pace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PROJECT_ROOT, creator_ids, spread
from benchmarks.fetch import min_calls, note_counts
from benchmarks.simproc import SimProcess

TOKEN = "bench-profile-token-7a21"
STEPS = (
    ("raw", "raw__note_pages", ("raw", "note_pages")),
    ("notes", "analytics__notes", ("analytics", "notes")),
    ("metrics", "analytics__creator_engagement_metrics", ("analytics", "creator_engagement_metrics")),
)
SELECTION = ",".join("/".join(key) for _, _, key in STEPS)
_REPLICA = re.compile(r"read replica .* updated: [\d.]+ MB in ([\d.]+) s")
PACER_MARGIN = 1.05  # AdaptivePacer releases 5% under its pace


def _events(home: Path, run_id: str | None = None) -> tuple[str, list[Any], dict[str, Any]]:
    """The last run's event log, and the raw step's pacing summary."""
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        if not run.is_success:
            raise RuntimeError(f"run {run.run_id} did not succeed: {run.status}")
        records = list(instance.all_logs(run.run_id))
    pacing: dict[str, Any] = {}
    for r in records:
        ev = r.dagster_event
        if (
            ev is not None
            and ev.event_type == DagsterEventType.ASSET_OBSERVATION
            and r.step_key == STEPS[0][1]
        ):
            meta = ev.asset_observation_data.asset_observation.metadata
            if "api_pacing" in meta:
                pacing = dict(meta["api_pacing"].value)  # type: ignore[arg-type]
    return run.run_id, records, pacing


def _timeline(
    t_launch: float,
    t_exit: float,
    marks: dict[str, float],
    records: list[Any],
    first_request: float,
    last_response: float,
) -> list[tuple[str, float, float]]:
    """(component, start, end) in wall-clock seconds, consecutive from launch to exit."""
    from dagster import DagsterEventType as E

    def first(pred) -> float:
        return min(r.timestamp for r in records if pred(r))

    def last(pred) -> float:
        return max(r.timestamp for r in records if pred(r))

    def of(kind, step=None):
        return lambda r: (
            r.dagster_event is not None
            and r.dagster_event.event_type == kind
            and (step is None or r.step_key == step)
        )

    planned = [r for r in records if of(E.ASSET_MATERIALIZATION_PLANNED)(r)]
    marks_list: list[tuple[str, float]] = [
        ("launch to Python running (interpreter start, site)", marks["interpreter"]),
        ("Dagster's imports (its command line)", marks["dagster_imported"]),
        ("definitions load (the project's imports, settings, build_defs)", marks["definitions_loaded"]),
        (
            "command line to run creation (job and partition range resolved)",
            min(r.timestamp for r in planned) if planned else first(of(E.RUN_START)),
        ),
        (
            f"planned events ({len(planned)})",
            max(r.timestamp for r in planned) if planned else first(of(E.RUN_START)),
        ),
        ("run start, executor and resources to the first step", first(of(E.STEP_START, STEPS[0][1]))),
        ("raw step: locks, DuckDB open, plan, to the first request", first_request),
        ("fetch phase (first request to last response, as the simulator saw it)", last_response),
    ]
    previous_end = None
    for name, step, _ in STEPS:
        if previous_end is not None:
            marks_list.append((f"between steps, to {name} start", first(of(E.STEP_START, step))))
        replica = [
            (r.timestamp, float(m.group(1)))
            for r in records
            if r.dagster_event is None and r.step_key == step and (m := _REPLICA.search(r.user_message or ""))
        ]
        mats = [r.timestamp for r in records if of(E.ASSET_MATERIALIZATION, step)(r)]
        work = "ledger, DuckDB write" if name == "raw" else "DuckDB rebuild"
        if replica:
            done, copy_s = replica[-1]
            marks_list.append((f"{name}: {work}, checkpoint (under the writer lock)", done - copy_s))
            marks_list.append((f"{name}: read replica copy", done))
        marks_list.append((f"{name}: report, metadata, checks until the first materialization", min(mats)))
        marks_list.append((f"{name}: per-partition materialization events ({len(mats)})", max(mats)))
        previous_end = last(of(E.STEP_SUCCESS, step))
        marks_list.append((f"{name}: to step success", previous_end))
    marks_list.append(("last step to run success", first(of(E.RUN_SUCCESS))))
    marks_list.append(("run success to the command's return", marks["cli_returned"]))
    marks_list.append(("interpreter exit", t_exit))
    out, start = [], t_launch
    for name, end in marks_list:
        out.append((name, start, end))
        start = end
    return out


def run_one(
    home: Path,
    sim: SimProcess,
    creators: list[str],
    counts: dict[str, int],
    db_path: Path,
    *,
    rate_rps: float,
    start_rps: float,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One ``dagster asset materialize`` process on ``home`` against ``sim``; its profile."""
    from pgy_pipeline.orchestration.partitions import today_shanghai

    day = today_shanghai().isoformat()
    latency_s, page_size = sim.latency_s, sim.page_size
    marks_path = db_path.with_suffix(".marks.json")
    seen = len(sim.calls())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JUSTONEAPI_", "PGY_"))},
        "DAGSTER_HOME": str(home),
        "JUSTONEAPI_TOKEN": TOKEN,
        "JUSTONEAPI_BASE_URL": sim.base_url,
        "JUSTONEAPI_MAX_RPS": str(rate_rps),
        "JUSTONEAPI_START_RPS": str(start_rps),
        "PGY_DUCKDB_PATH": str(db_path),
        "PGY_PROFILE_MARKS": str(marks_path),
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": str(PROJECT_ROOT),  # as scripts/dev.sh: this checkout's package
        **(extra_env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.profiled_cli",
        "asset",
        "materialize",
        "-m",
        "pgy_pipeline.definitions",
        "--select",
        SELECTION,
        "--partition-range",
        f"{creators[0]}|{day}...{creators[-1]}|{day}",
    ]
    t_launch, t0 = time.time(), time.monotonic()
    proc = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True, timeout=1800)
    t_exit = time.time()
    calls = sim.calls()[seen:]
    if proc.returncode != 0:
        raise RuntimeError(f"dagster asset materialize failed:\n{proc.stderr[-4000:]}")
    marks = json.loads(marks_path.read_text())
    _, records, pacing = _events(home)
    to_epoch = t_launch - t0
    first_request = calls[0]["at"] + to_epoch
    last_response = calls[-1]["at"] + latency_s + to_epoch
    timeline = _timeline(t_launch, t_exit, marks, records, first_request, last_response)
    wall = t_exit - t_launch
    n = len(calls)
    bound = min_calls(counts, page_size) / rate_rps
    fetch = last_response - first_request
    at_ceiling = (n - 1) * PACER_MARGIN / rate_rps
    return {
        "wall_s": wall,
        "bound_s": bound,
        "wall_over_bound": wall / bound,
        "calls": n,
        "calls_302": sum(1 for c in calls if c["outcome"] == 302),
        "pacing": pacing,
        "components": [(name, end - start) for name, start, end in timeline],
        "fetch": {
            "fetch_s": fetch,
            "bound (calls / limit)": n / rate_rps,
            "pacer margin at the ceiling (releases 5% under the pace)": at_ceiling
            - (n - 1) / rate_rps
            - 1 / rate_rps,
            "last response's latency": latency_s,
            "climb from the first pace (and other pacing slack)": fetch - at_ceiling - latency_s,
        },
    }


def run(
    *,
    n_creators: int = 80,
    latency_s: float = 0.2,
    rate_rps: float = 10.0,
    page_size: int = 8,
    max_notes: int = 55,
    start_rps: float = 2.0,
    repeats: int = 3,
    extra_env: dict[str, str] | None = None,
    log=print,
) -> dict[str, Any]:
    from dagster import DagsterInstance

    creators = creator_ids(n_creators, prefix="profile")
    counts = note_counts(creators, max_notes)
    bound = min_calls(counts, page_size) / rate_rps
    results: dict[str, list[dict[str, Any]]] = {"default": [], "learned": []}
    for i in range(repeats):
        with tempfile.TemporaryDirectory(prefix="pgy-bench-profile-") as tmp:
            home = Path(tmp) / "dagster_home"
            home.mkdir()
            shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
            with DagsterInstance.from_config(str(home)) as instance:
                instance.add_dynamic_partitions("creators", creators)
            # One simulator (one base URL, as the real service has) for both runs; the second starts
            # long after the first's last call, in a fresh rate window.
            with SimProcess(
                token=TOKEN,
                note_counts=counts,
                latency_s=latency_s,
                rate_limit_rps=rate_rps,
                page_size=page_size,
            ) as sim:
                for kind in ("default", "learned"):
                    res = run_one(
                        home,
                        sim,
                        creators,
                        counts,
                        Path(tmp) / f"{kind}.duckdb",
                        rate_rps=rate_rps,
                        start_rps=start_rps,
                        extra_env=extra_env,
                    )
                    results[kind].append(res)
                    log(
                        f"  profile/{kind} #{i + 1}: wall {res['wall_s']:.1f} s = {res['wall_over_bound']:.3f}x "
                        f"the bound, {res['calls']} calls ({res['calls_302']} x 302), pace "
                        f"{res['pacing'].get('start_rps')} -> {res['pacing'].get('final_rps')} req/s"
                    )
    return {
        "setup": {
            "creators": n_creators,
            "latency_ms": latency_s * 1000,
            "rate_limit_rps": rate_rps,
            "page_size": page_size,
            "max_notes": max_notes,
            "min_calls": min_calls(counts, page_size),
            "start_rps": start_rps,
            "repeats": repeats,
        },
        "lower_bound_s": bound,
        "runs": {kind: summarize(rs) for kind, rs in results.items()},
    }


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in results[0]["components"]]
    return {
        "wall_s": spread(r["wall_s"] for r in results),
        "wall_over_bound": spread(r["wall_over_bound"] for r in results),
        "calls_302": spread(r["calls_302"] for r in results),
        "start_rps": [r["pacing"].get("start_rps") for r in results],
        "components_s": {n: spread(dict(r["components"])[n] for r in results) for n in names},
        "fetch_s": {k: spread(r["fetch"][k] for r in results) for k in results[0]["fetch"]},
    }


def render(report: dict[str, Any]) -> str:
    """The profile as a Markdown table: each component's median (min-max) seconds, both runs."""
    from benchmarks.report import _spread

    runs = report["runs"]
    kinds = [k for k in ("default", "learned") if k in runs]
    head = {"default": "first run (default first pace)", "learned": "second run (learned pace)"}
    lines = [
        "| component | " + " | ".join(head[k] for k in kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    names = list(runs[kinds[0]]["components_s"])
    for name in names:
        lines.append(
            f"| {name} | " + " | ".join(_spread(runs[k]["components_s"].get(name)) for k in kinds) + " |"
        )
    lines.append("| **whole run (s)** | " + " | ".join(_spread(runs[k]["wall_s"]) for k in kinds) + " |")
    lines.append(
        "| **whole run / bound** | "
        + " | ".join(_spread(runs[k]["wall_over_bound"], 3) for k in kinds)
        + " |"
    )
    lines.append("")
    lines.append("| the fetch phase | " + " | ".join(head[k] for k in kinds) + " |")
    lines.append("|---|" + "---|" * len(kinds))
    for name in runs[kinds[0]]["fetch_s"]:
        lines.append(f"| {name} | " + " | ".join(_spread(runs[k]["fetch_s"][name]) for k in kinds) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    out = run(repeats=int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print(render(out))
    print(json.dumps(out, default=str))
