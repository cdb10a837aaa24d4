"""Fault kinds, their validation, and the choice of which pending faults hit a request.

Kept apart from the server so the rules that decide *whether* a request fails (matching, counted or
probabilistic triggering, at most one response-deciding fault per request) can be read and tested
without the HTTP plumbing that decides *how* the failure is delivered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

__all__ = ["FAULT_KINDS", "MODIFIER_FAULTS", "TERMINAL_FAULTS", "Fault", "new_fault", "select_faults"]

#: Faults that decide how the response is delivered (at most one per request) ...
TERMINAL_FAULTS = frozenset({"code", "http_status", "http_429", "html", "truncated", "drop", "trickle"})
#: ... and faults that modify the data or timing (any number may combine).
MODIFIER_FAULTS = frozenset(
    {"latency", "insert_notes", "remove_notes", "duplicate_across_pages", "total_delta", "hook"}
)
FAULT_KINDS = TERMINAL_FAULTS | MODIFIER_FAULTS


@dataclass
class Fault:
    """One pending fault: where it applies, how often, and the kind's parameters."""

    kind: str
    user_id: str | None
    page: int | None
    remaining: int | None
    rate: float | None
    params: dict[str, Any]
    rng: random.Random

    def matches(self, user_id: str | None, page: int | None) -> bool:
        return (self.user_id is None or self.user_id == user_id) and (self.page is None or self.page == page)

    def trigger(self) -> bool:
        if self.rate is not None:
            return self.rng.random() < self.rate
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True

    @property
    def used_up(self) -> bool:
        return self.rate is None and self.remaining is not None and self.remaining <= 0


def new_fault(
    kind: str,
    *,
    user_id: str | None,
    page: int | None,
    times: int | None,
    rate: float | None,
    params: dict[str, Any],
    rng: random.Random,
) -> Fault:
    """Validate the arguments of ``Simulator.add_fault`` and build the fault (ValueError if wrong)."""
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
    if kind == "code" and "code" not in params:
        raise ValueError("fault 'code' needs code=<int>")
    if kind == "hook" and not callable(params.get("fn")):
        raise ValueError("fault 'hook' needs fn=<callable> (in-process only: not reachable over HTTP)")
    if times is not None and times < 0:
        raise ValueError("times must be >= 0 or None")
    if rate is not None and not 0.0 <= rate <= 1.0:
        raise ValueError("rate must be within [0, 1]")
    return Fault(
        kind=kind, user_id=user_id, page=page, remaining=times, rate=rate, params=dict(params), rng=rng
    )


def select_faults(faults: list[Fault], user_id: str | None, page: int | None) -> list[Fault]:
    """The faults that hit this request, in the order they were added; used-up faults are removed.

    Only the first response-deciding fault that triggers is taken: later ones are not consulted, so
    they are neither spent nor advance their random stream.
    """
    chosen: list[Fault] = []
    terminal = False
    for fault in faults:
        if not fault.matches(user_id, page):
            continue
        is_terminal = fault.kind in TERMINAL_FAULTS
        if is_terminal and terminal:
            continue
        if fault.trigger():
            chosen.append(fault)
            terminal = terminal or is_terminal
    faults[:] = [f for f in faults if not f.used_up]
    return chosen
