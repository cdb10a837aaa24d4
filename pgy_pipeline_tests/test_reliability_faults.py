"""Reliability, scenario 1: every failure the service can produce, injected while a real pipeline runs.

Pipeline level: Dagster range runs on a temporary instance and DuckDB file, the simulator over loopback
HTTP. Calls are counted on the simulator's side. Transient faults must be retried within bounds with
every note stored exactly once; terminal ones must cost one call, say exactly what happened, and leave
the partition's previous rows (and every other partition) as they were.
"""

from __future__ import annotations

import time
from datetime import datetime
from datetime import time as dtime

import pytest

from pgy_pipeline.orchestration.automation import failure_cause
from pgy_pipeline.orchestration.guard import read_guard
from pgy_pipeline.orchestration.partitions import SHANGHAI, today_shanghai
from pgy_pipeline_tests.conftest import (
    creator_ids,
    fast_api,
    run_pipeline,
    step_failure_messages,
    step_summary,
)
from pgy_pipeline_tests.reliability_support import counts, dump, partition_rows, query, record, spooled

TODAY = today_shanghai()
NOTES = 20  # three pages of 8: 8, 8, 4
PAGES = 3
REFRESH = {"ops": {"raw__note_pages": {"config": {"refresh": True}}}}


@pytest.fixture(autouse=True)
def frozen_clock(simulator):
    moment = datetime.combine(TODAY, dtime(10), tzinfo=SHANGHAI)
    simulator.clock = lambda: moment


def register(instance, simulator, prefix: str, n: int, notes: int = NOTES) -> list[str]:
    ids = creator_ids(n, prefix=prefix)
    for c in ids:
        simulator.set_note_count(c, notes)
    instance.add_dynamic_partitions("creators", ids)
    return ids


def calls_on(simulator, creator: str, page: int) -> int:
    return sum(1 for c in simulator.calls if c.user_id == creator and c.page == page)


def raw_meta(result) -> dict:
    """The raw step's last partition figures and the step's totals, as plain values."""
    mats = result.asset_materializations_for_node("raw__note_pages")
    if not mats:
        return {}
    return {k: v.value for k, v in {**mats[-1].metadata, **step_summary(result, "raw__note_pages")}.items()}


# (fault kind, params, times, page, outcome the client records for it)
TRANSIENT = [
    ("code", {"code": 301}, 1, 1, "301"),
    ("code", {"code": 500}, 2, 2, "500"),
    ("code", {"code": 302}, 1, 3, "302"),
    ("http_429", {"retry_after": 0}, 1, 1, "http_429"),
    ("http_status", {"status": 502}, 1, 2, "http_502"),
    ("http_status", {"status": 503}, 2, 3, "http_503"),
    ("html", {}, 1, 1, "invalid_json"),
    ("truncated", {}, 1, 2, "invalid_json"),
    ("trickle", {"seconds": 3.5, "interval": 0.1}, 1, 3, "timeout"),
    ("latency", {"seconds": 3.0}, 1, 2, "timeout"),
    ("drop", {}, 1, 3, "connection_error"),
]


