"""The daily call budget (``PGY_DAILY_CALL_BUDGET``) and the books every fetch step keeps.

The budget caps the calls billed per Asia/Shanghai day, across all runs. A fetch step counts what the
day has spent before it starts (the ledger ``meta.api_calls`` plus journals waiting in the spool) and
then every call of its own as it goes, a call in flight counting as billed until its answer says
otherwise.

**The cut falls between creators, never inside one.** A snapshot needs a creator's whole scan, so the
pages of a scan cut short would be paid for and thrown away, then bought again the next day. Instead:

* a creator is started only if the budget left covers its estimated calls (the pages of its last
  snapshot of the same kind, plus one since lists grow), reserved for it while it is scanned; when
  in-flight creators still hold reservations, the decision waits until it is certain;
* a creator with no history (a first snapshot) has no estimate: its first page sizes it (the service's
  ``total``), and no other creator starts until it is sized, so every start is decided on known needs;
* a started creator is always finished. The day passes the budget only by what an estimate missed
  (a list that grew by more than a page since the last snapshot, or a first snapshot larger than the
  budget left): the step reports it as ``over_budget_by``, and the day's later runs start nothing.

Creators the budget cannot afford are not started (no call is made for them), left for tomorrow and
named in the step's failure with the budget. The schedule and the registry sensor read the last
verdict from the Dagster instance (they must not open DuckDB while a run may hold its write lock) and
say "budget spent until 00:00 Asia/Shanghai".

Fetch steps never overlap (one ``raw/note_pages`` step fetches at a time), so the day's count read at
a step's start is not raced by another run's calls.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date

from dagster import DagsterInstance

from pgy_pipeline.orchestration.call_books import BudgetVerdict as BudgetVerdict
from pgy_pipeline.orchestration.call_books import CallBooks as CallBooks
from pgy_pipeline.orchestration.call_books import budget_message as budget_message
from pgy_pipeline.orchestration.dagster_internals import read_value, write_value
from pgy_pipeline.warehouse.keys import today_shanghai

BUDGET_KEY = "pgy_pipeline/daily_call_budget"


def record_verdict(instance: DagsterInstance, verdict: BudgetVerdict) -> None:
    write_value(instance, BUDGET_KEY, json.dumps(asdict(verdict)))


def read_spent_budget(
    instance: DagsterInstance, limit: int | None, today: date | None = None
) -> BudgetVerdict | None:
    """Today's verdict if it says the budget ``limit`` is spent; None otherwise (or with no budget).

    A verdict from another day, or one made under a smaller budget than today's, does not count.
    """
    if not limit:
        return None
    raw = read_value(instance, BUDGET_KEY)
    if not raw:
        return None
    try:
        verdict = BudgetVerdict(**json.loads(raw))
    except (TypeError, ValueError):
        return None
    day = (today or today_shanghai()).isoformat()
    if verdict.day != day or verdict.limit < limit or not verdict.spent:
        return None
    return verdict
