"""The DuckLake profile for real: catalog in PostgreSQL, data files in a directory or in an
S3-compatible store on loopback; real snapshot runs in separate processes, an analyst polling
read-only, and a run killed inside its write."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import duckdb
import pytest

from pgy_pipeline.errors import LakeConflictError
from pgy_pipeline.orchestration.lake_maintenance import lake_maintenance_job
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse import schema, storage
from pgy_pipeline.warehouse.lake import LakeSettings, open_lake, retry_on_conflict
from pgy_pipeline.warehouse.schema import LATEST_VERSION
from pgy_pipeline.warehouse.tables import RELATIONS
from pgy_pipeline_tests.conftest import TEST_TOKEN, creator_ids, fast_api, run_pipeline
from pgy_pipeline_tests.lake.conftest import S3Store, lake_resource

REPO_ROOT = Path(__file__).resolve().parents[2]

PARTITIONS_SQL = (
    "SELECT creator_id, snapshot_date, count(*), count(DISTINCT note_id) FROM analytics.notes GROUP BY ALL"
)


def _rows(conn: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def test_the_pipeline_writes_the_declared_tables_on_the_lake(instance, simulator, local_lake) -> None:
    creators = creator_ids(3, prefix="lk")
    instance.add_dynamic_partitions("creators", creators)
    result = run_pipeline(instance, fast_api(simulator), local_lake, creators)
    assert result.success
    calls = simulator.call_count()
    with local_lake.get_connection() as conn:
        for rel in RELATIONS:
            if rel.kind != "table":
                continue
            got = _rows(
                conn,
                "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'lake' "
                f"AND schema_name || '.' || table_name = '{rel.name}' ORDER BY column_index",
            )
            assert got == [(c.name, c.type) for c in rel.columns], rel.name
        per_partition = _rows(conn, PARTITIONS_SQL)
        assert sorted(r[0] for r in per_partition) == sorted(creators)
        assert all(r[2] == r[3] > 0 for r in per_partition)
        assert _rows(conn, "SELECT count(*) FROM analytics.creator_leaderboard")[0][0] == 3
        assert _rows(conn, "SELECT version FROM meta.schema_migrations ORDER BY 1") == [
            (v,) for v in range(1, LATEST_VERSION + 1)
        ]
        raw = sorted(_rows(conn, "SELECT creator_id, page_number, fetched_at FROM raw.note_pages"))
    # A second run skips what is stored: no call, the raw pages untouched, the same notes.
    assert run_pipeline(instance, fast_api(simulator), local_lake, creators).success
    assert simulator.call_count() == calls
    with local_lake.get_connection() as conn:
        assert sorted(_rows(conn, "SELECT creator_id, page_number, fetched_at FROM raw.note_pages")) == raw
        assert sorted(_rows(conn, PARTITIONS_SQL)) == sorted(per_partition)


def _migrate_worker(database: str, data_path: str, barrier) -> None:
    with open_lake(database, LakeSettings(data_path=data_path)) as conn:
        barrier.wait()
        schema.migrate(conn)


def test_two_hosts_upgrading_a_new_lake_at_once_apply_each_migration_once(catalog, tmp_path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    procs = [
        ctx.Process(target=_migrate_worker, args=(catalog, str(tmp_path / "d"), barrier)) for _ in range(3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with open_lake(catalog, LakeSettings(data_path=str(tmp_path / "d"))) as conn:
        assert _rows(conn, "SELECT version FROM meta.schema_migrations ORDER BY 1") == [
            (v,) for v in range(1, LATEST_VERSION + 1)
        ]
        assert schema.derived_current(conn)


def test_analyst_attach_is_read_only(catalog, tmp_path) -> None:
    settings = LakeSettings(data_path=str(tmp_path / "d"))
    with open_lake(catalog, settings) as conn:
        schema.migrate(conn)
    with open_lake(catalog, settings, read_only=True) as reader:
        assert _rows(reader, "SELECT count(*) FROM raw.note_pages") == [(0,)]
        with pytest.raises(duckdb.Error, match="read-only|read only"):
            reader.execute("DELETE FROM raw.pages")


class Analyst(threading.Thread):
    """Polls the lake read-only the whole time, as an analyst's notebook would, counting errors."""

    def __init__(self, database: str, settings: LakeSettings) -> None:
        super().__init__(daemon=True)
        self.database, self.settings = database, settings
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.polls = 0
        self.seen: dict[tuple, set[int]] = {}
        self.duplicates: list[tuple] = []

    def run(self) -> None:
        conn = open_lake(self.database, self.settings, read_only=True)
        try:
            while not self.stop.is_set():
                try:
                    if self.polls % 10 == 0:  # and now and then a fresh attach, as a new session does
                        conn.close()
                        conn = open_lake(self.database, self.settings, read_only=True)
                    rows = conn.execute(PARTITIONS_SQL).fetchall() if _has_notes(conn) else []
                    for creator, day, count, distinct in rows:
                        self.seen.setdefault((creator, day), set()).add(count)
                        if count != distinct:
                            self.duplicates.append((creator, day, count, distinct))
                    self.polls += 1
                except Exception as exc:  # every failure an analyst would see
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.05)
        finally:
            conn.close()


