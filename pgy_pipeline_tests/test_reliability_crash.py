"""Reliability, scenario 4: the process is killed (SIGKILL) while paging, while writing, and while
waiting for a step lock; analysts poll the read replica through a run.

The run executes in another process (``reliability_runner``, or ``dagster asset materialize`` on the
project's own definitions) on a persistent Dagster instance that uses the project's ``dagster.yaml``
and a DuckDB file shared with this process; the simulator runs here, so calls are counted here.
After each kill the DuckDB file is opened again and checked: every partition holds its previous
rows or its complete new rows, never a part. Then, at once and with no daemon and no cleanup of
any kind (the killed run stays STARTED in Dagster's storage), a new run completes the work, paying
only for pages not yet fetched, within 60 s of the kill: the step locks die with their holder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path

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
    clean_env,
    fast_api,
    run_pipeline,
    setup_creators,
    step_failure_messages,
    step_summary,
)
from pgy_pipeline_tests.reliability_support import (
    REPO_ROOT,
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


def left_started(instance) -> int:
    """Runs a kill left STARTED in Dagster's storage. Nothing marks them failed or frees anything here
    (no daemon, no code server): the next run must not need it."""
    return sum(
        run.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING) for run in instance.get_runs()
    )


NEXT_RUN_WITHIN_S = 60.0


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


def assert_notes_whole(db_path, simulator, ids, day=TODAY):
    """Each creator's notes of ``day`` are the simulator's, every one."""
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


def assert_complete(db_path, simulator, ids, day=TODAY):
    assert_notes_whole(db_path, simulator, ids, day)
    for c in ids:
        assert counts(db_path, "raw.note_pages", day).get(c, 0) == pages_needed(
            len(simulator.notes_for(c)), simulator.page_size
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
        killed_at = time.monotonic()
    finally:
        proc.close()
    paid = simulator.call_count()
    assert paid == 3 + 3 + 2  # the other two creators complete, the slow one up to its page 3

    # "restart": the file opens, nothing of today is there, yesterday is untouched
    assert dump(db_path) == before
    assert spooled(db_path) == {ids[0], ids[2]}  # whole scans wait in the spool; the cut one is not there
    assert left_started(pinstance) == 1

    simulator.clear_faults()
    simulator.reset_stats()
    result = run_pipeline(
        pinstance, fast_api(simulator), PgyDuckDBResource(database=db_path, lock_wait_s=5), ids
    )
    assert result.success, step_failure_messages(result)
    next_run_s = time.monotonic() - killed_at
    assert next_run_s < NEXT_RUN_WITHIN_S
    assert simulator.call_count() == simulator.call_count(slow) == 5  # only the creator cut mid-scan
    assert_complete(db_path, simulator, ids)
    assert kept(before, dump(db_path))  # yesterday's rows are all still there
    assert spooled(db_path) == set()
    meta = step_summary(result, "raw__note_pages")
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
        next_run_done_after_kill_s=round(next_run_s, 1),
        cleanup_before_next_run="none (killed run left STARTED, no daemon)",
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
        killed_at = time.monotonic()
    finally:
        proc.close()
    fetched = simulator.call_count()
    assert fetched == 3 + 2 + 4
    after_kill = dump(db_path)
    if write == "replace_raw_pages":
        assert after_kill == before  # every table: the previous rows, exactly
        assert spooled(db_path) == set(ids)  # the pages paid for are kept
    else:  # raw committed before, and with it the notes (a view of the day's counts in raw.page_items,
        # normalized in the raw write's transaction), whole; the metrics keep their previous rows
        assert after_kill["raw.note_pages"] != before["raw.note_pages"]
        assert after_kill["analytics.notes"] != before["analytics.notes"]
        assert_notes_whole(db_path, simulator, ids)
        assert after_kill["analytics.creator_engagement_metrics"] == before["analytics.creator_engagement_metrics"]
        assert spooled(db_path) == set()
    assert left_started(pinstance) == 1

    simulator.reset_stats()
    resource = PgyDuckDBResource(database=db_path, lock_wait_s=5)
    if write == "replace_raw_pages":
        result = run_pipeline(pinstance, fast_api(simulator), resource, ids, run_config=REFRESH)
    else:
        result = run_pipeline(
            pinstance, fast_api(simulator), resource, ids, assets=[notes, creator_engagement_metrics]
        )
    assert result.success, step_failure_messages(result)
    next_run_s = time.monotonic() - killed_at
    assert next_run_s < NEXT_RUN_WITHIN_S
    assert_complete(db_path, simulator, ids)
    # the new snapshot replaced the old one whole, and notes come from the raw pages now stored
    assert dump(db_path)["analytics.notes"] != before["analytics.notes"]
    if write == "rebuild_notes":  # the step's rebuild from the same pages changes no row
        assert dump(db_path)["analytics.notes"] == after_kill["analytics.notes"]
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
        next_run_done_after_kill_s=round(next_run_s, 1),
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
    assert left_started(pinstance) == len(moments)  # nothing was cleaned up between the runs
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


SNAPSHOT_SELECTION = "raw/note_pages,analytics/notes,analytics/creator_engagement_metrics"


def cli_materialize(home, db_path, simulator, ids, log_path) -> subprocess.Popen:
    """``dagster asset materialize`` on the project's own definitions, in a process group of its own
    (its steps run in child processes: Dagster's default multiprocess executor)."""
    env = clean_env()
    env.update(
        DAGSTER_HOME=str(home),
        JUSTONEAPI_TOKEN=TEST_TOKEN,
        JUSTONEAPI_BASE_URL=simulator.base_url,
        JUSTONEAPI_MAX_RPS="1000",
        JUSTONEAPI_TIMEOUT_S="60",
        PGY_DUCKDB_PATH=db_path,
        PYTHONWARNINGS="ignore",
    )
    day = TODAY.isoformat()
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "pgy_pipeline.definitions"]
        + ["--select", SNAPSHOT_SELECTION, "--partition-range", f"{ids[0]}|{day}...{ids[-1]}|{day}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_cli_run_killed_mid_fetch_then_a_new_cli_run_at_once_completes_within_60_s(
    home, pinstance, simulator, db_path, tmp_path
):
    """The issue's own reproduction: SIGKILL a `dagster asset materialize` while it pages (its whole
    process group: run process and step process, as an OOM kill of the worker or a reboot would),
    then start the same materialization again at once."""
    ids = setup_creators(pinstance, simulator, "cli", [20, 30])  # 3 and 4 pages
    simulator.clock = clock(TODAY, 10)
    simulator.add_fault("latency", user_id=ids[1], page=3, seconds=60)
    first = cli_materialize(home, db_path, simulator, ids, tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 90
        while not any(c.user_id == ids[1] and c.page == 3 for c in simulator.calls):
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.05)
        holder = json.loads(Path(db_path + ".locks", "pgy_api.lock").read_text())
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    paid = simulator.call_count()
    assert paid == 3 + 3  # the first creator whole (spooled), the second up to its page 3
    # The lock was held by the process running the step (the run's own process under the in-process
    # executor, the project's default), and died with it.
    assert not Path(f"/proc/{holder['pid']}").exists()

    simulator.clear_faults()
    simulator.reset_stats()
    second = cli_materialize(home, db_path, simulator, ids, tmp_path / "second.log")
    code = second.wait(timeout=NEXT_RUN_WITHIN_S)
    next_run_s = time.monotonic() - killed_at
    assert code == 0, (tmp_path / "second.log").read_text()[-4000:]
    assert next_run_s < NEXT_RUN_WITHIN_S
    assert simulator.call_count() == simulator.call_count(ids[1]) == 4  # the spooled creator: no call
    assert_complete(db_path, simulator, ids)
    assert left_started(pinstance) == 1  # the killed run was never cleaned up, and needed not be
    record(
        "4-kill-cli",
        calls_before_kill=paid,
        rerun_calls=simulator.call_count(),
        pages_total=7,
        pages_paid_twice=2,
        next_run_done_after_kill_s=round(next_run_s, 1),
        lock_holder_named=f"run {holder['run_id'][:8]}, PID {holder['pid']}",
    )


