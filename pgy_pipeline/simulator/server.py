"""The simulator itself: per-creator state, request planning, admin endpoints and the HTTP server.

Every request is turned into a *plan* while holding one lock (parameter checks, rate limit, fault
selection, data mutation, response body); the plan is then carried out outside the lock (latency
sleeps, trickled bodies, dropped connections), so slow requests overlap freely.  A
``ThreadingHTTPServer`` speaking HTTP/1.1 (persistent connections) runs in a daemon thread; like the
real service, answers are HTTP 200 with a JSON body whose ``code`` carries the business result, and
unknown paths get HTTP 404.

Order of checks for a request: token (code 100), rate limit (code 302), parameters (code 400), then
faults, then the page of data.  Global ``latency_s`` delays every answer.  The rate limit is per token
and lives in the server, so every client process of one server shares it, as with the real service.

Test hooks (methods of :class:`Simulator`): ``set_note_count``, ``set_notes``, ``set_notes_at_ages``,
``set_cadence`` / ``load_roster``, ``set_unknown``, ``set_brand_tagged_share``, ``add_note_today``,
``add_fault``, ``configure``; every request to the endpoint is recorded in ``calls``.  The same controls
are reachable over HTTP for other processes, JSON in and out:

* ``GET /__sim/stats``; ``GET /__sim/calls?since=N`` (``{"calls": [...], "next": M}``, no tokens);
  ``GET /__sim/settings``.
* ``POST /__sim/reset`` (forget calls, drop faults); ``POST /__sim/faults``
  ``{"kind", "user_id"?, "page"?, "times"?, "rate"?, "params"?}``.
* ``POST /__sim/settings`` ``{"rate_limit_rps"?, "latency_s"?, "page_size"?}``.
* ``POST /__sim/note_count`` ``{"user_id", "n"}``; ``POST /__sim/notes`` ``{"user_id", "notes"}``;
  ``POST /__sim/notes_at_ages`` ``{"user_id", "ages_days", ...make_note_items arguments}``.
* ``POST /__sim/unknown`` ``{"user_id", "unknown"?}``; ``POST /__sim/brand_share``
  ``{"user_id", "share"}``; ``POST /__sim/note_today`` ``{"user_id"}``.
* ``POST /__sim/roster`` ``{"creators": [{"user_id", "note_count", "posts_per_day"}], "at"?}``.

Bad admin input answers HTTP 400 ``{"ok": false, "error": ...}``; an unknown admin path HTTP 404.
"""

from __future__ import annotations

import copy
import json
import math
import random
import socket
import sys
import threading
import time
import traceback
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .data import (
    CHINA_TZ,
    UNKNOWN_PREFIX,
    CadenceTimeline,
    NoteSeed,
    Timeline,
    brand_names,
    china_day_start,
    make_note,
    make_note_items,
    make_profile,
    note_rate_figures,
    to_ts,
    utc_now,
    with_organic_brands,
)
from .faults import Fault, new_fault, select_faults
from .protocol import ADMIN_PREFIX, MESSAGES, ROUTES, error_body, html_page, is_billed, parse_page
from .protocol import json_bytes as _json_bytes  # module global on purpose: tests patch the encoder here
from .roster import RosterCreator

__all__ = ["CallRecord", "Simulator"]

_TIMELINE_CACHE_SIZE = 4096


@dataclass
class _CreatorState:
    """Per-creator overrides and permanent changes made by faults."""

    pinned: int | None = None
    raw: list[Any] | None = None
    cadence: CadenceTimeline | None = None
    unknown: bool = False  # answers an empty list, as the service does for ids not in the marketplace
    inserted: list[NoteSeed] = field(default_factory=list)  # newest first
    removed: set[str] = field(default_factory=set)
    insert_counter: int = 0


