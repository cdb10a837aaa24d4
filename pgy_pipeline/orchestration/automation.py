"""Jobs, sensors and the schedule that keep snapshots coming without anyone clicking.

* ``creator_registry_sensor`` keeps the ``creators`` partitions in step with the registry file and
  gives each new creator its first snapshot at once.
* ``daily_snapshot_schedule`` snapshots every active creator once a day, in as few runs as the
  partition ranges allow (one, when the active creators are contiguous in registration order).
  A creator whose last 3 or more snapshots came back empty (no Pugongying data) is checked only
  weekly, and the tick says so (:mod:`pgy_pipeline.orchestration.empty_streaks`).
* ``raw_pages_followup_sensor`` rebuilds notes and metrics for raw partitions that changed without
  them (a partial run, a manual raw-only rerun or backfill).
* ``api_failure_sensor`` tags every failed run of this code location with its cause (jobs, UI
  Materialize clicks and backfills, which run as ``__ASSET_JOB``), so the runs list shows it.

Runs that would call the API are not launched while the quota/account guard is in force, or while
the day's call budget is spent (``PGY_DAILY_CALL_BUDGET``): the tick says why instead. Under a budget
the schedule puts the neediest creators first (never snapshotted, then the stalest), as its fetch
step does within a run.
"""

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from dagster import (
    AddDynamicPartitionsRequest,
    AssetRecordsFilter,
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    OpExecutionContext,
    RunFailureSensorContext,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    job,
    op,
    run_failure_sensor,
    schedule,
    sensor,
)

from pgy_pipeline.orchestration.asset_keys import CREATORS_KEY, NOTE_PAGES_KEY, NOTES_KEY, snapshot_keys
from pgy_pipeline.orchestration.budget import read_spent_budget
from pgy_pipeline.orchestration.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    AssetJobDefinition,
    error_messages,
    materialized_partitions,
    read_value,
    tag_run,
    write_value,
)
from pgy_pipeline.orchestration.empty_streaks import deferred_creators, deferred_text, forget, read_streaks
from pgy_pipeline.orchestration.guard import clear_guard, read_guard
from pgy_pipeline.orchestration.labels import creators_tag
from pgy_pipeline.orchestration.partitions import (
    COHORTS,
    SHANGHAI,
    cohort_of,
    cohorts_in_order,
    parse_partition_key,
    today_shanghai,
)
from pgy_pipeline.orchestration.raw_pages import UNCHANGED
from pgy_pipeline.orchestration.registry import CreatorRegistryResource, Registry, RegistryFileError

FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


def build_snapshot_jobs(
    partitioning: str = "creator", *, pugongying_figures: bool = False
) -> tuple[AssetJobDefinition, AssetJobDefinition]:
    """``snapshot_job`` and ``analytics_rebuild_job`` over the layout's partitions; Pugongying's own
    figures are in them only when asked for (PGY_PUGONGYING_FIGURES), since they cost calls."""
    members = "cohorts of creators" if partitioning == "cohort" else "creators"
    # Partitioned as their assets are (the layout's, from the project's first snapshot day).
    return (
        define_asset_job(
            name="snapshot_job",
            selection=AssetSelection.assets(*snapshot_keys(opt_in=pugongying_figures)),
            description=f"Fetch today's notes for a range of {members}, then rebuild their notes and metrics.",
        ),
        define_asset_job(
            name="analytics_rebuild_job",
            selection=AssetSelection.assets(*snapshot_keys(calls_api=False, opt_in=pugongying_figures)),
            description="Rebuild notes and metrics from stored raw pages, for any date. Makes no API call.",
        ),
    )


snapshot_job, analytics_rebuild_job = build_snapshot_jobs("creator")
# The op name of raw/note_pages in run config.
NOTE_PAGES_OP = "raw__note_pages"
# Creators the cohort layout's registry sensor has seen (instance storage, JSON list).
COHORT_ROSTER_KEY = "pgy_pipeline/cohort_roster"
creator_registry_job = define_asset_job(
    name="creator_registry_job",
    selection=AssetSelection.assets(CREATORS_KEY),
    description="Copy creator names, tags and active flags from the registry file into DuckDB.",
)


def range_tags(first_creator: str, last_creator: str, day: date) -> dict[str, str]:
    """Tags that make one run cover creators first..last (registration order) on ``day``."""
    return {
        ASSET_PARTITION_RANGE_START_TAG: f"{first_creator}|{day.isoformat()}",
        ASSET_PARTITION_RANGE_END_TAG: f"{last_creator}|{day.isoformat()}",
    }


