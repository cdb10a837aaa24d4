"""The team profile (deploy/dagster.postgres.yaml) against a real PostgreSQL server.

Needs ``PGY_TEST_POSTGRES_URL`` (a server where the user may create databases): scripts/test.sh sets
it when PostgreSQL's binaries are installed, by starting a throwaway server. Each test gets a fresh
database on that server, dropped afterwards. Without a server the tests skip (under CI they fail).
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, DagsterInstance, DagsterRunStatus

from pgy_pipeline import clock
from pgy_pipeline.errors import AuthError, QuotaExceededError
from pgy_pipeline.orchestration.guard import clear_guard, read_guard, trip_guard
from pgy_pipeline.orchestration.partitions import today_shanghai
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.conftest import creator_ids, fast_api, run_pipeline
from pgy_pipeline_tests.suite_checks import postgres_url

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILE = REPO_ROOT / "deploy" / "dagster.postgres.yaml"
ASSET_KEYS = [
    AssetKey(["raw", "note_pages"]),
    AssetKey(["analytics", "notes"]),
    AssetKey(["analytics", "creator_engagement_metrics"]),
]


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``, with the psycopg2 driver named explicitly.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, which dagster-postgres does not
    install (it ships psycopg2-binary), so DAGSTER_PG_URL names the driver; see docs/production.md.
    """
    parts = urlsplit(url)
    scheme = "postgresql+psycopg2" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit(parts._replace(scheme=scheme, path=f"/{name}"))


