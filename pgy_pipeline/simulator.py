"""Simulator of the Just One API Pugongying notes endpoint.

Serves ``GET /api/xiaohongshu-pgy/api/solar/kol/dataV2/notesDetail/v1`` ("User Published Notes (V1)")
over real loopback HTTP, so clients can be exercised end to end (keep-alive, timeouts, retries, paging)
without the network.  Standard library only.

Design
------
* **Transport.**  A ``ThreadingHTTPServer`` speaking HTTP/1.1 (persistent connections) runs in a daemon
  thread.  Every request is turned into a *plan* while holding one lock (parameter checks, rate limit,
  fault selection, data mutation, response body); the plan is then carried out outside the lock
  (latency sleeps, trickled bodies, dropped connections), so slow requests overlap freely.

* **Business protocol.**  Like the real service, answers are HTTP 200 with a JSON body whose ``code``
  carries the business result: 0 success, 100 bad token, 400 bad parameters, 302 rate limit, ...
  Unknown paths get HTTP 404.

* **Generated data.**  Nothing is hand written; everything derives from ``(seed, userId)`` through
  ``random.Random`` seeded with strings (SHA-512 based, stable across processes, unlike ``hash()``).

  - A creator *profile* comes from ``Random(f"{seed}:{userId}")``: how many notes were published before
    the fixed timeline anchor (:data:`TIMELINE_ANCHOR`, long-tailed, 0-250, about 6% of creators have
    none), how many more after it before the creator goes quiet (0-160, lifetime total <= 300), a
    posting cadence (gaps drawn uniformly from a per-creator ``[lo, hi]`` inside 1-6 days), video share,
    advertising share (about a fifth), third-platform share (about a tenth), popularity and engagement.
  - Notes are indexed by a signed integer ``k`` relative to the anchor (``-1, -2, ...`` going back,
    ``0, 1, ...`` going forward).  Note ``k`` draws its gap to its neighbour and all its attributes from
    ``Random(f"{seed}:{userId}:{k}")``.  Publish instants are therefore absolute: at clock ``now`` the
    service shows the notes with publish time ``<= now``; a later clock shows the same older notes plus
    the new ones.  Because gaps are at least one day, a creator never publishes twice on one date.
  - ``noteId`` is 24 lowercase hex digits whose first 8 are the publish unix time (as real ids are);
    ``date`` is the publish day in China time (UTC+8).
  - Engagement is *live*: each note has a final read count (lognormal, median a few thousand, a few
    above 100k) and a saturation time ``tau`` (1.5-6 days); at clock ``t`` it has
    ``round(final * (1 - exp(-age_days / tau)))`` reads.  Likes, collects and third-platform readers
    are fixed fractions of the reads, so every counter grows between daily snapshots.
  - The anchor (2026-03-01 UTC) sits near the documented sample, so clocks in 2026 show typical
    catalogues (median around 30 notes in March, around 100 in November); much earlier clocks show
    fewer notes, and a creator's count stops growing once its notes after the anchor are used up.
  - Static note data is generated once per creator and cached (LRU); per request only the live
    counters are computed, which keeps hundreds of creators cheap to serve.

* **Test hooks.**  ``set_note_count`` pins a creator to exactly ``n`` generated notes (the ``n`` newest
  at the current clock), ``set_notes`` serves raw items verbatim, ``add_fault`` injects failures
  (business codes, HTTP errors, HTML, truncated or dropped responses, latency, trickled bodies,
  notes appearing or disappearing while a client pages, duplicated items, wrong totals), and every
  request to the endpoint is recorded in ``calls``.  The same controls are reachable over HTTP under
  ``/__sim/`` for use from other processes (``GET stats``; ``POST reset``, ``faults``, ``note_count``,
  ``notes``), and ``python -m pgy_pipeline.simulator`` runs a server from the command line.

* **Order of checks** for a request: token (code 100), rate limit (code 302), parameters (code 400),
  then faults, then the page of data.  Global ``latency_s`` delays every answer.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import math
import random
import signal
import socket
import sys
import threading
import time
import traceback
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "API_PATH",
    "MESSAGES",
    "TIMELINE_ANCHOR",
    "CallRecord",
    "Simulator",
    "main",
]

API_PATH = "/api/xiaohongshu-pgy/api/solar/kol/dataV2/notesDetail/v1"
ADMIN_PREFIX = "/__sim/"

MESSAGES: dict[int, str] = {
    0: "success",
    100: "Invalid or Inactive Token",
    301: "Collection Failed. Please Retry.",
    302: "Rate Limit Exceeded",
    303: "Daily Quota Exceeded",
    400: "Invalid Parameters",
    500: "Internal Server Error",
    600: "Permission Denied",
    601: "Insufficient Balance",
}

#: Fixed instant the note timelines are built around (notes before it and after it are both absolute).
TIMELINE_ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)
_ANCHOR_TS = int(TIMELINE_ANCHOR.timestamp())
_CHINA_TZ = timezone(timedelta(hours=8))
_DAY_S = 86400.0

_ENUMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("advertiseSwitch", ("ALL", "ORGANIC_ONLY")),
    ("orderType", ("LATEST", "MOST_READ", "MOST_INTERACT")),
    ("noteType", ("ALL", "COOPERATION", "PHOTO_TEXT", "VIDEO")),
    ("isThirdPlatform", ("NO", "YES")),
)

# Faults that decide how the response is delivered (at most one per request) ...
_TERMINAL_FAULTS = frozenset({"code", "http_status", "http_429", "html", "truncated", "drop", "trickle"})
# ... and faults that modify the data or timing (any number may combine).
_MODIFIER_FAULTS = frozenset(
    {"latency", "insert_notes", "remove_notes", "duplicate_across_pages", "total_delta"}
)
FAULT_KINDS = _TERMINAL_FAULTS | _MODIFIER_FAULTS

_MAX_GENERATED = 50_000  # safety bound on lazily generated notes per direction (absurd clocks)
_TIMELINE_CACHE_SIZE = 4096

# ---------------------------------------------------------------------------------------------------
# Vocabulary for generated text
# ---------------------------------------------------------------------------------------------------

# fmt: off
_BRAND_HEADS = (
    "花", "珀", "薇", "自然", "完美", "橘", "森", "元气", "云", "雪", "百", "悦", "植", "青", "小",
    "美", "优", "简", "素", "初", "半亩", "溪", "鹿", "星", "禾",
)
_BRAND_TAILS = (
    "西子", "莱雅", "诺娜", "之谜", "日记", "森林", "堂", "集", "研", "肌", "颜", "物", "生活", "家",
    "记", "食光", "工坊", "良品", "优选", "萃", "造物", "小馆", "元素", "纪",
)
_TITLE_OPENERS = (
    "", "", "", "谁懂啊", "救命", "终于", "第一次", "今天", "沉浸式", "实测", "分享", "周末",
    "打工人的", "普通女生的", "宝妈必看", "原来", "答应我",
)
_TITLE_TOPICS = (
    "儿子的女神节礼物", "通勤穿搭", "平价好物", "早餐", "减脂餐", "护肤步骤", "周末去处", "出租屋改造",
    "猫咪日常", "带娃日常", "露营装备", "秋冬穿搭", "咖啡探店", "小个子穿搭", "空气炸锅食谱", "读书笔记",
    "健身打卡", "旅行攻略", "收纳技巧", "口红试色", "新手化妆", "宝宝辅食", "家常菜", "手机摄影",
    "早八妆容", "租房好物", "亲子游", "防晒测评",
)
_TITLE_ENDINGS = (
    "整破防了", "真的绝了", "分享一下", "太香了", "建议收藏", "后悔没早点知道", "一次说清楚", "亲测有效",
    "闭眼入", "看完不踩雷", "来抄作业", "也太好用了吧", "记录一下", "我宣布封神", "被问爆了",
)
# fmt: on
_TITLE_SUFFIXES = ("", "", "", "", "｜附清单", "｜保姆级教程", "！", "～", "（上）")
_EMOJI = ("😭", "😂", "✨", "🔥", "💯", "🥹", "❤️", "👍", "🌟", "😍", "🙌", "🤣", "", "")
_ID_MIDDLES = ("01", "02", "03", "22", "23", "26")


def _brand_names(seed: int) -> tuple[str, ...]:
    """A deterministic list of made-up Chinese brand names for ``seed``."""
    rng = random.Random(f"{seed}:brands")
    names = sorted({h + t for h in _BRAND_HEADS for t in _BRAND_TAILS})
    return tuple(rng.sample(names, 80))


def _make_title(rng: random.Random) -> str:
    return (
        rng.choice(_TITLE_OPENERS)
        + rng.choice(_TITLE_TOPICS)
        + rng.choice(_TITLE_ENDINGS)
        + rng.choice(_TITLE_SUFFIXES)
        + rng.choice(_EMOJI)
    )


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


# ---------------------------------------------------------------------------------------------------
# Generated creators and notes
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Profile:
    notes_before_anchor: int
    notes_after_anchor: int
    gap_lo_days: float
    gap_hi_days: float
    video_share: float
    ad_share: float
    third_share: float
    popularity: float
    engagement: float
    brand_pool: tuple[str, ...]


def _make_profile(seed: int, user_id: str, brands: tuple[str, ...]) -> _Profile:
    rng = random.Random(f"{seed}:{user_id}")
    if rng.random() < 0.06:
        before = after = 0
    else:
        before = int(_clamp(round(rng.lognormvariate(math.log(30), 1.0)), 1, 250))
        after = 0 if rng.random() < 0.12 else rng.randint(15, 160)
        after = min(after, 300 - before)
    gap_lo = rng.uniform(1.0, 3.5)
    gap_hi = rng.uniform(gap_lo + 0.5, 6.0)
    mode = rng.random()
    if mode < 0.3:
        video_share = rng.uniform(0.0, 0.15)
    elif mode < 0.65:
        video_share = rng.uniform(0.3, 0.7)
    else:
        video_share = rng.uniform(0.85, 1.0)
    return _Profile(
        notes_before_anchor=before,
        notes_after_anchor=after,
        gap_lo_days=gap_lo,
        gap_hi_days=gap_hi,
        video_share=video_share,
        ad_share=min(0.6, rng.betavariate(2.0, 8.0)),
        third_share=rng.uniform(0.0, 0.2),
        popularity=rng.lognormvariate(0.0, 0.8),
        engagement=rng.lognormvariate(0.0, 0.35),
        brand_pool=tuple(rng.sample(brands, rng.randint(3, 8))),
    )


@dataclass(frozen=True, slots=True)
class _NoteSeed:
    """The static part of a generated note; live counters are derived from it at serve time."""

    ts: int
    note_id: str
    date: str
    title: str
    img_url: str
    is_video: bool
    is_ad: bool
    brand: str | None
    final_reads: int
    tau_days: float
    like_frac: float
    collect_frac: float
    third_frac: float

    def live(self, now_ts: float) -> dict[str, Any]:
        age_days = max(0.0, (now_ts - self.ts) / _DAY_S)
        reads = round(self.final_reads * (1.0 - math.exp(-age_days / self.tau_days)))
        return {
            "readNum": reads,
            "likeNum": round(reads * self.like_frac),
            "collectNum": round(reads * self.collect_frac),
            "isAdvertise": self.is_ad,
            "isVideo": self.is_video,
            "noteId": self.note_id,
            "imgUrl": self.img_url,
            "title": self.title,
            "brandName": self.brand,
            "date": self.date,
            "thirdReadUserNum": round(reads * self.third_frac),
        }


def _make_note(rng: random.Random, ts: int, profile: _Profile) -> _NoteSeed:
    is_video = rng.random() < profile.video_share
    is_ad = rng.random() < profile.ad_share
    brand = rng.choice(profile.brand_pool) if is_ad else None
    final_reads = int(
        _clamp(round(rng.lognormvariate(math.log(2500), 1.3) * profile.popularity), 20, 5_000_000)
    )
    tau_days = rng.uniform(1.5, 6.0)
    like_frac = _clamp(rng.lognormvariate(math.log(0.022), 0.55) * profile.engagement, 0.005, 0.08)
    collect_frac = _clamp(rng.lognormvariate(math.log(0.006), 0.6), 0.001, 0.03)
    third_frac = rng.uniform(0.02, 0.15) if rng.random() < profile.third_share else 0.0
    note_id = f"{ts:08x}00000000{rng.choice(_ID_MIDDLES)}{rng.getrandbits(24):06x}"
    img_key = "1040g" + rng.choice(("008", "2sg")) + base64.b32hexencode(rng.randbytes(20)).decode().lower()
    return _NoteSeed(
        ts=ts,
        note_id=note_id,
        date=datetime.fromtimestamp(ts, _CHINA_TZ).date().isoformat(),
        title=_make_title(rng),
        img_url=f"http://ci.xiaohongshu.com/{img_key}?imageView2/2/w/540/format/jpg/q/75",
        is_video=is_video,
        is_ad=is_ad,
        brand=brand,
        final_reads=final_reads,
        tau_days=tau_days,
        like_frac=like_frac,
        collect_frac=collect_frac,
        third_frac=third_frac,
    )


class _Timeline:
    """A creator's publish timeline, generated lazily in both directions from the anchor."""

    __slots__ = ("seed", "user_id", "profile", "back", "fwd")

    def __init__(self, seed: int, user_id: str, profile: _Profile) -> None:
        self.seed = seed
        self.user_id = user_id
        self.profile = profile
        self.back: list[_NoteSeed] = []  # k = -1, -2, ...: newest first
        self.fwd: list[_NoteSeed] = []  # k = 0, 1, ...: oldest first

    def _note(self, k: int, prev_ts: int, direction: int) -> _NoteSeed:
        rng = random.Random(f"{self.seed}:{self.user_id}:{k}")
        gap = int(rng.uniform(self.profile.gap_lo_days, self.profile.gap_hi_days) * _DAY_S)
        return _make_note(rng, prev_ts + direction * gap, self.profile)

    def _extend_back(self, count: int) -> None:
        while len(self.back) < count:
            prev = self.back[-1].ts if self.back else _ANCHOR_TS
            self.back.append(self._note(-(len(self.back) + 1), prev, -1))

    def _extend_fwd(self, count: int) -> None:
        while len(self.fwd) < count:
            if self.fwd:
                prev = self.fwd[-1].ts
            else:
                self._extend_back(1)
                prev = self.back[0].ts
            self.fwd.append(self._note(len(self.fwd), prev, +1))

    def natural(self, now_ts: float) -> list[_NoteSeed]:
        """The creator's own notes published at or before ``now_ts``, newest first."""
        p = self.profile
        self._extend_back(p.notes_before_anchor)
        while len(self.fwd) < p.notes_after_anchor and (not self.fwd or self.fwd[-1].ts <= now_ts):
            self._extend_fwd(len(self.fwd) + 1)
        newer = [s for s in reversed(self.fwd[: p.notes_after_anchor]) if s.ts <= now_ts]
        older = [s for s in self.back[: p.notes_before_anchor] if s.ts <= now_ts]
        return newer + older

    def newest(self, n: int, now_ts: float) -> list[_NoteSeed]:
        """Exactly the ``n`` newest notes of the unbounded timeline published at or before ``now_ts``."""
        while (not self.fwd or self.fwd[-1].ts <= now_ts) and len(self.fwd) < _MAX_GENERATED:
            self._extend_fwd(len(self.fwd) + 1)
        out = [s for s in reversed(self.fwd) if s.ts <= now_ts][:n]
        i = 0
        while len(out) < n and i < _MAX_GENERATED:
            self._extend_back(i + 1)
            if self.back[i].ts <= now_ts:
                out.append(self.back[i])
            i += 1
        return out