def registry_names(registry: Registry) -> dict[str, str]:
    """Creator id -> display name, for run tags."""
    return {c.creator_id: c.display_name for c in registry.creators if c.display_name}


def contiguous_blocks(registered: list[str], wanted: Iterable[str]) -> list[list[str]]:
    """``wanted`` creators split into runs of neighbours in registration order (one run each)."""
    wanted = set(wanted)
    blocks: list[list[str]] = []
    current: list[str] = []
    for creator_id in registered:
        if creator_id in wanted:
            current.append(creator_id)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _first_snapshot_request(new: list[str], registry: Registry, by_cohort: bool) -> RunRequest:
    """One run giving the ``new`` creators their first snapshot today."""
    day = today_shanghai()
    tags = {"pgy/trigger": "new-creators", "pgy/creators": creators_tag(new, registry_names(registry))}
    if not by_cohort:
        return RunRequest(
            job_name="snapshot_job",
            run_key=f"first-snapshot-{day}-{new[0]}-{len(new)}",
            tags={**range_tags(new[0], new[-1], day), **tags},
        )
    # The cohorts between the first and the last hold other creators too: the run fetches only these.
    cohorts = cohorts_in_order([cohort_of(c) for c in new])
    return RunRequest(
        job_name="snapshot_job",
        run_key=f"first-snapshot-{day}-{new[0]}-{len(new)}",
        tags={**range_tags(cohorts[0], cohorts[-1], day), **tags},
        run_config={"ops": {NOTE_PAGES_OP: {"config": {"creators": new}}}},
    )


def _known_creators(instance: DagsterInstance, by_cohort: bool) -> set[str]:
    """Creators already given a first snapshot: the ``creators`` partitions, and in the cohort layout
    the roster its sensor keeps (which starts from those partitions when switching layouts)."""
    known = set(instance.get_dynamic_partitions("creators"))
    if by_cohort:
        raw = read_value(instance, COHORT_ROSTER_KEY)
        try:
            known.update(json.loads(raw) if raw else [])
        except ValueError:
            pass  # a damaged roster costs at most one first snapshot per creator, which then skips
    return known


def build_creator_registry_sensor(
    partitioning: str = "creator", snapshot: AssetJobDefinition | None = None
) -> SensorDefinition:
    """``creator_registry_sensor`` for the layout: in the creator layout it adds new creators as
    partitions; in both it snapshots new creators at once and copies the registry into DuckDB."""
    by_cohort = partitioning == "cohort"

    @sensor(
        name="creator_registry_sensor",
        jobs=[snapshot or snapshot_job, creator_registry_job],
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Keeps the creators partitions in step with the registry file; snapshots new creators at once."
        if not by_cohort
        else "Snapshots creators new to the registry file at once, within their cohorts.",
    )
    def creator_registry_sensor(
        context: SensorEvaluationContext, creator_registry: CreatorRegistryResource
    ) -> SensorResult | SkipReason:
        try:
            registry = creator_registry.load()
        except RegistryFileError as exc:
            return SkipReason(str(exc))
        for problem in registry.problems:
            context.log.warning(problem)

        known = _known_creators(context.instance, by_cohort)
        new = [c for c in registry.active_ids if c not in known]
        run_requests, notes_for_tick = [], []
        # A creator taken out of the registry (or made inactive) loses its streak of empty snapshots, so
        # adding it back has it checked daily again.
        active = set(registry.active_ids)
        streaks = read_streaks(context.instance)
        forgotten = forget(context.instance, [c for c in streaks if c not in active])
        if forgotten:
            notes_for_tick.append(
                f"{len(forgotten)} creator(s) no longer active: their streak of empty snapshots is forgotten"
            )
        if registry.fingerprint != context.cursor:
            run_requests.append(
                RunRequest(job_name="creator_registry_job", run_key=f"registry-{registry.fingerprint}")
            )
        if new:
            guard = read_guard(context.instance)
            if guard is None:
                run_requests.append(_first_snapshot_request(new, registry, by_cohort))
            else:
                notes_for_tick.append(
                    f"first snapshot of {len(new)} new creator(s) not launched: {guard.describe()}"
                )
            if by_cohort:
                write_value(context.instance, COHORT_ROSTER_KEY, json.dumps(sorted(known | set(new))))
        context.update_cursor(registry.fingerprint)
        summary = (
            f"{len(registry.active_ids)} active creator(s), {len(new)} new; "
            f"{len(registry.problems)} bad row(s) skipped"
            + "".join(f"\n{p}" for p in registry.problems + notes_for_tick)
        )
        context.log.info(summary)
        return SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=[AddDynamicPartitionsRequest("creators", new)]
            if new and not by_cohort
            else [],
            skip_reason=None if run_requests or new else SkipReason(summary),
        )

    return creator_registry_sensor