def _libpq_url(url: str) -> str:
    """The same URL for psycopg2.connect, which knows no SQLAlchemy driver suffix."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+")[0]))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty database on the test server; dropped at the end."""
    server_url = postgres_url("the production-profile test")
    import psycopg2

    name = f"pgy_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(_libpq_url(server_url))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(server_url, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [name],
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture
def pg_instance(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """``DagsterInstance.get()`` on a DAGSTER_HOME holding the team profile, DAGSTER_PG_URL set."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROFILE, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url)
    # As a context manager, as Dagster's own entry points use it: entering also makes this instance's
    # state storage the current one for definitions loaded meanwhile (materialize() loads some).
    with DagsterInstance.get() as instance:
        yield instance


def _sql_count(url: str, sql: str, params: list) -> int:
    import psycopg2

    conn = psycopg2.connect(_libpq_url(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_profile_matches_single_machine_concurrency() -> None:
    """The team profile keeps the run queue of dagster.yaml, no pools, and no secret in the file."""
    profile = yaml.safe_load(PROFILE.read_text())
    local = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    assert profile["concurrency"] == local["concurrency"] == {"runs": {"max_concurrent_runs": 4}}
    assert profile["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}


def test_instance_storage_is_postgres(pg_instance: DagsterInstance) -> None:
    for storage in (pg_instance.run_storage, pg_instance.event_log_storage, pg_instance.schedule_storage):
        assert "Postgres" in type(storage).__name__, type(storage)
    assert pg_instance.event_log_storage.supports_global_concurrency_limits
    assert type(pg_instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    concurrency = pg_instance.get_concurrency_config()  # what the run queue daemon reads
    assert concurrency.run_queue_config.max_concurrent_runs == 4
    # no Dagster pools (a killed run's slot would block later runs): step locks serialize instead,
    # PostgreSQL advisory locks on this same server (DAGSTER_PG_URL), see test_locks.py
    assert concurrency.pool_config.default_pool_limit is None


def test_range_run_recorded_in_postgres(
    pg_instance: DagsterInstance, pg_url: str, simulator: Simulator, tmp_path: Path
) -> None:
    creators = creator_ids(2, prefix="postgres")
    for creator_id, n in zip(creators, [9, 3], strict=True):
        simulator.set_note_count(creator_id, n)
    pg_instance.add_dynamic_partitions("creators", creators)
    assert (
        _sql_count(
            pg_url, "SELECT count(*) FROM dynamic_partitions WHERE partitions_def_name = %s", ["creators"]
        )
        == 2
    )

    db_path = str(tmp_path / "pgy.duckdb")
    result = run_pipeline(
        pg_instance,
        fast_api(simulator),
        # the step locks on the same server, as Settings.from_env does with DAGSTER_PG_URL set
        PgyDuckDBResource(database=db_path, lock_wait_s=5.0, lock_url=pg_url),
        creators,
    )
    assert result.success
    day = today_shanghai().isoformat()
    keys = {f"{c}|{day}" for c in creators}

    # the instance reads the run and its materializations back from PostgreSQL
    run = pg_instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == DagsterRunStatus.SUCCESS
    for asset_key in ASSET_KEYS:
        records = pg_instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, asset_partitions=sorted(keys)), limit=10
        ).records
        assert {r.partition_key for r in records} == keys, asset_key
        assert {r.run_id for r in records} == {result.run_id}

    # ... and they are rows in its tables, seen through a separate connection
    assert (
        _sql_count(
            pg_url, "SELECT count(*) FROM runs WHERE run_id = %s AND status = 'SUCCESS'", [result.run_id]
        )
        == 1
    )
    assert _sql_count(
        pg_url,
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        [result.run_id],
    ) == len(ASSET_KEYS) * len(creators)

    # the data itself went to DuckDB
    with duckdb.connect(db_path, read_only=True) as conn:
        notes = dict(
            conn.execute(
                "SELECT creator_id, count(*) FROM analytics.notes WHERE snapshot_date = ? GROUP BY 1", [day]
            ).fetchall()
        )
        metrics = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT creator_id FROM analytics.creator_engagement_metrics WHERE snapshot_date = ?",
                [day],
            ).fetchall()
        }
    assert notes == {c: len(simulator.notes_for(c)) for c in creators}
    assert metrics == set(creators)
    assert simulator.call_count() == 2 + 1  # 9 notes: 2 pages of 8; 3 notes: 1 page
    # the steps took their locks in PostgreSQL (the holders' table exists) and gave them all back
    assert _sql_count(pg_url, "SELECT count(*) FROM pgy_step_locks", []) == 0
    assert not Path(db_path + ".locks").exists()


def test_cohort_run_recorded_in_postgres(
    pg_instance: DagsterInstance, pg_url: str, simulator: Simulator, tmp_path: Path
) -> None:
    """The cohort layout on PostgreSQL storage: the schedule's one run, one materialization per cohort."""
    from dagster import build_schedule_context

    from pgy_pipeline.definitions import Settings, build_defs
    from pgy_pipeline.orchestration.partitions import COHORTS, SHANGHAI, cohort_of
    from pgy_pipeline.orchestration.registry import CreatorRegistryResource

    creators = creator_ids(6, prefix="pgcohort")
    for n, creator_id in enumerate(creators):
        simulator.set_note_count(creator_id, 3 + n)
    registry = tmp_path / "creators.yaml"
    registry.write_text("creators:\n" + "".join(f"  - id: {c}\n" for c in creators), encoding="utf-8")
    db_path = str(tmp_path / "pgy.duckdb")
    defs = build_defs(
        Settings(
            pgy_api=fast_api(simulator),
            duckdb=PgyDuckDBResource(database=db_path, lock_wait_s=5.0, lock_url=pg_url),
            creator_registry=CreatorRegistryResource(path=str(registry)),
            partitioning="cohort",
        )
    )
    with build_schedule_context(
        instance=pg_instance,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=clock.now().astimezone(SHANGHAI),
        resources={"creator_registry": defs.resources["creator_registry"]},
    ) as context:
        [request] = defs.get_schedule_def("daily_snapshot_schedule").evaluate_tick(context).run_requests
    result = defs.resolve_job_def("snapshot_job").execute_in_process(
        instance=pg_instance, tags=request.tags, raise_on_error=False
    )
    assert result.success
    cohorts = sorted({cohort_of(c) for c in creators})
    in_range = COHORTS[COHORTS.index(cohorts[0]) : COHORTS.index(cohorts[-1]) + 1]
    assert _sql_count(
        pg_url,
        "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        [result.run_id],
    ) == len(ASSET_KEYS) * len(in_range)
    with duckdb.connect(db_path, read_only=True) as conn:
        notes = dict(conn.execute("SELECT creator_id, count(*) FROM analytics.notes GROUP BY 1").fetchall())
    assert notes == {c: 3 + n for n, c in enumerate(creators)}


def test_settings_take_the_lock_url_from_the_environment() -> None:
    from dagster import EnvVar

    from pgy_pipeline.definitions import Settings

    assert Settings.from_env({}).duckdb.lock_url == ""
    team = Settings.from_env({"DAGSTER_PG_URL": "postgresql+psycopg2://u:secret@h/db"}).duckdb
    assert team.lock_url == EnvVar("DAGSTER_PG_URL")  # resolved in the run, never shown
    own = Settings.from_env({"DAGSTER_PG_URL": "x", "PGY_LOCK_URL": "y", "PGY_LOCK_WAIT_S": "30"}).duckdb
    assert own.lock_url == EnvVar("PGY_LOCK_URL") and own.step_lock_wait_s == 30


def test_guard_round_trip_on_postgres(pg_instance: DagsterInstance, pg_url: str) -> None:
    assert read_guard(pg_instance) is None
    today = today_shanghai()

    state = trip_guard(pg_instance, QuotaExceededError("Daily Quota Exceeded", code=303), today=today)
    assert state.until is not None
    # another instance (another process, in production) sees it: it lives in PostgreSQL
    with DagsterInstance.get() as other:
        assert read_guard(other, today=today) == state
        # the quota guard lifts by itself the next day
        assert read_guard(other, today=today + timedelta(days=1)) is None
    assert (
        _sql_count(
            pg_url, "SELECT count(*) FROM kvs WHERE key = %s AND value <> ''", ["pgy_pipeline/api_guard"]
        )
        == 1
    )

    clear_guard(pg_instance)
    assert read_guard(pg_instance) is None

    state = trip_guard(pg_instance, AuthError("Invalid or Inactive Token", code=100), today=today)
    assert state.until is None
    # an account guard stays until an operator clears it
    assert read_guard(pg_instance, today=today + timedelta(days=1)) == state
    clear_guard(pg_instance)
    assert read_guard(pg_instance) is None
