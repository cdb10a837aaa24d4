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
* a second run starting from the pace the first one learned (what the next scheduled run does).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import creator_ids, quiet_loggers
from benchmarks.fetch import note_counts
from benchmarks.simproc import SimProcess

TOKEN = "bench-pacing-token-7a2c"


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


def run(
    *,
    n_creators: int = 150,
    max_notes: int = 40,
    limit: float = 7.0,
    ceiling: float = 20.0,
    latency_s: float = 0.2,
    start_rps: float = 2.0,
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
    }