creator_registry_sensor = build_creator_registry_sensor("creator")


DEFAULT_SNAPSHOT_CRON = "0 8 * * *"


def by_need(instance: DagsterInstance, blocks: list[list[str]]) -> list[list[str]]:
    """Blocks of creators, neediest first: one never snapshotted, then the stalest last snapshot.

    Staleness comes from Dagster's own materialization records, never DuckDB (a run may hold its lock).
    """
    last: dict[str, date] = {}
    for key in materialized_partitions(instance, NOTE_PAGES_KEY):
        creator_id, day = parse_partition_key(key)
        if creator_id not in last or day > last[creator_id]:
            last[creator_id] = day
    return sorted(blocks, key=lambda block: min(last.get(c, date.min) for c in block))


def _cohort_daily_request(registry: Registry, deferred: list[str], day: date) -> list[RunRequest]:
    """The cohort layout's daily snapshot: one run over the cohorts holding creators to snapshot,
    the creators checked only weekly left out by run config."""
    left_out = set(deferred)
    todo = [c for c in registry.active_ids if c not in left_out]
    if not todo:
        return []
    cohorts = cohorts_in_order([cohort_of(c) for c in todo])
    in_range = set(COHORTS[COHORTS.index(cohorts[0]) : COHORTS.index(cohorts[-1]) + 1])
    skip = sorted(c for c in deferred if cohort_of(c) in in_range)
    return [
        RunRequest(
            run_key=f"daily-{day}-0",
            tags={
                **range_tags(cohorts[0], cohorts[-1], day),
                "pgy/trigger": "daily-snapshot",
                "pgy/creators": creators_tag(todo, registry_names(registry)),
                **({"pgy/checked_weekly_not_today": str(len(deferred))} if deferred else {}),
            },
            run_config={"ops": {NOTE_PAGES_OP: {"config": {"skip_creators": skip}}}} if skip else {},
        )
    ]


def build_daily_snapshot_schedule(
    cron_schedule: str = DEFAULT_SNAPSHOT_CRON,
    daily_call_budget: int | None = None,
    partitioning: str = "creator",
    job: AssetJobDefinition | None = None,
) -> ScheduleDefinition:
    """``daily_snapshot_schedule`` at ``cron_schedule`` (Asia/Shanghai; PGY_SNAPSHOT_CRON), skipping
    its tick while ``daily_call_budget`` (PGY_DAILY_CALL_BUDGET) is spent. In the cohort layout it
    asks for one run over the cohorts (its fetch step puts the neediest creators first under a budget)."""
    by_cohort = partitioning == "cohort"

    @schedule(
        name="daily_snapshot_schedule",
        cron_schedule=cron_schedule,
        execution_timezone="Asia/Shanghai",
        job=job or snapshot_job,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Snapshots today's notes for every active creator, in as few runs as partition ranges allow.",
    )
    def daily_snapshot_schedule(
        context: ScheduleEvaluationContext, creator_registry: CreatorRegistryResource
    ) -> SkipReason | list[RunRequest]:
        guard = read_guard(context.instance)
        if guard is not None:
            return SkipReason(f"daily snapshot skipped: {guard.describe()}")
        spent = read_spent_budget(context.instance, daily_call_budget)
        if spent is not None:
            return SkipReason(f"daily snapshot skipped: {spent.describe()}")
        try:
            registry = creator_registry.load()
        except RegistryFileError as exc:
            return SkipReason(f"daily snapshot skipped: {exc}")
        active = set(registry.active_ids)
        when = context.scheduled_execution_time
        day = when.astimezone(SHANGHAI).date() if when is not None else today_shanghai()
        if by_cohort:
            deferred = deferred_creators(read_streaks(context.instance), active, day)
            if deferred:
                context.log.info(deferred_text(deferred))
            requests = _cohort_daily_request(registry, sorted(deferred), day)
            if requests:
                return requests
            if deferred:
                return SkipReason(f"daily snapshot skipped: {deferred_text(deferred)}")
            return SkipReason("no active creators: add creators to the registry file")
        registered = list(context.instance.get_dynamic_partitions("creators"))
        unregistered = sorted(active - set(registered))
        if unregistered:
            context.log.warning(
                f"{len(unregistered)} active creator(s) not yet registered as partitions (the registry "
                f"sensor adds them on its next tick): {', '.join(unregistered[:5])}"
            )
        # Creators that came back empty too often are checked weekly (read from the instance: the
        # schedule never opens DuckDB, which a run may be holding).
        deferred = deferred_creators(read_streaks(context.instance), active, day)
        if deferred:
            context.log.info(deferred_text(deferred))
        blocks = contiguous_blocks(registered, active - set(deferred))
        if not blocks:
            if deferred:
                return SkipReason(f"daily snapshot skipped: {deferred_text(deferred)}")
            return SkipReason("no active creators registered: add creators to the registry file")
        if daily_call_budget:
            blocks = by_need(context.instance, blocks)
        extra = {"pgy/checked_weekly_not_today": str(len(deferred))} if deferred else {}
        return [
            RunRequest(
                run_key=f"daily-{day}-{i}",
                tags={
                    **range_tags(block[0], block[-1], day),
                    "pgy/trigger": "daily-snapshot",
                    "pgy/creators": creators_tag(block, registry_names(registry)),
                    **extra,
                },
            )
            for i, block in enumerate(blocks)
        ]

    return daily_snapshot_schedule