def _has_notes(conn: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' AND schema_name = 'analytics' "
            "AND table_name = 'note_details'"
        ).fetchall()[0][0]
    )


def _child(mode: str, database: str, settings: LakeSettings, sim: Simulator, creators: list[str], **extra):
    args = {
        "database": database,
        "lake": asdict(settings),
        "token": TEST_TOKEN,
        "base_url": sim.base_url,
        "creators": creators,
        **extra,
    }
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "pgy_pipeline_tests.lake.lake_run", mode, json.dumps(args)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_concurrent_runs_an_analyst_and_a_killed_run_on_s3(
    catalog: str, s3_store: S3Store, simulator: Simulator, instance
) -> None:
    prefix = f"t{os.getpid()}-{time.monotonic_ns()}"
    settings = s3_store.settings(prefix)
    lake = lake_resource(catalog, settings)
    with lake.get_connection() as conn:  # the lake exists before the analyst attaches
        schema.migrate(conn)
    assert not lake.single_writer

    analyst = Analyst(catalog, settings)
    analyst.start()
    first, second = creator_ids(5, prefix="ra"), creator_ids(5, prefix="rb")
    # Two snapshot runs of different creators at once, each in its own process (first snapshots:
    # full scans), then both again with refresh so that each replaces partitions while the other
    # writes. A refresh never leaves a day less complete than it was: the day's full scans are
    # refreshed in full, so each creator's notes can be held against the service's total below.
    fetched: list[dict[str, object]] = []
    for refresh in (False, True):
        runs = [
            _child(
                "snapshot",
                catalog,
                settings,
                simulator,
                c,
                refresh=refresh,
            )
            for c in (first, second)
        ]
        outputs = [p.communicate(timeout=240)[0] for p in runs]
        assert [p.returncode for p in runs] == [0, 0], "\n".join(outputs)
        with lake.get_connection() as conn:
            fetched.append(
                dict(_rows(conn, "SELECT creator_id, max(fetched_at) FROM raw.note_pages GROUP BY ALL"))
            )
    assert all(fetched[1][c] > fetched[0][c] for c in first + second), fetched  # every partition replaced

    with lake.get_connection() as conn:
        scan_status = dict(_rows(conn, "SELECT creator_id, scan_status FROM analytics.creator_snapshots"))
        before = _rows(conn, "SELECT max(snapshot_id) FROM ducklake_snapshots('lake')")[0][0]
        raw_before = _rows(
            conn, "SELECT creator_id, count(*), max(fetched_at) FROM raw.note_pages GROUP BY ALL"
        )
        final = {(r[0], r[1]): r[2] for r in _rows(conn, PARTITIONS_SQL)}
        reconcile = _rows(
            conn,
            "SELECT p.creator_id, max(p.total), (SELECT count(*) FROM analytics.notes n "
            "WHERE n.creator_id = p.creator_id) FROM raw.note_pages p GROUP BY p.creator_id",
        )
    assert sorted(r[0] for r in raw_before) == sorted(first + second)  # every creator's pages landed
    assert set(scan_status.values()) <= {"full", "empty"} and len(scan_status) == 10, scan_status
    # Nothing lost: every creator's notes equal the total the API reported (the last writes were full
    # scans, see above); nothing duplicated.
    assert all(total == notes for _, total, notes in reconcile), reconcile
    assert analyst.duplicates == []

    # A run killed inside its write: the lake stays at its last committed snapshot.
    victim = _child("kill", catalog, settings, simulator, first[:2])
    assert victim.stdout is not None
    watchdog = threading.Timer(180, victim.kill)  # never hang the suite on a stuck child
    watchdog.start()
    seen: list[str] = []
    for line in victim.stdout:
        seen.append(line)
        if "IN_TRANSACTION" in line:
            break
    watchdog.cancel()
    assert seen and "IN_TRANSACTION" in seen[-1], "".join(seen)
    files_during = s3_store.keys(prefix)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    with lake.get_connection() as conn:
        assert _rows(conn, "SELECT max(snapshot_id) FROM ducklake_snapshots('lake')")[0][0] == before
        assert _rows(
            conn, "SELECT creator_id, count(*), max(fetched_at) FROM raw.note_pages GROUP BY ALL"
        ) == raw_before or sorted(
            _rows(conn, "SELECT creator_id, count(*), max(fetched_at) FROM raw.note_pages GROUP BY ALL")
        ) == sorted(raw_before)
        tracked = {
            r[0]
            for table in ("pages", "page_items", "item_texts")  # what raw.note_pages reads
            for r in _rows(
                conn, f"SELECT data_file FROM ducklake_list_files('lake', '{table}', schema => 'raw')"
            )
        }
    analyst.stop.set()
    analyst.join(30)
    assert analyst.errors == [], analyst.errors[:3]
    assert analyst.polls > 20
    # Whatever the analyst saw of a partition was all of it: never a half-replaced partition.
    assert all(counts <= {final[key]} for key, counts in analyst.seen.items()), analyst.seen

    # Maintenance: merges the runs' small files, expires snapshots, deletes the killed run's orphans.
    result = lake_maintenance_job.execute_in_process(
        instance=instance,
        resources={"duckdb": lake},
        run_config={
            "ops": {
                "compact_lake": {
                    "config": {
                        "expire_snapshots_older_than_days": 0.0,
                        "cleanup_files_older_than_hours": 0.0,
                        "orphans_older_than_hours": 0.0,
                    }
                }
            }
        },
    )
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    figures = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert figures["data_files_after"] < figures["data_files_before"]
    assert figures["snapshots_expired"] > 0
    assert figures["files_cleaned"] > 0
    orphan_files = [
        k
        for k in files_during
        if f"s3://{s3_store.bucket}/{k}" not in tracked
        and any(t in k for t in ("pages", "page_items", "item_texts"))
    ]
    assert orphan_files, "the killed run had written no data file before its commit"
    assert figures["orphans_deleted"] >= 1
    with lake.get_connection() as conn:
        assert {(r[0], r[1]): r[2] for r in _rows(conn, PARTITIONS_SQL)} == final


