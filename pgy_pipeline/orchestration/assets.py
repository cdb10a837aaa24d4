"""The four assets: raw API pages -> normalized notes -> per-creator engagement metrics, and the
creator registry's names and tags.

The three API-fed assets are declared once, in :data:`.asset_keys.SNAPSHOT_ASSETS`, partitioned by
creator x snapshot date (or cohort x date) and take ``BackfillPolicy.single_run()``, so a backfill
over many creators is one run (one process), not one run per creator. Each step works on every
partition of its run at once and replaces those partitions in DuckDB in one transaction. The raw
step's phases (plan, spend, write, report) live in :mod:`.raw_pages`, free of Dagster; here they
become log lines, metadata or a ``Failure``. The SQL lives in ``pgy_pipeline/warehouse/sql/``.

Steps serialize on the step locks of ``locks.py`` (``pgy_api`` around the whole of
``raw/note_pages``, ``pgy_duckdb`` around every DuckDB write), which the holder's death releases; the
run's last writing step publishes the read replica for analysts (``publishing.py``).

Every partition's materialization carries its own figures only (``dagster/row_count``, pages,
calls), given for all of a step's partitions at once (``dagster_internals.add_partition_metadata``,
what ``context.add_asset_metadata(..., partition_key=...)`` does, without its check's N x N storage
queries). The step's totals
(``run_total/...``) and previews are logged once per step as an observation of the asset
(:data:`STEP_SUMMARY`), not copied into every partition's event.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    BackfillPolicy,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    MultiPartitionKey,
    asset,
)
from duckdb import DuckDBPyConnection
from pydantic import Field

from pgy_pipeline.api.client import NotesQuery
from pgy_pipeline.errors import InvalidParameterError
from pgy_pipeline.locks import API_LOCK
from pgy_pipeline.orchestration import raw_pages
from pgy_pipeline.orchestration.api_access import api_access
from pgy_pipeline.orchestration.asset_keys import (
    CREATORS_KEY,
    METRICS_KEY,
    NOTE_PAGES_KEY,
    NOTES_KEY,
    PUGONGYING_KEY,
    PUGONGYING_RAW_KEY,
    SNAPSHOT_ASSETS,
    SnapshotAsset,
)
from pgy_pipeline.orchestration.budget import record_verdict
from pgy_pipeline.orchestration.dagster_internals import add_partition_metadata, tag_run
from pgy_pipeline.orchestration.empty_streaks import NO_DATA_MESSAGE, record_snapshots
from pgy_pipeline.orchestration.guard import trip_guard
from pgy_pipeline.orchestration.labels import creator_label, creators_tag, keys_text
from pgy_pipeline.orchestration.metadata import column_schema, md_table
from pgy_pipeline.orchestration.partitions import PARTITIONINGS, cohort_note_partitions, note_partitions
from pgy_pipeline.orchestration.publishing import pending_days, publishes_replica, step_days
from pgy_pipeline.orchestration.pugongying_assets import figures_raw_step, figures_rebuild
from pgy_pipeline.orchestration.raw_pages import UNCHANGED, Json, StepReport, StepRequest
from pgy_pipeline.orchestration.registry import CreatorRegistryResource
from pgy_pipeline.orchestration.resources import PgyApiResource, PgyDuckDBResource
from pgy_pipeline.orchestration.scope import StepScope, creator_scope, fetch_scope, stored_scope
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.storage import (
    PartitionKey,
    ensure_schema,
    partition_keys,
    rebuild_metrics,
    rebuild_notes,
    replace_creators,
    report,
)

GROUP = "pgy"


class NotePagesConfig(Config):
    """Run config of ``raw/note_pages``."""

    refresh: bool = Field(
        default=False,
        description="Fetch again even for creators whose pages for today are already stored (costs calls).",
    )
    advertise_switch: str = Field(default="ALL", description="advertiseSwitch: ALL | ORGANIC_ONLY.")
    order_type: str = Field(default="LATEST", description="orderType: LATEST | MOST_READ | MOST_INTERACT.")
    note_type: str = Field(default="ALL", description="noteType: ALL | COOPERATION | PHOTO_TEXT | VIDEO.")
    is_third_platform: str = Field(default="NO", description="isThirdPlatform: NO | YES.")
    creators: list[str] = Field(
        default=[],
        description="Cohort partitioning only: fetch just these creators (registry ids, within the "
        "selected cohorts) instead of every active creator of the cohorts.",
    )
    skip_creators: list[str] = Field(
        default=[],
        description="Cohort partitioning only: leave these creators out (the daily schedule lists "
        "the creators it checks only weekly).",
    )
    scan: str = Field(
        default="auto",
        description="auto: read only the 90-day window when the creator had a full scan within "
        "PGY_FULL_SCAN_EVERY_DAYS, else everything | full: read every creator's whole list.",
    )


def _tag_creators(context: AssetExecutionContext, keys: list[PartitionKey], names: dict[str, str]) -> None:
    """A ``pgy/creators`` run tag naming the step's creators, so the runs list, logs and failures show
    names next to the 24-hex ids."""
    tag_run(context.instance, context.run_id, {"pgy/creators": creators_tag([c for c, _ in keys], names)})


def _creator_names(
    context: AssetExecutionContext, conn: DuckDBPyConnection, keys: list[PartitionKey]
) -> dict[str, str]:
    """Registry names of the step's creators (from ``analytics.creators``), also as the run tag."""
    with partition_keys(conn, keys):
        names = {str(c): str(n) for c, n in report(conn, "creator_names")}
    _tag_creators(context, keys, names)
    return names


