"""Midnight in Asia/Shanghai: a run that crosses it, and a run for yesterday that starts after it.

The rule (README, "Snapshots and midnight"): a snapshot is named by the day its fetch step started. A
step that crosses midnight finishes under that day (its calls count toward the budget of the day each
was made); a run for a day that has ended is refused before any call, naming today's partitions.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb

from pgy_pipeline import clock
from pgy_pipeline.clock import SHIFT_VAR
from pgy_pipeline.warehouse.keys import SHANGHAI, today_shanghai
from pgy_pipeline.warehouse.ledger import billed_calls_on
from pgy_pipeline_tests.conftest import clean_env, creator_ids, run_pipeline, step_failure_messages

YESTERDAY = today_shanghai() - timedelta(days=1)


def at(day: date, hour: int, minute: int, second: int) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=SHANGHAI)


def test_a_run_that_crosses_midnight_stores_its_snapshot_under_the_day_it_started(
    instance, simulator, api, duckdb_resource, db_path
):
    ids = creator_ids(2, prefix="midnight")
    instance.add_dynamic_partitions("creators", ids)
    for c in ids:
        simulator.set_note_count(c, 30)  # 4 pages each
    before, after = at(YESTERDAY, 23, 59, 59), at(YESTERDAY + timedelta(days=1), 0, 0, 30)
    # Midnight passes once the service has answered the first call: the rest of the fetch is on the next day.
    with clock.use_clock(lambda: before if len(simulator.calls) < 1 else after):
        result = run_pipeline(instance, api, duckdb_resource, ids, day=YESTERDAY.isoformat())
    assert result.success
    with duckdb.connect(db_path, read_only=True) as conn:
        snaps = conn.execute(
            "SELECT creator_id, snapshot_date, scan_status, notes_loaded FROM analytics.creator_snapshots"
        ).fetchall()
        assert sorted(snaps) == sorted((c, YESTERDAY, "full", 30) for c in ids)
        # Each call counts on the day it was made: the first pages (sent before the first answer) on
        # the day that ended, every later one on the new day.
        before_midnight = billed_calls_on(conn, YESTERDAY)
        assert 1 <= before_midnight <= len(ids)
        assert billed_calls_on(conn, YESTERDAY + timedelta(days=1)) == 8 - before_midnight
        [(ledger_days,)] = conn.execute("SELECT list(DISTINCT snapshot_date) FROM meta.api_calls").fetchall()
    assert ledger_days == [YESTERDAY]


def test_a_run_for_yesterday_that_starts_after_midnight_is_refused_before_any_call(
    instance, simulator, api, duckdb_resource
):
    ids = creator_ids(2, prefix="latequeue")
    instance.add_dynamic_partitions("creators", ids)
    today = YESTERDAY + timedelta(days=1)
    with clock.use_clock(lambda: at(today, 0, 1, 0)):
        result = run_pipeline(instance, api, duckdb_resource, ids, day=YESTERDAY.isoformat())
    assert not result.success and simulator.call_count() == 0
    [message] = step_failure_messages(result)
    assert f"only be fetched for today ({today.isoformat()}, Asia/Shanghai)" in message
    assert "launch today's partitions instead: " + ", ".join(
        f"{c}|{today.isoformat()}" for c in sorted(ids)
    ) in (message)
    assert "No API call was made" in message


def test_every_test_process_started_with_a_clean_environment_keeps_the_suites_clock_shift():
    """A process started from an environment stripped of the project's settings would read the
    unshifted clock: near midnight it sees another day than the suite (a CI run started at 23:50
    Asia/Shanghai once failed three tests so). ``conftest.clean_env`` keeps the shift."""
    tests = Path(__file__).resolve().parent.parent
    stripping = re.compile(r"startswith\(\(\s*\"PGY_\"")
    offenders = [
        str(path.relative_to(tests))
        for path in sorted(tests.rglob("*.py"))
        if path.name != "conftest.py" and stripping.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
    assert SHIFT_VAR in clean_env()