def test_a_write_that_conflicts_with_another_hosts_commit_is_rerun(local_lake, simulator) -> None:
    """Two writers deleting rows of one data file: DuckLake fails the second commit; it is rerun."""
    from pgy_pipeline.api.client import PgyClient
    from pgy_pipeline.warehouse.keys import today_shanghai

    day = today_shanghai()
    a, b = creator_ids(2, prefix="cf")
    with PgyClient(TEST_TOKEN, base_url=simulator.base_url, max_rps=None) as client:
        pages = {c: client.scan_notes(c).pages for c in (a, b)}
    settings = local_lake.lake_settings
    with local_lake.get_connection() as first, open_lake(local_lake.database, settings) as other:
        schema.migrate(first)
        storage.replace_raw_pages(first, {(a, day): pages[a], (b, day): pages[b]})  # one file, both
        calls = []
        real_store = storage.store_loaded_pages

        def store_while_other_host_commits(conn) -> None:
            calls.append(1)
            real_store(conn)
            if len(calls) == 1:  # another host replaces creator b meanwhile, and commits first
                storage.replace_raw_pages(other, {(b, day): pages[b]})

        storage.store_loaded_pages = store_while_other_host_commits
        try:
            storage.replace_raw_pages(first, {(a, day): pages[a]})
        finally:
            storage.store_loaded_pages = real_store
        assert len(calls) == 3  # a's write, b's write from the other host, a's rerun
        counts = dict(_rows(first, "SELECT creator_id, count(*) FROM raw.note_pages GROUP BY ALL"))
    assert counts == {a: len(pages[a]), b: len(pages[b])}


