"""Reliability, scenario 5: other processes use the DuckDB file, or run the pipeline, at the same time.

DuckDB lets one process write a file and no other process open it meanwhile, read-only included.
Promise: a write waits a bounded time for the lock, then fails naming the process that holds it;
pages already paid for wait in the spool, and the rerun writes them without a new call. Several runs
at once (overlapping or not) all complete, and each page is paid for once.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from datetime import time as dtime

import pytest

from pgy_pipeline.orchestration.automation import failure_cause
from pgy_pipeline.orchestration.partitions import SHANGHAI, today_shanghai
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline_tests.conftest import (
    TEST_TOKEN,
    fast_api,
    run_pipeline,
    setup_creators,
    step_failure_messages,
    step_summary,
)
from pgy_pipeline_tests.reliability_support import (
    Holder,
    RunnerProcess,
    counts,
    open_instance,
    pages_needed,
    persistent_home,
    record,
    spooled,
)

pytestmark = pytest.mark.timeout(240)

TODAY = today_shanghai()
REFRESH = {"ops": {"raw__note_pages": {"config": {"refresh": True}}}}


@pytest.fixture(autouse=True)
def frozen_clock(simulator):
    moment = datetime.combine(TODAY, dtime(10), tzinfo=SHANGHAI)
    simulator.clock = lambda: moment


def in_background(fn):
    """Run ``fn`` in a thread; returns (thread, box) where box['result'] is set when it finishes."""
    box: dict = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - surfaced by the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def wait_for_calls(simulator, n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while simulator.call_count() < n:
        assert time.monotonic() < deadline, simulator.stats()
        time.sleep(0.02)


def notes_complete(db_path, simulator, ids) -> bool:
    got = counts(db_path, "analytics.notes")
    return all(got.get(c, 0) == len(simulator.notes_for(c)) for c in ids)


@pytest.mark.parametrize("mode", ["ro", "rw"])
def test_a_session_opened_during_the_fetch_fails_the_write_by_name_and_the_rerun_pays_nothing(
    instance, simulator, db_path, mode
):
    ids = setup_creators(instance, simulator, f"holder{mode}", [20, 20, 9])
    pages = sum(pages_needed(len(simulator.notes_for(c)), simulator.page_size) for c in ids)
    simulator.add_fault("latency", page=2, times=2, seconds=1.0)  # keeps the fetch busy a moment
    resource = PgyDuckDBResource(database=db_path, lock_wait_s=1.0)
    holder = Holder(db_path, mode, open_now=False)
    thread, box = in_background(lambda: run_pipeline(instance, fast_api(simulator), resource, ids))
    try:
        wait_for_calls(simulator, 1)  # fetching: the run has closed its first connection
        holder.open()  # an analyst opens the file while the pages arrive
        thread.join(60)
        assert not thread.is_alive() and "error" not in box, box
        result = box["result"]
        assert not result.success
        message = "\n".join(step_failure_messages(result))
        assert "DuckDBLockedError" in message
        assert (
            "stayed locked for 1 s by the process" in message
        )  # the PID: see test_the_lock_error_names_the_process_that_holds_the_file
        assert "pages already fetched are kept in the spool" in message
        assert failure_cause([message]) == "DuckDB file locked by another process"
        paid = simulator.call_count()
        assert paid == pages  # every page once (two of them slowly)
        assert spooled(db_path) == set(ids)
    finally:
        holder.release()
    assert counts(db_path, "raw.note_pages") == {}  # nothing written while the lock was held

    simulator.reset_stats()
    rerun = run_pipeline(instance, fast_api(simulator), resource, ids)
    assert rerun.success, step_failure_messages(rerun)
    assert simulator.call_count() == 0  # the spooled pages were written, none fetched again
    assert notes_complete(db_path, simulator, ids)
    assert spooled(db_path) == set()
    meta = step_summary(rerun, "raw__note_pages")
    assert (
        meta["run_total/partitions_from_spool"].value == len(ids) and meta["run_total/api_calls"].value == 0
    )
    record(
        f"5-holder-{mode}",
        calls=paid,
        pages=pages,
        lock_wait_s=1.0,
        holder_pid_named=f"(PID {holder.pid})" in message,
        spooled=len(ids),
        rerun_calls=0,
        rerun_from_spool=len(ids),
        notes=sum(counts(db_path, "analytics.notes").values()),
    )


def test_a_session_open_before_the_run_fails_it_before_any_call(instance, simulator, db_path):
    ids = setup_creators(instance, simulator, "early", [9])
    PgyDuckDBResource(database=db_path).get_connection().__enter__().close()  # the file exists
    holder = Holder(db_path, "ro")
    try:
        result = run_pipeline(
            instance, fast_api(simulator), PgyDuckDBResource(database=db_path, lock_wait_s=0.5), ids
        )
    finally:
        holder.release()
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert "stayed locked for 0.5 s" in message
    assert simulator.call_count() == 0
    assert counts(db_path, "raw.note_pages") == {} and spooled(db_path) == set()
    record("5-holder-before", calls=0, holder_pid_named=f"(PID {holder.pid})" in message)


def test_the_lock_error_names_the_process_that_holds_the_file(instance, simulator, db_path):
    ids = setup_creators(instance, simulator, "pid", [9])
    PgyDuckDBResource(database=db_path).get_connection().__enter__().close()
    holder = Holder(db_path, "rw")
    try:
        result = run_pipeline(
            instance, fast_api(simulator), PgyDuckDBResource(database=db_path, lock_wait_s=0.2), ids
        )
    finally:
        holder.release()
    message = "\n".join(step_failure_messages(result))
    shown = next((line for line in message.splitlines() if "stayed locked" in line), "")
    record(
        "5-lock-pid",
        holder_pid=holder.pid,
        shown=shown.split(". DuckDB allows")[0][-80:],
        calls=simulator.call_count(),
    )
    assert f"(PID {holder.pid})" in message, message


def test_a_session_that_closes_within_the_wait_only_delays_the_run(instance, simulator, db_path):
    ids = setup_creators(instance, simulator, "brief", [20, 12])
    PgyDuckDBResource(database=db_path).get_connection().__enter__().close()
    holder = Holder(db_path, "ro", hold_s=1.5)
    started = time.monotonic()
    try:
        result = run_pipeline(
            instance, fast_api(simulator), PgyDuckDBResource(database=db_path, lock_wait_s=20), ids
        )
    finally:
        holder.wait_closed()
    seconds = time.monotonic() - started
    assert result.success, step_failure_messages(result)
    assert simulator.call_count() == 3 + 2
    assert notes_complete(db_path, simulator, ids)
    record("5-holder-brief", hold_s=1.5, lock_wait_s=20, run_seconds=round(seconds, 1), calls=5, pages=5)


def test_refresh_rerun_writes_the_pages_spooled_by_a_failed_write(instance, simulator, db_path):
    ids = setup_creators(instance, simulator, "refreshspool", [20, 9])
    resource = PgyDuckDBResource(database=db_path, lock_wait_s=0.5)
    assert run_pipeline(instance, fast_api(simulator), resource, ids).success
    simulator.reset_stats()
    simulator.add_fault("latency", page=1, times=1, seconds=1.0)
    holder = Holder(db_path, "ro", open_now=False)
    thread, box = in_background(
        lambda: run_pipeline(instance, fast_api(simulator), resource, ids, run_config=REFRESH)
    )
    try:
        wait_for_calls(simulator, 1)
        holder.open()
        thread.join(60)
        assert not box["result"].success
    finally:
        holder.release()
    paid = simulator.call_count()
    assert paid == 5 and spooled(db_path) == set(ids)
    simulator.reset_stats()
    rerun = run_pipeline(instance, fast_api(simulator), resource, ids, run_config=REFRESH)
    assert rerun.success
    record("5-refresh-spool", first_calls=paid, rerun_calls=simulator.call_count(), spooled=len(ids))
    assert simulator.call_count() == 0  # the refreshed pages were already paid for


def test_several_runs_at_once_overlapping_or_not_all_complete_and_pay_each_page_once(
    tmp_path, simulator, db_path
):
    """A backfill of two blocks (two runs) and a third run over both blocks, launched together in three
    processes on one instance (the project's dagster.yaml: one fetching step and one notes step at a
    time across runs) and one DuckDB file."""
    home = persistent_home(tmp_path)
    instance = open_instance(home)
    note_counts = [30, 17, 8, 0, 41, 25]
    ids = setup_creators(instance, simulator, "several", note_counts)
    pages = sum(pages_needed(n, simulator.page_size) for n in note_counts)
    blocks = [ids[:3], ids[3:], ids]
    started = time.monotonic()
    procs = [
        RunnerProcess(
            home=home, db=db_path, base_url=simulator.base_url, creators=b, token=TEST_TOKEN, lock_wait=60
        )
        for b in blocks
    ]
    try:
        results = [p.result(180) for p in procs]
    finally:
        for p in procs:
            p.close()
    seconds = time.monotonic() - started
    assert all(r["success"] for r in results), [r["failures"] for r in results]
    assert simulator.call_count() == pages  # overlapping runs did not fetch anything twice
    assert all(
        simulator.call_count(c) == pages_needed(n, simulator.page_size)
        for c, n in zip(ids, note_counts, strict=True)
    )
    assert notes_complete(db_path, simulator, ids)
    assert counts(db_path, "analytics.creator_engagement_metrics") == {c: 9 for c in ids}
    assert spooled(db_path) == set()
    runs = instance.get_runs()
    assert len(runs) == 3 and all(r.is_success for r in runs)
    instance.dispose()
    record(
        "5-several-runs",
        runs=3,
        creators=len(ids),
        pages=pages,
        calls=simulator.call_count(),
        notes=sum(counts(db_path, "analytics.notes").values()),
        seconds=round(seconds, 1),
    )
