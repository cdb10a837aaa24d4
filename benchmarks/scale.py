"""Scale benchmark: the Dagster side at 1,000+ creators, and what its bookkeeping costs.

For each roster size N (SQLite storage in a temporary instance; the simulator in its own process
with no latency and no rate limit, so the API is not what is measured), in a fresh process:

* the schedule tick: ``daily_snapshot_schedule`` evaluated against N registered, active creators;
* one daily range run of the three assets over all N creators (``materialize``, in-process
  executor), and the same work done by the warehouse and API layers directly, without Dagster
  (fetch, raw write, notes and metrics rebuild) on a fresh DuckDB file. The difference divided by N
  is **Dagster's overhead per creator per daily run**;
* the run's event log: events written, planned events, and how long the planned events took (the
  time from the first to the last ``ASSET_MATERIALIZATION_PLANNED``; Dagster writes them before
  the step starts: a backfill launch or a schedule-launched run pays the same);
* with ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true`` the same run once more;
* for each partitioning (``--partitioning creator,cohort``): creator x date, or cohort x date
  (``PGY_PARTITIONING=cohort``, the run then goes through ``snapshot_job`` as the schedule asks).

    python -m benchmarks.scale --creators 1000,5000,10000 --partitioning cohort --subset-only
    python -m benchmarks.scale --creators 100 --no-write

The webserver, the daemon's tick, a backfill launch and PostgreSQL storage are measured by
``benchmarks.dagster_ui``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import PROJECT_ROOT, creator_ids
from benchmarks.fetch import note_counts
from benchmarks.simproc import SimProcess
from pgy_pipeline import clock

TOKEN = "bench-scale-token-91c2"
SECTION_START = "<!-- scale-section -->"
SECTION_END = "<!-- /scale-section -->"
SUBSET_FLAG = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


PG_URL_ENV = "PGY_BENCH_DAGSTER_PG_URL"  # set by --postgres: a fresh database per measurement


@contextlib.contextmanager
def _instance(home: Path) -> Iterator[Any]:
    """A temporary instance: SQLite in ``home``, or PostgreSQL storage at ``$PGY_BENCH_DAGSTER_PG_URL``."""
    from dagster import DagsterInstance

    url = os.environ.get(PG_URL_ENV)
    if not url:
        with DagsterInstance.local_temp(str(home)) as instance:
            yield instance
        return
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": {"postgres": {"postgres_url": url}}}), encoding="utf-8"
    )
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


@contextlib.contextmanager
def _fresh_database(server_url: str) -> Iterator[str]:
    """A new database on the PostgreSQL server at ``server_url`` (dropped afterwards), as a Dagster URL."""
    import psycopg2

    name = f"pgy_bench_scale_{os.getpid()}_{int(time.time())}"
    conn = psycopg2.connect(server_url)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        base = server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
        yield f"{base}/{name}"
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def _child(n: int, base_url: str, max_notes: int, partitioning: str = "creator") -> dict[str, Any]:
    """Runs in a fresh process: the measurements for one roster size."""

    import yaml
    from dagster import DagsterEventType, build_schedule_context, materialize

    from pgy_pipeline.api.client import PgyClient
    from pgy_pipeline.api.ingest import fetch_creators
    from pgy_pipeline.definitions import Settings, build_defs
    from pgy_pipeline.orchestration.assets import creator_engagement_metrics, note_pages, notes
    from pgy_pipeline.orchestration.partitions import SHANGHAI, today_shanghai
    from pgy_pipeline.orchestration.registry import CreatorRegistryResource
    from pgy_pipeline.orchestration.resources import PgyApiResource, PgyDuckDBResource
    from pgy_pipeline.warehouse import storage

    creators = creator_ids(n, prefix="scale")
    day = today_shanghai()
    out: dict[str, Any] = {
        "creators": n,
        "partitioning": partitioning,
        "storage": "postgres" if os.environ.get(PG_URL_ENV) else "sqlite",
        "subset_planned_events": os.environ.get(SUBSET_FLAG) == "true",
    }
    with tempfile.TemporaryDirectory(prefix="pgy-bench-scale-") as tmp:
        registry = Path(tmp) / "creators.yaml"
        registry.write_text(yaml.safe_dump({"creators": [{"id": c} for c in creators]}), encoding="utf-8")
        api = PgyApiResource(token=TOKEN, base_url=base_url, max_rps=10000.0, max_concurrency=4)
        duck = PgyDuckDBResource(database=str(Path(tmp) / "dagster_run.duckdb"))
        defs = build_defs(
            Settings(
                pgy_api=api,
                duckdb=duck,
                creator_registry=CreatorRegistryResource(path=str(registry)),
                partitioning=partitioning,
            )
        )
        (Path(tmp) / "home").mkdir()
        with _instance(Path(tmp) / "home") as instance:
            if partitioning == "creator":
                instance.add_dynamic_partitions("creators", creators)
            t0 = time.monotonic()
            with build_schedule_context(
                instance=instance,
                repository_def=defs.get_repository_def(),
                scheduled_execution_time=clock.now().astimezone(SHANGHAI),
                resources={"creator_registry": defs.resources["creator_registry"]},
            ) as context:
                tick = defs.get_schedule_def("daily_snapshot_schedule").evaluate_tick(context)
            out["schedule_evaluation_s"] = time.monotonic() - t0
            requests = tick.run_requests or []
            out["schedule_run_requests"] = len(requests)

            t0 = time.monotonic()
            if partitioning == "creator":
                result = materialize(
                    [note_pages, notes, creator_engagement_metrics],
                    instance=instance,
                    resources={"pgy_api": api, "duckdb": duck},
                    tags=dict(requests[0].tags),
                    raise_on_error=False,
                )
            else:
                result = defs.resolve_job_def("snapshot_job").execute_in_process(
                    instance=instance,
                    tags=dict(requests[0].tags),
                    run_config=requests[0].run_config or None,
                    raise_on_error=False,
                )
            out["range_run_s"] = time.monotonic() - t0
            out["range_run_success"] = result.success
            logs = instance.all_logs(result.run_id)
            kinds = Counter(e.dagster_event.event_type_value for e in logs if e.dagster_event)
            out["events_total"] = len(logs)
            out["events_by_type"] = dict(kinds.most_common(8))
            planned = [
                e.timestamp
                for e in logs
                if e.dagster_event
                and e.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ]
            out["planned_events"] = len(planned)
            out["planned_events_s"] = (max(planned) - min(planned)) if planned else 0.0
            starts = [
                e.timestamp
                for e in logs
                if e.dagster_event and e.dagster_event.event_type_value == "RUN_START"
            ]
            created = min(e.timestamp for e in logs)
            out["run_created_to_start_s"] = (starts[0] - created) if starts else None
            mats = [
                e
                for e in logs
                if e.dagster_event and e.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION
            ]
            out["materializations"] = len(mats)
            sizes = [
                len(
                    json.dumps({k: str(v.value) for k, v in m.dagster_event.materialization.metadata.items()})
                )
                for m in mats[:200]
            ]
            out["metadata_bytes_per_materialization"] = sum(sizes) / len(sizes) if sizes else 0

        # The same work without Dagster: what the run would cost if bookkeeping were free.
        t0 = time.monotonic()
        client = PgyClient(TOKEN, base_url=base_url, max_rps=10000.0, max_concurrency=4)
        outcome = fetch_creators(client, creators)
        client.close()
        keys = [(c, day) for c in creators]
        with storage.connect(str(Path(tmp) / "direct.duckdb")) as conn:
            storage.ensure_schema(conn)
            storage.replace_raw_pages(conn, {(c, day): s.pages for c, s in outcome.scans.items()})
            storage.rebuild_notes(conn, keys)
            storage.rebuild_metrics(conn, keys)
        out["direct_work_s"] = time.monotonic() - t0
        out["dagster_overhead_s"] = out["range_run_s"] - out["direct_work_s"]
        out["dagster_overhead_ms_per_creator"] = 1000 * out["dagster_overhead_s"] / n
    return out


def measure(
    n: int, *, subset: bool, partitioning: str = "creator", postgres: str = "", max_notes: int = 12
) -> dict[str, Any]:
    counts = note_counts(creator_ids(n, prefix="scale"), max_notes)
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(SimProcess(token=TOKEN, note_counts=counts))
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        if postgres:
            env[PG_URL_ENV] = stack.enter_context(_fresh_database(postgres))
        # Explicitly either way: the definitions set it when it is unset.
        env[SUBSET_FLAG] = "true" if subset else "false"
        cmd = [sys.executable, "-m", "benchmarks.scale", "--child", str(n), "--url", sim.base_url]
        cmd += ["--partitioning", partitioning]
        proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        SECTION_START,
        "## Scale: the Dagster side at 1,000+ creators",
        "",
        "`python -m benchmarks.scale` (SQLite storage in a temporary instance, or `--postgres` for PostgreSQL storage on a local server; in-process executor, simulator "
        "without latency or rate limit, up to 12 notes per creator; a creator's first snapshot, so full scans). "
        "Overhead = the daily range run's wall time minus the same fetch and DuckDB work done without Dagster, "
        "per creator. The machine (2 cores) was shared with other work, so treat the figures as order of "
        "magnitude.",
        "",
        "| storage | partitioning | creators | subset planned events | schedule tick (evaluate) | range run "
        "| same work without Dagster | Dagster overhead / creator | events written | materializations "
        "| planned events (time) | metadata / materialization |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.get('storage', 'sqlite')} | {r.get('partitioning', 'creator')} | {r['creators']:,} "
            f"| {'yes' if r['subset_planned_events'] else 'no'} "
            f"| {r['schedule_evaluation_s']:.2f} s | {r['range_run_s']:.1f} s | {r['direct_work_s']:.1f} s "
            f"| {r['dagster_overhead_ms_per_creator']:.1f} ms | {r['events_total']:,} | {r['materializations']:,} "
            f"| {r['planned_events']:,} ({r['planned_events_s']:.1f} s) "
            f"| {r['metadata_bytes_per_materialization']:.0f} B |"
        )
    lines += [
        "",
        *_findings(results),
        "",
        "Raw figures:",
        "",
        "```json",
        json.dumps(results, indent=1),
        "```",
    ]
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


TARGET_MS = 20.0  # Dagster overhead per creator per daily run, at 10,000 creators


def _findings(results: list[dict[str, Any]]) -> list[str]:
    """What the figures say against the target (20 ms of Dagster per creator per daily run)."""
    out = ["What the figures say:", ""]
    for r in results:
        layout = r.get("partitioning", "creator")
        ms = r["dagster_overhead_ms_per_creator"]
        mats = r["materializations"]
        rest_s = r["range_run_s"] - r["direct_work_s"] - r["planned_events_s"]
        verdict = "met" if ms <= TARGET_MS else "not met"
        out.append(
            f"- {r.get('storage', 'sqlite')}, {layout} × date, {r['creators']:,} creators"
            f"{' (subset planned events)' if r['subset_planned_events'] else ''}: Dagster costs {ms:.1f} ms "
            f"per creator per daily run (target {TARGET_MS:.0f} ms: **{verdict}**), {r['dagster_overhead_s']:.0f} s "
            f"in all: {r['planned_events']:,} planned events in {r['planned_events_s']:.1f} s, then {mats:,} "
            f"materializations and everything else in {rest_s:.1f} s"
            + (f" ({1000 * rest_s / max(1, mats):.0f} ms per materialization)" if layout == "creator" else "")
            + f". The fetch and DuckDB work itself is {r['direct_work_s']:.1f} s; the schedule's "
            f"evaluation {r['schedule_evaluation_s']:.2f} s for {r['schedule_run_requests']} run request(s)."
        )
    out += [
        "- The cost is the number of events, one commit each, not their size: creator × date writes one "
        "materialization per creator per asset; cohort × date one per cohort (64) per asset, whatever the "
        "roster, so its overhead per creator falls as the roster grows.",
        "- The overhead is everything the run costs beyond the fetch and the DuckDB writes: Dagster's events, "
        "and also the step's own books (spool, call journal, scan plan, per-creator figures), so it is an "
        "upper bound on Dagster's share.",
        "- Per-partition metadata holds only that partition's figures: the step's totals and preview "
        "tables are one observation per step (the column schema lives on the asset definition).",
        "- The UI, the daemon's tick, a backfill launch and PostgreSQL storage: see the Dagster UI section.",
    ]
    return out


def write_section(path: Path, section: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END) + "\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        marker = "## How to run"
        text = text.replace(marker, section + "\n" + marker) if marker in text else text + "\n" + section
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--creators", default="1000", help="comma-separated roster sizes")
    p.add_argument("--no-subset", action="store_true", help=f"skip the {SUBSET_FLAG} rerun")
    p.add_argument(
        "--partitioning", default="creator,cohort", help="comma-separated layouts: creator, cohort"
    )
    p.add_argument(
        "--postgres",
        default="",
        help="Dagster storage on this PostgreSQL server (postgresql://user@host:port/postgres; a database "
        "is created and dropped per measurement) instead of SQLite",
    )
    p.add_argument("--subset-only", action="store_true", help=f"only with {SUBSET_FLAG} (the default)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--output", default=str(PROJECT_ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--from-json", help="re-render the section from a file of result lines (no run)")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.url, 12, args.partitioning)))
        return
    results: list[dict[str, Any]] = []
    if args.from_json:
        lines = Path(args.from_json).read_text(encoding="utf-8").splitlines()
        results = [json.loads(x) for x in lines if x.startswith("{")]
    layouts = [x.strip() for x in args.partitioning.split(",")]
    subsets = (True,) if args.subset_only else (False,) if args.no_subset else (False, True)
    for n in [] if args.from_json else [int(x) for x in args.creators.split(",")]:
        for layout in layouts:
            for subset in subsets:
                r = measure(n, subset=subset, partitioning=layout, postgres=args.postgres)
                print(json.dumps(r), flush=True)
                results.append(r)
    section = render(results)
    print(section)
    if not args.no_write:
        write_section(Path(args.output), section)


if __name__ == "__main__":
    main()