def test_a_window_day_metrics_write_retried_inside_its_commit_stays_readable(
    local_lake, simulator, monkeypatch
) -> None:
    """Another host commits while the metrics of a window-scan day are written: DuckLake reruns the
    commit against the new snapshot, and the table stays readable with window 'all' left NULL."""
    from pgy_pipeline.api.client import PgyClient, ScanWindow
    from pgy_pipeline.warehouse.keys import today_shanghai

    day = today_shanghai()
    a, b = creator_ids(2, prefix="wd")
    window = ScanWindow.for_snapshot(day)
    with PgyClient(TEST_TOKEN, base_url=simulator.base_url, max_rps=None) as client:
        scan = client.scan_notes(a, window=window)
        window_pages = [replace(p, scan="window", scan_window_from=window.since) for p in scan.pages]
        other_pages = client.scan_notes(b).pages
    assert len(scan.notes) < (scan.total or 0), "the window scan must stop before the whole list"
    with (
        local_lake.get_connection() as conn,
        open_lake(local_lake.database, local_lake.lake_settings) as other,
    ):
        schema.migrate(conn)
        storage.replace_raw_pages(conn, {(a, day): window_pages})
        storage.rebuild_notes(conn, [(a, day)])
        assert _rows(conn, "SELECT scan_status FROM analytics.creator_snapshots") == [("window",)]
        real_transaction = storage.transaction
        commits: list[int] = []

        @contextmanager
        def transaction_while_other_host_commits(c: duckdb.DuckDBPyConnection) -> Iterator[None]:
            with real_transaction(c):
                yield
                if c is conn and not commits:  # just before this COMMIT another host commits first
                    commits.append(1)
                    storage.replace_raw_pages(other, {(b, day): other_pages})

        monkeypatch.setattr(storage, "transaction", transaction_while_other_host_commits)
        assert storage.rebuild_metrics(conn, [(a, day)]) == set()
        monkeypatch.undo()
        assert commits == [1]
    with open_lake(local_lake.database, local_lake.lake_settings, read_only=True) as reader:
        got = reader.execute(
            'SELECT "window", segment, note_count, notes_total_reported '
            "FROM analytics.creator_engagement_metrics WHERE creator_id = ? ORDER BY ALL",
            [a],
        ).fetchall()
        other_rows = reader.execute(
            "SELECT count(*) FROM raw.note_pages WHERE creator_id = ?", [b]
        ).fetchall()
    assert other_rows == [(len(other_pages),)]  # the other host's commit landed first
    assert len(got) == 9, got
    assert {r[2] for r in got if r[0] == "all"} == {None}, got  # all-time figures unknown on a window day
    assert all(r[2] is not None and r[3] == scan.total for r in got if r[0] != "all"), got


def test_a_write_that_always_conflicts_gives_up_with_a_clear_error(local_lake) -> None:
    with (
        local_lake.get_connection() as conn,
        open_lake(local_lake.database, local_lake.lake_settings) as other,
    ):
        conn.execute("CREATE TABLE main.contended AS SELECT range AS v FROM range(10)")

        others = iter(range(2, 10))

        def body() -> None:
            with storage.transaction(conn):
                conn.execute("DELETE FROM main.contended WHERE v = 1")
                other.execute(f"DELETE FROM main.contended WHERE v = {next(others)}")  # commits first

        with pytest.raises(LakeConflictError, match="conflicted with other writers 3 times"):
            retry_on_conflict(conn, body, what="test write", attempts=3, base_delay_s=0.001)


def test_maintenance_job_refuses_a_duckdb_file(instance, tmp_path) -> None:
    result = lake_maintenance_job.execute_in_process(
        instance=instance,
        resources={"duckdb": PgyDuckDBResource(database=str(tmp_path / "x.duckdb"))},
        raise_on_error=False,
    )
    assert not result.success
