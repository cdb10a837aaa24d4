"""The quota and account guard: stops API calls across runs after an account-level failure.

The client's circuit breaker protects one process. The guard carries the same decision across
processes and days, in Dagster's own storage (SQLite by default, PostgreSQL in production), so every
run, schedule tick and sensor tick sees it:

* after 303 (daily quota) or 300 (undocumented, taken as a quota), no calls until the next day in
  Asia/Shanghai, when it lifts by itself;
* after 100 (token), 101 (undocumented, taken as a token or account problem), 600 (permission),
  601 (balance) or 602 (spending cap), no calls until an operator clears it, with the
  ``api_guard_reset_job`` in the UI or ``python -m pgy_pipeline.orchestration.guard clear``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date

from dagster import DagsterInstance

from pgy_pipeline import clock
from pgy_pipeline.errors import AccountError, ApiGuardError, QuotaExceededError
from pgy_pipeline.orchestration.dagster_internals import read_value, write_value
from pgy_pipeline.warehouse.keys import SHANGHAI, today_shanghai

GUARD_KEY = "pgy_pipeline/api_guard"


@dataclass(frozen=True)
class GuardState:
    """Why API calls are paused, and until when (``until`` None: until an operator clears it)."""

    code: int | None
    reason: str
    since: str  # ISO time, Asia/Shanghai
    until: str | None  # ISO date, Asia/Shanghai: calls resume on this day

    def describe(self) -> str:
        resume = (
            f"calls resume on {self.until} (Asia/Shanghai)"
            if self.until
            else (
                "calls stay paused until an operator clears the guard (launch api_guard_reset_job, or run "
                "'python -m pgy_pipeline.orchestration.guard clear')"
            )
        )
        return f"API calls paused since {self.since}: {self.reason}; {resume}"


def read_guard(instance: DagsterInstance, today: date | None = None) -> GuardState | None:
    """The guard in force, or None. A quota guard whose day has come lifts by itself."""
    raw = read_value(instance, GUARD_KEY)
    if not raw:
        return None
    state = GuardState(**json.loads(raw))
    if state.until is not None and (today or today_shanghai()) >= date.fromisoformat(state.until):
        return None
    return state


def trip_guard(instance: DagsterInstance, error: AccountError, today: date | None = None) -> GuardState:
    """Record an account-level failure so no run calls the API until it is lifted."""
    today = today or today_shanghai()
    until = (
        date.fromordinal(today.toordinal() + 1).isoformat() if isinstance(error, QuotaExceededError) else None
    )
    state = GuardState(
        code=error.code,
        reason=error.message,
        since=clock.now().astimezone(SHANGHAI).isoformat(timespec="seconds"),
        until=until,
    )
    write_value(instance, GUARD_KEY, json.dumps(asdict(state)))
    return state


def clear_guard(instance: DagsterInstance) -> None:
    """Lift the guard (an operator's decision after fixing the token, permission or balance)."""
    write_value(instance, GUARD_KEY, "")


def raise_if_guarded(instance: DagsterInstance) -> None:
    """Refuse to start API calls while the guard is in force."""
    state = read_guard(instance)
    if state is not None:
        raise ApiGuardError(state.describe() + ". No API call was made.", code=state.code)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m pgy_pipeline.orchestration.guard", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=["show", "clear"])
    args = parser.parse_args(argv)
    with DagsterInstance.get() as instance:
        if args.command == "clear":
            clear_guard(instance)
            print("guard cleared: API calls may resume")
        else:
            state = read_guard(instance)
            print(state.describe() if state else "no guard in force: API calls allowed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