def build_raw_pages_followup_sensor(
    partitioning: str = "creator", job: AssetJobDefinition | None = None
) -> SensorDefinition:
    """``raw_pages_followup_sensor`` for the layout's partitions (creators or cohorts x dates)."""
    by_cohort = partitioning == "cohort"

    @sensor(
        name="raw_pages_followup_sensor",
        job=job or analytics_rebuild_job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Rebuilds notes and metrics for raw partitions that changed without them (no API call); "
        "partitions a run left unchanged need nothing.",
    )
    def raw_pages_followup_sensor(context: SensorEvaluationContext) -> SkipReason | list[RunRequest]:
        instance = context.instance
        after = int(context.cursor) if context.cursor else None
        records = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=NOTE_PAGES_KEY, after_storage_id=after), limit=1000, ascending=True
        ).records
        if not records:
            return SkipReason("no new raw pages")

        pending: dict[str, int] = {}  # partition -> raw storage id
        cursor = after
        run_status: dict[str, DagsterRunStatus | None] = {}
        for record in records:
            run_id = record.run_id
            if run_id not in run_status:
                run = instance.get_run_by_id(run_id)
                run_status[run_id] = run.status if run else None
            if run_status[run_id] is not None and run_status[run_id] not in FINISHED:
                break  # that run may still rebuild notes itself: look again on a later tick
            materialization = record.asset_materialization
            status = materialization.metadata.get("status") if materialization else None
            if record.partition_key and getattr(status, "value", None) != UNCHANGED:
                pending[record.partition_key] = record.storage_id
            cursor = record.storage_id

        if pending:
            rebuilt = instance.fetch_materializations(
                AssetRecordsFilter(
                    asset_key=NOTES_KEY,
                    asset_partitions=list(pending),
                    after_storage_id=min(pending.values()),
                ),
                limit=len(pending) * 4 + 100,
            ).records
            for record in rebuilt:
                if record.partition_key in pending and record.storage_id > pending[record.partition_key]:
                    del pending[record.partition_key]

        by_day: dict[date, set[str]] = defaultdict(set)
        for key in pending:
            member, _, day_text = key.rpartition("|")
            try:
                by_day[date.fromisoformat(day_text)].add(member)
            except ValueError:
                continue  # not a key of this layout's shape: nothing to rebuild from it
        registered = COHORTS if by_cohort else list(instance.get_dynamic_partitions("creators"))
        run_requests = [
            RunRequest(
                run_key=f"followup-{cursor}-{day}-{i}",
                tags={**range_tags(block[0], block[-1], day), "pgy/trigger": "raw-pages-changed"},
            )
            for day in sorted(by_day)
            for i, block in enumerate(contiguous_blocks(registered, by_day[day]))
        ]
        if cursor is not None:
            context.update_cursor(str(cursor))
        if not run_requests:
            return SkipReason("raw pages changed only where notes and metrics were already rebuilt")
        return run_requests

    return raw_pages_followup_sensor