def _partition_figures(
    rows: Sequence[Sequence[Any]], names: Sequence[str]
) -> dict[PartitionKey, dict[str, Any]]:
    """Per-partition figures from report rows of the form (creator_id, snapshot_date, figure...)."""
    return {(row[0], row[1]): dict(zip(names, row[2:], strict=True)) for row in rows}


STEP_SUMMARY = "the step's totals and previews (one event per step, not one per partition)"


def _with_step_summary(
    context: AssetExecutionContext,
    key: AssetKey,
    metadata: dict[str, Any],
    checks: Sequence[AssetCheckResult] = (),
) -> MaterializeResult:
    """The step's result, its totals and previews logged once as an observation of the asset.

    Metadata on the result would be copied into every partition's materialization: at 1,000
    partitions that is 1,000 copies of the preview tables in Dagster's event log, written one commit
    each and read back by the UI. Each partition keeps its own figures only.
    """
    context.log_event(AssetObservation(asset_key=key, description=STEP_SUMMARY, metadata=metadata))
    return MaterializeResult(check_results=list(checks))


def _add_partition_metadata(
    context: AssetExecutionContext, scope: StepScope, rows: Sequence[Sequence[Any]], names: Sequence[str]
) -> None:
    """Give each partition of the step its own figures, instead of the step's totals, and a link to
    the run whose step summary (:data:`STEP_SUMMARY`) holds the totals and previews."""
    figures = scope.per_partition(_partition_figures(rows, names))
    link = MetadataValue.dagster_run(context.run_id)
    add_partition_metadata(
        context, {part: {**values, "step_summary": link} for part, values in figures.items()}
    )


def _query(config: NotePagesConfig) -> NotesQuery:
    """The request's query, checked with the rest of the run config before any lock or call."""
    if config.scan not in ("auto", "full"):
        raise InvalidParameterError(
            f"invalid scan {config.scan!r}: must be auto | full. No API call was made."
        )
    return NotesQuery(config.advertise_switch, config.order_type, config.note_type, config.is_third_platform)


def _request(
    context: AssetExecutionContext,
    config: NotePagesConfig,
    pgy_api: PgyApiResource,
    duckdb: PgyDuckDBResource,
    scope: StepScope,
) -> StepRequest:
    return StepRequest(
        keys=scope.keys,
        today=today_shanghai(),  # read under the lock: a step that waited past midnight sees the new day
        query=_query(config),
        refresh=config.refresh,
        force_full=config.scan == "full",
        full_every_days=pgy_api.full_scan_every_days,
        budget=pgy_api.budget,
        data_source=pgy_api.data_source,
        database=duckdb.database,
        spool_path=duckdb.spool_path,
        run_id=context.run_id,
    )


