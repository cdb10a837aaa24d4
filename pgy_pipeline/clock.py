"""The one clock the pipeline reads: "now", and from it "today" in Asia/Shanghai, which names snapshots.

Every part (the API client's call times, the ledger, the budget's day, the scan plan, the simulator's
note model, the automation) asks :func:`now` instead of the system clock, so one seam moves them all:

* :func:`use_clock` replaces the clock in this process (a context manager). The simulated-days tests
  drive the pipeline and the simulator through many days with it, without sleeping.
* ``PGY_CLOCK_SHIFT_S`` (seconds, may be negative) shifts the system clock for a process and every
  process it starts. The test suite sets it once at its start so that the whole run sees one Asia/Shanghai
  day, however close to midnight it starts (see ``pgy_pipeline_tests/conftest.py``). Leave it unset in
  production: snapshots are named by the day this clock says.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from pgy_pipeline.errors import InvalidParameterError

SHANGHAI = ZoneInfo("Asia/Shanghai")
SHIFT_VAR = "PGY_CLOCK_SHIFT_S"

_override: Callable[[], datetime] | None = None


def _shift() -> timedelta:
    raw = os.environ.get(SHIFT_VAR, "").strip()
    if not raw:
        return timedelta(0)
    try:
        return timedelta(seconds=float(raw))
    except ValueError:
        raise InvalidParameterError(
            f"invalid {SHIFT_VAR}: must be a number of seconds (it shifts the pipeline's clock)"
        ) from None


def now() -> datetime:
    """The current time, timezone-aware in UTC, through the seam."""
    if _override is not None:
        return _override().astimezone(UTC)
    return wall_now()


def wall_now() -> datetime:
    """The system clock with ``PGY_CLOCK_SHIFT_S``, ignoring :func:`use_clock` (what every process agrees on)."""
    return datetime.now(UTC) + _shift()


def today_shanghai(at: datetime | None = None) -> date:
    """The calendar day in Asia/Shanghai at ``at`` (default: :func:`now`), which names a snapshot."""
    return (at or now()).astimezone(SHANGHAI).date()


def timestamp() -> float:
    """:func:`now` as Unix time."""
    return now().timestamp()


@contextmanager
def use_clock(clock: Callable[[], datetime]) -> Iterator[None]:
    """Read ``clock`` (returning aware datetimes) instead of the system clock in this process, inside the block."""
    global _override
    previous, _override = _override, clock
    try:
        yield
    finally:
        _override = previous


def shift_for_one_day(at: datetime | None = None, hour: int = 8) -> float:
    """Seconds to add to the system clock so it reads ``hour``:00 Asia/Shanghai of today (Shanghai's day
    at ``at``): a process that starts with this shift sees the same day for the next ``24 - hour`` hours."""
    real = (at or datetime.now(UTC)).astimezone(SHANGHAI)
    target = real.replace(hour=hour, minute=0, second=0, microsecond=0)
    return (target - real).total_seconds()
