"""The lake profile's configuration, in any environment: selection by PGY_DUCKDB_PATH alone, the
jobs it adds, secrets kept out of messages, and a clear refusal where DuckLake cannot run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgy_pipeline.definitions import Settings, build_defs
from pgy_pipeline.errors import LakeUnavailableError
from pgy_pipeline.warehouse.lake import LakeSettings, display_name, extension_directory
from pgy_pipeline.warehouse.schema import lake_sql
from pgy_pipeline.warehouse.storage import connect

LAKE = "ducklake:postgres:dbname=pgy host=db.internal user=pgy password=hunter2-secret"


def test_the_lake_is_one_variable_away_and_adds_its_maintenance() -> None:
    env = {
        "PGY_DUCKDB_PATH": LAKE,
        "PGY_LAKE_DATA_PATH": "s3://bucket/pgy",
        "PGY_S3_ENDPOINT": "s3.local:9000",
    }
    settings = Settings.from_env(env)
    assert settings.lake
    defs = build_defs(settings)
    assert defs.get_job_def("lake_maintenance_job") is not None
    assert defs.get_schedule_def("lake_maintenance_schedule").cron_schedule == "30 4 * * *"

    plain = Settings.from_env({"PGY_DUCKDB_PATH": "/tmp/x.duckdb"})
    assert not plain.lake
    names = [s.name for s in build_defs(plain).schedules or []]
    assert "lake_maintenance_schedule" not in names


def test_single_writer_is_false_only_on_the_lake() -> None:
    from pgy_pipeline.orchestration.resources import PgyDuckDBResource

    assert PgyDuckDBResource(database="/tmp/x.duckdb").single_writer
    lake = PgyDuckDBResource(database=LAKE, lake_data_path="/tmp/lake")
    assert not lake.single_writer
    assert lake.lake_settings.data_path == "/tmp/lake"


def test_a_lakes_spool_and_lock_files_are_not_named_after_its_conninfo() -> None:
    from pgy_pipeline.orchestration.resources import PgyDuckDBResource

    lake = PgyDuckDBResource(database=LAKE, lake_data_path="/tmp/lake")
    assert lake.spool_path == Path("data") / "spool"
    assert lake.step_locks.directory == Path("data") / "locks"
    file = PgyDuckDBResource(database="/tmp/x.duckdb")
    assert file.step_locks.directory == Path("/tmp/x.duckdb.locks")


def test_a_lake_without_a_data_path_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="PGY_LAKE_DATA_PATH"):
        Settings.from_env({"PGY_DUCKDB_PATH": LAKE})


def test_passwords_never_reach_a_message() -> None:
    assert "hunter2" not in display_name(LAKE)
    assert "hunter2" not in display_name("postgresql://pgy:hunter2@db/pgy")
    assert "hunter2" not in repr(LakeSettings(s3_secret_access_key="hunter2"))
    assert "dbname=pgy" in display_name(LAKE)


def test_lake_sql_drops_primary_keys_only() -> None:
    sql = 'CREATE TABLE t (a VARCHAR PRIMARY KEY, b INT NOT NULL);\nCREATE TABLE u ("v" INT, PRIMARY KEY ("v"));'
    assert lake_sql(sql) == 'CREATE TABLE t (a VARCHAR, b INT NOT NULL);\nCREATE TABLE u ("v" INT);'


def test_without_the_extension_wheels_the_lake_is_refused_before_anything_else(tmp_path) -> None:
    try:
        extension_directory()
    except LakeUnavailableError:
        pass
    else:
        pytest.skip("this environment has the DuckLake extension (the lake tests cover it)")
    with pytest.raises(LakeUnavailableError, match=r"\.venv-lake"), connect(LAKE, lake=LakeSettings()):
        pass