def test_transient_faults_are_retried_within_bounds_and_every_note_lands_once(
    instance, simulator, duckdb_resource, db_path
):
    ids = register(instance, simulator, "transient", len(TRANSIENT) + 1)  # the last one has no fault
    for creator, (kind, params, times, page, _) in zip(ids, TRANSIENT, strict=False):
        simulator.add_fault(kind, user_id=creator, page=page, times=times, **params)
    api = fast_api(simulator, timeout_s=1.5, max_attempts=5)

    started = time.monotonic()
    result = run_pipeline(instance, api, duckdb_resource, ids)
    seconds = time.monotonic() - started
    assert result.success, step_failure_messages(result)

    injected = sum(t for _, _, t, _, _ in TRANSIENT)
    assert simulator.call_count() == len(ids) * PAGES + injected
    for creator, (kind, _, times, page, _) in zip(ids, TRANSIENT, strict=False):
        assert calls_on(simulator, creator, page) == 1 + times, kind  # retried exactly as often as it failed
        assert simulator.call_count(creator) == PAGES + times, kind
        attempts = dict(
            query(db_path, "SELECT page_number, attempts FROM raw.note_pages WHERE creator_id = ?", [creator])
        )
        assert attempts == {p: (1 + times if p == page else 1) for p in range(1, PAGES + 1)}, kind
    # every note exactly once, equal to what the service holds
    for creator in ids:
        stored = query(
            db_path,
            "SELECT note_id FROM analytics.notes WHERE creator_id = ? AND snapshot_date = ?",
            [creator, TODAY],
        )
        assert sorted(r[0] for r in stored) == sorted(n["noteId"] for n in simulator.notes_for(creator))
    assert query(db_path, "SELECT count(*) FROM analytics.note_rejects")[0][0] == 0
    meta = raw_meta(result)
    assert meta["run_total/api_calls"] == simulator.call_count()
    assert meta["run_total/api_retries"] == injected
    outcomes = meta["run_total/api_outcomes"]
    for _, _, times, _, outcome in TRANSIENT:
        assert outcomes.get(outcome, 0) >= times, outcome
    assert outcomes["0"] == len(ids) * PAGES
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert all(checks.values()), checks
    assert not spooled(db_path)  # written, so the spool is empty

    record(
        "1-transient",
        faults=", ".join(
            f"{k}{'=' + str(p.get('code', p.get('status', ''))) if p.get('code') or p.get('status') else ''}"
            f" x{t} on page {pg}"
            for k, p, t, pg, _ in TRANSIENT
        ),
        creators=len(ids),
        pages=len(ids) * PAGES,
        calls=simulator.call_count(),
        retries=meta["run_total/api_retries"],
        notes=sum(counts(db_path, "analytics.notes").values()),
        expected_notes=len(ids) * NOTES,
        duplicates=0,
        seconds=round(seconds, 1),
    )


# Faults that never stop, and terminal codes, in one refresh run over creators stored earlier.
# (fault kind, params, calls expected on the faulted page, words the person must see)
PERSISTENT = [
    ("code", {"code": 301}, 3, ["gave up after 3 attempts", "collection failed", "code 301"]),
    ("code", {"code": 500}, 3, ["gave up after 3 attempts", "internal server error", "code 500"]),
    ("code", {"code": 302}, 3, ["gave up after 3 attempts", "rate limit", "code 302"]),
    ("http_429", {"retry_after": 0}, 3, ["gave up after 3 attempts", "HTTP 429"]),
    ("http_status", {"status": 502}, 3, ["gave up after 3 attempts", "HTTP 502"]),
    ("http_status", {"status": 504}, 3, ["gave up after 3 attempts", "HTTP 504"]),
    ("html", {}, 3, ["gave up after 3 attempts", "not valid JSON", "<!DOCTYPE html>"]),
    ("truncated", {}, 3, ["gave up after 3 attempts", "not valid JSON"]),
    ("drop", {}, 3, ["gave up after 3 attempts", "connection failed"]),
    (
        "code",
        {"code": 400, "message": "Invalid Parameters: userId"},
        1,
        ["InvalidRequestError", "rejected the request's parameters (400)", "Invalid Parameters: userId"],
    ),
    (
        "code",
        {"code": 777, "message": "新的错误"},
        1,
        ["UnexpectedResponseError", "undocumented business code 777", "新的错误"],
    ),
]