# ---------------------------------------------------------------------------------------------------
# Calls, faults and response plans
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallRecord:
    """One request received on the notes endpoint.

    ``outcome`` is the business code answered (``0``, ``100``, ``302``, ``400``, or a faulted code) or a
    string naming a transport-level result: ``"http_502"`` (any ``http_<status>``), ``"http_429"``,
    ``"html"``, ``"truncated"``, ``"drop"`` or ``"trickle"``.  ``faults`` lists the fault kinds applied.

    What a billing ledger is checked against: ``http_status`` is the HTTP status sent (None when the
    connection was dropped without an answer); ``code`` is the business code in the JSON body sent
    (None when no JSON body was sent: HTTP errors, HTML pages, dropped connections; a ``truncated``
    body keeps the code the service put in it, since billing is decided before the body is cut);
    ``billed`` applies the vendor's rule: codes 0 and 201 are billed, nothing else is.  The token is
    never recorded.
    """

    user_id: str | None
    page: int | None
    params: dict[str, str]
    outcome: int | str
    token_ok: bool
    at: float
    faults: tuple[str, ...] = ()
    http_status: int | None = None
    code: int | None = None
    billed: bool = False
    endpoint: str = "notes"  # "notes" or "notes_rate" (see protocol.ROUTES)

    def to_json(self) -> dict[str, Any]:
        """The record as ``GET /__sim/calls`` returns it."""
        return {
            "user_id": self.user_id,
            "page": self.page,
            "params": dict(self.params),
            "outcome": self.outcome,
            "token_ok": self.token_ok,
            "at": self.at,
            "endpoint": self.endpoint,
            "faults": list(self.faults),
            "http_status": self.http_status,
            "code": self.code,
            "billed": self.billed,
        }


@dataclass
class _Plan:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_s: float = 0.0
    mode: str = "normal"  # normal | drop | trickle
    trickle_seconds: float = 0.0
    trickle_interval: float = 0.2
    content_length: int | None = None
    code: int | None = None  # business code in the JSON body, None when the body is not such JSON


