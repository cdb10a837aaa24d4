"""The ``raw/note_pages`` step as Dagster-free phases: plan, spend (fetch), write, report.

Each phase takes plain values, a DuckDB connection or an API client, and returns a dataclass; the
asset (``assets.note_pages``) turns those into log lines, metadata and, when creators failed or were
left for tomorrow, a ``Failure``. What lives in the Dagster instance (the run's tag, the quota guard,
the learned pace, the budget's verdict, the streaks of empty snapshots) stays with the asset, which
hands the fetch phase its client through :class:`ApiAccess`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from duckdb import DuckDBPyConnection

from pgy_pipeline.api.client import NotesQuery, Page, PgyClient
from pgy_pipeline.api.ingest import FetchOutcome, fetch_creators
from pgy_pipeline.api.ledger import CallHooks
from pgy_pipeline.api.pacing import AdaptivePacer
from pgy_pipeline.errors import AccountError, BudgetExhaustedError, PastSnapshotDateError, PgyError
from pgy_pipeline.orchestration.call_books import BudgetVerdict, CallBooks, budget_message
from pgy_pipeline.orchestration.labels import creator_label, keys_text
from pgy_pipeline.warehouse.ledger import (
    CallJournal,
    PendingCalls,
    billed_calls_on,
    discard,
    insert_calls,
    read_pending,
    write_pending,
)
from pgy_pipeline.warehouse.scans import CreatorHistory, ScanPlan, plan_scans, scan_history
from pgy_pipeline.warehouse.spool import Spool
from pgy_pipeline.warehouse.storage import (
    PartitionKey,
    claim_data_source,
    ensure_schema,
    partition_keys,
    replace_raw_pages,
    report,
    stored_raw_keys,
    transaction,
)

# The per-partition ``status`` of a raw partition a run left as it was (the follow-up sensor skips it).
UNCHANGED = "unchanged (already stored)"
FROM_SPOOL = "written from the spool (no new call)"
FIGURES = ["dagster/row_count", "api_calls", "api_retries", "items", "total_reported"]


@dataclass(frozen=True)
class Json:
    """A metadata value to show as JSON (the asset wraps it in ``MetadataValue.json``)."""

    value: Any


@dataclass(frozen=True)
class StepRequest:
    """What one step was asked to do, from its partitions, run config and resources."""

    keys: list[PartitionKey]
    today: date
    query: NotesQuery
    refresh: bool
    force_full: bool
    full_every_days: int
    budget: int | None
    data_source: str
    database: str
    spool_path: Path
    run_id: str

    @property
    def spool(self) -> Spool:
        return Spool(self.spool_path)


@dataclass
class FetchPlan:
    """What a ``raw/note_pages`` step does with each of its partitions."""

    keys: list[PartitionKey]
    stored: set[PartitionKey]  # already stored and not refreshed: left as they are
    from_spool: dict[PartitionKey, list[Page]] = field(default_factory=dict)  # paid for, not yet written
    to_fetch: list[PartitionKey] = field(default_factory=list)


@dataclass(frozen=True)
class StepPlan:
    """The plan phase's answer: the fetch plan, each creator's scan and the day's calls so far."""

    fetch: FetchPlan
    history: dict[str, CreatorHistory]
    scans: ScanPlan
    billed_before: int

    @property
    def first(self) -> set[str]:
        """Creators to fetch that were never snapshotted before."""
        return {c for c, _ in self.fetch.to_fetch if c not in self.history}

    def describe(self) -> str:
        return (
            f": {len(self.fetch.stored)} already stored (skipped; set refresh to fetch "
            f"again), {len(self.fetch.from_spool)} from the spool (fetched earlier, not yet written), "
            f"{len(self.fetch.to_fetch)} to fetch from the API"
        )


def prepare(conn: DuckDBPyConnection, request: StepRequest) -> dict[str, str]:
    """Prepare the file (schema, data source); returns the step's creators' registry names."""
    ensure_schema(conn)
    claim_data_source(conn, request.data_source, request.database)
    with partition_keys(conn, request.keys):
        return {str(c): str(n) for c, n in report(conn, "creator_names")}


