"""The steps of Pugongying's own note figures (declared in :data:`.asset_keys.SNAPSHOT_ASSETS`), opt-in.

``raw/pugongying_note_rates`` fetches and stores each answer verbatim; ``analytics/pugongying_note_rates``
types them from DuckDB with zero calls. ``PGY_PUGONGYING_FIGURES`` (``off``, ``daily`` or ``weekly``)
decides whether the jobs take these steps (:func:`figures_in_snapshot_job`) and, when weekly, which
creators are due. The calls go through the same transport as the notes list, so the same ledger
(``meta.api_calls``, endpoint ``notes_rate``), daily budget, guard, step lock and learned pace apply:
nothing here is specific to the endpoint except which function is called and which tables are written.
"""

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from dagster import AssetExecutionContext, Failure, MaterializeResult
from duckdb import DuckDBPyConnection

from pgy_pipeline.api.notes_rate import RefreshOutcome, refresh_creators
from pgy_pipeline.errors import (
    AccountError,
    BudgetExhaustedError,
    InvalidParameterError,
    PastSnapshotDateError,
)
from pgy_pipeline.locks import API_LOCK
from pgy_pipeline.orchestration.api_access import api_access
from pgy_pipeline.orchestration.budget import CallBooks
from pgy_pipeline.orchestration.dagster_internals import add_partition_metadata
from pgy_pipeline.orchestration.guard import trip_guard
from pgy_pipeline.orchestration.partitions import partition_key
from pgy_pipeline.orchestration.publishing import pending_days, publishes_replica, step_days
from pgy_pipeline.orchestration.resources import FIGURE_CADENCES, PgyApiResource, PgyDuckDBResource
from pgy_pipeline.orchestration.scope import creator_scope, stored_scope
from pgy_pipeline.warehouse.keys import PartitionKey, today_shanghai
from pgy_pipeline.warehouse.ledger import (
    CallJournal,
    billed_calls_on,
    discard,
    insert_calls,
    read_pending,
    write_pending,
)
from pgy_pipeline.warehouse.note_rates import (
    last_fetched_on,
    listed_notes,
    rebuild_note_rates,
    replace_note_rates,
    typed_rows,
)
from pgy_pipeline.warehouse.schema import ensure_schema

WEEKLY_DAYS = 7


def figures_in_snapshot_job(cadence: str) -> bool:
    """Whether the snapshot job fetches Pugongying's figures at all."""
    return cadence != "off"


def _due(cadence: str, creators: list[str], last: dict[str, date], today: date) -> list[str]:
    """Creators whose figures are due today: every one daily; weekly, those fetched 7+ days ago or never."""
    if cadence not in FIGURE_CADENCES:
        raise InvalidParameterError(
            f"pugongying_figures (PGY_PUGONGYING_FIGURES) is {cadence!r}: use one of {', '.join(FIGURE_CADENCES)}. "
            "No API call was made."
        )
    if cadence == "off":
        return []
    if cadence != "weekly":
        return creators
    return [c for c in creators if c not in last or today - last[c] >= timedelta(days=WEEKLY_DAYS)]


def _fetch(
    context: AssetExecutionContext, pgy_api: PgyApiResource, books: CallBooks, listed: dict[str, int]
) -> RefreshOutcome:
    """The calls, through the client every API step gets; an account error trips the guard."""
    access = api_access(context, pgy_api)
    client = access.open_client(books)
    try:
        outcome = refresh_creators(client, listed)
    finally:
        client.close()
        access.close_client(client)
    account = next((e for e in outcome.failures.values() if isinstance(e, AccountError)), None)
    if account is not None:
        context.log.error(trip_guard(context.instance, account).describe())
    return outcome


def _status(key: PartitionKey, answers: dict[PartitionKey, Any], outcome: RefreshOutcome) -> str:
    creator_id = key[0]
    if key in answers:
        return "fetched"
    if creator_id in outcome.failures:
        return f"failed: {outcome.failures[creator_id]}"
    if creator_id in outcome.deferred:
        return "deferred: over the daily call budget"
    return "not due (PGY_PUGONGYING_FIGURES=weekly) or off"


def _refuse_past_days(keys: list[PartitionKey], today: date) -> None:
    past = sorted({d for _, d in keys if d != today})
    if past:
        raise PastSnapshotDateError(
            f"Pugongying's figures can only be fetched for today ({today.isoformat()}, Asia/Shanghai); "
            f"the run asked for {', '.join(d.isoformat() for d in past)}. No API call was made."
        )


Scope = Callable[[DuckDBPyConnection], list[PartitionKey]]


