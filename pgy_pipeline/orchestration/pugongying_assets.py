"""Pugongying's own note figures beside ours: one step that fetches and stores them, opt-in.

``PGY_PUGONGYING_FIGURES`` (``off``, ``daily`` or ``weekly``) decides whether the snapshot job takes
this step (:func:`figures_in_snapshot_job`) and, when weekly, which creators are due. The calls go
through the same transport as the notes list, so the same ledger (``meta.api_calls``, endpoint
``notes_rate``), daily budget, guard, step lock and learned pace apply: nothing here is specific to
the endpoint except which function is called and which tables are written.
"""


from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    Failure,
    MaterializeResult,
    multi_asset,
)

from pgy_pipeline.api.notes_rate import RefreshOutcome, refresh_creators
from pgy_pipeline.api.pacing import AdaptivePacer
from pgy_pipeline.errors import (
    AccountError,
    BudgetExhaustedError,
    InvalidParameterError,
    PastSnapshotDateError,
)
from pgy_pipeline.locks import API_LOCK
from pgy_pipeline.orchestration.budget import CallBooks
from pgy_pipeline.orchestration.guard import raise_if_guarded, trip_guard
from pgy_pipeline.orchestration.metadata import column_schema
from pgy_pipeline.orchestration.pace_memory import read_pace, write_pace
from pgy_pipeline.orchestration.partitions import note_partitions, partition_key
from pgy_pipeline.orchestration.resources import FIGURE_CADENCES, PgyApiResource, PgyDuckDBResource
from pgy_pipeline.orchestration.scope import creator_scope
from pgy_pipeline.warehouse.keys import PartitionKey, today_shanghai
from pgy_pipeline.warehouse.ledger import (
    CallJournal,
    billed_calls_on,
    discard,
    insert_calls,
    read_pending,
    write_pending,
)
from pgy_pipeline.warehouse.note_rates import last_fetched_on, listed_notes, replace_note_rates
from pgy_pipeline.warehouse.schema import ensure_schema
from pgy_pipeline.warehouse.tables import PUGONGYING_NOTE_RATES, RAW_PUGONGYING_NOTE_RATES

RAW_NOTE_RATES_KEY = AssetKey(["raw", "pugongying_note_rates"])
NOTE_RATES_KEY = AssetKey(["analytics", "pugongying_note_rates"])
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
    raise_if_guarded(context.instance)
    pace_at = f"{pgy_api.data_source}:{pgy_api.base_url}"
    client = pgy_api.get_client(learned=read_pace(context.instance, pace_at), hooks=books)
    try:
        outcome = refresh_creators(client, listed)
    finally:
        client.close()
        books.journal.close()
        if isinstance(client.pacer, AdaptivePacer):
            write_pace(context.instance, pace_at, client.pacer.state())
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


@multi_asset(
    specs=[
        AssetSpec(
            RAW_NOTE_RATES_KEY,
            description="Pugongying's own note figures, each answer verbatim (opt-in: PGY_PUGONGYING_FIGURES).",
            deps=[AssetKey(["raw", "note_pages"])],
            group_name="pugongying",
            kinds={"duckdb"},
            metadata={"dagster/column_schema": column_schema(RAW_PUGONGYING_NOTE_RATES.name)},
        ),
        AssetSpec(
            NOTE_RATES_KEY,
            description="Pugongying's own note figures, typed beside ours (analytics.metrics_vs_pugongying).",
            deps=[RAW_NOTE_RATES_KEY],
            group_name="pugongying",
            kinds={"duckdb"},
            metadata={"dagster/column_schema": column_schema(PUGONGYING_NOTE_RATES.name)},
        ),
    ],
    partitions_def=note_partitions,
    backfill_policy=BackfillPolicy.single_run(),
)
def pugongying_note_rates(
    context: AssetExecutionContext, pgy_api: PgyApiResource, duckdb: PgyDuckDBResource
) -> Any:
    """Fetch Pugongying's figures of today's partitions (at most 4 calls each) and store them typed."""
    keys = creator_scope(context).keys
    today = today_shanghai()
    past = sorted({d for _, d in keys if d != today})
    if past:
        raise PastSnapshotDateError(
            f"Pugongying's figures can only be fetched for today ({today.isoformat()}, Asia/Shanghai); "
            f"the run asked for {', '.join(d.isoformat() for d in past)}"
        )
    with duckdb.step_lock(API_LOCK, run_id=context.run_id, log=context.log.info):
        with duckdb.writer(run_id=context.run_id, log=context.log.info, publish=False) as conn:
            ensure_schema(conn)
            write_pending(conn, duckdb.spool_path)
            billed_before = billed_calls_on(conn, today)
            listed = listed_notes(conn, keys)
            due = _due(
                pgy_api.pugongying_figures,
                sorted(c for c, _ in keys),
                last_fetched_on(conn, [c for c, _ in keys]),
                today,
            )
        books = CallBooks(
            CallJournal(duckdb.spool_path, context.run_id, today), pgy_api.budget, billed_before
        )
        outcome = _fetch(context, pgy_api, books, {c: listed.get((c, today), 0) for c in due})
        deferred = {c for c, e in outcome.failures.items() if isinstance(e, BudgetExhaustedError)}
        outcome.deferred += sorted(deferred)
        for c in deferred:
            outcome.failures.pop(c)
        answers = {(c, today): a for c, a in outcome.answers.items()}
        pending = read_pending(duckdb.spool_path)
        with duckdb.writer(run_id=context.run_id, log=context.log.info) as conn:
            rows = replace_note_rates(conn, answers, also=lambda c: insert_calls(c, pending))
        discard(pending)
    spent = books.journal.totals()
    context.log.info(
        f"Pugongying's figures: {len(answers)} creator(s) fetched, {rows} answer(s), {spent.get('calls', 0)} call(s); "
        f"{len(outcome.deferred)} deferred by the budget, {len(outcome.failures)} failed"
    )
    for key in keys:
        status = _status(key, answers, outcome)
        for asset_key in (RAW_NOTE_RATES_KEY, NOTE_RATES_KEY):
            context.add_asset_metadata(
                {"status": status}, asset_key=asset_key, partition_key=partition_key(*key)
            )
    if outcome.failures:
        # What succeeded is stored; the run fails so that the failed creators are retried.
        raise Failure(
            description=f"{len(outcome.failures)} creator(s) failed: "
            + "; ".join(f"{c}: {e}" for c, e in sorted(outcome.failures.items())[:5])
        )
    yield MaterializeResult(asset_key=RAW_NOTE_RATES_KEY)
    yield MaterializeResult(asset_key=NOTE_RATES_KEY)