def _after_spending(
    context: AssetExecutionContext, request: StepRequest, spending: raw_pages.Spending, names: dict[str, str]
) -> None:
    """Warn of list drift, trip the guard on an account error, keep the day's budget verdict."""
    for creator_id, drift in spending.drift.items():
        context.log.warning(f"creator {creator_label(creator_id, names)}: " + "; ".join(drift))
    if spending.account_error is not None:
        context.log.error(trip_guard(context.instance, spending.account_error).describe())
    verdict = spending.verdict(request.today)
    if verdict is not None:
        record_verdict(context.instance, verdict)


def _note_empty_snapshots(context: AssetExecutionContext, result: StepReport) -> None:
    """Keep the streaks of empty snapshots (in the Dagster instance, for the daily schedule) and log
    every creator whose written snapshot is 'empty'."""
    for day, (empty, with_data) in result.empty_by_day.items():
        for creator_id, streak in record_snapshots(context.instance, day, empty, with_data).items():
            context.log.warning(
                (
                    f"new creator {creator_id}: its first snapshot came back empty: check its id in the "
                    "registry (creators.yaml); "
                    if creator_id in result.first
                    else f"creator {creator_id}: "
                )
                + f"{NO_DATA_MESSAGE} (the service answered code 0 with no notes and total 0, and billed "
                f"the call); {streak.describe()}"
            )


def _per_partition(scope: StepScope, result: StepReport) -> dict[MultiPartitionKey, dict[str, Any]]:
    """The report's figures per Dagster partition; a cohort is "written" when any creator of it was."""
    figures = scope.per_partition(result.figures)
    if scope.by_cohort:
        for part, part_keys in scope.by_partition().items():
            written = any(k not in result.stored for k in part_keys)
            figures[part]["status"] = "written" if written else UNCHANGED
    return figures


def _record_written(
    context: AssetExecutionContext,
    scope: StepScope,
    result: StepReport,
    figures: dict[MultiPartitionKey, Any],
) -> None:
    """A failed step records no materialization by itself: record the partitions that were written
    (a cohort only when every creator of it was written or already stored)."""
    unfinished = {scope.partition_of(key) for key in result.unfinished}
    written_parts = (
        [p for p in scope.partitions if p not in unfinished]
        if scope.by_cohort
        else [scope.partition_of(k) for k in result.written]
    )
    for part in written_parts:
        context.log_event(
            AssetMaterialization(asset_key=NOTE_PAGES_KEY, partition=part, metadata=figures[part])
        )


def _record_note_pages(
    context: AssetExecutionContext, scope: StepScope, result: StepReport
) -> MaterializeResult:
    """The report as log lines, per-partition metadata and the step summary, or a ``Failure``."""
    _note_empty_snapshots(context, result)
    context.log.info(result.totals_line)
    for warning in result.warnings:
        context.log.warning(warning)
    metadata = {
        k: MetadataValue.json(v.value) if isinstance(v, Json) else v for k, v in result.metadata.items()
    }
    figures = _per_partition(scope, result)
    if result.failure is not None:
        _record_written(context, scope, result, figures)
        raise Failure(description=result.failure, metadata=metadata)
    add_partition_metadata(context, figures)
    return _with_step_summary(context, NOTE_PAGES_KEY, metadata)


def _note_pages(
    context: AssetExecutionContext,
    config: NotePagesConfig,
    pgy_api: PgyApiResource,
    duckdb: PgyDuckDBResource,
    scope: StepScope,
) -> MaterializeResult:
    """The raw step: plan, spend, write and report (:mod:`.raw_pages`) under the ``pgy_api`` lock, so
    that one step fetches at a time and a step that waited fetches only what the last one did not."""
    _query(config)  # a bad request is refused before any lock or call
    if pgy_api.simulated_warning:
        context.log.warning(pgy_api.simulated_warning)
    with duckdb.step_lock(API_LOCK, run_id=context.run_id, log=context.log.info):
        request = _request(context, config, pgy_api, duckdb, scope)
        # the plan writes spooled calls of earlier runs into the ledger: their days change too
        planning_days = step_days(context) | pending_days(raw_pages.pending_calls(request))
        with duckdb.writer(
            run_id=context.run_id, log=context.log.info, publish=False, days=planning_days
        ) as conn:
            names = raw_pages.prepare(conn, request)
            _tag_creators(context, request.keys, names)
            planned = raw_pages.plan(conn, request)
        context.log.info(
            (
                f"{len(request.keys)} creator snapshot(s) in {len(scope.partitions)} cohort partition(s)"
                if scope.by_cohort
                else f"{len(request.keys)} partition(s)"
            )
            + planned.describe()
        )
        spending = raw_pages.spend(request, planned, api_access(context, pgy_api))
        _after_spending(context, request, spending, names)
        pending = raw_pages.pending_calls(request)
        with duckdb.writer(
            run_id=context.run_id,
            log=context.log.info,
            publish=bool(spending.pages) and publishes_replica(context),
            days=step_days(context) | pending_days(pending),
        ) as conn:
            written = raw_pages.write(conn, planned, spending, pending)
        raw_pages.clear_spool(request, spending, pending)
        return _record_note_pages(
            context, scope, raw_pages.report_step(request, planned, spending, written, names)
        )