def _fetch_and_store(
    context: AssetExecutionContext, pgy_api: PgyApiResource, duckdb: PgyDuckDBResource, scope: Scope
) -> tuple[list[PartitionKey], dict[PartitionKey, Any], RefreshOutcome, dict[str, int]]:
    """Plan (who is due), spend (the calls, under the budget) and write (answers with their ledger
    rows). ``scope`` gives the step's keys, read in the planning connection."""
    today = today_shanghai()
    planning_days = step_days(context) | pending_days(read_pending(duckdb.spool_path)) | {today}
    with duckdb.writer(
        run_id=context.run_id, log=context.log.info, publish=False, days=planning_days
    ) as conn:
        ensure_schema(conn)
        keys = scope(conn)
        _refuse_past_days(keys, today)
        write_pending(conn, duckdb.spool_path)
        billed_before = billed_calls_on(conn, today)
        listed = listed_notes(conn, keys)
        creators = sorted(c for c, _ in keys)
        due = _due(pgy_api.pugongying_figures, creators, last_fetched_on(conn, creators), today)
    books = CallBooks(CallJournal(duckdb.spool_path, context.run_id, today), pgy_api.budget, billed_before)
    try:
        wanted = {c: listed.get((c, today), 0) for c in due}
        outcome = _fetch(context, pgy_api, books, wanted) if due else RefreshOutcome()
    finally:
        books.journal.close()
    over = {c for c, e in outcome.failures.items() if isinstance(e, BudgetExhaustedError)}
    outcome.deferred = sorted({*outcome.deferred, *over})
    outcome.failures = {c: e for c, e in outcome.failures.items() if c not in over}
    answers = {(c, today): a for c, a in outcome.answers.items()}
    pending = read_pending(duckdb.spool_path)
    with duckdb.writer(
        run_id=context.run_id,
        log=context.log.info,
        publish=publishes_replica(context),
        days=step_days(context) | pending_days(pending) | {today},
    ) as conn:
        replace_note_rates(conn, answers, also=lambda c: insert_calls(c, pending))
    discard(pending)
    return keys, answers, outcome, books.journal.totals()


def _figures_raw(
    context: AssetExecutionContext, pgy_api: PgyApiResource, duckdb: PgyDuckDBResource, scope: Scope
) -> MaterializeResult:
    with duckdb.step_lock(API_LOCK, run_id=context.run_id, log=context.log.info):
        keys, answers, outcome, spent = _fetch_and_store(context, pgy_api, duckdb, scope)
    context.log.info(
        f"Pugongying's figures: {len(answers)} creator(s) fetched, {spent['calls']} call(s) "
        f"({spent['billed_calls']} billed); {len(outcome.deferred)} deferred by the budget, "
        f"{len(outcome.failures)} failed"
    )
    add_partition_metadata(
        context,
        {
            partition_key(*key): {
                "status": _status(key, answers, outcome),
                "answers": len(answers.get(key, [])),
            }
            for key in keys
        },
    )
    if outcome.failures:
        # What succeeded is stored; the run fails so that the failed creators are retried.
        raise Failure(
            description=f"{len(outcome.failures)} creator(s) failed: "
            + "; ".join(f"{c}: {e}" for c, e in sorted(outcome.failures.items())[:5])
        )
    return MaterializeResult(
        metadata={"run_total/calls": spent["calls"], "run_total/billed_calls": spent["billed_calls"]}
    )


def figures_raw_step(by_cohort: bool) -> Callable[..., MaterializeResult]:
    """``raw/pugongying_note_rates``'s function: the creators are today's partitions (in the cohort
    layout, the creators whose notes are stored for the run's dates)."""

    def fetch(
        context: AssetExecutionContext, pgy_api: PgyApiResource, duckdb: PgyDuckDBResource
    ) -> MaterializeResult:
        if by_cohort:
            return _figures_raw(context, pgy_api, duckdb, lambda conn: stored_scope(context, conn).keys)
        keys = creator_scope(context).keys  # bad keys refused before DuckDB opens
        return _figures_raw(context, pgy_api, duckdb, lambda conn: keys)

    return fetch


def figures_rebuild(
    context: AssetExecutionContext, duckdb: PgyDuckDBResource, by_cohort: bool
) -> MaterializeResult:
    """``analytics/pugongying_note_rates``: the stored answers typed again, zero calls."""
    scope = None if by_cohort else creator_scope(context)
    with duckdb.writer(
        run_id=context.run_id,
        log=context.log.info,
        publish=publishes_replica(context),
        days=step_days(context),
    ) as conn:
        ensure_schema(conn)
        keys = (scope or stored_scope(context, conn)).keys
        rebuild_note_rates(conn, keys)
        counts = typed_rows(conn, keys)
    if not by_cohort:
        add_partition_metadata(
            context, {partition_key(*key): {"dagster/row_count": counts.get(key, 0)} for key in keys}
        )
    return MaterializeResult(metadata={"run_total/rows": sum(counts.values())})
