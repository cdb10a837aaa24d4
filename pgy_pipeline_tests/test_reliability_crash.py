"""Reliability, scenario 4: the process is killed (SIGKILL) while paging and while writing.

The run executes in another process (``reliability_runner``) on a persistent Dagster instance that
uses the project's ``dagster.yaml`` (pools included) and a DuckDB file shared with this process; the
simulator runs here, so calls are counted here. After each kill the DuckDB file is opened again
(as a restart would) and checked: every partition holds its previous rows or its complete new rows,
never a part; then a rerun completes the work, paying only for pages not yet fetched.

A killed run stays STARTED in Dagster's storage and keeps the pool slot its step held. Under
``dagster dev`` the code server notices that the run worker died and marks the run failed
(``_check_for_orphaned_runs``); the slot itself is only freed by the monitoring daemon when
``run_monitoring.free_slots_after_run_end_seconds`` is set (see the last test). :func:`restart` does
both here, so that the reruns can be checked.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from datetime import time as dtime

import pytest
from dagster import DagsterRunStatus

from pgy_pipeline.api.client import PgyClient
from pgy_pipeline.orchestration.assets import creator_engagement_metrics, notes
from pgy_pipeline.orchestration.partitions import SHANGHAI, today_shanghai
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline.warehouse.storage import (
    claim_data_source,
    ensure_schema,
    rebuild_metrics,
    rebuild_notes,
    replace_raw_pages,
)
from pgy_pipeline_tests.conftest import (
    TEST_TOKEN,
    fast_api,
    run_pipeline,
    setup_creators,
    step_failure_messages,
)
from pgy_pipeline_tests.reliability_support import (
    RunnerProcess,
    counts,
    dump,
    kept,
    open_instance,
    pages_needed,
    persistent_home,
    query,
    record,
    spooled,
)

pytestmark = pytest.mark.timeout(240)

TODAY = today_shanghai()
YESTERDAY = TODAY - timedelta(days=1)
REFRESH = {"ops": {"raw__note_pages": {"config": {"refresh": True}}}}


def clock(day, hour):
    moment = datetime.combine(day, dtime(hour), tzinfo=SHANGHAI)
    return lambda: moment


@pytest.fixture
def home(tmp_path):
    return persistent_home(tmp_path)


@pytest.fixture
def pinstance(home):
    instance = open_instance(home)
    yield instance
    instance.dispose()


def restart(instance) -> int:
    """What Dagster does once a run worker died: the code server reports the run failed, and the
    monitoring daemon frees the pool slots of finished runs. Returns how many runs were cleaned up."""
    n = 0
    for run in instance.get_runs():
        if run.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING):
            instance.report_run_failed(run, "run worker killed (SIGKILL) by the reliability test")
            n += 1
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    for pool in ("pgy_api", "pgy_duckdb"):
        assert not instance.event_log_storage.get_concurrency_info(pool).claimed_slots, pool
    return n


def store_snapshot(simulator, db_path, ids, day, hour=10):
    """A complete earlier snapshot (raw, notes, metrics) written the way the pipeline writes it."""
    simulator.clock = clock(day, hour)
    with PgyClient(TEST_TOKEN, base_url=simulator.base_url, max_rps=None) as client:
        scans = {c: client.scan_notes(c) for c in ids}
    with PgyDuckDBResource(database=db_path).get_connection() as conn:
        ensure_schema(conn)
        claim_data_source(conn, "simulator", db_path)
        replace_raw_pages(conn, {(c, day): s.pages for c, s in scans.items()})
        keys = [(c, day) for c in ids]
        rebuild_notes(conn, keys)
        rebuild_metrics(conn, keys)


def runner(home, db_path, simulator, ids, **options) -> RunnerProcess:
    return RunnerProcess(
        home=home, db=db_path, base_url=simulator.base_url, creators=ids, token=TEST_TOKEN, **options
    )


def assert_complete(db_path, simulator, ids, day=TODAY):
    for c in ids:
        want = sorted(n["noteId"] for n in simulator.notes_for(c))
        got = sorted(
            r[0]
            for r in query(
                db_path,
                "SELECT note_id FROM analytics.notes WHERE creator_id = ? AND snapshot_date = ?",
                [c, day],
            )
        )
        assert got == want, c
        assert counts(db_path, "raw.note_pages", day).get(c, 0) == pages_needed(
            len(want), simulator.page_size
        )
        assert counts(db_path, "analytics.creator_engagement_metrics", day).get(c, 0) == 9


def test_kill_while_paging_leaves_nothing_partial_and_the_rerun_pays_only_what_is_missing(
    home, pinstance, simulator, db_path
):
    ids = setup_creators(pinstance, simulator, "paging", [20, 40, 12])  # 3, 5 and 2 pages
    store_snapshot(simulator, db_path, ids, YESTERDAY)
    simulator.clock = clock(TODAY, 10)
    before = dump(db_path)
    slow = ids[1]
    simulator.add_fault("latency", user_id=slow, page=3, seconds=30)  # holds page 3 of 5
    simulator.reset_stats()

    proc = runner(home, db_path, simulator, ids)
    try:
        deadline = time.monotonic() + 60
        while not (
            any(c.user_id == slow and c.page == 3 for c in simulator.calls) and len(spooled(db_path)) == 2
        ):
            assert time.monotonic() < deadline, (simulator.stats(), proc.stderr_tail())
            time.sleep(0.05)
        proc.kill()
    finally:
        proc.close()
    paid = simulator.call_count()
    assert paid == 3 + 3 + 2  # the other two creators complete, the slow one up to its page 3

    # "restart": the file opens, nothing of today is there, yesterday is untouched
    assert dump(db_path) == before
    assert spooled(db_path) == {ids[0], ids[2]}  # whole scans wait in the spool; the cut one is not there
    assert restart(pinstance) == 1

    simulator.clear_faults()
    simulator.reset_stats()
    result = run_pipeline(
        pinstance, fast_api(simulator), PgyDuckDBResource(database=db_path, lock_wait_s=5), ids
    )
    assert result.success, step_failure_messages(result)
    assert simulator.call_count() == simulator.call_count(slow) == 5  # only the creator cut mid-scan
    assert_complete(db_path, simulator, ids)
    assert kept(before, dump(db_path))  # yesterday's rows are all still there
    assert spooled(db_path) == set()
    meta = result.asset_materializations_for_node("raw__note_pages")[0].metadata
    assert meta["run_total/partitions_from_spool"].value == 2
    record(
        "4-kill-paging",
        calls_before_kill=paid,
        partitions_after_kill=0,
        spooled_after_kill=2,
        rerun_calls=simulator.call_count(),
        rerun_from_spool=2,
        pages_total=10,
        rows_raw=sum(counts(db_path, "raw.note_pages").values()),
        notes=sum(counts(db_path, "analytics.notes").values()),
    )


@pytest.mark.parametrize("write", ["replace_raw_pages", "rebuild_notes"])
def test_kill_inside_the_write_transaction_keeps_the_previous_rows(
    home, pinstance, simulator, db_path, write
):
    """Killed after DELETE and INSERT ran, just before COMMIT: the partition keeps its previous rows."""
    ids = setup_creators(pinstance, simulator, f"commit{write}", [20, 9, 30])
    store_snapshot(simulator, db_path, ids, TODAY, hour=8)  # today's earlier snapshot
    before = dump(db_path)
    simulator.clock = clock(TODAY, 10)  # two hours later: new reads, new fetch times
    simulator.reset_stats()

    proc = runner(home, db_path, simulator, ids, refresh=True, pause_before_commit=write)
    try:
        proc.wait_for("paused_before_commit", 60, fn=write)
        proc.kill()
    finally:
        proc.close()
    fetched = simulator.call_count()
    assert fetched == 3 + 2 + 4
    after_kill = dump(db_path)
    if write == "replace_raw_pages":
        assert after_kill == before  # every table: the previous rows, exactly
        assert spooled(db_path) == set(ids)  # the pages paid for are kept
    else:  # raw committed before; notes and metrics keep their previous rows
        assert after_kill["raw.note_pages"] != before["raw.note_pages"]
        for table in ("analytics.notes", "analytics.note_rejects", "analytics.creator_engagement_metrics"):
            assert after_kill[table] == before[table], table
        assert spooled(db_path) == set()
    assert restart(pinstance) == 1

    simulator.reset_stats()
    resource = PgyDuckDBResource(database=db_path, lock_wait_s=5)
    if write == "replace_raw_pages":
        result = run_pipeline(pinstance, fast_api(simulator), resource, ids, run_config=REFRESH)
    else:
        result = run_pipeline(
            pinstance, fast_api(simulator), resource, ids, assets=[notes, creator_engagement_metrics]
        )
    assert result.success, step_failure_messages(result)
    assert_complete(db_path, simulator, ids)
    # the new snapshot replaced the old one whole, and notes come from the raw pages now stored
    assert dump(db_path)["analytics.notes"] != before["analytics.notes"]
    assert query(
        db_path,
        "SELECT count(*) FROM analytics.notes n LEFT JOIN raw.note_pages p "
        "USING (creator_id, snapshot_date, page_number) WHERE p.fetched_at IS DISTINCT FROM n.fetched_at",
    ) == [(0,)]
    assert spooled(db_path) == set()
    record(
        f"4-kill-commit-{write}",
        calls_before_kill=fetched,
        tables_changed_by_kill=sum(after_kill[t] != before[t] for t in before),
        rerun_calls=simulator.call_count(),
        rerun_pages=9,
    )


def test_kills_at_random_moments_of_the_writes_never_leave_a_partial_partition(
    home, pinstance, simulator, db_path
):
    """Kill the run at random moments inside its DuckDB writes, restarting after each kill, until a run
    completes. After every kill each partition is all there or not there at all, in every table, and in
    the end every page was paid for exactly once."""
    note_counts = [100 + 7 * i for i in range(24)]
    ids = setup_creators(pinstance, simulator, "random", note_counts)
    store_snapshot(simulator, db_path, ids[:4], YESTERDAY)
    yesterday = dump(db_path)
    simulator.clock = clock(TODAY, 10)
    simulator.reset_stats()
    pages = {c: pages_needed(n, simulator.page_size) for c, n in zip(ids, note_counts, strict=True)}
    rng = random.Random(5)
    plan = [("replace_raw_pages", 0.005), ("rebuild_notes", 0.05), ("rebuild_metrics", 0.01)]
    moments, inside = [], 0
    for write, delay in [*plan, (None, 0)]:
        raw, note_rows = counts(db_path, "raw.note_pages"), counts(db_path, "analytics.notes")
        if (write == "replace_raw_pages" and raw) or (write == "rebuild_notes" and note_rows):
            continue  # that write already committed: aim at the next one
        proc = runner(home, db_path, simulator, ids)
        try:
            if write is None:
                result = proc.result(120)
                assert result["success"], result
                break
            proc.wait_for("write_begin", 60, fn=write)
            time.sleep(delay * rng.uniform(0.5, 1.5))
            proc.kill()
            events = proc.drain()
        finally:
            proc.close()
        in_flight = not any(e["event"] == "write_end" and e["fn"] == write for e in events)
        inside += in_flight
        moments.append(
            f"{write} +{delay * 1000:.0f} ms: " + ("inside the transaction" if in_flight else "after it")
        )
        # after the kill: every partition whole or absent, in every table
        raw = counts(db_path, "raw.note_pages")
        assert all(raw[c] == pages[c] for c in raw) and len(raw) in (0, len(ids))  # one transaction per run
        note_rows = counts(db_path, "analytics.notes")
        assert all(note_rows[c] == note_counts[ids.index(c)] for c in note_rows) and len(note_rows) in (
            0,
            len(ids),
        )
        metric_rows = counts(db_path, "analytics.creator_engagement_metrics")
        assert all(v == 9 for v in metric_rows.values()) and len(metric_rows) in (0, len(ids))
        assert set(metric_rows) <= set(note_rows) <= set(raw)
        if not raw:
            assert spooled(db_path) == set(ids)  # not in DuckDB: every page waits in the spool
        assert kept(yesterday, dump(db_path))
        restart(pinstance)
    assert inside >= 2, moments  # most kills really hit a write in progress
    assert_complete(db_path, simulator, ids)
    assert kept(yesterday, dump(db_path))
    assert simulator.call_count() == sum(pages.values())  # every page paid for exactly once
    record(
        "4-kill-random",
        kills=len(moments),
        kills_inside_a_transaction=inside,
        moments=moments,
        calls=simulator.call_count(),
        pages=sum(pages.values()),
        partitions=len(ids),
        rows_raw=sum(counts(db_path, "raw.note_pages").values()),
        notes=sum(counts(db_path, "analytics.notes").values()),
    )


def test_a_killed_run_does_not_hold_the_api_pool_for_ever(home, pinstance, simulator, db_path, monkeypatch):
    import logging
    from types import SimpleNamespace

    import dagster._daemon.monitoring.concurrency as slot_monitor
    from dagster._time import get_current_datetime

    ids = setup_creators(pinstance, simulator, "stuck", [20])
    simulator.add_fault("latency", user_id=ids[0], page=2, seconds=30)
    proc = runner(home, db_path, simulator, ids)
    try:
        deadline = time.monotonic() + 60
        while not any(c.page == 2 for c in simulator.calls):
            assert time.monotonic() < deadline, proc.stderr_tail()
            time.sleep(0.05)
        proc.kill()
    finally:
        proc.close()
    held = pinstance.event_log_storage.get_concurrency_info("pgy_api").claimed_slots
    (run,) = pinstance.get_runs()
    record(
        "4-stuck-slot",
        slots_held_by_killed_run=len(held),
        run_status=run.status.value,
        run_monitoring=pinstance.run_monitoring_enabled,
        free_slots_after_run_end_seconds=pinstance.run_monitoring_settings.get(
            "free_slots_after_run_end_seconds"
        ),
        max_runtime_seconds=pinstance.run_monitoring_max_runtime_seconds,
    )
    assert [s.run_id for s in held] == [run.run_id]  # the dead run holds the only pgy_api slot

    # What Dagster can do by itself with the project's dagster.yaml:
    assert pinstance.run_monitoring_enabled, "dagster.yaml does not enable run_monitoring"
    assert pinstance.run_monitoring_max_runtime_seconds > 0, "a run left STARTED by a restart is never failed"
    timeout = pinstance.run_monitoring_settings.get("free_slots_after_run_end_seconds")
    assert timeout, "dagster.yaml does not set run_monitoring.free_slots_after_run_end_seconds"
    # the code server fails the orphaned run, then one pass of the monitoring daemon, `timeout` s later
    pinstance.report_run_failed(run, "run worker killed")
    later = get_current_datetime() + timedelta(seconds=timeout + 1)
    monkeypatch.setattr(slot_monitor, "get_current_datetime", lambda: later)
    list(
        slot_monitor.execute_concurrency_slots_iteration(
            SimpleNamespace(instance=pinstance), logging.getLogger("test")
        )
    )
    assert not pinstance.event_log_storage.get_concurrency_info("pgy_api").claimed_slots
