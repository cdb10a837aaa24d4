"""Run the benchmark suite and write ``docs/benchmarks.md``.

    python -m benchmarks.run              # full run, under 10 minutes on 2 cores
    python -m benchmarks.run --smoke      # tiny sizes; writes nothing unless --output is given
    python -m benchmarks.run --only fetch,normalize

Benchmarks: ``fetch`` (1, at the service's limit, a ``dagster asset materialize`` process, against the
doc's sample loop and dlt), ``orchestration`` (2, range run versus one run per creator), ``normalize``
(3, one million notes), ``metrics`` (4, as history grows), ``analyst`` (5, the analyst's views, rebuilds
and report at 3.6M note rows), ``replica`` (6, analysts reading the replica through snapshot runs, and
the copy's cost at 1 GB), ``scans`` (7, calls per creator-day, full versus window scans over a week),
``pacing`` (8, adaptive pacing against a hidden limit, and pacing shared by two processes through
PostgreSQL). Only when named: ``profile`` (benchmark 1's profile of the whole run) and ``storage`` (9,
bytes per note-day against the previous layout). Everything talks to loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PROJECT_ROOT, machine_info

ALL = ("fetch", "orchestration", "normalize", "metrics", "analyst", "replica", "scans", "pacing")
# Run only when named (--only): benchmark 1's profile, two whole runs per repeat (about 100 s each);
# benchmark 9, bytes per note-day (200 creators x 30 days: about 3 minutes).
EXTRA = ("profile", "storage")

SMOKE = {
    "creators": 3,
    "latency_ms": 20.0,
    "rate": 50.0,
    "max_notes": 12,
    "repeats": 1,
    "alt_repeats": 1,
    "orch_creators": 2,
    "orch_sample": 1,
    "orch_repeats": 1,
    "orch_executor": "in_process",
    "notes": 2000,
    "normalize_repeats": 1,
    "metrics_creators": 20,
    "histories": "1,3",
    "metrics_repeats": 1,
    "analyst_creators": 20,
    "analyst_days": 5,
    "analyst_repeats": 1,
    "replica_creators": 3,
    "replica_repeats": 1,
    "replica_history_gb": "0.02,0.06",
    "replica_history_creators": 50,
    "fetch_max_notes": 12,
    "scans_creators": 12,
    "scans_days": 2,
    "pacing_creators": 6,
    "pacing_limit": 20.0,
    "pacing_ceiling": 40.0,
    "pacing_latency_ms": 20.0,
    "pacing_shared_pages": 8,
    "storage_creators": 4,
    "storage_days": 3,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes (seconds); no report unless --output")
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument(
        "--output",
        default=None,
        help="report path (default: docs/benchmarks.md for a full run; none with --smoke or --only)",
    )
    p.add_argument("--json", default=None, help="also write the raw figures as JSON here")
    g = p.add_argument_group("1 fetch")
    g.add_argument("--creators", type=int, default=80)
    g.add_argument("--latency-ms", type=float, default=200.0)
    g.add_argument("--rate", type=float, default=10.0, help="the service's rate limit, requests/s")
    g.add_argument("--max-notes", type=int, default=40, help="creator i has (17 i) mod (max+1) notes")
    g.add_argument("--fetch-max-notes", type=int, default=55, help="--max-notes of benchmark 1 alone")
    g.add_argument("--max-concurrency", type=int, default=4)
    g.add_argument("--repeats", type=int, default=3, help="pipeline runs")
    g.add_argument("--alt-repeats", type=int, default=1, help="runs of each alternative")
    g.add_argument("--no-dlt", action="store_true", help="skip the dlt comparison")
    g.add_argument(
        "--profile-start-rps",
        type=float,
        default=2.0,
        help="the profile's first pace (JUSTONEAPI_START_RPS; the real-data default)",
    )
    g.add_argument(
        "--sequential-alternatives",
        action="store_true",
        help="run the alternatives one after another instead of at the same time",
    )
    g = p.add_argument_group("2 orchestration")
    g.add_argument("--orch-creators", type=int, default=100)
    g.add_argument("--orch-sample", type=int, default=3, help="one-creator runs timed (then extrapolated)")
    g.add_argument("--orch-repeats", type=int, default=3, help="range runs")
    g.add_argument(
        "--orch-executor",
        choices=("multiprocess", "in_process"),
        default="multiprocess",
        help="the runs' executor (default: Dagster's default, as the project's jobs)",
    )
    g = p.add_argument_group("3 normalize")
    g.add_argument("--notes", type=int, default=1_000_000)
    g.add_argument("--normalize-repeats", type=int, default=3)
    g = p.add_argument_group("4 metrics")
    g.add_argument("--metrics-creators", type=int, default=1000)
    g.add_argument("--histories", default="10,30,90")
    g.add_argument("--metrics-repeats", type=int, default=9)
    g = p.add_argument_group("5 analyst")
    g.add_argument("--analyst-creators", type=int, default=1000)
    g.add_argument("--analyst-days", type=int, default=90, help="daily snapshots (40 notes each)")
    g.add_argument("--analyst-repeats", type=int, default=3)
    g = p.add_argument_group("6 replica")
    g.add_argument("--replica-creators", type=int, default=100)
    g.add_argument("--replica-repeats", type=int, default=3, help="runs with and without the analyst, each")
    g.add_argument(
        "--replica-history-gb", default="1,10", help="history sizes at which a publication is timed, GB"
    )
    g.add_argument("--replica-history-creators", type=int, default=1000, help="creators per generated day")
    g = p.add_argument_group("7 scans")
    g.add_argument("--scans-creators", type=int, default=200)
    g.add_argument("--scans-days", type=int, default=7)
    g = p.add_argument_group("8 pacing")
    g.add_argument("--pacing-creators", type=int, default=150)
    g.add_argument("--pacing-limit", type=float, default=7.0, help="the simulator's hidden limit, requests/s")
    g.add_argument("--pacing-ceiling", type=float, default=20.0, help="JUSTONEAPI_MAX_RPS")
    g.add_argument("--pacing-latency-ms", type=float, default=200.0)
    g.add_argument(
        "--pacing-shared-pages", type=int, default=40, help="pages per process, two processes on one token"
    )
    g.add_argument(
        "--pacing-postgres-url",
        default=None,
        help="PostgreSQL server for shared pacing (default: PGY_TEST_POSTGRES_URL, else a throwaway one)",
    )
    p.add_argument("--storage-creators", type=int, default=200, help="benchmark 9: roster size")
    p.add_argument("--storage-days", type=int, default=30, help="benchmark 9: simulated days")
    args = p.parse_args(argv)
    if args.smoke:
        given = {
            a.lstrip("-").replace("-", "_").split("=")[0]
            for a in (argv if argv is not None else sys.argv[1:])
        }
        for k, v in SMOKE.items():
            if k not in given:
                setattr(args, k, v)
    return args


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def run(args: argparse.Namespace, log=print) -> dict[str, Any]:
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    unknown = set(only) - set(ALL) - set(EXTRA)
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(ALL + EXTRA)}"
        )
    results: dict[str, Any] = {}
    if "fetch" in only:
        from benchmarks import fetch

        log(f"1 fetch: {args.creators} creators at {args.rate:g} req/s, {args.latency_ms:g} ms latency")
        alternatives = ("sample_loop",) if args.no_dlt else ("sample_loop", "dlt", "dlt_parallel")
        results["fetch"] = fetch.run(
            n_creators=args.creators,
            latency_s=args.latency_ms / 1000,
            rate_rps=args.rate,
            max_notes=args.fetch_max_notes,
            max_concurrency=args.max_concurrency,
            repeats=args.repeats,
            alternative_repeats=args.alt_repeats,
            alternatives=alternatives,
            concurrent_alternatives=not args.sequential_alternatives,
            log=log,
        )
    if "profile" in only:
        from benchmarks import fetch_profile

        log(
            f"1 profile: {args.creators} creators at {args.rate:g} req/s, {args.latency_ms:g} ms latency; "
            f"first run at {args.profile_start_rps:g} req/s, then the learned pace"
        )
        results["profile"] = fetch_profile.run(
            n_creators=args.creators,
            latency_s=args.latency_ms / 1000,
            rate_rps=args.rate,
            max_notes=args.fetch_max_notes,
            start_rps=args.profile_start_rps,
            repeats=args.repeats,
            log=log,
        )
        print(fetch_profile.render(results["profile"]))
    if "orchestration" in only:
        from benchmarks import orchestration

        log(f"2 orchestration: {args.orch_creators} creators, range run vs one run per creator")
        results["orchestration"] = orchestration.run(
            n_creators=args.orch_creators,
            sample=args.orch_sample,
            repeats=args.orch_repeats,
            max_notes=args.max_notes,
            executor=args.orch_executor,
            log=log,
        )
    if "normalize" in only:
        from benchmarks import normalize

        log(f"3 normalize: {args.notes:,} notes")
        results["normalize"] = normalize.run(n_notes=args.notes, repeats=args.normalize_repeats, log=log)
    if "metrics" in only:
        from benchmarks import metrics

        histories = tuple(int(h) for h in args.histories.split(","))
        log(f"4 metrics: {args.metrics_creators} creators, history {histories}")
        results["metrics"] = metrics.run(
            creators=args.metrics_creators, histories=histories, repeats=args.metrics_repeats, log=log
        )
    if "analyst" in only:
        from benchmarks import analyst

        log(f"5 analyst: {args.analyst_creators} creators x {args.analyst_days} daily snapshots x 40 notes")
        results["analyst"] = analyst.run(
            creators=args.analyst_creators, days=args.analyst_days, repeats=args.analyst_repeats, log=log
        )
    if "replica" in only:
        from benchmarks import replica

        log(
            f"6 replica: an analyst polls the read replica every 20 ms through {args.replica_creators}-creator runs"
        )
        results["replica"] = replica.run(
            n_creators=args.replica_creators,
            repeats=args.replica_repeats,
            max_notes=args.max_notes,
            executor=args.orch_executor,
            history_gb=tuple(float(x) for x in str(args.replica_history_gb).split(",")),
            history_creators=args.replica_history_creators,
            log=log,
        )
    if "scans" in only:
        from benchmarks import scans

        log(f"7 scans: {args.scans_creators} creators x {args.scans_days} days, full vs window scans")
        results["scans"] = scans.run(creators=args.scans_creators, days=args.scans_days, log=log)
    if "pacing" in only:
        from benchmarks import pacing

        log(
            f"8 pacing: hidden limit {args.pacing_limit:g} req/s, ceiling {args.pacing_ceiling:g}, "
            f"{args.pacing_latency_ms:g} ms latency"
        )
        results["pacing"] = pacing.run(
            n_creators=args.pacing_creators,
            limit=args.pacing_limit,
            ceiling=args.pacing_ceiling,
            latency_s=args.pacing_latency_ms / 1000,
            shared_pages=args.pacing_shared_pages,
            postgres_url=args.pacing_postgres_url,
            log=log,
        )
    if "storage" in only:
        from benchmarks import storage

        log(f"9 storage: {args.storage_creators} creators x {args.storage_days} days, bytes per note-day")
        results["storage"] = storage.run(creators=args.storage_creators, days=args.storage_days, log=log)
        log(
            "  bytes per note-day: {bytes_per_note_day:.1f} (previous layout "
            "{bytes_per_note_day_previous_layout:.1f}, {ratio:.2f}x); rebuild differing rows "
            "{rebuild_differing_rows}".format(**results["storage"])
        )
    return results


def main(argv: list[str] | None = None) -> int:
    from benchmarks import report

    args = parse_args(argv)
    machine = machine_info()
    machine["revision"] = report.git_revision()
    machine["load_before"] = _load_average()
    machine["dagster_env"] = {
        k: v for k, v in os.environ.items() if k.startswith("DAGSTER_") and k != "DAGSTER_HOME"
    }
    started = time.monotonic()
    results = run(args)
    duration = time.monotonic() - started
    machine["load_after"] = _load_average()
    command = "python -m benchmarks.run" + (
        " " + shlex.join(argv if argv is not None else sys.argv[1:])
        if (argv if argv is not None else sys.argv[1:])
        else ""
    )
    complete = set(args.only.split(",")) >= set(ALL)
    output = args.output or (
        str(PROJECT_ROOT / "docs" / "benchmarks.md") if complete and not args.smoke else None
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "results": results}, indent=1, default=str)
        )
    print(f"done in {duration / 60:.1f} min")
    for row in report.verdicts(results):
        verdict = {True: "met", False: "MISSED", None: "-"}[row["met"]]
        print(f"  [{verdict:>6}] {row['bench']}: {row['figure']}: {row['shown']} (target {row['target']})")
    if output:
        report.write(Path(output), results, machine, command, duration)
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