def plan_fetch(
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


def plan(conn: DuckDBPyConnection, request: StepRequest) -> StepPlan:
    """Phase 1: what to skip, write from the spool or fetch, how to scan each creator, and the day's
    billed calls so far (calls journaled by failed or killed runs go into the ledger first)."""
    keys, today = request.keys, request.today
    fetch = plan_fetch(keys, stored_raw_keys(conn, keys), request.refresh, today, request.spool)
    write_pending(conn, request.spool_path)
    billed_before = billed_calls_on(conn, today)
    creators = [c for c, _ in fetch.to_fetch]
    history = scan_history(conn, creators, today)
    scans = plan_scans(
        creators,
        history,
        today,
        query=request.query,
        full_every_days=request.full_every_days,
        force_full=request.force_full,
    )
    return StepPlan(fetch, history, scans, billed_before)


@dataclass(frozen=True)
class ApiAccess:
    """How the fetch phase gets its client and hands it back, and where it logs progress."""

    open_client: Callable[[CallHooks], PgyClient]  # raises if a guard forbids calls
    close_client: Callable[[PgyClient], None]  # after ``client.close()``: keep what it learned
    log: Callable[[str], None]


@dataclass
class Spending:
    """The spend phase's answer: the pages to write and what the calls came to."""

    books: CallBooks
    pages: dict[PartitionKey, list[Page]]
    failures: dict[str, PgyError] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)  # not affordable today: not one call made
    stats: dict[str, Any] = field(default_factory=lambda: {"calls": 0, "retries": 0, "outcomes": {}})
    drift: dict[str, list[str]] = field(default_factory=dict)
    order_breaks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def account_error(self) -> AccountError | None:
        return next((e for e in self.failures.values() if isinstance(e, AccountError)), None)

    def verdict(self, today: date) -> BudgetVerdict | None:
        """The step's word on the day's budget (None without a budget)."""
        limit = self.books.limit
        if limit is None:
            return None
        return BudgetVerdict(today.isoformat(), limit, self.books.billed_today, len(self.deferred))

    def absorb(self, outcome: FetchOutcome, stats: dict[str, Any], today: date) -> None:
        self.stats = stats
        for creator_id, scan in outcome.scans.items():
            self.pages[(creator_id, today)] = scan.pages
            if scan.drift:
                self.drift[creator_id] = scan.drift
            if scan.order_breaks:
                self.order_breaks[creator_id] = scan.order_breaks
        self.deferred = outcome.deferred + sorted(
            c for c, e in outcome.failures.items() if isinstance(e, BudgetExhaustedError)
        )
        self.failures.update(
            {c: e for c, e in outcome.failures.items() if not isinstance(e, BudgetExhaustedError)}
        )


def spend(request: StepRequest, planned: StepPlan, api: ApiAccess) -> Spending:
    """Phase 2: fetch what the plan left to fetch, as far as the day's call budget goes."""
    budget, billed_before = request.budget, planned.billed_before
    journal = CallJournal(request.spool_path, request.run_id, request.today)
    spending = Spending(CallBooks(journal, budget, billed_before), dict(planned.fetch.from_spool))
    try:
        if not planned.fetch.to_fetch:
            return spending
        if budget is not None and billed_before >= budget:
            spending.deferred = list(planned.scans.order)  # nothing affordable: not one call
            return spending
        counts = planned.scans.counts()
        api.log(
            f"scans: {counts['full']} full, {counts['window']} window-bounded (90 days "
            f"and a 7-day margin); budget: {budget if budget is not None else 'none'}"
            + (f", {billed_before} billed today before this run" if budget is not None else "")
        )
        outcome, stats = _fetch(request, planned, spending.books, api)
        spending.absorb(outcome, stats, request.today)
        return spending
    finally:
        journal.close()


