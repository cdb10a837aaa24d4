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


def test_date_partitions_start_at_the_first_snapshot_day(tmp_path):
    from datetime import timedelta

    import duckdb

    from pgy_pipeline.orchestration.assets import NOTE_PAGES_KEY
    from pgy_pipeline.orchestration.partitions import SNAPSHOT_START_DATE, today_shanghai
    from pgy_pipeline.warehouse.replica import replica_path
    from pgy_pipeline.warehouse.schema import ensure_schema

    database = str(tmp_path / "pgy.duckdb")
    today = today_shanghai()

    def first_date(env: dict[str, str]) -> str:
        graph = build_defs(Settings.from_env({"PGY_DUCKDB_PATH": database, **env})).resolve_asset_graph()
        dates = graph.get(NOTE_PAGES_KEY).partitions_def.get_partitions_def_for_dimension("date")
        return dates.get_first_partition_key()

    assert first_date({}) == today.isoformat()  # nothing stored yet: the UI offers today only
    with duckdb.connect(str(replica_path(database))) as conn:
        ensure_schema(conn)
        conn.execute(
            "INSERT INTO raw.pages (creator_id, snapshot_date, page_number, request_params, fetched_at,"
            " attempts, code, item_count, scan, envelope, list_split, items_before, params_trimmed)"
            " VALUES ('c', ?, 1, '{}', now()::TIMESTAMP, 1, 0, 0, 'full', '{}', false, 0, false)",
            [today - timedelta(days=12)],
        )
    assert first_date({}) == (today - timedelta(days=12)).isoformat()  # the earliest stored snapshot
    assert first_date({"PGY_FIRST_SNAPSHOT_DATE": SNAPSHOT_START_DATE}) == SNAPSHOT_START_DATE
    with pytest.raises(ValueError, match="PGY_FIRST_SNAPSHOT_DATE='tomorrow' is not a YYYY-MM-DD date"):
        Settings.from_env({"PGY_DUCKDB_PATH": database, "PGY_FIRST_SNAPSHOT_DATE": "tomorrow"})
    with pytest.raises(ValueError, match="must be between 2026-01-01 and today"):
        Settings.from_env({"PGY_DUCKDB_PATH": database, "PGY_FIRST_SNAPSHOT_DATE": "2025-06-01"})


def test_a_range_run_created_where_the_definitions_are_built_plans_each_asset_once(
    monkeypatch, instance, simulator, api, duckdb_resource
):
    """One "materialization planned" event per asset for a range run, not one per partition: the
    process that builds the definitions and creates the run needs no setting of its own."""
    from dagster import DagsterEventType

    from pgy_pipeline.orchestration.dagster_internals import PLANNED_EVENTS_VAR
    from pgy_pipeline_tests.conftest import range_tags, setup_creators

    monkeypatch.delenv(PLANNED_EVENTS_VAR, raising=False)
    ids = setup_creators(instance, simulator, "planned", [2, 1, 3])
    built = build_defs(
        Settings.from_env({"PGY_DUCKDB_PATH": duckdb_resource.database, "PGY_PUGONGYING_FIGURES": "off"}),
        pgy_api=api,
        duckdb=duckdb_resource,
    )
    result = built.resolve_job_def("snapshot_job").execute_in_process(instance=instance, tags=range_tags(ids))
    assert result.success
    planned = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    ]
    assert len(planned) == 3, [p.asset_key for p in planned]  # raw pages, notes, metrics
    assert all(p.partition is None and len(p.partitions_subset) == len(ids) for p in planned)


def test_the_webserver_and_daemon_get_the_planned_events_setting_where_they_start():
    """They create runs (the UI's Materialize; schedule, sensors, backfills) without importing the
    definitions, so ``build_defs`` cannot set it for them: scripts/dev.sh and the chart's values do."""
    from pathlib import Path

    import yaml

    from pgy_pipeline.orchestration.dagster_internals import PLANNED_EVENTS_VAR

    root = Path(__file__).resolve().parent.parent
    assert (
        f'export {PLANNED_EVENTS_VAR}="${{{PLANNED_EVENTS_VAR}:-1}}"' in (root / "scripts/dev.sh").read_text()
    )
    values = yaml.safe_load((root / "deploy/k8s/values.yaml").read_text(encoding="utf-8"))
    for pod in ("dagsterWebserver", "dagsterDaemon"):
        assert {"name": PLANNED_EVENTS_VAR, "value": "1"} in values[pod]["env"], pod


def test_the_snapshot_assets_are_declared_once_and_the_jobs_and_the_simulated_flag_follow():
    from pgy_pipeline.orchestration.asset_keys import SNAPSHOT_ASSETS, snapshot_keys
    from pgy_pipeline.orchestration.resources import NO_TOKEN_WARNING

    declared = [a.key for a in SNAPSHOT_ASSETS]
    assert declared == snapshot_keys()
    assert [k.to_user_string() for k in snapshot_keys(calls_api=True)] == [
        "raw/note_pages",
        "raw/pugongying_note_rates",
    ]
    opt_in = {a.key for a in SNAPSHOT_ASSETS if a.opt_in}
    assert {k.to_user_string() for k in opt_in} == {
        "raw/pugongying_note_rates",
        "analytics/pugongying_note_rates",
    }
    for layout, figures in (("creator", "daily"), ("cohort", "off"), ("creator", "weekly")):
        env = {"PGY_PARTITIONING": layout, "PGY_PUGONGYING_FIGURES": figures}
        built = build_defs(Settings.from_env(env))
        graph = built.resolve_asset_graph()
        repo = built.get_repository_def()
        wanted = set(declared) - (opt_in if figures == "off" else set())
        assert set(repo.get_job("snapshot_job").asset_layer.executable_asset_keys) == wanted, env
        assert set(repo.get_job("analytics_rebuild_job").asset_layer.executable_asset_keys) == wanted & set(
            snapshot_keys(calls_api=False)
        ), env
        for key in declared:
            assert (graph.get(key).description or "").startswith(NO_TOKEN_WARNING), key


def test_pugongying_figures_default_to_on_in_the_demo_and_off_on_real_data_and_a_bad_value_is_named():
    assert Settings.from_env({}).pgy_api.pugongying_figures == "daily"
    assert Settings.from_env({"JUSTONEAPI_TOKEN": "t"}).pgy_api.pugongying_figures == "off"
    with pytest.raises(ValueError, match="PGY_PUGONGYING_FIGURES"):
        Settings.from_env({"PGY_PUGONGYING_FIGURES": "hourly"})


def test_a_declared_snapshot_asset_without_a_step_is_refused(monkeypatch):
    from dagster import AssetKey

    from pgy_pipeline.orchestration import assets
    from pgy_pipeline.orchestration.asset_keys import SNAPSHOT_ASSETS, SnapshotAsset

    extra = SnapshotAsset(AssetKey(["analytics", "new"]), "analytics.notes", frozenset({"sql"}), "New.")
    monkeypatch.setattr(assets, "SNAPSHOT_ASSETS", (*SNAPSHOT_ASSETS, extra))
    with pytest.raises(LookupError, match="analytics/new"):
        assets.build_snapshot_assets()
    monkeypatch.setitem(assets.STEPS, extra.key, assets.STEPS[SNAPSHOT_ASSETS[1].key])
    assert [a.key for a in assets.build_snapshot_assets()][-1] == extra.key