def test_faults_that_persist_and_terminal_codes_cost_bounded_calls_and_leave_old_rows(
    instance, simulator, duckdb_resource, db_path
):
    ids = register(instance, simulator, "terminal", len(PERSISTENT) + 1)  # the last one stays healthy
    api = fast_api(simulator, max_attempts=3)
    first = run_pipeline(instance, api, duckdb_resource, ids)
    assert first.success, step_failure_messages(first)
    before = dump(db_path)
    before_rows = {c: {t: partition_rows(db_path, t, c, TODAY) for t in before} for c in ids}

    for creator, (kind, params, _, _) in zip(ids, PERSISTENT, strict=False):
        simulator.add_fault(kind, user_id=creator, page=2, times=None, **params)
    simulator.reset_stats()
    result = run_pipeline(instance, api, duckdb_resource, ids, run_config=REFRESH)
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert f"{len(PERSISTENT)} of {len(ids)} creator(s) failed" in message
    lines = {line.split(":")[0].strip("- "): line for line in message.splitlines() if line.startswith("- ")}
    figures = {}
    for creator, (kind, params, expected_calls, words) in zip(ids, PERSISTENT, strict=False):
        label = f"{kind} {params.get('code', params.get('status', ''))}".strip()
        assert calls_on(simulator, creator, 2) == expected_calls, label  # bounded: attempts or a single call
        assert simulator.call_count(creator) == 1 + expected_calls, label  # page 1, then page 2; no page 3
        assert creator in lines, (label, message)
        for word in words:
            assert word in lines[creator], (label, word, lines[creator])
        assert "page 2" in lines[creator]
        # no partial partition: the previous rows of every table are there, unchanged
        for table in before:
            assert partition_rows(db_path, table, creator, TODAY) == before_rows[creator][table], (
                label,
                table,
            )
        figures[label] = expected_calls
    healthy = ids[-1]
    assert simulator.call_count(healthy) == PAGES
    new_fetch = query(db_path, "SELECT max(fetched_at) FROM raw.note_pages WHERE creator_id = ?", [healthy])[
        0
    ][0]
    old_fetch = max(r[4] for r in before_rows[healthy]["raw.note_pages"])
    assert new_fetch > old_fetch  # the healthy creator was refreshed in the same run
    assert spooled(db_path) == set()  # failed scans are never spooled; the written one was discarded
    assert failure_cause([message]) == "some creators failed"

    record(
        "1-terminal",
        creators=len(ids),
        failed=len(PERSISTENT),
        calls_on_failing_page=figures,
        calls=simulator.call_count(),
        partitions_changed=0,
        healthy_refreshed=1,
    )


ACCOUNT = [
    (100, "AuthError", "API token invalid", None),
    (303, "QuotaExceededError", "daily quota exceeded", "tomorrow"),
    (600, "PermissionDeniedError", "permission denied", None),
    (601, "InsufficientBalanceError", "insufficient balance", None),
]


@pytest.mark.parametrize(("code", "error", "words", "lifts"), ACCOUNT, ids=[str(a[0]) for a in ACCOUNT])
def test_account_codes_stop_every_call_keep_old_rows_and_set_the_guard(
    instance, simulator, duckdb_resource, db_path, code, error, words, lifts
):
    ids = register(instance, simulator, f"account{code}", 3)
    api = fast_api(simulator, max_concurrency=1)
    assert run_pipeline(instance, api, duckdb_resource, ids).success
    before = dump(db_path)

    simulator.add_fault("code", page=2, times=None, code=code)  # whichever creator reaches page 2 first
    simulator.reset_stats()
    result = run_pipeline(instance, api, duckdb_resource, ids, run_config=REFRESH)
    assert not result.success
    assert simulator.call_count() == 2  # page 1, then page 2 answers the code: nothing after it
    assert [c.outcome for c in simulator.calls] == [0, code]
    message = "\n".join(step_failure_messages(result))
    assert "3 of 3 creator(s) failed" in message
    assert f"{error}: {words}" in message and f"code {code}" in message
    assert message.count("call refused without reaching the service") == 2  # the other two creators
    assert dump(db_path) == before  # every partition as it was
    assert spooled(db_path) == set()

    guard = read_guard(instance)
    assert guard is not None and guard.code == code
    assert (guard.until is not None) == (lifts is not None)
    simulator.reset_stats()
    again = run_pipeline(instance, api, duckdb_resource, ids, run_config=REFRESH)
    assert not again.success
    again_message = "\n".join(step_failure_messages(again))
    assert "API calls paused" in again_message and "No API call was made" in again_message
    assert simulator.call_count() == 0
    assert dump(db_path) == before
    record(
        f"1-account-{code}",
        calls=2,
        calls_while_guarded=0,
        error=error,
        guard="lifts tomorrow" if lifts else "until an operator clears it",
        partitions_changed=0,
    )