def test_a_run_killed_while_it_waits_for_the_lock_blocks_nobody(home, pinstance, simulator, db_path):
    ids = setup_creators(pinstance, simulator, "waiter", [20, 12])  # 3 and 2 pages
    simulator.clock = clock(TODAY, 10)
    simulator.add_fault("latency", user_id=ids[0], page=2, seconds=10)
    holder = runner(home, db_path, simulator, ids, timeout=30)  # the slow page is not a timeout
    holder.wait_for("lock_held", 60, name="pgy_api")
    waiter = runner(home, db_path, simulator, ids)
    try:
        wait = waiter.wait_for("lock_wait", 60, name="pgy_api")
        assert "held by run " in wait["message"] and "PID " in wait["message"], wait
        waiter.kill()  # dies while waiting: it held nothing, so it leaves nothing behind
        killed_at = time.monotonic()
        late = runner(home, db_path, simulator, ids)  # at once
        try:
            result = late.result(NEXT_RUN_WITHIN_S)
            next_run_s = time.monotonic() - killed_at
            assert result["success"], result
            assert holder.result(30)["success"]
        finally:
            late.close()
    finally:
        waiter.close()
        holder.close()
    assert next_run_s < NEXT_RUN_WITHIN_S
    assert simulator.call_count() == 3 + 2  # fetched once, by the holder; the late run found it stored
    assert_complete(db_path, simulator, ids)
    record(
        "4-kill-waiting",
        waiter_log=wait["message"][:160],
        calls=simulator.call_count(),
        pages=5,
        next_run_done_after_kill_s=round(next_run_s, 1),
    )


def test_analysts_polling_the_replica_through_a_run_never_fail(home, pinstance, simulator, db_path):
    from benchmarks.replica import AnalystProcess
    from pgy_pipeline.warehouse.replica import replica_path

    ids = setup_creators(pinstance, simulator, "analyst", [40 + 3 * i for i in range(12)])
    store_snapshot(simulator, db_path, ids, YESTERDAY)
    simulator.clock = clock(TODAY, 10)
    from pgy_pipeline.warehouse.replica import publish_replica

    publish_replica(db_path)
    analyst = AnalystProcess(replica_path(db_path), 0.02)
    try:
        proc = runner(home, db_path, simulator, ids)
        try:
            result = proc.result(120)
        finally:
            proc.close()
    finally:
        seen = analyst.stop()
    assert result["success"], result
    assert seen["errors"] == 0, seen["error_samples"]
    assert seen["queries"] >= 20 and seen["versions"] >= 2, seen  # it saw yesterday, then today
    assert_complete(db_path, simulator, ids)
    record(
        "4-analyst-replica",
        queries=seen["queries"],
        failed=seen["errors"],
        versions_seen=seen["versions"],
        slowest_query_ms=round(seen["slowest_query_s"] * 1000),
    )
