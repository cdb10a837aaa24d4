"""The one entry point: settings from the environment and the graph built from them."""

from __future__ import annotations

import pytest

from pgy_pipeline.definitions import Settings, build_defs, defs


def test_the_default_graph_loads_with_every_job_schedule_and_sensor():
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {
        "snapshot_job",
        "analytics_rebuild_job",
        "creator_registry_job",
        "api_guard_reset_job",
    }
    assert {s.name for s in repo.schedule_defs} == {"daily_snapshot_schedule"}
    assert {s.name for s in repo.sensor_defs} >= {
        "creator_registry_sensor",
        "raw_pages_followup_sensor",
        "api_failure_sensor",
    }


def test_settings_come_from_the_environment_and_the_factory_uses_them(tmp_path):
    settings = Settings.from_env(
        {
            "PGY_DUCKDB_PATH": str(tmp_path / "x.duckdb"),
            "JUSTONEAPI_MAX_CONCURRENCY": "3",
            "JUSTONEAPI_MAX_RPS": "1.5",
            "PGY_SNAPSHOT_CRON": "30 7 * * *",
        }
    )
    assert settings.simulated and settings.pgy_api.max_concurrency == 3 and settings.pgy_api.max_rps == 1.5
    built = build_defs(settings).get_repository_def()
    assert built.get_schedule_def("daily_snapshot_schedule").cron_schedule == "30 7 * * *"


@pytest.mark.parametrize(
    "name, value, text",
    [
        ("JUSTONEAPI_MAX_CONCURRENCY", "2.5", "JUSTONEAPI_MAX_CONCURRENCY='2.5' is not a valid int"),
        ("JUSTONEAPI_TIMEOUT_S", "sixty", "JUSTONEAPI_TIMEOUT_S='sixty' is not a valid float"),
        ("JUSTONEAPI_MAX_RPS", "0", "must be positive"),
    ],
)
def test_a_bad_setting_names_its_variable(name, value, text):
    with pytest.raises(ValueError, match=text):
        Settings.from_env({name: value})