raw_pages_followup_sensor = build_raw_pages_followup_sensor("creator")


# Causes that stop the whole run (or every call), most specific first: a guard message quotes the
# original error.
_RUN_CAUSES = [
    ("api calls paused", "API calls paused by the guard"),
    ("call refused without reaching", "API account error (circuit open)"),
    ("usage limit reached (300", "API usage limit (300, taken as a quota)"),
    ("daily quota exceeded", "API daily quota exceeded"),
    ("token invalid", "API token invalid"),
    ("rejected the token or account (101", "API token or account rejected (101)"),
    ("permission denied", "API permission denied"),
    ("insufficient balance", "API balance too low"),
    ("spending cap reached (602", "API spending cap reached (602)"),
    ("call budget", "daily call budget spent"),
    ("stayed locked", "DuckDB file locked by another process"),
    ("for the lock pgy_api", "waited too long for another run's fetch (lock pgy_api)"),
    ("for the lock pgy_duckdb", "waited too long for another run's DuckDB write (lock pgy_duckdb)"),
    ("childprocesscrashexception", "run worker died (killed or out of memory)"),  # a step's process
    ("terminated by signal", "run worker died (killed or out of memory)"),
    ("unexpectedly exited", "run worker died (killed or out of memory)"),
    ("run worker", "run worker died (killed or out of memory)"),
    # Dagster's words when the daemon ends a run whose worker vanished (with the in-process executor
    # the steps die with the worker, so no step failure is left to say so).
    ("marked as failed from outside the execution context", "run worker died (killed or out of memory)"),
    ("only serves the present", "past date asked of the API"),
    ("invalid creator id", "invalid creator id"),
    ("written by a newer release", "DuckDB file from a newer release of pgy_pipeline"),
    ("the upgrade was rolled back", "DuckDB schema migration failed"),
    ("partition key", "invalid partition key"),
]
# Causes of one creator's failure, named when every failed creator of the run shares one.
_CREATOR_CAUSES = [
    ("no content (201)", "not found by the service (201, billed)"),
    ("not found (404", "not found by the service (404)"),
    ("not supported (202)", "target not supported by the endpoint (202)"),
    ("rejected the request's parameters (400)", "request parameters rejected (400)"),
    ("temporarily unavailable (503)", "API service unavailable (503)"),
    ("undocumented business code", "undocumented business code"),
    ("gave up after", "retries exhausted"),
]


def failure_cause(messages: list[str]) -> str:
    """A short label for why a run failed, from its step errors."""
    text = "\n".join(messages).lower()
    for needle, label in _RUN_CAUSES:
        if needle in text:
            return label
    if "creator(s) failed" in text:
        causes = {
            next((label for needle, label in _CREATOR_CAUSES if needle in line), None)
            for line in text.splitlines()
            if line.startswith("- ")
        }
        only = causes.pop() if len(causes) == 1 else None
        return f"some creators failed: {only}" if only else "some creators failed"
    if "simulated data" in text:
        return "simulated and real data mixed"
    return "other (see the run's logs)"


@run_failure_sensor(
    name="api_failure_sensor",
    default_status=DefaultSensorStatus.RUNNING,
    # No monitored_jobs: Dagster 1.13 then matches every run of this code location, including the
    # implicit __ASSET_JOB of the UI's Materialize button and of asset backfills.
    description="Tags each failed run of this code location with its cause (tag pgy/failure), shown "
    "in the runs list: jobs, Materialize clicks and backfills alike.",
)
def api_failure_sensor(context: RunFailureSensorContext) -> None:
    messages = [context.failure_event.message or "", *error_messages(context.get_step_failure_events())]
    cause = failure_cause(messages)
    tag_run(context.instance, context.dagster_run.run_id, {"pgy/failure": cause})
    guard = read_guard(context.instance)
    context.log.warning(
        f"run {context.dagster_run.run_id} failed: {cause}" + (f". {guard.describe()}" if guard else "")
    )


@op(description="Lift the quota/account guard so API calls may resume.")
def clear_api_guard(context: OpExecutionContext) -> None:
    state = read_guard(context.instance)
    clear_guard(context.instance)
    context.log.info(f"guard cleared (was: {state.describe() if state else 'not in force'})")


@job(
    description="Operator action: lift the quota/account guard after fixing the token, permission or balance."
)
def api_guard_reset_job() -> None:
    clear_api_guard()