@dataclass
class NotesReport:
    """What a notes rebuild produced, for checks and metadata."""

    notes: int
    notes_with_issues: int
    per_partition: list[tuple[Any, ...]]
    rejects: list[tuple[Any, ...]]
    bad_ids: list[tuple[Any, ...]]
    reconcile: list[tuple[Any, ...]]
    top: list[tuple[Any, ...]]


def _notes_report(conn: DuckDBPyConnection, keys: list[PartitionKey]) -> NotesReport:
    with partition_keys(conn, keys):
        counts = report(conn, "notes_counts")[0]
        return NotesReport(
            notes=int(counts[0]),
            notes_with_issues=int(counts[1]),
            per_partition=report(conn, "notes_per_partition"),
            rejects=report(conn, "note_rejects_by_reason"),
            bad_ids=report(conn, "note_id_violations"),
            reconcile=report(conn, "notes_reconcile"),
            top=report(conn, "top_notes"),
        )


# The per-partition ``status`` of a rebuild partition with no stored raw pages: nothing was fetched
# that day (the API serves only the present), so there is nothing to rebuild, and that is no failure.
NO_SNAPSHOT = "no snapshot that day (no raw pages stored)"


def _record_no_snapshot(
    context: AssetExecutionContext, scope: StepScope, missing: set[PartitionKey], metadata: dict[str, Any]
) -> None:
    """Mark partitions without stored raw pages as "no snapshot that day" (0 rows), so that a backfill
    over past dates succeeds and says what it found instead of failing."""
    if not missing:
        return
    metadata["run_total/partitions_without_snapshot"] = len(missing)
    context.log.info(
        f"{len(missing)} partition(s) with no snapshot that day, recorded as such: {keys_text(missing)}. "
        "Raw pages can only be fetched for today (Asia/Shanghai)."
    )
    add_partition_metadata(
        context,
        {scope.partition_of(key): {"status": NO_SNAPSHOT, "dagster/row_count": 0} for key in missing},
    )


def _notes(context: AssetExecutionContext, duckdb: PgyDuckDBResource, by_cohort: bool) -> MaterializeResult:
    scope = None if by_cohort else creator_scope(context)  # bad keys refused before DuckDB opens
    with duckdb.writer(
        run_id=context.run_id,
        log=context.log.info,
        publish=publishes_replica(context),
        days=step_days(context),
    ) as conn:
        ensure_schema(conn)
        scope = scope or stored_scope(context, conn)
        keys = scope.keys
        _creator_names(context, conn, keys)
        missing = rebuild_notes(conn, keys)
        result = _notes_report(conn, keys)
    _add_partition_metadata(context, scope, result.per_partition, ["dagster/row_count", "rejected_items"])

    checks = [
        AssetCheckResult(
            check_name="note_ids_unique_and_present",
            passed=not result.bad_ids,
            severity=AssetCheckSeverity.ERROR,
            metadata={"violations": MetadataValue.json([[str(v) for v in r] for r in result.bad_ids])},
        ),
        AssetCheckResult(
            check_name="notes_reconcile_with_total",
            passed=not result.reconcile,
            severity=AssetCheckSeverity.WARN,
            description=(
                "notes loaded equal the API's total in every partition"
                if not result.reconcile
                else "notes loaded differ from the API's total, or the total changed while paging "
                "(notes added or removed meanwhile): some notes may have been missed"
            ),
            metadata={
                "mismatches": MetadataValue.json(
                    [
                        {"partition": f"{c}|{d}", "total": t, "notes": n, "total_changed_while_paging": s > 1}
                        for c, d, t, n, s in result.reconcile[:50]
                    ]
                ),
                "mismatch_count": len(result.reconcile),
            },
        ),
    ]
    metadata: dict[str, Any] = {
        "run_total/notes": result.notes,
        "run_total/notes_with_quality_issues": result.notes_with_issues,
        "run_total/rejected_items": MetadataValue.json({r: n for r, n in result.rejects}),
        "top_notes_by_reads": MetadataValue.md(
            md_table(
                ["creator", "name", "note", "title", "published", "reads", "likes", "collects"], result.top
            )
        ),
    }
    _record_no_snapshot(context, scope, missing, metadata)
    return _with_step_summary(context, NOTES_KEY, metadata, checks)


