"""Realistic creator rosters for benchmarks: note counts and posting rates as a marketplace has them.

A benchmark that compares a full scan of every creator's notes with a scan bounded by a date window
only means something if publish dates spread the way real ones do: a few creators post daily and
have hundreds of notes, most post every week or two, some once a month.  :func:`roster` draws such a
population; ``Simulator.load_roster`` serves it, each creator with exactly its note count at a given
clock and its publish dates following its posting rate.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .data import UNKNOWN_PREFIX

__all__ = ["RosterCreator", "roster"]


@dataclass(frozen=True, slots=True)
class RosterCreator:
    """One creator of a roster: ``note_count`` notes at the roster's clock, ``posts_per_day`` on average."""

    user_id: str
    note_count: int
    posts_per_day: float

    def to_json(self) -> dict[str, Any]:
        """The form ``POST /__sim/roster`` takes."""
        return {"user_id": self.user_id, "note_count": self.note_count, "posts_per_day": self.posts_per_day}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RosterCreator:
        return cls(str(obj["user_id"]), int(obj["note_count"]), float(obj["posts_per_day"]))


def _creator_id(seed: int, i: int) -> str:
    """A 24-hex id like the marketplace's, never one the simulator treats as unknown."""
    salt = 0
    while True:
        digest = hashlib.sha256(f"roster:{seed}:{i}:{salt}".encode()).hexdigest()[:24]
        if not digest.startswith(UNKNOWN_PREFIX):
            return digest
        salt += 1


def roster(
    n: int = 200,
    seed: int = 0,
    *,
    min_notes: int = 5,
    max_notes: int = 600,
    min_posts_per_day: float = 1 / 30,
    max_posts_per_day: float = 1.0,
) -> list[RosterCreator]:
    """``n`` creators with long-tailed note counts and posting rates from monthly to daily.

    The rate is log-uniform between ``min_posts_per_day`` and ``max_posts_per_day``; the account age is
    lognormal (median a year, clamped to 30 days .. 8 years), and the note count is age times rate
    clamped to ``[min_notes, max_notes]``: frequent posters are the ones with hundreds of notes, as on
    the real marketplace, and the median is a few dozen.  Deterministic in ``(n, seed)``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not 1 <= min_notes <= max_notes:
        raise ValueError("need 1 <= min_notes <= max_notes")
    if not 0 < min_posts_per_day <= max_posts_per_day:
        raise ValueError("need 0 < min_posts_per_day <= max_posts_per_day")
    rng = random.Random(f"roster:{seed}")
    lo, hi = math.log(min_posts_per_day), math.log(max_posts_per_day)
    out: list[RosterCreator] = []
    for i in range(n):
        rate = math.exp(rng.uniform(lo, hi))
        age_days = min(max(rng.lognormvariate(math.log(365), 0.9), 30.0), 8 * 365.0)
        count = int(min(max(round(age_days * rate), min_notes), max_notes))
        out.append(RosterCreator(_creator_id(seed, i), count, round(rate, 6)))
    return out
