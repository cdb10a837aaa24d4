"""Benchmark 8: adaptive pacing against a hidden rate limit.

The simulator (in its own process) answers 302 above a per-token limit the client is not told
(7 requests/s), with 200 ms latency. The client is the pipeline's: ``AdaptivePacer`` with the ceiling
``JUSTONEAPI_MAX_RPS`` = 20 and the production start of 2 requests/s, nothing learned yet, 4 requests
in flight, and the resource's 302 backoff. Figures:

* the share of calls answered 302;
* throughput over the run: answered (non-302) calls per second from the first request to the last
  answer, over the limit;
* notes lost (served by the simulator, missing from the scans);
* time to converge: from the first request until the answered rate over a sliding 5 s window first
  reaches 85% of the limit, and the time of the first cut (when the pacer found the limit);
* a second run starting from the pace the first one learned (what the next scheduled run does);
* shared pacing: two processes on one token, each with ``JUSTONEAPI_MAX_RPS`` at the limit (7
  requests/s) and no latency, so the pacer alone sets the pace: the 302 answers they earn with pacing
  shared through PostgreSQL (``PGY_PACING_URL``), and without it (each process pacing alone). Needs a
  PostgreSQL server: ``--pacing-postgres-url`` (default ``PGY_TEST_POSTGRES_URL``), else a throwaway
  one when PostgreSQL's server binaries are installed; otherwise this part is reported as skipped.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from benchmarks.common import PROJECT_ROOT, creator_ids, quiet_loggers
from benchmarks.fetch import note_counts
from benchmarks.simproc import SimProcess

TOKEN = "bench-pacing-token-7a2c"

# One run process of the shared pacing part: page 1 of its creators, one after another, through the
# pipeline's client paced at the limit (shared through PostgreSQL when a URL is given); a 302 is
# retried after 0.05 s, so what is counted is the pacing, not the retry back-off.
SHARED_WORKER = """
import sys
from pgy_pipeline.api.client import PgyClient
base_url, token, pacing_url, n, rate = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4]), float(sys.argv[5])
creators = sys.argv[6].split(",")
client = PgyClient(token, base_url=base_url, max_rps=rate, max_concurrency=2, pacing_url=pacing_url,
                   rate_limit_backoff_s=0.05, backoff_initial_s=0.05, max_attempts=50, timeout_s=30)
print("ready", flush=True)
sys.stdin.readline()  # the processes start together
for i in range(n):
    client.fetch_page(creators[i % len(creators)], 1)
client.close()
print("done", flush=True)
"""


def _converged_after(
    ats: list[float], limit: float, window_s: float = 5.0, share: float = 0.85
) -> float | None:
    """Seconds from the first arrival until ``window_s`` of answered calls first ran at ``share`` x limit."""
    if not ats:
        return None
    j = 0
    for i, t in enumerate(ats):
        while ats[j] < t - window_s:
            j += 1
        if t - ats[0] >= window_s and (i - j + 1) / window_s >= share * limit:
            return t - ats[0]
    return None


def one_run(
    creators: list[str],
    counts: dict[str, int],
    *,
    limit: float,
    ceiling: float,
    latency_s: float,
    start_rps: float,
    learned: Any = None,
) -> tuple[dict[str, Any], Any]:
    from pgy_pipeline.api.client import PgyClient
    from pgy_pipeline.api.ingest import fetch_creators
    from pgy_pipeline.api.pacing import AdaptivePacer

    with SimProcess(token=TOKEN, note_counts=counts, latency_s=latency_s, rate_limit_rps=limit) as sim:
        expected = sim.expected(creators)
        pacer = AdaptivePacer(ceiling, 4, start_rps=start_rps, learned=learned)
        # The resource's defaults otherwise: 5 attempts; a request answered 302 waits as the pacer says.
        client = PgyClient(TOKEN, base_url=sim.base_url, pacer=pacer, timeout_s=60.0)
        t0 = time.monotonic()
        with quiet_loggers("httpx", "httpcore"), client:
            outcome = fetch_creators(client, creators)
        wall = time.monotonic() - t0
        calls = sim.calls()
    answered = [c["at"] for c in calls if c["outcome"] != 302]
    rejected = sum(1 for c in calls if c["outcome"] == 302)
    span = (calls[-1]["at"] - calls[0]["at"] + latency_s) if calls else 0.0
    got = {(c, n["noteId"]) for c, s in outcome.scans.items() for n in s.notes}
    lost = sum(1 for c, ids in expected.items() for n in ids if (c, n) not in got)
    return (
        {
            "calls": len(calls),
            "calls_302": rejected,
            "share_302": rejected / len(calls) if calls else 0.0,
            "fetch_s": span,
            "wall_s": wall,
            "throughput_rps": len(answered) / span if span else 0.0,
            "throughput_over_limit": (len(answered) / span) / limit if span else 0.0,
            "notes_expected": sum(len(v) for v in expected.values()),
            "notes_lost": lost,
            "failures": len(outcome.failures),
            "converged_after_s": _converged_after(answered, limit),
            "pacer": pacer.summary(),
            "rate_history": [(round(t, 2), round(r, 3)) for t, r in pacer.history],
        },
        pacer.state(),
    )


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{name}"))


@contextlib.contextmanager
def _pacing_database(server_url: str) -> Iterator[str]:
    """A fresh database on ``server_url`` for the pacing table; dropped afterwards."""
    import psycopg2

    name = f"pgy_bench_pacing_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(_with_database(server_url, urlsplit(server_url).path.lstrip("/") or "postgres"))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_url, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextlib.contextmanager
def _postgres_server(url: str | None) -> Iterator[str]:
    """``url``, or a throwaway local server (PostgreSQL's server binaries; as root, as scripts/test.sh)."""
    if url:
        yield url
        return
    from benchmarks.dagster_ui import postgres_server

    with postgres_server() as started:
        yield started


def two_processes(pacing_url: str | None, *, limit: float, pages_per_process: int) -> dict[str, Any]:
    """Two processes on one token, each paced at ``limit``, against a simulator limited to ``limit``."""
    creators = creator_ids(8, prefix="shared-pacing")
    with SimProcess(token=TOKEN, note_counts={c: 8 for c in creators}, rate_limit_rps=limit) as sim:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    SHARED_WORKER,
                    sim.base_url,
                    TOKEN,
                    pacing_url or "",
                    str(pages_per_process),
                    str(limit),
                    ",".join(creators[i::2]),
                ],
                cwd=PROJECT_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a pacing worker did not start: {line!r}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"a pacing worker failed ({proc.returncode}): {out}")
        calls = sim.calls()
    answered = [c["at"] for c in calls if c["outcome"] == 0]
    span = max(answered) - min(answered) if len(answered) > 1 else 0.0
    return {
        "calls": len(calls),
        "calls_302": sum(1 for c in calls if c["outcome"] == 302),
        "answered": len(answered),
        "answered_rps": (len(answered) - 1) / span if span else 0.0,
    }