def _creator_engagement_metrics(
    context: AssetExecutionContext, duckdb: PgyDuckDBResource, by_cohort: bool
) -> MaterializeResult:
    scope = None if by_cohort else creator_scope(context)  # bad keys refused before DuckDB opens
    with duckdb.writer(
        run_id=context.run_id,
        log=context.log.info,
        publish=publishes_replica(context),
        days=step_days(context),
    ) as conn:
        ensure_schema(conn)
        scope = scope or stored_scope(context, conn)
        keys = scope.keys
        missing = rebuild_metrics(conn, keys)
        with partition_keys(conn, keys):
            per_partition = report(conn, "metrics_per_partition")
            out_of_bounds = report(conn, "metric_rate_violations")
            headline = report(conn, "metrics_headline")
            own = [] if scope.by_cohort else report(conn, "metrics_partition_headline")
    _add_partition_metadata(context, scope, per_partition, ["dagster/row_count"])
    # The creator layout: each partition also shows its creator's name and 30-day headline, so the
    # latest materialization answers "how is this creator doing" without opening the run.
    _add_partition_metadata(
        context, scope, own, ["creator", "notes_30d", "read_median_30d", "engagement_rate_30d"]
    )
    metadata: dict[str, Any] = {
        "run_total/metric_rows": sum(int(r[2]) for r in per_partition),
        "headline_30d": MetadataValue.md(
            md_table(
                [
                    "creator",
                    "name",
                    "snapshot",
                    "notes",
                    "read median",
                    "interaction median",
                    "engagement",
                    "100-like rate",
                    "notes/week",
                    "read gain",
                ],
                headline,
            )
        ),
    }
    _record_no_snapshot(context, scope, missing, metadata)
    check = AssetCheckResult(
        check_name="metric_rates_within_bounds",
        passed=not out_of_bounds,
        severity=AssetCheckSeverity.ERROR,
        metadata={"violations": MetadataValue.json([[str(v) for v in r] for r in out_of_bounds])},
    )
    return _with_step_summary(context, METRICS_KEY, metadata, [check])


StepFunction = Callable[..., MaterializeResult]


def _raw_step(by_cohort: bool) -> StepFunction:
    """``raw/note_pages``'s function in a layout; only its resources and scope differ."""

    def by_cohorts(
        context: AssetExecutionContext,
        config: NotePagesConfig,
        pgy_api: PgyApiResource,
        duckdb: PgyDuckDBResource,
        creator_registry: CreatorRegistryResource,
    ) -> MaterializeResult:
        # A cohort partition stands for the registry's creators of that cohort: the step reads the registry.
        scope = fetch_scope(context, creator_registry.load(), config.creators, config.skip_creators)
        return _note_pages(context, config, pgy_api, duckdb, scope)

    def by_creators(
        context: AssetExecutionContext,
        config: NotePagesConfig,
        pgy_api: PgyApiResource,
        duckdb: PgyDuckDBResource,
    ) -> MaterializeResult:
        if config.creators or config.skip_creators:
            raise InvalidParameterError(
                "run config 'creators' and 'skip_creators' apply only with PGY_PARTITIONING=cohort; "
                "with creator partitions select the creators' partitions instead. No API call was made."
            )
        return _note_pages(context, config, pgy_api, duckdb, creator_scope(context))

    return by_cohorts if by_cohort else by_creators