def _fetch(
    request: StepRequest, planned: StepPlan, books: CallBooks, api: ApiAccess
) -> tuple[FetchOutcome, dict[str, Any]]:
    """Scan every creator of the scan plan's order, logging progress; every call goes to the step's
    journal, and the daily budget is kept call by call (see :mod:`.budget`)."""
    client = api.open_client(books)
    to_fetch, spool = planned.fetch.to_fetch, request.spool
    day = to_fetch[0][1]
    step = max(1, len(to_fetch) // 10)

    def progress(done: int, total: int, outcome: FetchOutcome) -> None:
        if done % step == 0 or done == total:
            api.log(
                f"fetched {done}/{total} creators ({len(outcome.failures)} failed), "
                f"{client.stats.calls} API calls, {client.stats.retries} retries so far"
            )

    try:
        outcome = fetch_creators(
            client,
            planned.scans.order,
            query=request.query,
            on_scan=lambda scan: spool.save(scan.creator_id, day, scan.pages),
            progress=progress,
            windows=planned.scans.windows,
            estimates=planned.scans.estimates,
        )
    finally:
        client.close()
        books.journal.close()
        api.close_client(client)
    stats = client.stats.as_dict()
    if isinstance(client.pacer, AdaptivePacer):
        stats["pacing"] = client.pacer.summary()
    return outcome, stats


@dataclass(frozen=True)
class Written:
    """The write phase's answer: pages written and each stored partition's figures."""

    rows: int
    per_partition: list[tuple[Any, ...]]


def pending_calls(request: StepRequest) -> PendingCalls:
    """The journaled calls waiting to go into the ledger with the pages (read before the write)."""
    return read_pending(request.spool_path)


def write(conn: DuckDBPyConnection, planned: StepPlan, spending: Spending, pending: PendingCalls) -> Written:
    """Phase 3: replace the fetched partitions' pages, with the calls that paid for them, in one
    transaction (or only the calls when there is nothing to write)."""
    rows = 0
    if spending.pages:
        rows = replace_raw_pages(conn, spending.pages, also=lambda c: insert_calls(c, pending))
    elif pending.files:
        with transaction(conn):
            insert_calls(conn, pending)
    with partition_keys(conn, planned.fetch.stored | set(spending.pages)):
        return Written(rows, report(conn, "raw_pages_per_partition"))


def clear_spool(request: StepRequest, spending: Spending, pending: PendingCalls) -> None:
    """After the write committed: the journals and spooled pages it took are done with."""
    discard(pending)
    spool = request.spool
    for key in spending.pages:
        spool.discard(*key)


def is_empty_scan(pages: Sequence[Any]) -> bool:
    """Whether stored pages are an 'empty' snapshot: code 0, no list items, total 0 (or none).

    The same rule as ``scan_status = 'empty'`` in ``analytics.creator_snapshots``.
    """
    return bool(pages) and all(not p.items for p in pages) and not (pages[-1].total or 0)


@dataclass(frozen=True)
class StepReport:
    """The report phase's answer: figures per creator x date, the step's metadata, and what failed."""

    figures: dict[PartitionKey, dict[str, Any]]
    metadata: dict[str, Any]  # values wrapped in :class:`Json` are shown as JSON
    empty_by_day: dict[date, tuple[list[str], list[str]]]  # day -> (empty creators, creators with data)
    first: set[str]  # creators never snapshotted before this step
    warnings: list[str]
    totals_line: str
    stored: set[PartitionKey]  # left as they were
    written: list[PartitionKey]  # written by this step
    failure: str | None = None  # why the step fails (creators failed or left for tomorrow), else None
    unfinished: list[PartitionKey] = field(default_factory=list)  # failed or left for tomorrow


def empty_snapshots(pages: dict[PartitionKey, list[Page]]) -> dict[date, tuple[list[str], list[str]]]:
    """Per day, the written creators whose snapshot is 'empty' and those with data."""
    by_day: dict[date, tuple[list[str], list[str]]] = {}
    for (creator_id, day), day_pages in sorted(pages.items()):
        empty, with_data = by_day.setdefault(day, ([], []))
        (empty if is_empty_scan(day_pages) else with_data).append(creator_id)
    return by_day


def figures(
    planned: StepPlan, spending: Spending, written: Written, names: dict[str, str]
) -> dict[PartitionKey, dict[str, Any]]:
    """Each stored partition's own figures: rows, calls, scan, creator and status."""
    by_key = {(r[0], r[1]): dict(zip(FIGURES, r[2:], strict=True)) for r in written.per_partition}
    for key, values in by_key.items():
        if spending.pages.get(key):
            values["scan"] = spending.pages[key][0].scan
        values["creator"] = creator_label(key[0], names)
        values["status"] = (
            UNCHANGED
            if key in planned.fetch.stored
            else FROM_SPOOL
            if key in planned.fetch.from_spool
            else "fetched"
        )
    return by_key


def step_metadata(
    request: StepRequest, planned: StepPlan, spending: Spending, written: Written, no_data: list[str]
) -> dict[str, Any]:
    """The step's totals and details (logged once per step, not per partition)."""
    stats, books = spending.stats, spending.books
    metadata: dict[str, Any] = {
        "run_total/pages_written": written.rows,
        "run_total/partitions_written": len(spending.pages),
        "run_total/partitions_already_stored": len(planned.fetch.stored),
        "run_total/partitions_from_spool": len(planned.fetch.from_spool),
        "run_total/api_calls": stats["calls"],
        "run_total/billed_calls": books.journal.totals()["billed_calls"],
        "run_total/api_retries": stats["retries"],
        "run_total/scans": Json(planned.scans.counts()),
        "run_total/api_outcomes": Json(stats["outcomes"]),
        "data_source": request.data_source,
        "query": Json(request.query.params("<creator>", 1) | {"pageNumber": "1.."}),
    }
    optional = {
        "list_drift": spending.drift,
        "run_total/no_pugongying_data": no_data,
        # Dates out of newest-first order by more than the window margin: a window scan could miss notes.
        "out_of_order_dates": spending.order_breaks,
        "api_pacing": stats.get("pacing"),
    }
    metadata |= {name: Json(value) for name, value in optional.items() if value}
    if books.limit is not None:
        metadata["daily_call_budget"] = Json(
            {
                "budget": books.limit,
                "billed_today": books.billed_today,
                "over_budget_by": books.over_budget_by,
                "left_for_tomorrow": len(spending.deferred),
            }
        )
    return metadata


def _warnings(spending: Spending) -> list[str]:
    books, warnings = spending.books, []
    if spending.order_breaks:
        warnings.append(f"dates out of order by more than 7 days for {len(spending.order_breaks)} creator(s)")
    if books.over_budget_by:
        warnings.append(
            f"{books.over_budget_by} call(s) over the daily budget of {books.limit}: creators already "
            "started are always finished (a scan cut short would be paid for and thrown away), and "
            "their lists needed more pages than estimated"
        )
    return warnings


def _failure(
    request: StepRequest, planned: StepPlan, spending: Spending, names: dict[str, str]
) -> str | None:
    """Why the step fails when creators failed or were left for tomorrow; None when none were."""
    failures, deferred, books = spending.failures, spending.deferred, spending.books
    if not failures and not deferred:
        return None
    lines = [f"- {creator_label(c, names)}: {type(e).__name__}: {e}" for c, e in sorted(failures.items())]
    if deferred:
        assert books.limit is not None
        lines.insert(
            0,
            f"{len(deferred)} creator(s) left for tomorrow: {budget_message(books.limit, books.billed_today)}. "
            f"Not fetched: {', '.join(creator_label(c, names) for c in deferred)}",
        )
    return (
        f"{len(failures)} of {len(request.keys)} creator(s) failed, {len(deferred)} left for tomorrow; "
        f"{len(spending.pages)} written, {len(planned.fetch.stored)} already stored. Rerun to fetch only "
        "the failed ones.\n" + "\n".join(lines)
    )


def report_step(
    request: StepRequest, planned: StepPlan, spending: Spending, written: Written, names: dict[str, str]
) -> StepReport:
    """Phase 4: the step in figures and words, for the asset to record."""
    empty_by_day = empty_snapshots(spending.pages)
    no_data = sorted({c for empty, _ in empty_by_day.values() for c in empty})
    metadata = step_metadata(request, planned, spending, written, no_data)
    failure = _failure(request, planned, spending, names)
    if failure is not None:
        metadata["failed_creators"] = Json(
            {creator_label(c, names): str(e) for c, e in spending.failures.items()}
        )
        metadata["left_for_tomorrow"] = Json(spending.deferred)
    return StepReport(
        figures=figures(planned, spending, written, names),
        metadata=metadata,
        empty_by_day=empty_by_day,
        first=planned.first,
        warnings=_warnings(spending),
        totals_line=(
            f"run totals: {written.rows} page(s) written for {len(spending.pages)} partition(s), "
            f"{spending.stats['calls']} API call(s), {spending.stats['retries']} retry(ies)"
        ),
        stored=planned.fetch.stored,
        written=list(spending.pages),
        failure=failure,
        unfinished=[(c, request.today) for c in [*spending.failures, *spending.deferred]],
    )
