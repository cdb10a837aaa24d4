"""Creators with no Pugongying data: how many snapshots in a row came back empty, and when to check again.

A creator id the marketplace does not know (a wrong id, or an account that left Pugongying) is
answered with code 0, no notes and total 0, and that answer is billed like any other. After
:data:`WEEKLY_AFTER` such snapshots in a row, the daily schedule checks the creator only every
:data:`RECHECK_DAYS` days and says so on its tick; a snapshot with notes ends the streak.
``raw/note_pages`` never consults the streaks, so materializing a creator by hand always fetches, and
the registry sensor forgets the streak of a creator taken out of the registry (or made inactive), so
adding it again starts afresh.

The streaks live in the Dagster instance's storage (JSON under :data:`STREAKS_KEY`), not in DuckDB:
the schedule must decide without opening the DuckDB file, which a run may be holding for writing.
They are written only by the ``raw/note_pages`` step, one of which fetches at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any

from dagster import DagsterInstance

from pgy_pipeline.orchestration.dagster_internals import read_value, write_value
from pgy_pipeline.orchestration.raw_pages import is_empty_scan as is_empty_scan

STREAKS_KEY = "pgy_pipeline/empty_streaks"
WEEKLY_AFTER = 3  # empty snapshots in a row after which a creator is checked only weekly
RECHECK_DAYS = 7
NO_DATA_MESSAGE = "no Pugongying data for this id: check the id, or the creator left the marketplace"


@dataclass(frozen=True)
class EmptyStreak:
    """``count`` snapshots in a row came back empty, the first on ``first``, the latest on ``last``."""

    count: int
    first: str  # ISO date, Asia/Shanghai
    last: str  # ISO date, Asia/Shanghai

    @property
    def weekly(self) -> bool:
        """Whether the daily schedule now checks this creator only weekly."""
        return self.count >= WEEKLY_AFTER

    @property
    def next_check(self) -> date:
        """The first day the daily schedule checks it again (once :attr:`weekly`)."""
        return date.fromisoformat(self.last) + timedelta(days=RECHECK_DAYS)

    def deferred_on(self, day: date) -> bool:
        """Whether the daily schedule leaves this creator out on ``day``."""
        return self.weekly and day < self.next_check

    def describe(self) -> str:
        streak = f"empty on {self.count} snapshot(s) in a row since {self.first}"
        if self.weekly:
            return (
                f"{streak}; every empty answer is billed, so the daily schedule checks it only weekly "
                f"(next on {self.next_check.isoformat()})"
            )
        return f"{streak}; after {WEEKLY_AFTER} the daily schedule checks it only weekly"


def read_streaks(instance: DagsterInstance) -> dict[str, EmptyStreak]:
    """Every creator's current streak of empty snapshots (creators with none are absent)."""
    raw = read_value(instance, STREAKS_KEY)
    if not raw:
        return {}
    try:
        stored: dict[str, Any] = json.loads(raw)
        return {c: EmptyStreak(**v) for c, v in stored.items()}
    except (ValueError, TypeError):
        # A damaged value must not stop the schedule: forgetting the streaks only costs calls.
        return {}


def _write(instance: DagsterInstance, streaks: Mapping[str, EmptyStreak]) -> None:
    write_value(instance, STREAKS_KEY, json.dumps({c: asdict(s) for c, s in sorted(streaks.items())}))


def record_snapshots(
    instance: DagsterInstance, day: date, empty: Iterable[str], with_data: Iterable[str]
) -> dict[str, EmptyStreak]:
    """Count ``day``'s snapshots: extend the streak of each ``empty`` creator, end it for ``with_data``.

    A second snapshot of the same day (a refresh) does not count twice. Returns the streaks of the
    ``empty`` creators after this snapshot.
    """
    streaks = read_streaks(instance)
    before = dict(streaks)
    today = day.isoformat()
    for creator_id in with_data:
        streaks.pop(creator_id, None)
    for creator_id in empty:
        old = streaks.get(creator_id)
        if old is None:
            streaks[creator_id] = EmptyStreak(1, today, today)
        elif old.last < today:
            streaks[creator_id] = EmptyStreak(old.count + 1, old.first, today)
    if streaks != before:
        _write(instance, streaks)
    return {c: streaks[c] for c in empty if c in streaks}


def forget(instance: DagsterInstance, creator_ids: Iterable[str]) -> list[str]:
    """Drop these creators' streaks (they were taken out of the registry); returns those dropped."""
    streaks = read_streaks(instance)
    dropped = sorted(c for c in set(creator_ids) if c in streaks)
    if dropped:
        _write(instance, {c: s for c, s in streaks.items() if c not in dropped})
    return dropped


def deferred_creators(
    streaks: Mapping[str, EmptyStreak], creator_ids: Iterable[str], day: date
) -> dict[str, EmptyStreak]:
    """Those of ``creator_ids`` the daily schedule leaves out on ``day`` (checked weekly, not due)."""
    return {c: streaks[c] for c in creator_ids if c in streaks and streaks[c].deferred_on(day)}


def deferred_text(deferred: Mapping[str, EmptyStreak]) -> str:
    """What the schedule's tick says about the creators it left out."""
    ids = sorted(deferred)
    shown = ", ".join(f"{c} (next check {deferred[c].next_check.isoformat()})" for c in ids[:10])
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    return (
        f"{len(ids)} creator(s) checked only weekly, not today: {NO_DATA_MESSAGE}; each came back empty "
        f"on {WEEKLY_AFTER} or more snapshots in a row, and every empty answer is billed: {shown}{more}. "
        "Materialize one by hand to check it now, or take it out of the registry and add it back to "
        "check it daily again."
    )