class Simulator:
    """Deterministic local simulator of the Just One API Pugongying notes endpoint.

    Use as a context manager (``with Simulator() as sim: sim.base_url``) or call :meth:`start` and
    :meth:`stop`.  All controls are thread-safe and may be used while requests are being served.
    """

    def __init__(
        self,
        *,
        token: str = "sim-token",
        page_size: int = 8,
        seed: int = 0,
        latency_s: float = 0.0,
        rate_limit_rps: float | None = None,
        now: Callable[[], datetime] | None = None,
        roster_only: bool = False,
    ) -> None:
        self.token = token
        # Like the real service, answer code 0 with an empty list for an id nobody configured (the demo
        # does: a mistyped id must not look valid). Off by default: tests use any id.
        self.roster_only = roster_only
        self._brand_pools: dict[str, tuple[str, ...]] = {}
        # Planted events per creator: (kind, note id, from Unix time, factor); see plant().
        self._planted: dict[str, list[tuple[str, str, float, float]]] = {}
        self.seed = seed
        self.latency_s = latency_s
        self.rate_limit_rps = rate_limit_rps
        self.clock: Callable[[], datetime] = now if now is not None else utc_now
        self.calls: list[CallRecord] = []
        self.log_requests = False
        self._page_size = 8
        self.page_size = page_size
        self._lock = threading.RLock()
        self._brands = brand_names(seed)
        self._timelines: OrderedDict[str, Timeline] = OrderedDict()
        self._creators: dict[str, _CreatorState] = {}
        self._faults: list[Fault] = []
        self._fault_serial = 0
        # Accepted requests per token over the last second: the limit is the vendor's per-token one,
        # kept server-side so every client process of this server shares it.
        self._accepted: dict[str, deque[float]] = {}
        self._brand_share: dict[str, float] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Start serving in a daemon thread and return the base URL (``http://host:port``)."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        server = _Server((host, port), _Handler)
        server.simulator = self
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="pgy-notes-simulator",
            daemon=True,
        )
        self._server = server
        self._thread = thread
        thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close open connections (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        host, port = self._server.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def page_size(self) -> int:
        """Number of notes per page (the real service uses 8)."""
        return self._page_size

    @page_size.setter
    def page_size(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError("page_size must be >= 1")
        self._page_size = int(value)

    # -- data ------------------------------------------------------------------------------------

    def notes_for(self, user_id: str, at: datetime | None = None) -> list[dict[str, Any]]:
        """The creator's full unfiltered list as it would be served at ``at`` (default: the clock).

        Generated creators come in LATEST order; ``set_notes`` creators in the given order.  The dicts
        are fresh copies.
        """
        now_ts = to_ts(at if at is not None else self.clock())
        with self._lock:
            return self._all_items(user_id, now_ts)

    def set_note_count(self, user_id: str, n: int) -> None:
        """Pin a creator to exactly ``n`` generated notes: the ``n`` newest at the current clock.

        Data stay deterministic and live; earlier overrides and fault changes for the creator are
        discarded.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        with self._lock:
            self._creators[user_id] = _CreatorState(pinned=int(n))

    def set_notes(self, user_id: str, notes: list[Any]) -> None:
        """Serve exactly these raw items for a creator, in this order, unfiltered except pagination."""
        with self._lock:
            self._creators[user_id] = _CreatorState(raw=copy.deepcopy(list(notes)))

    def clear_overrides(self, user_id: str | None = None) -> None:
        """Drop ``set_note_count``/``set_notes`` overrides and fault changes (all creators if None)."""
        with self._lock:
            if user_id is None:
                self._creators.clear()
                self._brand_share.clear()
            else:
                self._creators.pop(user_id, None)
                self._brand_share.pop(user_id, None)

    def set_unknown(self, user_id: str, unknown: bool = True) -> None:
        """Make a creator unknown to the marketplace: code 0, ``data.list`` empty, ``data.total`` 0.

        That is what the real service answers for a wrong id or an account that left the marketplace
        (no error code), and such requests are billed.  Ids starting with ``UNKNOWN_PREFIX``
        (``"000000"``) are unknown without this call.  ``unknown=False`` drops the override; like
        the other overrides, it replaces earlier ones for the creator.
        """
        with self._lock:
            if unknown:
                self._creators[user_id] = _CreatorState(unknown=True)
            else:
                self._creators.pop(user_id, None)

    def is_unknown(self, user_id: str) -> bool:
        """Whether the creator currently answers as unknown to the marketplace."""
        with self._lock:
            return self._is_unknown(user_id, self._creators.get(user_id))

    def set_brand_tagged_share(self, user_id: str, share: float) -> None:
        """Tag this share of the creator's organic generated notes with a ``brandName``.

        They stay ``isAdvertise: false`` (and out of ``noteType=COOPERATION``): brand-tagged organic
        notes exist on the real service.  ``share=1.0`` tags every organic note, ``0`` none; the
        default for all creators is ``ORGANIC_BRAND_SHARE``.  Survives ``set_note_count`` and
        ``load_roster``; ``clear_overrides`` drops it; raw ``set_notes`` items are never altered.
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be within [0, 1]")
        with self._lock:
            self._brand_share[user_id] = float(share)

    def add_note_today(self, user_id: str) -> dict[str, Any]:
        """Publish one new note for the creator on the clock's current China day and return it.

        It is published up to an hour before the clock (never before China midnight, never before the
        creator's newest note), so it comes first in LATEST order and already has a few reads.  Like an
        ``insert_notes`` fault it is permanent until the creator's overrides are replaced.
        """
        now_ts = to_ts(self.clock())
        with self._lock:
            if self._is_unknown(user_id, self._creators.get(user_id)):
                raise ValueError(f"creator {user_id!r} is unknown to the marketplace")
            today = datetime.fromtimestamp(now_ts, CHINA_TZ).date()
            earliest = max(china_day_start(today), int(now_ts) - 3600)
            self._insert_notes(user_id, 1, now_ts, earliest_ts=earliest)
            note_id = self._state(user_id).inserted[0].note_id
            # Return it as served (a forced brand share re-tags organic notes at serve time).
            return next(it for it in self._all_items(user_id, now_ts) if it.get("noteId") == note_id)

    def set_notes_at_ages(
        self,
        user_id: str,
        ages_days: Sequence[int],
        **attributes: Any,
    ) -> list[dict[str, Any]]:
        """``set_notes`` with :func:`make_note_items` built at the clock's China day; returns the items.

        ``attributes`` are those of ``make_note_items`` (``is_advertise``, ``brand_name``, ``reads``,
        ``likes``, ``collects``, ``third_reads``, ``is_video``, or an explicit ``snapshot_date``).
        """
        attributes.setdefault("snapshot_date", datetime.fromtimestamp(to_ts(self.clock()), CHINA_TZ).date())
        items = make_note_items(user_id, ages_days, seed=self.seed, **attributes)
        self.set_notes(user_id, items)
        return items

    def set_brand_pool(self, user_id: str, brands: Sequence[str]) -> None:
        """The brands the creator's cooperation notes name (call before ``set_cadence``)."""
        if not brands:
            raise ValueError("a brand pool needs at least one brand")
        with self._lock:
            self._brand_pools[user_id] = tuple(brands)
            self._timelines.pop(user_id, None)

    def plant(self, user_id: str, kind: str, at: datetime, *, rank: int = 0, factor: float = 8.0) -> str:
        """From ``at`` on, the note at place ``rank`` of the creator's list at ``at`` (0: newest) goes
        ``'viral'`` (its eventual reads times ``factor``: a read spike) or is ``'deleted'`` (it
        disappears from the list). Call after the creator's notes are set; returns the note's id."""
        if kind not in ("viral", "deleted"):
            raise ValueError(f"unknown planted event {kind!r}: viral | deleted")
        at_ts = to_ts(at)
        with self._lock:
            seeds = self._seeds(user_id, self._creators.get(user_id), at_ts)
            note_id = seeds[rank].note_id
            self._planted.setdefault(user_id, []).append((kind, note_id, at_ts, factor))
        return note_id

    def set_cadence(
        self, user_id: str, note_count: int, posts_per_day: float, *, at: datetime | None = None
    ) -> None:
        """Serve the creator ``note_count`` generated notes at clock ``at`` (default: now), posted at
        ``posts_per_day`` on average (newest first); later clocks add new notes at the same rate."""
        anchor = to_ts(at if at is not None else self.clock())
        with self._lock:
            profile = self._timeline(user_id).profile
            timeline = CadenceTimeline(
                self.seed, user_id, profile, anchor, int(note_count), float(posts_per_day)
            )
            self._creators[user_id] = _CreatorState(cadence=timeline)

    def load_roster(self, creators: Iterable[RosterCreator], *, at: datetime | None = None) -> None:
        """``set_cadence`` for every creator of a roster (see :func:`roster`), all at one clock."""
        when = at if at is not None else self.clock()
        for c in creators:
            self.set_cadence(c.user_id, c.note_count, c.posts_per_day, at=when)

    def settings(self) -> dict[str, Any]:
        """The runtime knobs: ``rate_limit_rps`` (None: off), ``latency_s`` and ``page_size``."""
        with self._lock:
            return {
                "rate_limit_rps": self.rate_limit_rps,
                "latency_s": self.latency_s,
                "page_size": self.page_size,
            }

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change runtime knobs while serving (keys as in :meth:`settings`); returns the new settings.

        ``rate_limit_rps`` None or 0 turns the limit off; the window of requests already accepted is
        kept, so lowering the limit takes effect at once.
        """
        unknown = set(settings) - {"rate_limit_rps", "latency_s", "page_size"}
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        with self._lock:
            if "rate_limit_rps" in settings:
                rps = settings["rate_limit_rps"]
                if rps is not None and float(rps) < 0:
                    raise ValueError("rate_limit_rps must be >= 0 or None")
                self.rate_limit_rps = None if rps is None or float(rps) == 0 else float(rps)
            if "latency_s" in settings:
                latency = float(settings["latency_s"])
                if latency < 0:
                    raise ValueError("latency_s must be >= 0")
                self.latency_s = latency
            if "page_size" in settings:
                self.page_size = int(settings["page_size"])
        return self.settings()

    # -- faults and stats ------------------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        *,
        user_id: str | None = None,
        page: int | None = None,
        times: int | None = 1,
        rate: float | None = None,
        **params: Any,
    ) -> None:
        """Inject a fault for requests matching ``user_id`` and ``page`` (None matches any).

        ``times`` is how many matching requests it hits before being used up (None: unlimited).  When
        ``rate`` is given the fault instead hits each matching request with that probability (seeded,
        reproducible) and ``times`` is ignored.  Faults only see requests that passed the token check,
        the rate limit and parameter validation.

        Kinds that decide the response (the first one that hits wins):

        * ``code`` (``code``, optional ``message``, ``retry_after``): HTTP 200, that business code, data null.
        * ``http_status`` (``status``, default 502): that HTTP status with an HTML error page.
        * ``http_429`` (``retry_after``, default 1): HTTP 429 with a ``Retry-After`` header.
        * ``html``: HTTP 200 with an HTML page instead of JSON.
        * ``truncated``: HTTP 200, the JSON cut in half, Content-Length matching what is sent.
        * ``drop``: the connection is closed without any response.
        * ``trickle`` (``seconds``, default 2; ``interval``, default 0.2): headers with the right
          Content-Length at once, then the body in chunks every ``interval`` over ``seconds``.

        Kinds that combine with anything:

        * ``latency`` (``seconds``, default 1): sleep before answering.
        * ``insert_notes`` (``n``, default 1): ``n`` new notes published now are added permanently first.
        * ``remove_notes`` (``n``, default 1): the ``n`` newest notes are removed permanently first.
        * ``duplicate_across_pages``: page ``p > 1`` starts with the last item of page ``p - 1``.
        * ``total_delta`` (``delta``, default 1): the reported total is off by ``delta``.
        * ``hook`` (``fn``, in-process only): ``fn(user_id, page)`` is called while the request is
          planned, under the simulator's lock, before the page is read from the creator's list: it may
          change the list (``set_notes``: a note published or deleted between two page requests) or act
          on the world (the oracle kills the client's process there). If it returns ``"drop"`` and no
          response-deciding fault hit, the connection is closed without an answer (not billed).
        """
        with self._lock:
            # The serial only advances for accepted faults, so a rejected call does not shift the
            # random streams of the faults added after it.
            fault = new_fault(
                kind,
                user_id=user_id,
                page=page,
                times=times,
                rate=rate,
                params=params,
                rng=random.Random(f"{self.seed}:fault:{self._fault_serial + 1}"),
            )
            self._fault_serial += 1
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Remove every pending fault."""
        with self._lock:
            self._faults.clear()

    def reset_stats(self) -> None:
        """Forget the recorded calls."""
        with self._lock:
            self.calls.clear()

    def call_count(self, user_id: str | None = None) -> int:
        """Number of requests received on the endpoint (for one creator if ``user_id`` is given)."""
        with self._lock:
            if user_id is None:
                return len(self.calls)
            return sum(1 for c in self.calls if c.user_id == user_id)

    def calls_json(self, since: int = 0) -> list[dict[str, Any]]:
        """The recorded calls from index ``since`` on, as ``GET /__sim/calls`` returns them."""
        with self._lock:
            calls = self.calls[max(0, since) :]
        return [c.to_json() for c in calls]

    def stats(self) -> dict[str, Any]:
        """Summary of the recorded calls: ``{"calls": n, "by_user": {...}, "by_outcome": {...}}``."""
        with self._lock:
            calls = list(self.calls)
        by_user = Counter("" if c.user_id is None else c.user_id for c in calls)
        by_outcome = Counter(str(c.outcome) for c in calls)
        return {"calls": len(calls), "by_user": dict(by_user), "by_outcome": dict(by_outcome)}

    # -- internals: data -------------------------------------------------------------------------

    def _timeline(self, user_id: str) -> Timeline:
        tl = self._timelines.get(user_id)
        if tl is None:
            profile = make_profile(self.seed, user_id, self._brands)
            if user_id in self._brand_pools:
                profile = replace(profile, brand_pool=self._brand_pools[user_id])
            tl = Timeline(self.seed, user_id, profile)
            self._timelines[user_id] = tl
            if len(self._timelines) > _TIMELINE_CACHE_SIZE:
                self._timelines.popitem(last=False)
        else:
            self._timelines.move_to_end(user_id)
        return tl

    def _is_unknown(self, user_id: str, state: _CreatorState | None) -> bool:
        if state is not None and state.unknown:
            return True
        explicit = state is not None and (state.pinned is not None or state.raw is not None or state.cadence)
        return not explicit and (self.roster_only or user_id.startswith(UNKNOWN_PREFIX))

    def _seeds(self, user_id: str, state: _CreatorState | None, now_ts: float) -> list[NoteSeed]:
        """Generated notes currently served for a creator, LATEST order."""
        tl = self._timeline(user_id)
        if state is None:
            seeds = tl.natural(now_ts)
        else:
            if state.pinned is not None:
                base = tl.newest(state.pinned, now_ts)
            elif state.cadence is not None:
                base = state.cadence.natural(now_ts)
            else:
                base = tl.natural(now_ts)
            seeds = [s for s in state.inserted + base if s.note_id not in state.removed]
            seeds.sort(key=lambda s: (s.date, s.note_id), reverse=True)
        share = self._brand_share.get(user_id)
        if share is not None:
            seeds = with_organic_brands(seeds, tl.profile.brand_pool, share)
        for kind, note_id, at_ts, factor in self._planted.get(user_id, ()):
            if now_ts < at_ts:
                continue
            if kind == "deleted":
                seeds = [s for s in seeds if s.note_id != note_id]
            else:
                seeds = [
                    replace(s, final_reads=round(s.final_reads * factor)) if s.note_id == note_id else s
                    for s in seeds
                ]
        return seeds

    def _all_items(self, user_id: str, now_ts: float) -> list[Any]:
        state = self._creators.get(user_id)
        if self._is_unknown(user_id, state):
            return []
        if state is not None and state.raw is not None:
            return [s.live(now_ts) for s in state.inserted] + copy.deepcopy(state.raw)
        return [s.live(now_ts) for s in self._seeds(user_id, state, now_ts)]

    def _served_items(self, user_id: str, opts: dict[str, str], now_ts: float) -> list[Any]:
        state = self._creators.get(user_id)
        if self._is_unknown(user_id, state):
            return []
        if state is not None and state.raw is not None:
            return self._all_items(user_id, now_ts)
        seeds = self._seeds(user_id, state, now_ts)
        if opts["advertiseSwitch"] == "ORGANIC_ONLY":
            seeds = [s for s in seeds if not s.is_ad]
        note_type = opts["noteType"]
        if note_type == "COOPERATION":
            seeds = [s for s in seeds if s.is_ad]
        elif note_type == "PHOTO_TEXT":
            seeds = [s for s in seeds if not s.is_video]
        elif note_type == "VIDEO":
            seeds = [s for s in seeds if s.is_video]
        items = [s.live(now_ts) for s in seeds]
        if opts["isThirdPlatform"] == "YES":
            items = [it for it in items if it["thirdReadUserNum"] > 0]
        order = opts["orderType"]
        if order == "MOST_READ":
            items.sort(key=lambda it: (it["readNum"], it["noteId"]), reverse=True)
        elif order == "MOST_INTERACT":
            items.sort(key=lambda it: (it["likeNum"] + it["collectNum"], it["noteId"]), reverse=True)
        return items

    def _state(self, user_id: str) -> _CreatorState:
        state = self._creators.get(user_id)
        if state is None:
            state = self._creators[user_id] = _CreatorState()
        return state

    def _insert_notes(self, user_id: str, n: int, now_ts: float, earliest_ts: int | None = None) -> None:
        if self._is_unknown(user_id, self._creators.get(user_id)):
            return  # a creator outside the marketplace publishes nothing the service would show
        state = self._state(user_id)
        if state.raw is not None:
            newest_ts = state.inserted[0].ts if state.inserted else 0
        else:
            current = self._seeds(user_id, state, now_ts)
            newest_ts = current[0].ts if current else 0
        profile = self._timeline(user_id).profile
        ts = max(int(now_ts) if earliest_ts is None else earliest_ts, newest_ts + 1)
        for _ in range(max(0, n)):
            state.insert_counter += 1
            rng = random.Random(f"{self.seed}:{user_id}:inserted:{state.insert_counter}")
            state.inserted.insert(0, make_note(rng, ts, profile))
            ts += 1

    def _remove_notes(self, user_id: str, n: int, now_ts: float) -> None:
        state = self._state(user_id)
        n = max(0, n)
        if state.raw is not None:
            k = min(n, len(state.inserted))
            del state.inserted[:k]
            del state.raw[: n - k]
            return
        for s in self._seeds(user_id, state, now_ts)[:n]:
            state.removed.add(s.note_id)

    # -- internals: request handling -------------------------------------------------------------

    def _rate_limited(self, token: str, now_mono: float) -> bool:
        """True when ``token`` already had ``rate_limit_rps`` accepted requests in the last second.

        Rejected requests do not count, so at most N requests are answered in any rolling second.
        """
        rps = self.rate_limit_rps
        if not rps or rps <= 0:
            return False
        window = self._accepted.setdefault(token, deque())
        while window and window[0] <= now_mono - 1.0:
            window.popleft()
        if len(window) >= rps:
            return True
        window.append(now_mono)
        return False

    def _plan_api(self, params: dict[str, str], endpoint: str = "notes") -> _Plan:
        with self._lock:
            # Read the clock under the lock so the rate-limit window only ever sees increasing times.
            now_mono = time.monotonic()
            plan, outcome, kinds, page = self._plan_api_locked(params, now_mono, endpoint)
            self.calls.append(
                CallRecord(
                    user_id=params.get("userId"),
                    page=page,
                    params={k: v for k, v in params.items() if k != "token"},
                    outcome=outcome,
                    token_ok=params.get("token") == self.token,
                    at=now_mono,
                    faults=tuple(kinds),
                    http_status=None if plan.mode == "drop" else plan.status,
                    code=plan.code,
                    billed=is_billed(plan.code),
                    endpoint=endpoint,
                )
            )
        plan.delay_s += max(0.0, self.latency_s)
        return plan

    def _plan_api_locked(
        self, params: dict[str, str], now_mono: float, endpoint: str = "notes"
    ) -> tuple[_Plan, int | str, list[str], int | None]:
        page, page_error = parse_page(params.get("pageNumber") if endpoint == "notes" else None)
        if params.get("token") != self.token:
            return _Plan(200, _json_bytes(error_body(100)), code=100), 100, [], page
        if self._rate_limited(self.token, now_mono):
            return _Plan(200, _json_bytes(error_body(302)), code=302), 302, [], page

        user_id = params.get("userId") or ""
        opts: dict[str, str] = {}
        error: str | None = None
        if not user_id.strip():
            error = "userId is required"
        enums = next(e for name, e in ROUTES.values() if name == endpoint)
        for name, allowed in enums:
            value = params.get(name) or allowed[0]
            opts[name] = value
            if error is None and value not in allowed:
                error = f"{name} must be one of {', '.join(allowed)}"
        error = error or page_error
        if error is not None or page is None:
            body = _json_bytes(error_body(400, f"Invalid Parameters: {error}"))
            return _Plan(200, body, code=400), 400, [], page

        faults = select_faults(self._faults, user_id, page)
        kinds = [f.kind for f in faults]
        now_ts = to_ts(self.clock())
        delay = 0.0
        shift = False
        total_delta = 0
        terminal: Fault | None = None
        hook_drop = False
        for f in faults:
            p = f.params
            if f.kind == "hook":
                hook_drop = p["fn"](user_id, page) == "drop" or hook_drop
            elif f.kind == "latency":
                delay += float(p.get("seconds", 1.0))
            elif f.kind == "insert_notes":
                self._insert_notes(user_id, int(p.get("n", 1)), now_ts)
            elif f.kind == "remove_notes":
                self._remove_notes(user_id, int(p.get("n", 1)), now_ts)
            elif f.kind == "duplicate_across_pages":
                shift = True
            elif f.kind == "total_delta":
                total_delta += int(p.get("delta", 1))
            else:
                terminal = f

        if terminal is not None:
            p = terminal.params
            if terminal.kind == "code":
                code = int(p["code"])
                plan = _Plan(200, _json_bytes(error_body(code, p.get("message"))), delay_s=delay, code=code)
                if p.get("retry_after") is not None:
                    plan.headers.append(("Retry-After", str(p["retry_after"])))
                return plan, code, kinds, page
            if terminal.kind == "http_status":
                status = int(p.get("status", 502))
                plan = _Plan(status, html_page(status), "text/html; charset=utf-8", delay_s=delay)
                return plan, f"http_{status}", kinds, page
            if terminal.kind == "http_429":
                plan = _Plan(429, html_page(429), "text/html; charset=utf-8", delay_s=delay)
                plan.headers.append(("Retry-After", str(p.get("retry_after", 1))))
                return plan, "http_429", kinds, page
            if terminal.kind == "html":
                body = (
                    b"<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
                    b"<body><h1>Service temporarily unavailable</h1><p>Please try again later.</p></body></html>"
                )
                return _Plan(200, body, "text/html; charset=utf-8", delay_s=delay), "html", kinds, page
            if terminal.kind == "drop":
                return _Plan(0, b"", delay_s=delay, mode="drop"), "drop", kinds, page
        elif hook_drop:
            return _Plan(0, b"", delay_s=delay, mode="drop"), "drop", kinds, page

        if endpoint == "notes_rate":
            figures = note_rate_figures(self._all_items(user_id, now_ts), opts, now_ts)
            body = _json_bytes({"code": 0, "message": MESSAGES[0], "data": figures})
            return _Plan(200, body, delay_s=delay, code=0), 0, kinds, page
        items = self._served_items(user_id, opts, now_ts)
        size = self._page_size
        start = (page - 1) * size
        if shift and page > 1:
            start -= 1
        body_obj = {
            "code": 0,
            "message": MESSAGES[0],
            "data": {"list": items[start : start + size], "total": len(items) + total_delta},
        }
        plan = _Plan(200, _json_bytes(body_obj), delay_s=delay, code=0)
        outcome: int | str = 0
        if terminal is not None and terminal.kind == "truncated":
            text = plan.body.decode("utf-8")
            plan.body = text[: len(text) // 2].encode("utf-8")
            outcome = "truncated"
        elif terminal is not None and terminal.kind == "trickle":
            plan.mode = "trickle"
            plan.trickle_seconds = float(terminal.params.get("seconds", 2.0))
            plan.trickle_interval = float(terminal.params.get("interval", 0.2))
            outcome = "trickle"
        return plan, outcome, kinds, page

    def _admin(self, method: str, path: str, body: bytes, query: str = "") -> tuple[int, dict[str, Any]]:
        """Serve ``/__sim/<name>``, the controls for other processes (see the package docstring)."""
        name = path[len(ADMIN_PREFIX) :].rstrip("/")
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return 400, {"ok": False, "error": "body is not JSON"}
        if not isinstance(payload, dict):
            return 400, {"ok": False, "error": "body must be a JSON object"}
        try:
            if method == "GET" and name == "stats":
                return 200, self.stats()
            if method == "POST" and name == "reset":
                self.reset_stats()
                self.clear_faults()
                return 200, {"ok": True}
            if method == "POST" and name == "faults":
                times = payload["times"] if "times" in payload else 1
                self.add_fault(
                    str(payload["kind"]),
                    user_id=payload.get("user_id"),
                    page=None if payload.get("page") is None else int(payload["page"]),
                    times=times,
                    rate=payload.get("rate"),
                    **dict(payload.get("params") or {}),
                )
                return 200, {"ok": True}
            if method == "POST" and name == "note_count":
                self.set_note_count(str(payload["user_id"]), int(payload["n"]))
                return 200, {"ok": True}
            if method == "POST" and name == "notes":
                self.set_notes(str(payload["user_id"]), list(payload["notes"]))
                return 200, {"ok": True}
            if method == "GET" and name == "calls":
                since = int(parse_qs(query).get("since", ["0"])[0])
                calls = self.calls_json(since)
                return 200, {"calls": calls, "next": max(0, since) + len(calls)}
            if method == "GET" and name == "settings":
                return 200, self.settings()
            if method == "POST" and name == "settings":
                return 200, {"ok": True, "settings": self.configure(**payload)}
            if method == "POST" and name == "unknown":
                self.set_unknown(str(payload["user_id"]), bool(payload.get("unknown", True)))
                return 200, {"ok": True}
            if method == "POST" and name == "brand_share":
                self.set_brand_tagged_share(str(payload["user_id"]), float(payload["share"]))
                return 200, {"ok": True}
            if method == "POST" and name == "note_today":
                return 200, {"ok": True, "note": self.add_note_today(str(payload["user_id"]))}
            if method == "POST" and name == "notes_at_ages":
                attributes = {k: v for k, v in payload.items() if k not in ("user_id", "ages_days")}
                items = self.set_notes_at_ages(
                    str(payload["user_id"]), list(payload["ages_days"]), **attributes
                )
                return 200, {"ok": True, "notes": items}
            if method == "POST" and name == "roster":
                at = payload.get("at")
                when = None if at is None else datetime.fromisoformat(str(at))
                if when is not None and when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                creators = [RosterCreator.from_json(c) for c in payload["creators"]]
                self.load_roster(creators, at=when)
                return 200, {"ok": True, "creators": len(creators)}
        except (KeyError, TypeError, ValueError) as exc:
            return 400, {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return 404, {"ok": False, "error": f"unknown admin endpoint {method} {path}"}


# ---------------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    simulator: Simulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pgy-notes-simulator/1.0"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; avoid delayed-ACK stalls
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    @property
    def sim(self) -> Simulator:
        return self.server.simulator

    def setup(self) -> None:
        super().setup()
        with self.sim._lock:
            self.sim._conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            with self.sim._lock:
                self.sim._conns.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self.sim.log_requests:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, method: str) -> None:
        try:
            parts = urlsplit(self.path)
            body = b""
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length > 0 else b""
            if parts.path in ROUTES:
                if method != "GET":
                    self._send(_Plan(405, _json_bytes({"status": 405, "error": "Method Not Allowed"})))
                    return
                query = parse_qs(parts.query, keep_blank_values=True)
                endpoint = ROUTES[parts.path][0]
                self._execute(self.sim._plan_api({k: v[0] for k, v in query.items()}, endpoint))
                return
            if parts.path.startswith(ADMIN_PREFIX):
                status, payload = self.sim._admin(method, parts.path, body, parts.query)
                self._send(_Plan(status, _json_bytes(payload)))
                return
            self._send(_Plan(404, _json_bytes({"status": 404, "error": "Not Found", "path": parts.path})))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug in the simulator: answer like the service would, keep serving
            traceback.print_exc(file=sys.stderr)
            try:
                self._send(_Plan(500, _json_bytes(error_body(500))))
            except OSError:
                self.close_connection = True

    def _execute(self, plan: _Plan) -> None:
        if plan.delay_s > 0:
            time.sleep(plan.delay_s)
        if plan.mode == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if plan.mode == "trickle":
            self._send_headers(plan, len(plan.body))
            body = plan.body
            chunks = max(2, math.ceil(plan.trickle_seconds / max(plan.trickle_interval, 0.001)))
            step = max(1, math.ceil(len(body) / chunks))
            pause = plan.trickle_seconds / chunks
            for i in range(0, max(len(body), 1), step):
                time.sleep(pause)
                self.wfile.write(body[i : i + step])
            return
        self._send(plan)

    def _send_headers(self, plan: _Plan, length: int) -> None:
        self.send_response(plan.status)
        self.send_header("Content-Type", plan.content_type)
        self.send_header("Content-Length", str(length))
        for key, value in plan.headers:
            self.send_header(key, value)
        self.end_headers()

    def _send(self, plan: _Plan) -> None:
        self._send_headers(plan, len(plan.body))
        self.wfile.write(plan.body)