def _rebuild_step(
    body: Callable[[AssetExecutionContext, PgyDuckDBResource, bool], MaterializeResult],
) -> Callable[[bool], StepFunction]:
    """A rebuild asset's function in a layout: it reads DuckDB only."""

    def in_layout(by_cohort: bool) -> StepFunction:
        def rebuild(context: AssetExecutionContext, duckdb: PgyDuckDBResource) -> MaterializeResult:
            return body(context, duckdb, by_cohort)

        return rebuild

    return in_layout


# Each snapshot asset's step, by key (the assets themselves are declared in SNAPSHOT_ASSETS).
STEPS: dict[AssetKey, Callable[[bool], StepFunction]] = {
    NOTE_PAGES_KEY: _raw_step,
    NOTES_KEY: _rebuild_step(_notes),
    METRICS_KEY: _rebuild_step(_creator_engagement_metrics),
    PUGONGYING_RAW_KEY: figures_raw_step,
    PUGONGYING_KEY: _rebuild_step(figures_rebuild),
}


def _snapshot_asset(declared: SnapshotAsset, partitioning: str) -> AssetsDefinition:
    if declared.key not in STEPS:
        raise LookupError(
            f"snapshot asset {declared.key.to_user_string()} is declared but has no step in STEPS"
        )
    by_cohort = partitioning == "cohort"
    return asset(
        key=declared.key,
        deps=list(declared.deps),
        partitions_def=cohort_note_partitions if by_cohort else note_partitions,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds=set(declared.kinds),
        description=declared.description,
        metadata={"dagster/column_schema": column_schema(declared.table)},
        check_specs=[AssetCheckSpec(name, asset=declared.key, blocking=b) for name, b in declared.checks],
    )(STEPS[declared.key](by_cohort))


def build_snapshot_assets(partitioning: str = "creator") -> tuple[AssetsDefinition, ...]:
    """The assets of :data:`.asset_keys.SNAPSHOT_ASSETS`, in that order, in one of the layouts of
    :mod:`.partitions`: ``creator`` (creator x date) or ``cohort`` (cohort x date). The asset keys,
    tables and steps are the same; only Dagster's bookkeeping differs."""
    if partitioning not in PARTITIONINGS:
        raise InvalidParameterError(
            f"invalid partitioning {partitioning!r}: must be one of {', '.join(PARTITIONINGS)}"
        )
    return tuple(_snapshot_asset(declared, partitioning) for declared in SNAPSHOT_ASSETS)


# The default (creator x date) layout's assets, which most callers import directly.
note_pages, notes, creator_engagement_metrics, pugongying_raw, pugongying = build_snapshot_assets("creator")


@asset(
    key=CREATORS_KEY,
    group_name=GROUP,
    kinds={"duckdb", "yaml"},
    metadata={"dagster/column_schema": column_schema("analytics.creators")},
)
def creators(
    context: AssetExecutionContext, creator_registry: CreatorRegistryResource, duckdb: PgyDuckDBResource
) -> MaterializeResult:
    """Creator names, tags and active flags from the registry file, for joins in SQL."""
    registry = creator_registry.load()
    for problem in registry.problems:
        context.log.warning(problem)
    table = pa.table(
        {
            "creator_id": [c.creator_id for c in registry.creators],
            "display_name": [c.display_name for c in registry.creators],
            "tags": [list(c.tags) for c in registry.creators],
            "active": [c.active for c in registry.creators],
        },
        schema=pa.schema(
            [
                ("creator_id", pa.string()),
                ("display_name", pa.string()),
                ("tags", pa.list_(pa.string())),
                ("active", pa.bool_()),
            ]
        ),
    )
    # analytics.creators has no snapshot_date: every publication copies it whole
    with duckdb.writer(
        run_id=context.run_id, log=context.log.info, publish=publishes_replica(context), days=()
    ) as conn:
        ensure_schema(conn)
        replace_creators(conn, table)
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "active_creators": sum(c.active for c in registry.creators),
            "registry_problems": MetadataValue.json(registry.problems),
            "registry_fingerprint": registry.fingerprint,
        }
    )