@dataclass
class _CreatorState:
    """Per-creator overrides and permanent changes made by faults."""

    pinned: int | None = None
    raw: list[Any] | None = None
    inserted: list[_NoteSeed] = field(default_factory=list)  # newest first
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
    """

    user_id: str | None
    page: int | None
    params: dict[str, str]
    outcome: int | str
    token_ok: bool
    at: float
    faults: tuple[str, ...] = ()


@dataclass
class _Fault:
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


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _error_body(code: int, message: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message or MESSAGES.get(code, "Error"), "data": None}


def _html_page(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"<html><body><h1>{status} {phrase}</h1></body></html>".encode()


def _parse_page(raw: str | None) -> tuple[int | None, str | None]:
    """Return ``(page, error)``; an absent or empty value means page 1."""
    if raw is None or raw == "":
        return 1, None
    if not raw.isascii() or not raw.isdigit():
        return None, "pageNumber must be an integer >= 1"
    try:
        page = int(raw)
    except ValueError:
        return None, "pageNumber must be an integer >= 1"
    if page < 1:
        return None, "pageNumber must be an integer >= 1"
    return page, None


def _to_ts(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------------------


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
    ) -> None:
        self.token = token
        self.seed = seed
        self.latency_s = latency_s
        self.rate_limit_rps = rate_limit_rps
        self.clock: Callable[[], datetime] = now if now is not None else _utc_now
        self.calls: list[CallRecord] = []
        self.log_requests = False
        self._page_size = 8
        self.page_size = page_size
        self._lock = threading.RLock()
        self._brands = _brand_names(seed)
        self._timelines: OrderedDict[str, _Timeline] = OrderedDict()
        self._creators: dict[str, _CreatorState] = {}
        self._faults: list[_Fault] = []
        self._fault_serial = 0
        self._accepted: deque[float] = deque()
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
        now_ts = _to_ts(at if at is not None else self.clock())
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
            else:
                self._creators.pop(user_id, None)

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
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if kind == "code" and "code" not in params:
            raise ValueError("fault 'code' needs code=<int>")
        if times is not None and times < 0:
            raise ValueError("times must be >= 0 or None")
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        with self._lock:
            self._fault_serial += 1
            self._faults.append(
                _Fault(
                    kind=kind,
                    user_id=user_id,
                    page=page,
                    remaining=times,
                    rate=rate,
                    params=dict(params),
                    rng=random.Random(f"{self.seed}:fault:{self._fault_serial}"),
                )
            )

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

    def stats(self) -> dict[str, Any]:
        """Summary of the recorded calls: ``{"calls": n, "by_user": {...}, "by_outcome": {...}}``."""
        with self._lock:
            calls = list(self.calls)
        by_user = Counter("" if c.user_id is None else c.user_id for c in calls)
        by_outcome = Counter(str(c.outcome) for c in calls)
        return {"calls": len(calls), "by_user": dict(by_user), "by_outcome": dict(by_outcome)}

    # -- internals: data -------------------------------------------------------------------------

    def _timeline(self, user_id: str) -> _Timeline:
        tl = self._timelines.get(user_id)
        if tl is None:
            tl = _Timeline(self.seed, user_id, _make_profile(self.seed, user_id, self._brands))
            self._timelines[user_id] = tl
            if len(self._timelines) > _TIMELINE_CACHE_SIZE:
                self._timelines.popitem(last=False)
        else:
            self._timelines.move_to_end(user_id)
        return tl

    def _seeds(self, user_id: str, state: _CreatorState | None, now_ts: float) -> list[_NoteSeed]:
        """Generated notes currently served for a creator, LATEST order."""
        tl = self._timeline(user_id)
        if state is None:
            return tl.natural(now_ts)
        base = tl.newest(state.pinned, now_ts) if state.pinned is not None else tl.natural(now_ts)
        seeds = [s for s in state.inserted + base if s.note_id not in state.removed]
        seeds.sort(key=lambda s: (s.date, s.note_id), reverse=True)
        return seeds

    def _all_items(self, user_id: str, now_ts: float) -> list[Any]:
        state = self._creators.get(user_id)
        if state is not None and state.raw is not None:
            return [s.live(now_ts) for s in state.inserted] + copy.deepcopy(state.raw)
        return [s.live(now_ts) for s in self._seeds(user_id, state, now_ts)]

    def _served_items(self, user_id: str, opts: dict[str, str], now_ts: float) -> list[Any]:
        state = self._creators.get(user_id)
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

    def _insert_notes(self, user_id: str, n: int, now_ts: float) -> None:
        state = self._state(user_id)
        if state.raw is not None:
            newest_ts = state.inserted[0].ts if state.inserted else 0
        else:
            current = self._seeds(user_id, state, now_ts)
            newest_ts = current[0].ts if current else 0
        profile = self._timeline(user_id).profile
        ts = max(int(now_ts), newest_ts + 1)
        for _ in range(max(0, n)):
            state.insert_counter += 1
            rng = random.Random(f"{self.seed}:{user_id}:inserted:{state.insert_counter}")
            state.inserted.insert(0, _make_note(rng, ts, profile))
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

    def _rate_limited(self, now_mono: float) -> bool:
        rps = self.rate_limit_rps
        if not rps or rps <= 0:
            return False
        while self._accepted and self._accepted[0] <= now_mono - 1.0:
            self._accepted.popleft()
        if len(self._accepted) >= rps:
            return True
        self._accepted.append(now_mono)
        return False

    def _select_faults(self, user_id: str | None, page: int | None) -> list[_Fault]:
        chosen: list[_Fault] = []
        terminal = False
        for fault in self._faults:
            if not fault.matches(user_id, page):
                continue
            is_terminal = fault.kind in _TERMINAL_FAULTS
            if is_terminal and terminal:
                continue
            if fault.trigger():
                chosen.append(fault)
                terminal = terminal or is_terminal
        self._faults = [f for f in self._faults if not f.used_up]
        return chosen

    def _plan_api(self, params: dict[str, str]) -> _Plan:
        now_mono = time.monotonic()
        with self._lock:
            plan, outcome, kinds, page = self._plan_api_locked(params, now_mono)
            self.calls.append(
                CallRecord(
                    user_id=params.get("userId"),
                    page=page,
                    params={k: v for k, v in params.items() if k != "token"},
                    outcome=outcome,
                    token_ok=params.get("token") == self.token,
                    at=now_mono,
                    faults=tuple(kinds),
                )
            )
        plan.delay_s += max(0.0, self.latency_s)
        return plan

    def _plan_api_locked(
        self, params: dict[str, str], now_mono: float
    ) -> tuple[_Plan, int | str, list[str], int | None]:
        page, page_error = _parse_page(params.get("pageNumber"))
        if params.get("token") != self.token:
            return _Plan(200, _json_bytes(_error_body(100))), 100, [], page
        if self._rate_limited(now_mono):
            return _Plan(200, _json_bytes(_error_body(302))), 302, [], page

        user_id = params.get("userId") or ""
        opts: dict[str, str] = {}
        error: str | None = None
        if not user_id.strip():
            error = "userId is required"
        for name, allowed in _ENUMS:
            value = params.get(name) or allowed[0]
            opts[name] = value
            if error is None and value not in allowed:
                error = f"{name} must be one of {', '.join(allowed)}"
        error = error or page_error
        if error is not None or page is None:
            return _Plan(200, _json_bytes(_error_body(400, f"Invalid Parameters: {error}"))), 400, [], page

        faults = self._select_faults(user_id, page)
        kinds = [f.kind for f in faults]
        now_ts = _to_ts(self.clock())
        delay = 0.0
        shift = False
        total_delta = 0
        terminal: _Fault | None = None
        for f in faults:
            p = f.params
            if f.kind == "latency":
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
                plan = _Plan(200, _json_bytes(_error_body(code, p.get("message"))), delay_s=delay)
                if p.get("retry_after") is not None:
                    plan.headers.append(("Retry-After", str(p["retry_after"])))
                return plan, code, kinds, page
            if terminal.kind == "http_status":
                status = int(p.get("status", 502))
                plan = _Plan(status, _html_page(status), "text/html; charset=utf-8", delay_s=delay)
                return plan, f"http_{status}", kinds, page
            if terminal.kind == "http_429":
                plan = _Plan(429, _html_page(429), "text/html; charset=utf-8", delay_s=delay)
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
        plan = _Plan(200, _json_bytes(body_obj), delay_s=delay)
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

    def _admin(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
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
            if parts.path == API_PATH:
                if method != "GET":
                    self._send(_Plan(405, _json_bytes({"status": 405, "error": "Method Not Allowed"})))
                    return
                query = parse_qs(parts.query, keep_blank_values=True)
                self._execute(self.sim._plan_api({k: v[0] for k, v in query.items()}))
                return
            if parts.path.startswith(ADMIN_PREFIX):
                status, payload = self.sim._admin(method, parts.path, body)
                self._send(_Plan(status, _json_bytes(payload)))
                return
            self._send(_Plan(404, _json_bytes({"status": 404, "error": "Not Found", "path": parts.path})))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug in the simulator: answer like the service would, keep serving
            traceback.print_exc(file=sys.stderr)
            try:
                self._send(_Plan(500, _json_bytes(_error_body(500))))
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


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; prints the base URL on one line."""
    parser = argparse.ArgumentParser(
        prog="python -m pgy_pipeline.simulator",
        description="Local simulator of the Just One API Pugongying User Published Notes (V1) endpoint.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="sim-token")
    parser.add_argument("--page-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    parser.add_argument(
        "--rate-limit-rps", type=float, default=0.0, help="answer 302 above this rate; 0 = off"
    )
    parser.add_argument(
        "--now", default=None, help="freeze the clock at this ISO-8601 instant (default: real time)"
    )
    parser.add_argument("--log-requests", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    now: Callable[[], datetime] | None = None
    if args.now:
        frozen = datetime.fromisoformat(args.now)
        if frozen.tzinfo is None:
            frozen = frozen.replace(tzinfo=UTC)

        def now() -> datetime:
            return frozen

    sim = Simulator(
        token=args.token,
        page_size=args.page_size,
        seed=args.seed,
        latency_s=args.latency_ms / 1000.0,
        rate_limit_rps=args.rate_limit_rps or None,
        now=now,
    )
    sim.log_requests = args.log_requests
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(sim.start(args.host, args.port), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the shutdown
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
