"""Pacing that finds the service's rate limit: additive increase, multiplicative decrease (AIMD).

The vendor does not publish its limit, so ``JUSTONEAPI_MAX_RPS`` is a ceiling and the pace is learned:

* **Slow start.** Without a remembered rate the pace starts at ``start_rps`` and grows by half
  after each second's worth of successes, until the first 302 (or the ceiling).
* **Decrease.** On a 302 (or HTTP 429) the pace is cut to ``decrease`` times itself, the next release
  waits a full interval at the new pace, and the refused request retries after about a second (the
  service's window; doubling if refused again), not the fixed pace's 10 s steps.
  Answers to requests released before the cut belong to the same overload and do not cut again.
* **Increase.** After each second's worth of successes the pace grows by ``increase`` of itself,
  a quarter of that within 5% of the rate that last earned a 302 (the limit is probably there), and
  never above the ceiling.
* **Memory.** :meth:`AdaptivePacer.state` is what a run leaves for the next (the orchestration layer
  keeps it in the Dagster instance); a pacer built from it starts at that pace, already past slow start.
  ``on_change`` is also handed the state as the pace moves (at most once per ``save_every_s``; a
  change within that interval goes with the first answer after it), so a run that dies mid-fetch
  (killed, out of memory, a lost pod) leaves what it had learned too.

Releases stay evenly spaced as with the fixed :class:`Pacer` (each timed
from the previous actual release), 5% under the pace, never in bursts.

Why not a library: the well-kept Python rate limiters (``pyrate-limiter``, ``limits``,
``aiolimiter``, ``throttled-py``, ``token-bucket``) keep a fixed rate and allow bursts up to a bucket
size; the AIMD packages on PyPI (``aimd-limiter``, ``ace-concurrency``, ``adaptive-rate-limiter``) are
young single-author projects, asyncio-first or adapting concurrency rather than a request rate. The
feedback loop is forty lines on top of the spacing this project already had.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgy_pipeline.errors import InvalidParameterError

_FLOOR_RPS = 0.1


class Pacer:
    """Spaces request starts at least ``1 / max_rps`` apart and caps requests in flight.

    Even spacing rather than a bucket that allows bursts: the service counts requests in its own
    window, and a burst at a window's edge is exactly what earns a 302.
    """

    def __init__(self, max_rps: float | None, max_concurrency: int) -> None:
        if max_rps is not None and max_rps <= 0:
            raise InvalidParameterError(f"max_rps must be positive, got {max_rps!r}")
        if max_concurrency < 1:
            raise InvalidParameterError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        # A 3% margin: requests leave exactly 1/rps apart but reach the service with a little jitter,
        # and its one-second window would then now and then see rps + 1 requests.
        self.interval = 0.0 if max_rps is None else 1.03 / max_rps
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._gate = threading.Lock()
        self._last_release = -math.inf

    def _interval(self) -> float:
        """The spacing of the next release (fixed here; :mod:`.pacing` adapts it)."""
        return self.interval

    def observe(self, rate_limited: bool, released_at: float) -> None:
        """Feedback on one answered call released at ``released_at`` (monotonic); fixed pace ignores it."""

    def rate_limit_wait_s(self, attempt: int) -> float | None:
        """How long a request answered 302 waits before its retry; None: the client's own backoff."""
        return None

    def __enter__(self) -> Pacer:
        self._slots.acquire()
        # The gate is held while sleeping, so releases happen one after another and each is timed
        # from the previous one's actual release: a thread that wakes late never squeezes the next.
        with self._gate:
            wait = self._last_release + self._interval() - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_release = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()

    def close(self) -> None:
        """Nothing to free in-process; a shared pacer closes its database connection."""


@dataclass(frozen=True)
class PaceState:
    """What one run learned: the pace it ended at and the pace that last earned a 302 (None: never)."""

    rate_rps: float
    limit_estimate_rps: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"rate_rps": self.rate_rps, "limit_estimate_rps": self.limit_estimate_rps}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> PaceState | None:
        try:
            rate = float(record["rate_rps"])
            estimate = record.get("limit_estimate_rps")
            return cls(rate, None if estimate is None else float(estimate)) if rate > 0 else None
        except (KeyError, TypeError, ValueError):
            return None


