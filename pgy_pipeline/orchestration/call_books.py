"""The books a fetch step keeps: every call journaled, the daily call budget kept call by call.

Dagster-free (the raw step's phases use it); :mod:`.budget` explains the budget's rule and keeps the
day's verdict in the Dagster instance.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pgy_pipeline.api.ledger import ApiCall
from pgy_pipeline.errors import BudgetExhaustedError
from pgy_pipeline.warehouse.ledger import CallJournal

UNTIL = "until 00:00 Asia/Shanghai"


@dataclass(frozen=True)
class BudgetVerdict:
    """The last word of a fetch step on the day's budget, kept in the instance for ticks and guards."""

    day: str  # ISO date, Asia/Shanghai
    limit: int
    billed: int  # billed calls of the day when the step ended
    left_for_tomorrow: int  # creators the step could not afford

    @property
    def spent(self) -> bool:
        return self.billed >= self.limit or self.left_for_tomorrow > 0

    def describe(self) -> str:
        return (
            f"daily call budget of {self.limit} calls (PGY_DAILY_CALL_BUDGET) spent {UNTIL}: "
            f"{self.billed} billed on {self.day}"
        )


def budget_message(limit: int, billed: int) -> str:
    return f"daily call budget of {limit} calls (PGY_DAILY_CALL_BUDGET) spent {UNTIL}: {billed} billed today"


class CallBooks:
    """The :class:`~pgy_pipeline.api.ledger.CallHooks` of a fetch step: journal every call, keep the budget.

    See :mod:`.budget` for the rule; a call outside any started creator (a page fetched on its
    own) is admitted only while the budget has room, else refused without reaching the service.
    """

    def __init__(self, journal: CallJournal, limit: int | None = None, spent_before: int = 0) -> None:
        self.journal = journal
        self.limit = limit
        self.spent_before = spent_before
        self._cond = threading.Condition()
        self._used = 0  # this step's calls billed or in flight
        self._reserved: dict[str, int] = {}  # calls still reserved per creator being scanned
        self._sizing: set[str] = set()  # started creators whose size is not known yet
        self.refused_calls = 0

    @property
    def billed_today(self) -> int:
        with self._cond:
            return self.spent_before + self._used

    @property
    def over_budget_by(self) -> int:
        """Calls billed today beyond the budget, by started creators that needed more than estimated."""
        return 0 if self.limit is None else max(0, self.billed_today - self.limit)

    def _room(self, creator_id: str | None) -> int:
        assert self.limit is not None
        others = sum(v for c, v in self._reserved.items() if c != creator_id)
        return self.limit - self.spent_before - self._used - others

    def before_creator(self, creator_id: str, estimated_calls: int | None) -> bool:
        if self.limit is None:
            return True
        need = max(1, estimated_calls or 1)
        with self._cond:
            # Decide only on known needs: wait while a started creator is unsized, or while room that
            # in-flight creators still hold may come back.
            while self._sizing or (self._room(None) < need and any(self._reserved.values())):
                self._cond.wait(timeout=1.0)
            if self._room(None) < need:
                return False
            self._reserved[creator_id] = need
            if estimated_calls is None:
                self._sizing.add(creator_id)
            return True

    def expect_calls(self, creator_id: str, calls: int) -> None:
        with self._cond:
            if creator_id in self._reserved:
                # page 1 is answered: the rest of the scan is what stays reserved
                self._reserved[creator_id] = max(0, calls - 1)
            self._sizing.discard(creator_id)
            self._cond.notify_all()

    def after_creator(self, creator_id: str) -> None:
        with self._cond:
            self._reserved.pop(creator_id, None)
            self._sizing.discard(creator_id)
            self._cond.notify_all()

    def before_call(self, creator_id: str, page_number: int) -> None:
        with self._cond:
            started = creator_id in self._reserved
            if self.limit is not None and not started and self._room(creator_id) < 1:
                self.refused_calls += 1
                raise BudgetExhaustedError(
                    budget_message(self.limit, self.spent_before + self._used) + ". The call was not made.",
                    creator_id=creator_id,
                    page=page_number,
                )
            self._used += 1
            if self._reserved.get(creator_id, 0) > 0:
                self._reserved[creator_id] -= 1

    def after_call(self, creator_id: str, call: ApiCall | None) -> None:
        if call is not None:
            self.journal.append(call)
        with self._cond:
            if call is None or not call.billed:
                self._used -= 1  # not billed after all: the call's place goes back to the budget
                if creator_id in self._reserved:
                    self._reserved[creator_id] += 1  # and the page still has to be fetched
            self._cond.notify_all()
