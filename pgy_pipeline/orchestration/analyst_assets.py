"""The analyst's desk as Dagster assets: peer percentiles, anomalies and the HTML report, per date.

All three are partitioned by snapshot date alone (the date dimension of the creator x date
partitions) and depend on the creator x date metrics through ``MultiToSingleDimensionPartitionMapping``:
a day's partition reads every creator's partition of that day, so a backfill of one day over many
creators recomputes each of these once. They read only DuckDB (no API call), replace whole dates in
one transaction, and take ``BackfillPolicy.single_run()``, so a backfill over many days is one run.

``analyst_refresh_sensor`` (in this module too) launches ``analyst_job`` for every date whose metrics
were rebuilt, once the runs that rebuilt them have finished: after the daily snapshot, after a
follow-up rebuild, after a backfill.
"""

from datetime import date
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetRecordsFilter,
    AssetSelection,
    BackfillPolicy,
    Config,
    DagsterRunStatus,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    MultiToSingleDimensionPartitionMapping,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)
from pydantic import Field

from pgy_pipeline.errors import InvalidInputError
from pgy_pipeline.orchestration.asset_keys import (
    ANOMALIES_KEY,
    CREATORS_KEY,
    METRICS_KEY,
    NOTE_PAGES_KEY,
    NOTES_KEY,
    PEER_PERCENTILES_KEY,
    REPORT_KEY,
)
from pgy_pipeline.orchestration.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from pgy_pipeline.orchestration.metadata import column_schema, md_table
from pgy_pipeline.orchestration.partitions import partition_day, snapshot_date_partitions
from pgy_pipeline.orchestration.publishing import publishes_replica
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline.report import build_report, report_path
from pgy_pipeline.warehouse.analyst import (
    AnomalyRules,
    anomalies_by_kind,
    first_anomalies,
    percentile_leaders,
    rebuild_anomalies,
    rebuild_peer_percentiles,
)
from pgy_pipeline.warehouse.storage import ensure_schema
from pgy_pipeline.warehouse.tables import SPIKE_FACTOR, SPIKE_FLOOR_READS_PER_DAY

GROUP = "analyst"
# A day's partition of these assets stands for every creator's partition of that day.
BY_DATE = MultiToSingleDimensionPartitionMapping(partition_dimension_name="date")


def context_dates(context: AssetExecutionContext) -> list[date]:
    """The snapshot dates of this step (one, or a range), validated before any SQL."""
    days, problems = [], []
    for key in context.partition_keys:
        try:
            days.append(date.fromisoformat(str(key)))
        except ValueError:
            problems.append(repr(key))
    if problems:
        raise InvalidInputError(f"partition key(s) {', '.join(problems)} are not YYYY-MM-DD dates")
    return sorted(days)


def _per_date_metadata(context: AssetExecutionContext, figures: dict[date, dict[str, Any]]) -> None:
    for day, values in figures.items():
        context.add_asset_metadata(values, partition_key=day.isoformat())


@asset(
    key=PEER_PERCENTILES_KEY,
    deps=[AssetDep(METRICS_KEY, partition_mapping=BY_DATE), CREATORS_KEY],
    partitions_def=snapshot_date_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"duckdb", "sql"},
    metadata={"dagster/column_schema": column_schema("analytics.creator_peer_percentiles")},
    check_specs=[AssetCheckSpec("percentiles_within_bounds", asset=PEER_PERCENTILES_KEY, blocking=True)],
)
def creator_peer_percentiles(context: AssetExecutionContext, duckdb: PgyDuckDBResource) -> MaterializeResult:
    """Each creator's percentile rank among its peers (each tag, and the whole roster), per date."""
    days = context_dates(context)
    with duckdb.writer(
        run_id=context.run_id, log=context.log.info, publish=publishes_replica(context), days=days
    ) as conn:
        ensure_schema(conn)
        counts = rebuild_peer_percentiles(conn, days)
        violations = conn.execute(
            """
            SELECT creator_id, snapshot_date, peer_group FROM analytics.creator_peer_percentiles
            WHERE snapshot_date BETWEEN ? AND ?
              AND (least(read_median_percentile, interaction_median_percentile, engagement_rate_percentile,
                         hundred_like_rate_percentile) < 0
                   OR greatest(read_median_percentile, interaction_median_percentile,
                               engagement_rate_percentile, hundred_like_rate_percentile) > 100)
            LIMIT 20
            """,
            [days[0], days[-1]],
        ).fetchall()
        leaders = percentile_leaders(conn, days[-1])
        groups = dict(
            conn.execute(
                "SELECT snapshot_date, count(DISTINCT peer_group) FROM analytics.creator_peer_percentiles "
                "WHERE snapshot_date BETWEEN ? AND ? GROUP BY 1",
                [days[0], days[-1]],
            ).fetchall()
        )
    _per_date_metadata(
        context,
        {d: {"dagster/row_count": n, "peer_groups": int(groups.get(d, 0))} for d, n in counts.items()},
    )
    empty = [d.isoformat() for d, n in counts.items() if n == 0]
    if empty:
        context.log.warning(f"no 30d metrics stored for {', '.join(empty)}: nothing to rank on those dates")
    return MaterializeResult(
        metadata={
            "run_total/rows": sum(counts.values()),
            f"leaders_{days[-1].isoformat()}": MetadataValue.md(
                md_table(
                    ["creator", "name", "peers", "read median", "read median pct", "engagement pct"], leaders
                )
            ),
        },
        check_results=[
            AssetCheckResult(
                check_name="percentiles_within_bounds",
                passed=not violations,
                severity=AssetCheckSeverity.ERROR,
                metadata={"violations": MetadataValue.json([[str(v) for v in r] for r in violations])},
            )
        ],
    )