def shared(*, limit: float, pages_per_process: int, postgres_url: str | None, log=print) -> dict[str, Any]:
    """The shared pacing part: 302s with pacing shared through PostgreSQL, and without it."""
    setup = {"processes": 2, "limit_rps": limit, "pages_per_process": pages_per_process}
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(_postgres_server(postgres_url))
        except (RuntimeError, OSError, LookupError, subprocess.CalledProcessError) as exc:
            reason = f"no PostgreSQL server ({type(exc).__name__}: {exc}); set --pacing-postgres-url"
            log(f"  pacing/shared: skipped: {reason}")
            return {"setup": setup, "skipped": reason}
        with _pacing_database(url) as pacing_url:
            with_sharing = two_processes(pacing_url, limit=limit, pages_per_process=pages_per_process)
    without = two_processes(None, limit=limit, pages_per_process=pages_per_process)
    log(
        f"  pacing/shared: two processes at the limit: {with_sharing['calls_302']} x 302 in "
        f"{with_sharing['calls']} calls with shared pacing, {without['calls_302']} in {without['calls']} without"
    )
    return {"setup": setup, "shared": with_sharing, "separate": without}


def run(
    *,
    n_creators: int = 150,
    max_notes: int = 40,
    limit: float = 7.0,
    ceiling: float = 20.0,
    latency_s: float = 0.2,
    start_rps: float = 2.0,
    shared_pages: int = 40,
    postgres_url: str | None = None,
    log=print,
) -> dict[str, Any]:
    creators = creator_ids(n_creators, prefix="pacing")
    counts = note_counts(creators, max_notes)
    first, learned = one_run(
        creators, counts, limit=limit, ceiling=ceiling, latency_s=latency_s, start_rps=start_rps
    )
    log(
        f"  pacing/first run: {first['calls']} calls, {first['calls_302']} x 302 ({first['share_302']:.1%}), "
        f"{first['throughput_over_limit']:.1%} of the limit, converged after {first['converged_after_s']} s"
    )
    second, _ = one_run(
        creators,
        counts,
        limit=limit,
        ceiling=ceiling,
        latency_s=latency_s,
        start_rps=start_rps,
        learned=learned,
    )
    log(
        f"  pacing/second run (learned start {learned.rate_rps:.2f} rps): {second['calls_302']} x 302, "
        f"{second['throughput_over_limit']:.1%} of the limit"
    )
    return {
        "setup": {
            "creators": n_creators,
            "note_counts": f"creator i has (17*i) mod {max_notes + 1} notes",
            "hidden_limit_rps": limit,
            "ceiling_rps": ceiling,
            "start_rps": start_rps,
            "latency_ms": latency_s * 1000,
            "max_concurrency": 4,
        },
        "first": first,
        "second": second,
        "learned": learned.to_json(),
        "shared": shared(
            limit=limit,
            pages_per_process=shared_pages,
            postgres_url=postgres_url or os.environ.get("PGY_TEST_POSTGRES_URL") or None,
            log=log,
        ),
    }
