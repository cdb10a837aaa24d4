"""The four assets: raw API pages -> normalized notes -> per-creator engagement metrics, and the
creator registry's names and tags.

The three API-fed assets are partitioned by creator x snapshot date and take
``BackfillPolicy.single_run()``, so a backfill over many creators is one run (one process), not one
run per creator. Each step works on every partition of its run at once and replaces those
partitions in DuckDB in one transaction. Each reads as a short story: validate, plan, fetch or
rebuild, write, report; the SQL lives in ``pgy_pipeline/warehouse/sql/``.

Steps serialize on the step locks of ``locks.py`` (``pgy_api`` around the whole of
``raw/note_pages``, ``pgy_duckdb`` around every DuckDB write), which the holder's death releases; after
each write the read replica is refreshed for analysts.

Every partition's materialization carries its own figures only (``dagster/row_count``, pages,
calls), set with ``context.add_asset_metadata(..., partition_key=...)``. The step's totals
(``run_total/...``) and previews are logged once per step as an observation of the asset
(:data:`STEP_SUMMARY`), not copied into every partition's event.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
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
    asset,
)
from pydantic import Field

from pgy_pipeline.api.client import NotesQuery, Page
from pgy_pipeline.api.ingest import FetchOutcome, fetch_creators
from pgy_pipeline.api.pacing import AdaptivePacer
from pgy_pipeline.errors import (
    AccountError,
    BudgetExhaustedError,
    InvalidParameterError,
    PastSnapshotDateError,
    PgyError,
)
from pgy_pipeline.locks import API_LOCK
from pgy_pipeline.orchestration.budget import BudgetVerdict, CallBooks, budget_message, record_verdict
from pgy_pipeline.orchestration.dagster_internals import tag_run
from pgy_pipeline.orchestration.empty_streaks import NO_DATA_MESSAGE, is_empty_scan, record_snapshots
from pgy_pipeline.orchestration.guard import raise_if_guarded, trip_guard
from pgy_pipeline.orchestration.metadata import (
    column_schema,
    creator_label,
    creators_tag,
    keys_text,
    md_table,
)
from pgy_pipeline.orchestration.pace_memory import read_pace, write_pace
from pgy_pipeline.orchestration.partitions import PARTITIONINGS, cohort_note_partitions, note_partitions
from pgy_pipeline.orchestration.registry import CreatorRegistryResource
from pgy_pipeline.orchestration.resources import PgyApiResource, PgyDuckDBResource
from pgy_pipeline.orchestration.scope import StepScope, creator_scope, fetch_scope, stored_scope
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.ledger import (
    CallJournal,
    billed_calls_on,
    discard,
    insert_calls,
    read_pending,
    write_pending,
)
from pgy_pipeline.warehouse.scans import ScanPlan, plan_scans, scan_history
from pgy_pipeline.warehouse.spool import Spool
from pgy_pipeline.warehouse.storage import (
    PartitionKey,
    claim_data_source,
    ensure_schema,
    partition_keys,
    rebuild_metrics,
    rebuild_notes,
    replace_creators,
    replace_raw_pages,
    report,
    stored_raw_keys,
    transaction,
)

GROUP = "pgy"
NOTE_PAGES_KEY = AssetKey(["raw", "note_pages"])
NOTES_KEY = AssetKey(["analytics", "notes"])
METRICS_KEY = AssetKey(["analytics", "creator_engagement_metrics"])
CREATORS_KEY = AssetKey(["analytics", "creators"])
# The per-partition ``status`` of a raw partition a run left as it was (the follow-up sensor skips it).
UNCHANGED = "unchanged (already stored)"


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


@dataclass
class FetchPlan:
    """What a ``raw/note_pages`` step does with each of its partitions."""

    keys: list[PartitionKey]
    stored: set[PartitionKey]  # already stored and not refreshed: left as they are
    from_spool: dict[PartitionKey, list[Page]] = field(default_factory=dict)  # paid for, not yet written
    to_fetch: list[PartitionKey] = field(default_factory=list)


def _plan_fetch(
    keys: list[PartitionKey], stored: set[PartitionKey], refresh: bool, today: date, spool: Spool
) -> FetchPlan:
    """Decide per partition: skip, write from the spool, or fetch; refuse past dates before any call."""
    todo = [k for k in keys if refresh or k not in stored]
    past = sorted(k for k in todo if k[1] != today)
    if past:
        # A run queued before midnight that starts after it lands here too: the service would answer
        # with today's list, which must not be stored under yesterday's date.
        raise PastSnapshotDateError(
            f"cannot fetch raw pages for {keys_text(past)}: the API only serves the present, so raw "
            f"pages can only be fetched for today ({today.isoformat()}, Asia/Shanghai). To snapshot "
            f"these creators now, launch today's partitions instead: "
            f"{keys_text({(c, today) for c, _ in past})}. To rebuild analytics/notes and "
            "analytics/creator_engagement_metrics for past dates, materialize those assets alone: they "
            "read the raw pages already stored and make no API call. No API call was made."
        )
    plan = FetchPlan(keys=keys, stored={k for k in keys if k not in todo})
    for key in todo:
        # Spooled pages were fetched after anything stored (the spool is cleared on every write), so
        # even a refresh takes them rather than paying for the same pages again.
        spooled = spool.load(*key)
        if spooled is not None:
            plan.from_spool[key] = spooled
        else:
            plan.to_fetch.append(key)
    return plan


def _creator_names(
    context: AssetExecutionContext, conn: duckdb.DuckDBPyConnection, keys: list[PartitionKey]
) -> dict[str, str]:
    """Registry names of the step's creators (from ``analytics.creators``), and a ``pgy/creators`` run tag
    naming them, so the runs list, logs and failures show names next to the 24-hex ids."""
    with partition_keys(conn, keys):
        names = {str(c): str(n) for c, n in report(conn, "creator_names")}
    tag_run(context.instance, context.run_id, {"pgy/creators": creators_tag([c for c, _ in keys], names)})
    return names


def _fetch(
    context: AssetExecutionContext,
    pgy_api: PgyApiResource,
    plan: FetchPlan,
    query: NotesQuery,
    spool: Spool,
    scans: ScanPlan,
    books: CallBooks,
    names: dict[str, str],
) -> tuple[FetchOutcome, dict[str, Any]]:
    """Scan every creator of ``scans.order``; logs progress; trips the guard on an account error.

    Starts at the pace the last run learned and leaves its own for the next; every call goes to the
    step's journal, and the daily budget is kept call by call (see :mod:`.budget`).
    """
    raise_if_guarded(context.instance)
    pace_at = f"{pgy_api.data_source}:{pgy_api.base_url}"
    client = pgy_api.get_client(learned=read_pace(context.instance, pace_at), hooks=books)
    day = plan.to_fetch[0][1]
    step = max(1, len(plan.to_fetch) // 10)

    def progress(done: int, total: int, outcome: FetchOutcome) -> None:
        if done % step == 0 or done == total:
            context.log.info(
                f"fetched {done}/{total} creators ({len(outcome.failures)} failed), "
                f"{client.stats.calls} API calls, {client.stats.retries} retries so far"
            )

    try:
        outcome = fetch_creators(
            client,
            scans.order,
            query=query,
            on_scan=lambda scan: spool.save(scan.creator_id, day, scan.pages),
            progress=progress,
            windows=scans.windows,
            estimates=scans.estimates,
        )
    finally:
        client.close()
        books.journal.close()
        if isinstance(client.pacer, AdaptivePacer):
            write_pace(context.instance, pace_at, client.pacer.state())
    for creator_id, scan in outcome.scans.items():
        if scan.drift:
            context.log.warning(f"creator {creator_label(creator_id, names)}: " + "; ".join(scan.drift))
    account = next((e for e in outcome.failures.values() if isinstance(e, AccountError)), None)
    if account is not None:
        context.log.error(trip_guard(context.instance, account).describe())
    stats = client.stats.as_dict()
    if isinstance(client.pacer, AdaptivePacer):
        stats["pacing"] = client.pacer.summary()
    return outcome, stats


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
    for part, values in scope.per_partition(_partition_figures(rows, names)).items():
        values["step_summary"] = MetadataValue.dagster_run(context.run_id)
        context.add_asset_metadata(values, partition_key=part)


def _note_empty_snapshots(
    context: AssetExecutionContext, pages_by_key: dict[PartitionKey, list[Page]], first: set[str]
) -> list[str]:
    """Log every creator whose written snapshot is 'empty' and keep the streaks of empty snapshots
    (in the Dagster instance, for the daily schedule); returns those creators."""
    by_day: dict[date, tuple[list[str], list[str]]] = {}
    for (creator_id, day), pages in sorted(pages_by_key.items()):
        empty, with_data = by_day.setdefault(day, ([], []))
        (empty if is_empty_scan(pages) else with_data).append(creator_id)
    for day, (empty, with_data) in by_day.items():
        for creator_id, streak in record_snapshots(context.instance, day, empty, with_data).items():
            context.log.warning(
                (
                    f"new creator {creator_id}: its first snapshot came back empty: check its id in the "
                    "registry (creators.yaml); "
                    if creator_id in first
                    else f"creator {creator_id}: "
                )
                + f"{NO_DATA_MESSAGE} (the service answered code 0 with no notes and total 0, and billed "
                f"the call); {streak.describe()}"
            )
    return sorted({c for empty, _ in by_day.values() for c in empty})


def _note_pages_step(
    context: AssetExecutionContext,
    config: NotePagesConfig,
    pgy_api: PgyApiResource,
    duckdb: PgyDuckDBResource,
    scope: StepScope,
) -> MaterializeResult:
    """Check the request, then fetch and write under the ``pgy_api`` lock."""
    query = NotesQuery(config.advertise_switch, config.order_type, config.note_type, config.is_third_platform)
    if config.scan not in ("auto", "full"):
        raise InvalidParameterError(
            f"invalid scan {config.scan!r}: must be auto | full. No API call was made."
        )
    if pgy_api.simulated_warning:
        context.log.warning(pgy_api.simulated_warning)
    # One fetching step at a time, from the plan to the write: a step that waited finds what the
    # previous one stored and fetches only the rest.
    with duckdb.step_lock(API_LOCK, run_id=context.run_id, log=context.log.info):
        return _note_pages(context, config, pgy_api, duckdb, scope, query)


def _note_pages(
    context: AssetExecutionContext,
    config: NotePagesConfig,
    pgy_api: PgyApiResource,
    duckdb: PgyDuckDBResource,
    scope: StepScope,
    query: NotesQuery,
) -> MaterializeResult:
    keys = scope.keys
    spool = Spool(duckdb.spool_path)
    today = today_shanghai()
    with duckdb.writer(run_id=context.run_id, log=context.log.info, publish=False) as conn:
        ensure_schema(conn)
        claim_data_source(conn, pgy_api.data_source, duckdb.database)
        names = _creator_names(context, conn, keys)
        plan = _plan_fetch(keys, stored_raw_keys(conn, keys), config.refresh, today, spool)
        # Calls journaled by earlier runs that failed or were killed go into the ledger first, so the
        # day's count below is complete.
        write_pending(conn, duckdb.spool_path)
        billed_before = billed_calls_on(conn, today)
        creators_to_fetch = [c for c, _ in plan.to_fetch]
        history = scan_history(conn, creators_to_fetch, today)
        scans = plan_scans(
            creators_to_fetch,
            history,
            today,
            query=query,
            full_every_days=pgy_api.full_scan_every_days,
            force_full=config.scan == "full",
        )
    context.log.info(
        (
            f"{len(keys)} creator snapshot(s) in {len(scope.partitions)} cohort partition(s)"
            if scope.by_cohort
            else f"{len(keys)} partition(s)"
        )
        + f": {len(plan.stored)} already stored (skipped; set refresh to fetch "
        f"again), {len(plan.from_spool)} from the spool (fetched earlier, not yet written), "
        f"{len(plan.to_fetch)} to fetch from the API"
    )

    pages_by_key = dict(plan.from_spool)
    failures: dict[str, PgyError] = {}
    stats: dict[str, Any] = {"calls": 0, "retries": 0, "outcomes": {}}
    drift: dict[str, list[str]] = {}
    order_breaks: dict[str, list[str]] = {}
    budget = pgy_api.budget
    books = CallBooks(CallJournal(duckdb.spool_path, context.run_id, today), budget, billed_before)
    deferred: list[str] = []
    if plan.to_fetch and budget is not None and billed_before >= budget:
        deferred = list(scans.order)  # nothing affordable: not one call
        books.journal.close()
    elif plan.to_fetch:
        context.log.info(
            f"scans: {scans.counts()['full']} full, {scans.counts()['window']} window-bounded (90 days "
            f"and a 7-day margin); budget: {budget if budget is not None else 'none'}"
            + (f", {billed_before} billed today before this run" if budget is not None else "")
        )
        try:
            outcome, stats = _fetch(context, pgy_api, plan, query, spool, scans, books, names)
        finally:
            books.journal.close()
        for creator_id, scan in outcome.scans.items():
            pages_by_key[(creator_id, today)] = scan.pages
            if scan.drift:
                drift[creator_id] = scan.drift
            if scan.order_breaks:
                order_breaks[creator_id] = scan.order_breaks
        deferred = outcome.deferred + sorted(
            c for c, e in outcome.failures.items() if isinstance(e, BudgetExhaustedError)
        )
        failures.update(
            {c: e for c, e in outcome.failures.items() if not isinstance(e, BudgetExhaustedError)}
        )
    else:
        books.journal.close()
    if budget is not None:
        record_verdict(
            context.instance, BudgetVerdict(today.isoformat(), budget, books.billed_today, len(deferred))
        )

    rows = 0
    pending = read_pending(duckdb.spool_path)
    with duckdb.writer(run_id=context.run_id, log=context.log.info, publish=bool(pages_by_key)) as conn:
        if pages_by_key:
            # The calls go in with the pages they paid for, in one transaction.
            rows = replace_raw_pages(conn, pages_by_key, also=lambda c: insert_calls(c, pending))
        elif pending.files:
            with transaction(conn):
                insert_calls(conn, pending)
        with partition_keys(conn, plan.stored | set(pages_by_key)):
            per_partition = report(conn, "raw_pages_per_partition")
    discard(pending)
    for key in pages_by_key:
        spool.discard(*key)
    spent = books.journal.totals()
    first = {c for c in creators_to_fetch if c not in history}  # never snapshotted before
    no_data = _note_empty_snapshots(context, pages_by_key, first)
    figures = _partition_figures(
        per_partition, ["dagster/row_count", "api_calls", "api_retries", "items", "total_reported"]
    )
    for key in figures:
        if key in pages_by_key and pages_by_key[key]:
            figures[key]["scan"] = pages_by_key[key][0].scan
        figures[key]["creator"] = creator_label(key[0], names)
        figures[key]["status"] = (
            UNCHANGED
            if key in plan.stored
            else "written from the spool (no new call)"
            if key in plan.from_spool
            else "fetched"
        )

    metadata: dict[str, Any] = {
        "run_total/pages_written": rows,
        "run_total/partitions_written": len(pages_by_key),
        "run_total/partitions_already_stored": len(plan.stored),
        "run_total/partitions_from_spool": len(plan.from_spool),
        "run_total/api_calls": stats["calls"],
        "run_total/billed_calls": spent["billed_calls"],
        "run_total/api_retries": stats["retries"],
        "run_total/scans": MetadataValue.json(scans.counts()),
        "run_total/api_outcomes": MetadataValue.json(stats["outcomes"]),
        "data_source": pgy_api.data_source,
        "query": MetadataValue.json(query.params("<creator>", 1) | {"pageNumber": "1.."}),
    }
    context.log.info(
        f"run totals: {rows} page(s) written for {len(pages_by_key)} partition(s), "
        f"{stats['calls']} API call(s), {stats['retries']} retry(ies)"
    )
    if drift:
        metadata["list_drift"] = MetadataValue.json(drift)
    if no_data:
        metadata["run_total/no_pugongying_data"] = MetadataValue.json(no_data)
    if order_breaks:
        # Dates out of newest-first order by more than the window margin: a window scan could miss notes.
        metadata["out_of_order_dates"] = MetadataValue.json(order_breaks)
        context.log.warning(f"dates out of order by more than 7 days for {len(order_breaks)} creator(s)")
    if "pacing" in stats:
        metadata["api_pacing"] = MetadataValue.json(stats["pacing"])
    if budget is not None:
        metadata["daily_call_budget"] = MetadataValue.json(
            {
                "budget": budget,
                "billed_today": books.billed_today,
                "over_budget_by": books.over_budget_by,
                "left_for_tomorrow": len(deferred),
            }
        )
        if books.over_budget_by:
            context.log.warning(
                f"{books.over_budget_by} call(s) over the daily budget of {budget}: creators already "
                "started are always finished (a scan cut short would be paid for and thrown away), and "
                "their lists needed more pages than estimated"
            )
    per_partition_figures = scope.per_partition(figures)
    if scope.by_cohort:
        for part, part_keys in scope.by_partition().items():
            written = any(k not in plan.stored for k in part_keys)
            per_partition_figures[part]["status"] = "written" if written else UNCHANGED
    if failures or deferred:
        # A failed step records no materialization by itself: record the partitions that were written
        # (a cohort only when every creator of it was written or already stored).
        unfinished = {scope.partition_of((c, today)) for c in [*failures, *deferred]}
        written_parts = (
            [p for p in scope.partitions if p not in unfinished]
            if scope.by_cohort
            else [scope.partition_of(k) for k in pages_by_key]
        )
        for part in written_parts:
            context.log_event(
                AssetMaterialization(
                    asset_key=NOTE_PAGES_KEY, partition=part, metadata=per_partition_figures[part]
                )
            )
        lines = [f"- {creator_label(c, names)}: {type(e).__name__}: {e}" for c, e in sorted(failures.items())]
        if deferred:
            assert budget is not None
            lines.insert(
                0,
                f"{len(deferred)} creator(s) left for tomorrow: {budget_message(budget, books.billed_today)}. "
                f"Not fetched: {', '.join(creator_label(c, names) for c in deferred)}",
            )
        raise Failure(
            description=(
                f"{len(failures)} of {len(keys)} creator(s) failed, {len(deferred)} left for tomorrow; "
                f"{len(pages_by_key)} written, {len(plan.stored)} already stored. Rerun to fetch only "
                "the failed ones.\n" + "\n".join(lines)
            ),
            metadata={
                **metadata,
                "failed_creators": MetadataValue.json(
                    {creator_label(c, names): str(e) for c, e in failures.items()}
                ),
                "left_for_tomorrow": MetadataValue.json(deferred),
            },
        )
    for part, values in per_partition_figures.items():
        context.add_asset_metadata(values, partition_key=part)
    return _with_step_summary(context, NOTE_PAGES_KEY, metadata)


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


def _notes_report(conn: duckdb.DuckDBPyConnection, keys: list[PartitionKey]) -> NotesReport:
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
    for part in {scope.partition_of(key) for key in missing}:
        context.add_asset_metadata({"status": NO_SNAPSHOT, "dagster/row_count": 0}, partition_key=part)


def _notes(context: AssetExecutionContext, duckdb: PgyDuckDBResource, by_cohort: bool) -> MaterializeResult:
    scope = None if by_cohort else creator_scope(context)  # bad keys refused before DuckDB opens
    with duckdb.writer(run_id=context.run_id, log=context.log.info) as conn:
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
    with duckdb.writer(run_id=context.run_id, log=context.log.info) as conn:
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


def build_snapshot_assets(
    partitioning: str = "creator",
) -> tuple[AssetsDefinition, AssetsDefinition, AssetsDefinition]:
    """``raw/note_pages``, ``analytics/notes`` and ``analytics/creator_engagement_metrics`` in one of
    the layouts of :mod:`.partitions`: ``creator`` (creator x date) or ``cohort`` (cohort x date).
    The asset keys, tables and steps are the same; only Dagster's bookkeeping differs."""
    if partitioning not in PARTITIONINGS:
        raise InvalidParameterError(
            f"invalid partitioning {partitioning!r}: must be one of {', '.join(PARTITIONINGS)}"
        )
    by_cohort = partitioning == "cohort"
    partitions_def = cohort_note_partitions if by_cohort else note_partitions
    # One declaration for both layouts' raw asset; the function differs only in its resources.
    note_pages_asset = asset(
        key=NOTE_PAGES_KEY,
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"duckdb", "python"},
        metadata={"dagster/column_schema": column_schema("raw.note_pages")},
    )

    if by_cohort:
        # A cohort partition stands for the registry's creators of that cohort: the step reads the registry.
        @note_pages_asset
        def note_pages(
            context: AssetExecutionContext,
            config: NotePagesConfig,
            pgy_api: PgyApiResource,
            duckdb: PgyDuckDBResource,
            creator_registry: CreatorRegistryResource,
        ) -> MaterializeResult:
            """Raw API response pages of each creator's notes, one row per page, body verbatim."""
            scope = fetch_scope(context, creator_registry.load(), config.creators, config.skip_creators)
            return _note_pages_step(context, config, pgy_api, duckdb, scope)

    else:

        @note_pages_asset
        def note_pages(
            context: AssetExecutionContext,
            config: NotePagesConfig,
            pgy_api: PgyApiResource,
            duckdb: PgyDuckDBResource,
        ) -> MaterializeResult:
            """Raw API response pages of each creator's notes, one row per page, body verbatim."""
            if config.creators or config.skip_creators:
                raise InvalidParameterError(
                    "run config 'creators' and 'skip_creators' apply only with PGY_PARTITIONING=cohort; "
                    "with creator partitions select the creators' partitions instead. No API call was made."
                )
            return _note_pages_step(context, config, pgy_api, duckdb, creator_scope(context))

    @asset(
        key=NOTES_KEY,
        deps=[NOTE_PAGES_KEY],
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"duckdb", "sql"},
        metadata={"dagster/column_schema": column_schema("analytics.notes")},
        check_specs=[
            AssetCheckSpec("note_ids_unique_and_present", asset=NOTES_KEY, blocking=True),
            AssetCheckSpec("notes_reconcile_with_total", asset=NOTES_KEY),
        ],
    )
    def notes(context: AssetExecutionContext, duckdb: PgyDuckDBResource) -> MaterializeResult:
        """Typed notes, one row per note per snapshot, rebuilt from the stored raw pages (no API call)."""
        return _notes(context, duckdb, by_cohort)

    @asset(
        key=METRICS_KEY,
        deps=[NOTES_KEY],
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"duckdb", "sql"},
        metadata={"dagster/column_schema": column_schema("analytics.creator_engagement_metrics")},
        check_specs=[AssetCheckSpec("metric_rates_within_bounds", asset=METRICS_KEY, blocking=True)],
    )
    def creator_engagement_metrics(
        context: AssetExecutionContext, duckdb: PgyDuckDBResource
    ) -> MaterializeResult:
        """Per-creator engagement metrics by window (30d, 90d, all) and segment (all, organic, cooperation)."""
        return _creator_engagement_metrics(context, duckdb, by_cohort)

    return note_pages, notes, creator_engagement_metrics


# The default (creator x date) layout's assets, which most callers import directly.
note_pages, notes, creator_engagement_metrics = build_snapshot_assets("creator")


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
    with duckdb.writer(run_id=context.run_id, log=context.log.info) as conn:
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