class AnomaliesConfig(Config):
    """Run config of ``analytics/anomalies``."""

    spike_factor: float = Field(
        default=SPIKE_FACTOR, description="k: a note's daily gain above k x the creator's median daily gain."
    )
    spike_floor: float = Field(
        default=SPIKE_FLOOR_READS_PER_DAY, description="...and at least this many reads a day."
    )


@asset(
    key=ANOMALIES_KEY,
    deps=[
        AssetDep(NOTES_KEY, partition_mapping=BY_DATE),
        AssetDep(NOTE_PAGES_KEY, partition_mapping=BY_DATE),
        AssetDep(METRICS_KEY, partition_mapping=BY_DATE),
    ],
    partitions_def=snapshot_date_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"duckdb", "sql"},
    metadata={"dagster/column_schema": column_schema("analytics.anomalies")},
    check_specs=[AssetCheckSpec("no_anomalies", asset=ANOMALIES_KEY)],
)
def anomalies(
    context: AssetExecutionContext, config: AnomaliesConfig, duckdb: PgyDuckDBResource
) -> MaterializeResult:
    """Findings per snapshot date: vanished notes, read corrections and spikes, dropped totals, quiet creators."""
    days = context_dates(context)
    rules = AnomalyRules(spike_factor=config.spike_factor, spike_floor=config.spike_floor)
    with duckdb.writer(
        run_id=context.run_id, log=context.log.info, publish=publishes_replica(context), days=days
    ) as conn:
        ensure_schema(conn)
        counts = rebuild_anomalies(conn, days, rules)
        kinds = anomalies_by_kind(conn, days)
        first = {d: first_anomalies(conn, d, 10) for d in days if counts[d]}
    _per_date_metadata(
        context,
        {d: {"dagster/row_count": n, "by_kind": MetadataValue.json(kinds[d])} for d, n in counts.items()},
    )
    total = sum(counts.values())
    preview = "\n\n".join(
        f"**{d.isoformat()}**: {counts[d]} finding(s)\n\n"
        + md_table(["kind", "creator", "name", "note", "what happened"], rows)
        for d, rows in first.items()
    )
    check = AssetCheckResult(
        check_name="no_anomalies",
        passed=total == 0,
        severity=AssetCheckSeverity.WARN,
        description=(
            "no anomalies on " + ", ".join(d.isoformat() for d in days)
            if total == 0
            else f"{total} anomal{'y' if total == 1 else 'ies'}: "
            + "; ".join(f"{d.isoformat()}: {counts[d]}" for d in days if counts[d])
        ),
        metadata={
            "count": total,
            "per_date": MetadataValue.json({d.isoformat(): counts[d] for d in days}),
            "by_kind": MetadataValue.json({d.isoformat(): kinds[d] for d in days if kinds[d]}),
            "first_rows": MetadataValue.md(preview or "none"),
        },
    )
    return MaterializeResult(
        metadata={"run_total/rows": total, "first_rows": MetadataValue.md(preview or "none")},
        check_results=[check],
    )


