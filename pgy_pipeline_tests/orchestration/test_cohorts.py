"""The cohort layout (PGY_PARTITIONING=cohort): cohorts x dates in Dagster, creators inside each step.

Real parts throughout: the simulator over loopback HTTP, a DuckDB file, a temporary Dagster instance,
and the definitions users get from ``build_defs``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterEventType, Definitions, build_schedule_context, build_sensor_context

from pgy_pipeline import clock
from pgy_pipeline.definitions import Settings, build_defs
from pgy_pipeline.orchestration.assets import METRICS_KEY, NOTE_PAGES_KEY, NOTES_KEY, UNCHANGED
from pgy_pipeline.orchestration.partitions import (
    COHORT_COUNT,
    COHORTS,
    SHANGHAI,
    cohort_note_partitions,
    cohort_of,
    cohort_partition_key,
    today_shanghai,
)
from pgy_pipeline.orchestration.registry import CreatorRegistryResource
from pgy_pipeline_tests.conftest import creator_ids, run_pipeline, step_failure_messages

TODAY = today_shanghai()
SNAPSHOT_KEYS = (NOTE_PAGES_KEY, NOTES_KEY, METRICS_KEY)


def write_registry(path: Path, ids: list[str], inactive: frozenset[str] = frozenset()) -> None:
    rows = "".join(
        f"  - id: {c}\n    name: 名字{n}\n    active: {'false' if c in inactive else 'true'}\n"
        for n, c in enumerate(ids)
    )
    path.write_text("creators:\n" + rows, encoding="utf-8")


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "creators.yaml"


@pytest.fixture
def cohort_defs(api, duckdb_resource, registry_path) -> Definitions:
    return build_defs(
        Settings(
            pgy_api=api,
            duckdb=duckdb_resource,
            creator_registry=CreatorRegistryResource(path=str(registry_path)),
            partitioning="cohort",
        )
    )


def schedule_requests(instance, defs: Definitions, when: datetime | None = None):
    schedule = defs.get_schedule_def("daily_snapshot_schedule")
    with build_schedule_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=when or clock.now().astimezone(SHANGHAI),
        resources={"creator_registry": defs.resources["creator_registry"]},
    ) as context:
        return schedule.evaluate_tick(context)


def sensor_result(instance, defs: Definitions, name: str, cursor: str | None = None):
    sensor = defs.get_sensor_def(name)
    with build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"creator_registry": defs.resources["creator_registry"]},
    ) as context:
        return sensor.evaluate_tick(context)


def launch(defs: Definitions, instance, request, job_name: str = "snapshot_job"):
    job = defs.resolve_job_def(request.job_name or job_name)
    return job.execute_in_process(
        instance=instance, tags=request.tags, run_config=request.run_config or None, raise_on_error=False
    )


def cohort_range(cohorts: list[str], day=TODAY) -> dict[str, str]:
    ordered = [c for c in COHORTS if c in set(cohorts)]
    return {
        "dagster/asset_partition_range_start": f"{ordered[0]}|{day}",
        "dagster/asset_partition_range_end": f"{ordered[-1]}|{day}",
    }


def materializations(instance, key: AssetKey, run_id: str):
    return [
        e.dagster_event.event_specific_data.materialization
        for e in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        if e.dagster_event.asset_key == key
    ]


def test_cohorts_are_stable_hashes_and_stay_within_dagster_guidance():
    ids = creator_ids(2000, prefix="cohort")
    spread = Counter(cohort_of(c) for c in ids)
    assert set(spread) == set(COHORTS) and len(COHORTS) == COHORT_COUNT == 64
    assert max(spread.values()) < 3 * min(spread.values())  # no cohort holds most creators
    # a creator's cohort depends on its id alone: the same in any roster, any process
    assert [cohort_of(c) for c in ids[:50]] == [cohort_of(c) for c in reversed(ids[:50])][::-1]
    assert cohort_of("5ff0e6410000000001008400") == cohort_of("5ff0e6410000000001008400")
    # two years of dates: 64 x 730 partitions per asset, under Dagster's advice of 100,000
    assert COHORT_COUNT * 730 < 100_000
    assert cohort_note_partitions.get_partition_keys()[0] == cohort_partition_key("c00", "2026-01-01")


def test_settings_refuse_an_unknown_partitioning(api, duckdb_resource, registry_path):
    with pytest.raises(ValueError, match="PGY_PARTITIONING='creators' is not a partitioning"):
        Settings.from_env({"PGY_PARTITIONING": "creators"})
    env = Settings.from_env({"PGY_PARTITIONING": "Cohort"})
    assert env.partitioning == "cohort"


def test_daily_schedule_is_one_run_over_cohorts_and_writes_one_materialization_per_cohort(
    instance, cohort_defs, registry_path, simulator, duckdb_resource
):
    ids = creator_ids(12, prefix="cohortday")
    inactive = frozenset(ids[-2:])
    write_registry(registry_path, ids, inactive)
    active = [c for c in ids if c not in inactive]
    for n, c in enumerate(ids):
        simulator.set_note_count(c, 5 + n)

    [request] = schedule_requests(instance, cohort_defs).run_requests
    wanted = sorted({cohort_of(c) for c in active})
    assert request.tags["dagster/asset_partition_range_start"] == f"{wanted[0]}|{TODAY}"
    assert request.tags["dagster/asset_partition_range_end"] == f"{wanted[-1]}|{TODAY}"
    assert "10 creators" in request.tags["pgy/creators"]
    result = launch(cohort_defs, instance, request)
    assert result.success, step_failure_messages(result)

    with duckdb_resource.get_connection() as conn:
        stored = dict(
            conn.execute(
                "SELECT creator_id, count(*) FROM analytics.notes WHERE snapshot_date = ? GROUP BY 1",
                [TODAY],
            ).fetchall()
        )
        metric_creators = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT creator_id FROM analytics.creator_engagement_metrics WHERE snapshot_date = ?",
                [TODAY],
            ).fetchall()
        }
    # every active creator, all its notes, and no inactive one
    assert stored == {c: 5 + ids.index(c) for c in active}
    assert metric_creators == set(active)

    # Dagster's bookkeeping is per cohort: one materialization per cohort of the range, per asset
    first, last = COHORTS.index(wanted[0]), COHORTS.index(wanted[-1])
    in_range = COHORTS[first : last + 1]
    for key in SNAPSHOT_KEYS:
        events = materializations(instance, key, result.run_id)
        assert sorted(str(m.partition) for m in events) == sorted(f"{c}|{TODAY}" for c in in_range)
    raw = {str(m.partition): m.metadata for m in materializations(instance, NOTE_PAGES_KEY, result.run_id)}
    per_cohort = Counter(cohort_of(c) for c in active)
    for cohort in in_range:
        figures = raw[f"{cohort}|{TODAY}"]
        assert figures["creators"].value == per_cohort.get(cohort, 0)
        assert figures["status"].value == ("written" if cohort in per_cohort else UNCHANGED)
    notes_rows = sum(
        m.metadata["dagster/row_count"].value
        for m in materializations(instance, NOTES_KEY, result.run_id)
        if "dagster/row_count" in m.metadata
    )
    assert notes_rows == sum(stored.values())

    # the same day again: every creator is skipped inside its cohort, not one call
    calls = simulator.call_count()
    again = launch(cohort_defs, instance, request)
    assert again.success and simulator.call_count() == calls
    statuses = {m.metadata["status"].value for m in materializations(instance, NOTE_PAGES_KEY, again.run_id)}
    assert statuses == {UNCHANGED}
    # ...and the follow-up sensor sees nothing to rebuild
    followup = sensor_result(instance, cohort_defs, "raw_pages_followup_sensor")
    assert not followup.run_requests


def test_registry_sensor_snapshots_only_new_creators_within_their_cohorts(
    instance, cohort_defs, registry_path, simulator
):
    ids = creator_ids(6, prefix="cohortnew")
    write_registry(registry_path, ids[:4])
    first = sensor_result(instance, cohort_defs, "creator_registry_sensor")
    assert not first.dynamic_partitions_requests  # cohorts are static: no partition per creator
    snap = next(r for r in first.run_requests if r.job_name == "snapshot_job")
    assert snap.run_config["ops"]["raw__note_pages"]["config"]["creators"] == ids[:4]
    for request in first.run_requests:
        assert launch(cohort_defs, instance, request).success

    # two creators join: only they are fetched, though their cohorts' range holds the others too
    write_registry(registry_path, ids)
    calls_before = {c: simulator.call_count(c) for c in ids}
    second = sensor_result(instance, cohort_defs, "creator_registry_sensor", cursor=first.cursor)
    snap = next(r for r in second.run_requests if r.job_name == "snapshot_job")
    assert snap.run_config["ops"]["raw__note_pages"]["config"]["creators"] == ids[4:]
    assert snap.tags == {**snap.tags, **cohort_range([cohort_of(c) for c in ids[4:]])}
    assert launch(cohort_defs, instance, snap).success
    assert all(simulator.call_count(c) == calls_before[c] for c in ids[:4])
    assert all(simulator.call_count(c) > calls_before[c] for c in ids[4:])
    # nothing new: no snapshot run
    third = sensor_result(instance, cohort_defs, "creator_registry_sensor", cursor=second.cursor)
    assert not any(r.job_name == "snapshot_job" for r in third.run_requests)


def test_bad_run_config_is_refused_before_any_call(instance, cohort_defs, registry_path, simulator):
    ids = creator_ids(3, prefix="cohortbad")
    write_registry(registry_path, ids[:2])
    job = cohort_defs.resolve_job_def("snapshot_job")
    other_cohort = next(c for c in COHORTS if c != cohort_of(ids[0]))
    cases = [
        ({"creators": [ids[2]]}, [cohort_of(ids[2])], "not in the registry"),
        ({"creators": ["not-an-id"]}, [cohort_of(ids[0])], "invalid creator id"),
        ({"creators": [ids[0]]}, [other_cohort], f"outside this run's cohorts ({other_cohort})"),
    ]
    for config, cohorts, message in cases:
        result = job.execute_in_process(
            instance=instance,
            tags=cohort_range(cohorts),
            run_config={"ops": {"raw__note_pages": {"config": config}}},
            raise_on_error=False,
        )
        assert not result.success
        assert message in "\n".join(step_failure_messages(result))
    assert simulator.call_count() == 0


def test_a_failed_creator_leaves_its_cohort_unmaterialized_and_the_rerun_fetches_only_it(
    instance, cohort_defs, registry_path, simulator
):
    ids = creator_ids(40, prefix="cohortfail")
    # two creators in different cohorts, one of which fails
    bad = ids[0]
    good = next(c for c in ids if cohort_of(c) != cohort_of(bad))
    write_registry(registry_path, [bad, good])
    simulator.add_fault("code", user_id=bad, code=404, times=None)
    tags = cohort_range([cohort_of(bad), cohort_of(good)])
    job = cohort_defs.resolve_job_def("snapshot_job")
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert not result.success
    raw = {str(m.partition) for m in materializations(instance, NOTE_PAGES_KEY, result.run_id)}
    assert f"{cohort_of(good)}|{TODAY}" in raw and f"{cohort_of(bad)}|{TODAY}" not in raw

    simulator.clear_faults()
    good_calls = simulator.call_count(good)
    rerun = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert rerun.success, step_failure_messages(rerun)
    assert simulator.call_count(good) == good_calls  # stored: skipped inside its cohort
    assert simulator.call_count(bad) > 0


def test_switching_from_creator_partitions_keeps_history_and_fetches_nothing_again(
    instance, api, duckdb_resource, cohort_defs, registry_path, simulator
):
    ids = creator_ids(5, prefix="cohortswitch")
    write_registry(registry_path, ids)
    instance.add_dynamic_partitions("creators", ids)
    assert run_pipeline(instance, api, duckdb_resource, ids).success  # creator x date layout
    with duckdb_resource.get_connection() as conn:
        before = conn.execute("SELECT count(*) FROM analytics.notes").fetchone()[0]
    calls = simulator.call_count()

    # the cohort layout on the same warehouse and instance: today's snapshot is already there
    [request] = schedule_requests(instance, cohort_defs).run_requests
    result = launch(cohort_defs, instance, request)
    assert result.success, step_failure_messages(result)
    assert simulator.call_count() == calls
    # the registry sensor knows these creators from their old partitions: no first snapshot again
    tick = sensor_result(instance, cohort_defs, "creator_registry_sensor")
    assert not any(r.job_name == "snapshot_job" for r in tick.run_requests)
    with duckdb_resource.get_connection() as conn:
        assert conn.execute("SELECT count(*) FROM analytics.notes").fetchone()[0] == before

    # a past date rebuilds from stored raw pages by cohort, with no call
    yesterday = TODAY - timedelta(days=1)
    with duckdb_resource.get_connection() as conn:
        for stored in ("raw.pages", "raw.page_items"):
            conn.execute(
                f"INSERT INTO {stored} SELECT * REPLACE (CAST(? AS DATE) AS snapshot_date) "
                f"FROM {stored} WHERE snapshot_date = ?",
                [yesterday, TODAY],
            )
    rebuild = cohort_defs.resolve_job_def("analytics_rebuild_job").execute_in_process(
        instance=instance,
        tags=cohort_range([cohort_of(c) for c in ids], yesterday),
        raise_on_error=False,
    )
    assert rebuild.success, step_failure_messages(rebuild)
    assert simulator.call_count() == calls
    with duckdb_resource.get_connection() as conn:
        past = conn.execute(
            "SELECT count(*) FROM analytics.notes WHERE snapshot_date = ?", [yesterday]
        ).fetchone()
    assert past[0] == before


def test_creator_layout_refuses_cohort_run_config(instance, api, duckdb_resource, simulator):
    ids = creator_ids(1, prefix="cohortcfg")
    instance.add_dynamic_partitions("creators", ids)
    result = run_pipeline(
        instance,
        api,
        duckdb_resource,
        ids,
        run_config={"ops": {"raw__note_pages": {"config": {"skip_creators": ids}}}},
    )
    assert not result.success
    assert "apply only with PGY_PARTITIONING=cohort" in "\n".join(step_failure_messages(result))
    assert simulator.call_count() == 0
