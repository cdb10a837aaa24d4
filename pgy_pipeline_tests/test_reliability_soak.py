"""Reliability, scenario 8: a soak of a few hundred creators with random faults at a low rate.

One range run over 300 creator partitions against the simulator on loopback, with every transient
fault kind injected at random (seeded, so the run is reproducible) and a few creators that fail for
good. Promise: every partition is either complete and correct or named in the failure with its
reason, the figures reconcile (calls made = pages stored + retries + calls spent on failures), and a
rerun pays only for what failed and completes every partition. Bounded in time.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from datetime import datetime
from datetime import time as dtime

import pytest
from dagster import AssetKey

from pgy_pipeline.orchestration.partitions import SHANGHAI, partition_key, today_shanghai
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline_tests.conftest import creator_ids, fast_api, run_pipeline, step_failure_messages
from pgy_pipeline_tests.reliability_support import counts, pages_needed, query, record, spooled

pytestmark = pytest.mark.timeout(240)

TODAY = today_shanghai()
CREATORS = 300
TIME_BOUND_S = 120
RANDOM_FAULTS = [  # kind, rate, params: about 4% of calls fail, every kind retryable
    ("code", 0.01, {"code": 301}),
    ("code", 0.006, {"code": 500}),
    ("code", 0.004, {"code": 302}),
    ("http_status", 0.008, {"status": 502}),
    ("http_429", 0.004, {"retry_after": 0}),
    ("html", 0.003, {}),
    ("truncated", 0.003, {}),
    ("drop", 0.003, {}),
    ("latency", 0.02, {"seconds": 0.05}),
]  # 5 failures in a row (the retry bound): about 1e-7 per page, 1e-4 per run


def test_soak_every_partition_complete_or_failed_with_a_reason(instance, simulator, db_path):
    simulator.clock = lambda: datetime.combine(TODAY, dtime(10), tzinfo=SHANGHAI)
    ids = creator_ids(CREATORS, prefix="soak")
    rng = random.Random(2026)
    note_counts = {c: rng.choice([0, 1, 7, 8, 9, 15, 16, 17, 24, 30, 41, 56]) for c in ids}
    for c, n in note_counts.items():
        simulator.set_note_count(c, n)
    instance.add_dynamic_partitions("creators", ids)
    doomed = {  # creators that fail for good, and the words that must explain why
        ids[17]: ("code", {"code": 400}, "rejected the request's parameters (400)"),
        ids[123]: ("code", {"code": 777}, "undocumented business code 777"),
        ids[200]: ("http_status", {"status": 503}, "gave up after 5 attempts"),
        ids[299]: ("code", {"code": 0, "message": "ok"}, "'data.list' is missing"),
    }
    for c, (kind, params, _) in doomed.items():
        simulator.add_fault(kind, user_id=c, times=None, **params)
    for kind, rate, params in RANDOM_FAULTS:
        simulator.add_fault(kind, rate=rate, **params)
    api = fast_api(simulator, max_attempts=5, timeout_s=5.0)
    resource = PgyDuckDBResource(database=db_path, lock_wait_s=10)

    started = time.monotonic()
    result = run_pipeline(instance, api, resource, ids)
    fetch_seconds = time.monotonic() - started
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert f"{len(doomed)} of {CREATORS} creator(s) failed" in message
    named = {
        m.group(1): line for line in message.splitlines() if (m := re.match(r"- ([0-9a-f]{24}): ", line))
    }
    assert set(named) == set(doomed)  # exactly the doomed ones failed, each with its reason
    for c, (_, _, words) in doomed.items():
        assert words in named[c], named[c]

    ok = [c for c in ids if c not in doomed]
    raw = counts(db_path, "raw.note_pages")
    assert set(raw) == set(ok)
    assert all(raw[c] == pages_needed(note_counts[c], simulator.page_size) for c in ok)
    # the figures reconcile: calls = the attempts stored with the pages + the calls spent on failures
    stored_attempts = query(db_path, "SELECT sum(attempts) FROM raw.note_pages")[0][0]
    failed_calls = sum(simulator.call_count(c) for c in doomed)
    calls = simulator.call_count()
    assert calls == stored_attempts + failed_calls
    meta = result.asset_materializations_for_node("raw__note_pages")
    assert not meta  # the step failed: the written partitions were reported one by one instead
    mats = instance.get_materialized_partitions(AssetKey(["raw", "note_pages"]))
    assert mats == {partition_key(c, TODAY) for c in ok}  # written partitions are marked, failed ones not
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    fmeta = failure.step_failure_data.user_failure_data.metadata
    assert fmeta["run_total/api_calls"].value == calls
    distinct_requests = len({(r.user_id, r.page) for r in simulator.calls})
    assert fmeta["run_total/api_retries"].value == calls - distinct_requests
    retries = fmeta["run_total/api_retries"].value
    faults_hit = Counter(f for r in simulator.calls for f in r.faults)
    assert retries > 10  # the random faults did happen
    assert not spooled(db_path)

    # a rerun once the service is healthy again pays only for the failed creators
    simulator.clear_faults()
    simulator.reset_stats()
    rerun = run_pipeline(instance, api, resource, ids)
    total_seconds = time.monotonic() - started
    assert rerun.success, step_failure_messages(rerun)[:1]
    assert {r.user_id for r in simulator.calls} == set(doomed)
    assert simulator.call_count() == sum(pages_needed(note_counts[c], simulator.page_size) for c in doomed)
    # every partition complete and correct: each creator's notes, in list order, as the service holds them
    stored_ids = dict(
        query(
            db_path, "SELECT creator_id, list(note_id ORDER BY list_position) FROM analytics.notes GROUP BY 1"
        )
    )
    for c in ids:
        assert stored_ids.get(c, []) == [n["noteId"] for n in simulator.notes_for(c)], c
    assert sum(counts(db_path, "analytics.notes").values()) == sum(note_counts.values())
    assert query(db_path, "SELECT count(*) FROM analytics.note_rejects")[0][0] == 0
    assert counts(db_path, "analytics.creator_engagement_metrics") == {c: 9 for c in ids}
    checks = {c.check_name: c.passed for c in rerun.get_asset_check_evaluations()}
    assert all(checks.values()), checks
    assert total_seconds < TIME_BOUND_S
    record(
        "8-soak",
        creators=CREATORS,
        pages=sum(pages_needed(n, simulator.page_size) for n in note_counts.values()),
        notes=sum(note_counts.values()),
        calls=calls,
        retries=retries,
        faults_hit=dict(sorted(faults_hit.items())),
        complete=len(ok),
        failed_with_reason=len(doomed),
        calls_on_failures=failed_calls,
        rerun_calls=simulator.call_count(),
        fetch_run_seconds=round(fetch_seconds, 1),
        total_seconds=round(total_seconds, 1),
    )