class CreatorReportConfig(Config):
    """Run config of ``reports/creator_report``."""

    max_creators: int = Field(default=30, description="Creators with their own charts (highest read median).")
    max_brands: int = Field(default=12, description="Brands with their own bar chart (most reads).")
    top_notes: int = Field(default=5, description="Read curves per creator (its most-read notes).")


@asset(
    key=REPORT_KEY,
    deps=[
        PEER_PERCENTILES_KEY,
        ANOMALIES_KEY,
        AssetDep(METRICS_KEY, partition_mapping=BY_DATE),
        AssetDep(NOTES_KEY, partition_mapping=BY_DATE),
        CREATORS_KEY,
    ],
    partitions_def=snapshot_date_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"html", "python"},
)
def creator_report(
    context: AssetExecutionContext, config: CreatorReportConfig, duckdb: PgyDuckDBResource
) -> MaterializeResult:
    """A self-contained HTML report per snapshot date (reports/<date>.html beside the DuckDB file)."""
    days = context_dates(context)
    written = {}
    # Reads only (it opens the file read-write, so under the writer lock); nothing new for the replica.
    with duckdb.writer(run_id=context.run_id, log=context.log.info, publish=False, days=()) as conn:
        ensure_schema(conn)
        for day in days:
            written[day] = build_report(
                conn,
                day,
                report_path(duckdb.database, day),
                max_creators=config.max_creators,
                max_brands=config.max_brands,
                top_notes=config.top_notes,
            )
    for day, summary in written.items():
        context.add_asset_metadata(
            {
                "path": MetadataValue.path(str(summary.path)),
                "url": MetadataValue.url(summary.url),
                "charts": summary.chart_count,
                "creators": summary.creators_total,
                "anomalies": summary.anomalies,
                "size_mb": round(summary.path.stat().st_size / 1e6, 2),
            },
            partition_key=day.isoformat(),
        )
        context.log.info(f"report of {day.isoformat()}: {summary.url}")
    last = written[days[-1]]
    return MaterializeResult(
        metadata={
            "latest_path": MetadataValue.path(str(last.path)),
            "latest_url": MetadataValue.url(last.url),
        }
    )


ANALYST_ASSETS = [creator_peer_percentiles, anomalies, creator_report]

analyst_job = define_asset_job(
    name="analyst_job",
    selection=AssetSelection.assets(*ANALYST_ASSETS),  # partitioned as its assets are
    description="Rebuild peer percentiles, anomalies and the HTML report for snapshot dates. No API call.",
)

_FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@sensor(
    name="analyst_refresh_sensor",
    job=analyst_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Refreshes percentiles, anomalies and the report of each date whose metrics were rebuilt.",
)
def analyst_refresh_sensor(context: SensorEvaluationContext) -> SkipReason | list[RunRequest]:
    instance = context.instance
    after = int(context.cursor) if context.cursor else None
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=METRICS_KEY, after_storage_id=after), limit=5000, ascending=True
    ).records
    if not records:
        return SkipReason("no new metrics")
    days: set[date] = set()
    cursor = after
    status: dict[str, DagsterRunStatus | None] = {}
    for record in records:
        if record.run_id not in status:
            run = instance.get_run_by_id(record.run_id) if record.run_id else None
            status[record.run_id] = run.status if run else None
        if status[record.run_id] is not None and status[record.run_id] not in _FINISHED:
            break  # that run may write more of the day: refresh once it is done
        if record.partition_key:
            days.add(partition_day(record.partition_key))  # either layout: member|date
        cursor = record.storage_id
    if cursor is not None:
        context.update_cursor(str(cursor))
    if not days:
        return SkipReason("metrics are still being written; waiting for their runs to finish")
    # One run per block of consecutive days (a day's snapshot, or a demo history of 30 days), not one
    # run per day: each run is a process that costs seconds.
    return [
        RunRequest(partition_key=first.isoformat(), run_key=f"analyst-{first.isoformat()}-{cursor}")
        if first == last
        else RunRequest(
            run_key=f"analyst-{first.isoformat()}-{last.isoformat()}-{cursor}",
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
            },
        )
        for first, last in _consecutive_blocks(days)
    ]


def _consecutive_blocks(days: set[date]) -> list[tuple[date, date]]:
    """``days`` as (first, last) runs of consecutive dates, in order."""
    blocks: list[tuple[date, date]] = []
    for day in sorted(days):
        if blocks and (day - blocks[-1][1]).days == 1:
            blocks[-1] = (blocks[-1][0], day)
        else:
            blocks.append((day, day))
    return blocks
