"""Sensors, schedule and guard, evaluated against a real temporary instance and the repository."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    DagsterEventType,
    Definitions,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
)

from pgy_pipeline import clock
from pgy_pipeline.definitions import Settings, build_defs
from pgy_pipeline.errors import InsufficientBalanceError, QuotaExceededError
from pgy_pipeline.orchestration.assets import creator_engagement_metrics, note_pages, notes
from pgy_pipeline.orchestration.automation import (
    api_failure_sensor,
    api_guard_reset_job,
    build_daily_snapshot_schedule,
    contiguous_blocks,
    creator_registry_sensor,
    failure_cause,
    raw_pages_followup_sensor,
)
from pgy_pipeline.orchestration.empty_streaks import NO_DATA_MESSAGE, read_streaks, record_snapshots
from pgy_pipeline.orchestration.guard import read_guard, trip_guard
from pgy_pipeline.orchestration.partitions import SHANGHAI, partition_key, today_shanghai
from pgy_pipeline.orchestration.registry import CreatorRegistryResource, parse_registry
from pgy_pipeline.simulator import VENDOR_CODES
from pgy_pipeline_tests.conftest import creator_ids, fast_api, run_pipeline, step_failure_messages

TODAY = today_shanghai()
daily_snapshot_schedule = build_daily_snapshot_schedule()


def write_registry(path: Path, rows: list[str]) -> Path:
    path.write_text("creators:\n" + "".join(rows), encoding="utf-8")
    return path


def row(creator_id: str, name: str = "名字", active: bool = True, tags: str = "[demo]") -> str:
    return f"  - id: {creator_id}\n    name: {name}\n    tags: {tags}\n    active: {str(active).lower()}\n"


@pytest.fixture
def registry_path(tmp_path: Path) -> Path:
    return tmp_path / "creators.yaml"


@pytest.fixture
def defs(api, duckdb_resource, registry_path) -> Definitions:
    return build_defs(
        Settings(
            pgy_api=api,
            duckdb=duckdb_resource,
            creator_registry=CreatorRegistryResource(path=str(registry_path)),
        )
    )


def sensor_tick(sensor, instance, defs, cursor=None):
    # Entered as context managers so their resources and instance hooks are torn down after the tick.
    with build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"creator_registry": defs.resources["creator_registry"]},
    ) as context:
        return sensor.evaluate_tick(context)


def schedule_tick(instance, defs, when: datetime | None = None):
    with build_schedule_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=when or clock.now().astimezone(SHANGHAI),
        resources={"creator_registry": defs.resources["creator_registry"]},
    ) as context:
        return daily_snapshot_schedule.evaluate_tick(context)


def launch(defs, instance, run_request):
    job = defs.resolve_job_def(run_request.job_name or "snapshot_job")
    return job.execute_in_process(instance=instance, tags=run_request.tags, raise_on_error=False)


# -- registry ----------------------------------------------------------------------------------


def test_registry_parser_skips_bad_rows_and_keeps_good_ones():
    good = creator_ids(2)
    reg = parse_registry(
        "creators:\n"
        + row(good[0])
        + row("not-hex!")
        + row(good[0], name="dup")
        + row(good[1], active=False)
        + "  - id: 5ff0e64100000000010084000\n"
        + "  - just a string\n"
        + f"  - id: {creator_ids(3)[2]}\n    active: maybe\n"
    )
    assert [c.creator_id for c in reg.creators] == good
    assert reg.active_ids == [good[0]]
    text = "\n".join(reg.problems)
    assert len(reg.problems) == 5
    assert "row 2" in text and "invalid creator id" in text
    assert "duplicate id" in text and "row 3" in text
    assert "'active' must be true or false" in text


@pytest.mark.parametrize("text", ["creators: [unclosed", "just: a mapping", ""])
def test_registry_file_that_cannot_be_used_changes_nothing(instance, defs, registry_path, text):
    registry_path.write_text(text, encoding="utf-8")
    result = sensor_tick(creator_registry_sensor, instance, defs)
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert "Nothing was changed" in result.skip_message


def test_registry_sensor_adds_new_creators_and_snapshots_them_in_one_run(instance, defs, registry_path):
    ids = creator_ids(4, prefix="reg")
    write_registry(
        registry_path, [row(ids[0]), row(ids[1]), row("bad id"), row(ids[2]), row(ids[3], active=False)]
    )
    result = sensor_tick(creator_registry_sensor, instance, defs)
    [request] = result.dynamic_partitions_requests
    assert list(request.partition_keys) == ids[:3]  # the inactive one is never fetched
    jobs = sorted(r.job_name for r in result.run_requests)
    assert jobs == ["creator_registry_job", "snapshot_job"]
    snap = next(r for r in result.run_requests if r.job_name == "snapshot_job")
    assert snap.tags["dagster/asset_partition_range_start"] == f"{ids[0]}|{TODAY}"
    assert snap.tags["dagster/asset_partition_range_end"] == f"{ids[2]}|{TODAY}"

    # the tick applies; the launched runs land their rows
    instance.add_dynamic_partitions("creators", list(request.partition_keys))
    for run_request in result.run_requests:
        assert launch(defs, instance, run_request).success
    with defs.resources["duckdb"].get_connection() as conn:
        names = conn.execute(
            "SELECT creator_id, display_name, active FROM analytics.creators ORDER BY 1"
        ).fetchall()
        fetched = conn.execute(
            "SELECT DISTINCT creator_id FROM analytics.creator_engagement_metrics"
        ).fetchall()
    assert sorted(n[0] for n in names) == sorted(ids[:4])
    assert {f[0] for f in fetched} == set(ids[:3])

    # unchanged file: nothing more to do
    again = sensor_tick(creator_registry_sensor, instance, defs, cursor=result.cursor)
    assert not again.run_requests and not again.dynamic_partitions_requests
    # a creator removed from the file keeps its partition (its history stays); no run is made for it
    write_registry(registry_path, [row(ids[0]), row(ids[1])])
    removed = sensor_tick(creator_registry_sensor, instance, defs, cursor=result.cursor)
    assert [r.job_name for r in removed.run_requests] == ["creator_registry_job"]
    assert set(ids[:3]) <= set(instance.get_dynamic_partitions("creators"))


def test_registry_sensor_does_not_launch_api_runs_while_guarded(instance, defs, registry_path):
    trip_guard(instance, QuotaExceededError("daily quota exceeded", code=303))
    ids = creator_ids(2, prefix="guarded")
    write_registry(registry_path, [row(i) for i in ids])
    result = sensor_tick(creator_registry_sensor, instance, defs)
    assert [r.job_name for r in result.run_requests] == ["creator_registry_job"]  # no API call in it
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ids


# -- schedule ----------------------------------------------------------------------------------


def test_schedule_makes_one_run_for_all_active_creators_and_it_lands(
    instance, defs, registry_path, simulator
):
    ids = creator_ids(6, prefix="sched")
    write_registry(registry_path, [row(i) for i in ids])
    instance.add_dynamic_partitions("creators", ids)
    requests = schedule_tick(instance, defs).run_requests
    assert len(requests) == 1  # N creators, one run
    assert requests[0].tags["dagster/asset_partition_range_start"] == f"{ids[0]}|{TODAY}"
    assert requests[0].tags["dagster/asset_partition_range_end"] == f"{ids[-1]}|{TODAY}"
    result = launch(defs, instance, requests[0])
    assert result.success
    assert len(instance.get_runs()) == 1
    for key in (note_pages.key, notes.key, creator_engagement_metrics.key):
        assert {partition_key(c, TODAY) for c in ids} <= set(instance.get_materialized_partitions(key))


def test_schedule_splits_only_where_an_inactive_creator_breaks_the_range(instance, defs, registry_path):
    ids = creator_ids(5, prefix="split")
    write_registry(registry_path, [row(i, active=(n != 2)) for n, i in enumerate(ids)])
    instance.add_dynamic_partitions("creators", ids)
    requests = schedule_tick(instance, defs).run_requests
    ranges = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    ]
    assert ranges == [(f"{ids[0]}|{TODAY}", f"{ids[1]}|{TODAY}"), (f"{ids[3]}|{TODAY}", f"{ids[4]}|{TODAY}")]
    assert contiguous_blocks(ids, [ids[4], ids[0]]) == [[ids[0]], [ids[4]]]


def test_schedule_uses_the_shanghai_date_of_its_tick(instance, defs, registry_path):
    ids = creator_ids(1, prefix="tz")
    write_registry(registry_path, [row(ids[0])])
    instance.add_dynamic_partitions("creators", ids)
    # 17:30 UTC on the 1st is 01:30 on the 2nd in Shanghai
    when = datetime(2026, 5, 1, 17, 30, tzinfo=SHANGHAI).astimezone(SHANGHAI.__class__("UTC"))
    [request] = schedule_tick(instance, defs, when=when).run_requests
    assert request.tags["dagster/asset_partition_range_start"].endswith("|2026-05-01")
    when_utc = datetime.fromisoformat("2026-05-01T17:30:00+00:00")
    [request] = schedule_tick(instance, defs, when=when_utc).run_requests
    assert request.tags["dagster/asset_partition_range_start"].endswith("|2026-05-02")


def test_schedule_is_skipped_with_the_reason_while_guarded(instance, defs, registry_path):
    write_registry(registry_path, [row(c) for c in creator_ids(2, prefix="q")])
    instance.add_dynamic_partitions("creators", creator_ids(2, prefix="q"))
    trip_guard(instance, QuotaExceededError("daily quota exceeded: no more calls until tomorrow", code=303))
    result = schedule_tick(instance, defs)
    assert not result.run_requests
    assert "daily quota exceeded" in result.skip_message
    assert "resume on" in result.skip_message


# -- guard -------------------------------------------------------------------------------------


def test_quota_guard_lifts_the_next_day_and_account_guard_needs_an_operator(instance, defs):
    trip_guard(instance, QuotaExceededError("daily quota exceeded", code=303), today=TODAY)
    assert read_guard(instance, today=TODAY) is not None
    assert read_guard(instance, today=TODAY + timedelta(days=1)) is None
    trip_guard(instance, InsufficientBalanceError("insufficient balance", code=601), today=TODAY)
    assert read_guard(instance, today=TODAY + timedelta(days=30)) is not None
    assert api_guard_reset_job.execute_in_process(instance=instance).success
    assert read_guard(instance) is None


def test_quota_failure_trips_the_guard_and_the_next_run_makes_no_call(
    instance, defs, simulator, api, duckdb_resource, registry_path
):
    ids = creator_ids(3, prefix="quota")
    instance.add_dynamic_partitions("creators", ids)
    simulator.add_fault("code", user_id=ids[1], code=303, times=None)
    first = run_pipeline(instance, api, duckdb_resource, ids)
    assert not first.success
    assert "daily quota exceeded" in "\n".join(step_failure_messages(first))
    state = read_guard(instance)
    assert state is not None and state.code == 303
    calls = simulator.call_count()
    assert simulator.call_count(ids[1]) == 1  # terminal: no retry

    simulator.clear_faults()
    second = run_pipeline(instance, api, duckdb_resource, ids)
    assert not second.success
    assert "API calls paused" in "\n".join(step_failure_messages(second))
    assert simulator.call_count() == calls  # not one more call

    # the run-failure sensor labels the cause on the run
    run = instance.get_run_by_id(second.run_id)
    failure = instance.all_logs(second.run_id, of_type=DagsterEventType.RUN_FAILURE)[0]
    context = build_run_status_sensor_context(
        sensor_name="api_failure_sensor",
        dagster_event=failure.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
    ).for_run_failure()
    api_failure_sensor(context)
    assert instance.get_run_by_id(second.run_id).tags["pgy/failure"] == "API calls paused by the guard"


# -- downstream follows upstream ---------------------------------------------------------------


def test_notes_and_metrics_follow_raw_pages_changed_alone(instance, defs, simulator, api, duckdb_resource):
    ids = creator_ids(4, prefix="follow")
    instance.add_dynamic_partitions("creators", ids)
    assert run_pipeline(instance, api, duckdb_resource, ids[:3], assets=[note_pages]).success

    result = sensor_tick(raw_pages_followup_sensor, instance, defs)
    [request] = result.run_requests
    assert request.job_name in (None, "analytics_rebuild_job")
    assert request.tags["dagster/asset_partition_range_start"] == f"{ids[0]}|{TODAY}"
    assert request.tags["dagster/asset_partition_range_end"] == f"{ids[2]}|{TODAY}"
    calls = simulator.call_count()
    assert (
        defs.resolve_job_def("analytics_rebuild_job")
        .execute_in_process(instance=instance, tags=request.tags)
        .success
    )
    assert simulator.call_count() == calls  # a rebuild never calls the API
    assert {partition_key(c, TODAY) for c in ids[:3]} <= set(instance.get_materialized_partitions(notes.key))

    # nothing new: nothing to do; a full run (raw + notes in one run) needs no follow-up either
    again = sensor_tick(raw_pages_followup_sensor, instance, defs, cursor=result.cursor)
    assert not again.run_requests
    assert run_pipeline(instance, api, duckdb_resource, ids[3:]).success
    after_full = sensor_tick(raw_pages_followup_sensor, instance, defs, cursor=result.cursor)
    assert not after_full.run_requests


# -- every vendor code through the fetching step: calls, error text, guard -------------------------

# code: (calls made with 2 attempts per page, what the guard does, the run's failure label)
CODE_OUTCOMES = {
    100: (1, "operator", "API token invalid"),
    101: (1, "operator", "API token or account rejected (101)"),
    201: (1, None, "some creators failed: not found by the service (201, billed)"),
    202: (1, None, "some creators failed: target not supported by the endpoint (202)"),
    300: (1, "tomorrow", "API usage limit (300, taken as a quota)"),
    301: (2, None, "some creators failed: retries exhausted"),
    302: (2, None, "some creators failed: retries exhausted"),
    303: (1, "tomorrow", "API daily quota exceeded"),
    400: (1, None, "some creators failed: request parameters rejected (400)"),
    404: (1, None, "some creators failed: not found by the service (404)"),
    500: (2, None, "some creators failed: retries exhausted"),
    503: (2, None, "some creators failed: API service unavailable (503)"),
    600: (1, "operator", "API permission denied"),
    601: (1, "operator", "API balance too low"),
    602: (1, "operator", "API spending cap reached (602)"),
}


def test_every_vendor_code_is_covered():
    assert set(CODE_OUTCOMES) == set(VENDOR_CODES)


@pytest.mark.parametrize("code", sorted(CODE_OUTCOMES))
def test_each_vendor_code_in_a_run_calls_fails_and_guards_as_documented(
    instance, simulator, duckdb_resource, code
):
    calls, guard, label = CODE_OUTCOMES[code]
    creator = creator_ids(1, prefix=f"run-code-{code}")[0]
    instance.add_dynamic_partitions("creators", [creator])
    simulator.set_note_count(creator, 3)
    simulator.add_fault("code", user_id=creator, times=None, code=code, message=f"said {code}")
    api = fast_api(simulator, max_attempts=2)
    result = run_pipeline(instance, api, duckdb_resource, [creator], assets=[note_pages])
    assert not result.success
    assert simulator.call_count(creator) == calls
    messages = step_failure_messages(result)
    text = "\n".join(messages)
    assert f"code {code}" in text and f"said {code}" in text and creator in text
    assert failure_cause(messages) == label
    state = read_guard(instance)
    if guard is None:
        assert state is None
    else:
        assert state is not None and state.code == code
        assert (state.until is None) == (guard == "operator")
        if guard == "tomorrow":
            assert state.until == (TODAY + timedelta(days=1)).isoformat()
        assert read_guard(instance, today=TODAY + timedelta(days=2)) == (
            None if guard == "tomorrow" else state
        )


# -- creators with no Pugongying data: checked weekly after 3 empty snapshots --------------------


def test_an_empty_creator_is_checked_weekly_after_3_empty_snapshots_until_re_added(
    instance, defs, simulator, api, duckdb_resource, registry_path
):
    a, b, gone = creator_ids(3, prefix="weekly")
    write_registry(registry_path, [row(a), row(b), row(gone)])
    instance.add_dynamic_partitions("creators", [a, b, gone])
    simulator.set_note_count(a, 10)
    simulator.set_note_count(b, 10)
    simulator.set_unknown(gone)
    # two earlier snapshots came back empty (the API cannot be asked for the past: recorded directly)
    for days_ago in (2, 1):
        record_snapshots(instance, TODAY - timedelta(days=days_ago), [gone], [a, b])
    assert read_streaks(instance)[gone].count == 2
    now = clock.now().astimezone(SHANGHAI)
    [request] = schedule_tick(instance, defs, when=now).run_requests  # still daily: all three
    assert request.tags["dagster/asset_partition_range_end"] == f"{gone}|{TODAY}"

    result = run_pipeline(instance, api, duckdb_resource, [a, b, gone])
    assert result.success, step_failure_messages(result)
    streak = read_streaks(instance)[gone]
    assert (streak.count, streak.last) == (3, TODAY.isoformat()) and set(read_streaks(instance)) == {gone}
    logged = [e.user_message for e in instance.all_logs(result.run_id) if NO_DATA_MESSAGE in e.user_message]
    assert len(logged) == 1 and "checks it only weekly" in logged[0]
    # a refresh of the same day does not count as another snapshot
    record_snapshots(instance, TODAY, [gone], [])
    assert read_streaks(instance)[gone].count == 3

    # the schedule (which never opens DuckDB) leaves it out for a week, and says so on the tick
    [request] = schedule_tick(instance, defs, when=now).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == f"{a}|{TODAY}"
    assert request.tags["dagster/asset_partition_range_end"] == f"{b}|{TODAY}"
    assert request.tags["pgy/checked_weekly_not_today"] == "1"
    later = now + timedelta(days=6)
    assert (
        schedule_tick(instance, defs, when=later)
        .run_requests[0]
        .tags["dagster/asset_partition_range_end"]
        .startswith(b)
    )
    week = now + timedelta(days=7)
    [request] = schedule_tick(instance, defs, when=week).run_requests
    assert request.tags["dagster/asset_partition_range_end"].startswith(gone)
    assert "pgy/checked_weekly_not_today" not in request.tags
    # only it active: the tick is skipped, with the reason
    write_registry(registry_path, [row(a, active=False), row(b, active=False), row(gone)])
    skipped = schedule_tick(instance, defs, when=now)
    assert not skipped.run_requests
    assert NO_DATA_MESSAGE in skipped.skip_message and "checked only weekly" in skipped.skip_message

    # materializing it by hand always fetches
    calls = simulator.call_count(gone)
    refresh = {"ops": {"raw__note_pages": {"config": {"refresh": True}}}}
    assert run_pipeline(instance, api, duckdb_resource, [gone], run_config=refresh).success
    assert simulator.call_count(gone) == calls + 1

    # taken out of the registry and added back: checked daily again
    write_registry(registry_path, [row(a), row(b)])
    sensor_tick(creator_registry_sensor, instance, defs)
    assert gone not in read_streaks(instance)
    write_registry(registry_path, [row(a), row(b), row(gone)])
    sensor_tick(creator_registry_sensor, instance, defs)
    [request] = schedule_tick(instance, defs, when=now).run_requests
    assert request.tags["dagster/asset_partition_range_end"] == f"{gone}|{TODAY}"

    # notes again: the streak ends
    record_snapshots(instance, TODAY, [gone], [])
    simulator.set_unknown(gone, False)
    simulator.set_note_count(gone, 4)
    assert run_pipeline(instance, api, duckdb_resource, [gone], run_config=refresh).success
    assert read_streaks(instance) == {}


def test_followup_launches_nothing_when_a_raw_backfill_changed_no_partition(
    instance, defs, simulator, api, duckdb_resource
):
    ids = creator_ids(4, prefix="noop")
    instance.add_dynamic_partitions("creators", ids)
    assert run_pipeline(instance, api, duckdb_resource, ids[:3]).success  # raw, notes, metrics
    start = sensor_tick(raw_pages_followup_sensor, instance, defs)
    assert not start.run_requests
    calls = simulator.call_count()

    # a raw-only backfill over partitions already stored: materializations that say "unchanged"
    again = run_pipeline(instance, api, duckdb_resource, ids[:3], assets=[note_pages])
    assert again.success
    statuses = {m.metadata["status"].value for m in again.asset_materializations_for_node("raw__note_pages")}
    assert statuses == {"unchanged (already stored)"}
    assert simulator.call_count() == calls
    noop = sensor_tick(raw_pages_followup_sensor, instance, defs, cursor=start.cursor)
    assert not noop.run_requests, noop.run_requests
    assert noop.cursor != start.cursor  # the unchanged records were read, not left for later ticks

    # the same backfill widened to a new creator: only that one is followed up
    wider = run_pipeline(instance, api, duckdb_resource, ids, assets=[note_pages])
    assert wider.success
    [request] = sensor_tick(raw_pages_followup_sensor, instance, defs, cursor=noop.cursor).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == f"{ids[3]}|{TODAY}"
    assert request.tags["dagster/asset_partition_range_end"] == f"{ids[3]}|{TODAY}"


def test_failure_causes_name_a_dead_worker_and_a_lock_wait():
    from pgy_pipeline.orchestration.automation import failure_cause

    crashed = "dagster._core.executor.child_process_executor.ChildProcessCrashException\n"
    assert failure_cause([crashed]) == "run worker died (killed or out of memory)"
    assert failure_cause(["waited 600 s for the lock pgy_api (one fetching step ...)"]).startswith(
        "waited too long for another run's fetch"
    )
    assert failure_cause(["nothing known"]) == "other (see the run's logs)"
    newer = "the DuckDB file x has schema version 9, written by a newer release of pgy_pipeline; ..."
    assert failure_cause([newer]) == "DuckDB file from a newer release of pgy_pipeline"
    migration = (
        "migration 7 (x) failed: boom. The upgrade was rolled back; the file x stays at schema version 6."
    )
    assert failure_cause([migration]) == "DuckDB schema migration failed"
    assert failure_cause(["partition key 'c|2026-13-01': '2026-13-01' is not a YYYY-MM-DD date"]) == (
        "invalid partition key"
    )