class AdaptivePacer(Pacer):
    """A :class:`Pacer` whose rate follows the service's 302 answers, between a floor and ``ceiling_rps``."""

    def __init__(
        self,
        ceiling_rps: float,
        max_concurrency: int,
        *,
        start_rps: float = 2.0,
        learned: PaceState | None = None,
        decrease: float = 0.85,
        increase: float = 0.02,
        clock: Any = time.monotonic,
        on_change: Callable[[PaceState], None] | None = None,
        save_every_s: float = 1.0,
    ) -> None:
        super().__init__(ceiling_rps, max_concurrency)
        if not 0 < decrease < 1:
            raise InvalidParameterError(f"decrease must be within (0, 1), got {decrease!r}")
        if start_rps <= 0:
            raise InvalidParameterError(f"start_rps must be positive, got {start_rps!r}")
        self.ceiling_rps = ceiling_rps
        self.decrease = decrease
        self.increase = increase
        self._clock = clock
        self._lock = threading.Lock()
        if learned is not None:
            self.rate = min(ceiling_rps, max(_FLOOR_RPS, learned.rate_rps))
            self.limit_estimate = learned.limit_estimate_rps
            self.slow_start = learned.limit_estimate_rps is None and self.rate < ceiling_rps
        else:
            self.rate = min(ceiling_rps, start_rps)
            self.limit_estimate = None
            self.slow_start = True
        self._successes = 0
        self._last_cut = -float("inf")
        self.start_rps = self.rate
        self.started_at = clock()
        self.rate_limited = 0  # 302s / 429s observed
        self.cuts = 0
        self.first_cut_at: float | None = None  # seconds after start
        self.history: list[tuple[float, float]] = [(0.0, self.rate)]  # (seconds after start, rate)
        self.on_change = on_change
        self.save_every_s = save_every_s
        self._saved_at = -math.inf
        self._unsaved = False

    def _interval(self) -> float:
        with self._lock:
            # 5% under the pace rather than the fixed pacer's 3%: arrivals jitter on a busy machine, and at
            # a ceiling set to the real limit a 3% margin still let an occasional 302 through.
            return 1.05 / self.rate

    def observe(self, rate_limited: bool, released_at: float) -> None:
        now = self._clock()
        save = None
        with self._lock:
            if self._observe(rate_limited, released_at, now):
                self._unsaved = True
            # A change within the interval is handed over with the first answer after it.
            if self._unsaved and now - self._saved_at >= self.save_every_s:
                self._saved_at, self._unsaved = now, False
                save = PaceState(self.rate, self.limit_estimate)
        if save is not None and self.on_change is not None:
            self.on_change(save)  # outside the lock: the other threads keep pacing meanwhile

    def _observe(self, rate_limited: bool, released_at: float, now: float) -> bool:
        """Apply one answer (the caller holds the lock); True when the pace changed."""
        if rate_limited:
            self.rate_limited += 1
            self._successes = 0
            if released_at <= self._last_cut:
                return False  # released before the last cut: the same overload, already answered
            self.limit_estimate = self.rate
            self.rate = max(_FLOOR_RPS, self.rate * self.decrease)
            self.slow_start = False
            self._last_cut = now
            self.cuts += 1
            if self.first_cut_at is None:
                self.first_cut_at = now - self.started_at
            self._record(now)
            # Back off: the next release waits a whole interval at the new pace from now.
            self._last_release = max(self._last_release, now)
            return True
        self._successes += 1
        if self._successes < max(1.0, self.rate) or self.rate >= self.ceiling_rps:
            return False
        self._successes = 0
        if self.slow_start:
            self.rate = min(self.ceiling_rps, self.rate * 1.5)
        else:
            step = self.increase * self.rate
            if self.limit_estimate is not None and self.rate >= 0.95 * self.limit_estimate:
                step /= 4
            self.rate = min(self.ceiling_rps, self.rate + step)
        self._record(now)
        return True

    def rate_limit_wait_s(self, attempt: int) -> float | None:
        # The pace was cut already (the real back-off, shared by every request); the refused request
        # itself waits about the service's one-second window, doubling if it is refused again.
        return min(8.0, 1.0 * 2.0 ** (attempt - 1))

    def _record(self, now: float) -> None:
        self.history.append((now - self.started_at, self.rate))

    def state(self) -> PaceState:
        """The pace to remember for the next run."""
        with self._lock:
            return PaceState(self.rate, self.limit_estimate)

    def summary(self) -> dict[str, Any]:
        """Figures for a run's metadata."""
        with self._lock:
            return {
                "ceiling_rps": self.ceiling_rps,
                "start_rps": round(self.start_rps, 3),
                "final_rps": round(self.rate, 3),
                "limit_estimate_rps": None if self.limit_estimate is None else round(self.limit_estimate, 3),
                "rate_limited_answers": self.rate_limited,
                "pace_cuts": self.cuts,
                "first_cut_after_s": None if self.first_cut_at is None else round(self.first_cut_at, 2),
            }
