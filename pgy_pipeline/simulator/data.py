"""Generated creators and notes: profiles, note seeds and the per-creator publish timeline.

Everything here is derived from ``(seed, userId)`` through ``random.Random`` seeded with strings
(SHA-512 based, stable across processes, unlike ``hash()``), so two simulators with the same seed serve
byte-identical catalogues and a test can compute what a client should have stored.

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
- A few percent of organic notes carry a ``brandName`` with ``isAdvertise: false``
  (:data:`ORGANIC_BRAND_SHARE`), as on the real service.

Besides the natural timeline: :class:`CadenceTimeline` (a fixed note count at a clock and a posting
rate, for benchmark rosters) and :func:`make_note_items` (raw items at chosen ages, for window edges).
"""

from __future__ import annotations

import base64
import enum
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from pgy_pipeline import clock

TIMELINE_ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)
"""Fixed instant the note timelines are built around (notes before it and after it are both absolute)."""

ANCHOR_TS = int(TIMELINE_ANCHOR.timestamp())
CHINA_TZ = timezone(timedelta(hours=8))
DAY_S = 86400.0
MAX_GENERATED = 50_000  # safety bound on lazily generated notes per direction (absurd clocks)

#: Creators whose id starts with this are unknown to the marketplace (answer an empty list) unless a
#: test gives them notes explicitly: a fixed rule lets other processes use unknown ids without set-up.
UNKNOWN_PREFIX = "000000"

#: Share of organic (``isAdvertise: false``) generated notes that still carry a ``brandName``: the real
#: service tags brands a creator mentions without a paid cooperation, so a client must not read
#: ``brandName`` as "this is an ad".
ORGANIC_BRAND_SHARE = 0.04

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


def brand_names(seed: int) -> tuple[str, ...]:
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
class Profile:
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


def make_profile(seed: int, user_id: str, brands: tuple[str, ...]) -> Profile:
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
    return Profile(
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
class NoteSeed:
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
        age_days = max(0.0, (now_ts - self.ts) / DAY_S)
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


def organic_brand(note_id: str, pool: tuple[str, ...], share: float) -> str | None:
    """The brand an organic note is tagged with, or None; a share of ``share`` of organic notes get one.

    Drawn from a stream keyed by the note id alone, not from the note's own stream, so tagging leaves
    every other generated attribute exactly as it was; and the same draw decides at any ``share``, so a
    larger share tags a superset of the notes (forcing a share for a creator only adds brands).
    """
    rng = random.Random(f"organic-brand:{note_id}")
    if rng.random() >= share or not pool:
        return None
    return rng.choice(pool)


def with_organic_brands(seeds: list[NoteSeed], pool: tuple[str, ...], share: float) -> list[NoteSeed]:
    """``seeds`` with the organic ones re-tagged at ``share`` (the ``set_brand_tagged_share`` hook)."""
    return [s if s.is_ad else replace(s, brand=organic_brand(s.note_id, pool, share)) for s in seeds]


def make_note(rng: random.Random, ts: int, profile: Profile) -> NoteSeed:
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
    if not is_ad:
        brand = organic_brand(note_id, profile.brand_pool, ORGANIC_BRAND_SHARE)
    return NoteSeed(
        ts=ts,
        note_id=note_id,
        date=datetime.fromtimestamp(ts, CHINA_TZ).date().isoformat(),
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


class Timeline:
    """A creator's publish timeline, generated lazily in both directions from the anchor."""

    __slots__ = ("seed", "user_id", "profile", "back", "fwd")

    def __init__(self, seed: int, user_id: str, profile: Profile) -> None:
        self.seed = seed
        self.user_id = user_id
        self.profile = profile
        self.back: list[NoteSeed] = []  # k = -1, -2, ...: newest first
        self.fwd: list[NoteSeed] = []  # k = 0, 1, ...: oldest first

    def _note(self, k: int, prev_ts: int, direction: int) -> NoteSeed:
        rng = random.Random(f"{self.seed}:{self.user_id}:{k}")
        gap = int(rng.uniform(self.profile.gap_lo_days, self.profile.gap_hi_days) * DAY_S)
        return make_note(rng, prev_ts + direction * gap, self.profile)

    def _extend_back(self, count: int) -> None:
        while len(self.back) < count:
            prev = self.back[-1].ts if self.back else ANCHOR_TS
            self.back.append(self._note(-(len(self.back) + 1), prev, -1))

    def _extend_fwd(self, count: int) -> None:
        while len(self.fwd) < count:
            if self.fwd:
                prev = self.fwd[-1].ts
            else:
                self._extend_back(1)
                prev = self.back[0].ts
            self.fwd.append(self._note(len(self.fwd), prev, +1))

    def natural(self, now_ts: float) -> list[NoteSeed]:
        """The creator's own notes published at or before ``now_ts``, newest first."""
        p = self.profile
        self._extend_back(p.notes_before_anchor)
        while len(self.fwd) < p.notes_after_anchor and (not self.fwd or self.fwd[-1].ts <= now_ts):
            self._extend_fwd(len(self.fwd) + 1)
        newer = [s for s in reversed(self.fwd[: p.notes_after_anchor]) if s.ts <= now_ts]
        older = [s for s in self.back[: p.notes_before_anchor] if s.ts <= now_ts]
        return newer + older

    def newest(self, n: int, now_ts: float) -> list[NoteSeed]:
        """Exactly the ``n`` newest notes of the unbounded timeline published at or before ``now_ts``."""
        while (not self.fwd or self.fwd[-1].ts <= now_ts) and len(self.fwd) < MAX_GENERATED:
            self._extend_fwd(len(self.fwd) + 1)
        out = [s for s in reversed(self.fwd) if s.ts <= now_ts][:n]
        i = 0
        while len(out) < n and i < MAX_GENERATED:
            self._extend_back(i + 1)
            if self.back[i].ts <= now_ts:
                out.append(self.back[i])
            i += 1
        return out


class CadenceTimeline:
    """A creator posting at a fixed average rate: exactly ``note_count`` notes at ``anchor_ts``.

    Used for benchmark rosters, where what matters is how publish dates spread over a window: gaps are
    ``1 / posts_per_day`` days with +-30% jitter, so a daily poster has about 90 notes in any 90 days
    and a monthly one about 3.  The gap that spans the anchor is split at a random point, so the
    cadence runs on unbroken after it: a later clock shows the same notes plus new ones at that rate.
    """

    __slots__ = ("seed", "user_id", "profile", "anchor_ts", "note_count", "mean_gap_s", "back", "fwd")

    def __init__(
        self,
        seed: int,
        user_id: str,
        profile: Profile,
        anchor_ts: float,
        note_count: int,
        posts_per_day: float,
    ) -> None:
        if note_count < 0:
            raise ValueError("note_count must be >= 0")
        if not posts_per_day > 0:
            raise ValueError("posts_per_day must be > 0")
        self.seed = seed
        self.user_id = user_id
        self.profile = profile
        self.anchor_ts = int(anchor_ts)
        self.note_count = note_count
        self.mean_gap_s = DAY_S / posts_per_day
        self.back: list[NoteSeed] = []  # newest first, all at or before the anchor
        self.fwd: list[NoteSeed] = []  # oldest first, all after the anchor

    def _rng(self, k: int) -> random.Random:
        return random.Random(f"{self.seed}:{self.user_id}:cadence:{k}")

    def _gap(self, rng: random.Random) -> int:
        return max(1, int(self.mean_gap_s * rng.uniform(0.7, 1.3)))

    def _build_back(self) -> None:
        if self.back or self.note_count == 0:
            return
        rng = self._rng(0)
        span = self._gap(rng)
        ts = self.anchor_ts - int(span * rng.uniform(0.02, 0.98))
        self.back.append(make_note(rng, ts, self.profile))
        for k in range(1, self.note_count):
            rng = self._rng(-k)
            ts -= self._gap(rng)
            self.back.append(make_note(rng, ts, self.profile))

    def natural(self, now_ts: float) -> list[NoteSeed]:
        """The notes published at or before ``now_ts``, newest first."""
        self._build_back()
        while len(self.fwd) < MAX_GENERATED and (not self.fwd or self.fwd[-1].ts <= now_ts):
            k = len(self.fwd) + 1
            rng = self._rng(k)
            prev = self.fwd[-1].ts if self.fwd else (self.back[0].ts if self.back else self.anchor_ts)
            ts = max(prev + self._gap(rng), self.anchor_ts + 1)
            self.fwd.append(make_note(rng, ts, self.profile))
        newer = [s for s in reversed(self.fwd) if s.ts <= now_ts]
        return newer + [s for s in self.back if s.ts <= now_ts]


# ---------------------------------------------------------------------------------------------------
# Raw items at chosen ages (window-edge tests)
# ---------------------------------------------------------------------------------------------------


class _Auto(enum.Enum):
    """Type of :data:`AUTO`, a sentinel distinguishing "not given" from an explicit None."""

    AUTO = "auto"


AUTO = _Auto.AUTO


def _per_note(value: object, n: int, name: str) -> list[Any]:
    """Broadcast a scalar to ``n`` notes, or check a per-note sequence has ``n`` values.

    Untyped on purpose: the public signature of :func:`make_note_items` carries the types, and a
    generic here cannot tell a ``str`` (a scalar brand) from a sequence.
    """
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = list(value)
        if len(values) != n:
            raise ValueError(f"{name} has {len(values)} values for {n} notes")
        return values
    return [value] * n


def china_day_start(day: date) -> int:
    """Unix time of 00:00 China time (UTC+8) on ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=CHINA_TZ).timestamp())


def make_note_items(
    user_id: str,
    ages_days: Sequence[int],
    *,
    snapshot_date: date | str | None = None,
    seed: int = 0,
    is_advertise: bool | Sequence[bool] = False,
    brand_name: str | None | Sequence[str | None] | _Auto = AUTO,
    reads: int | Sequence[int] | None = None,
    likes: int | Sequence[int] | None = None,
    collects: int | Sequence[int] | None = None,
    third_reads: int | Sequence[int] | None = None,
    is_video: bool | Sequence[bool] | None = None,
) -> list[dict[str, Any]]:
    """Raw note items published ``ages_days`` China days before ``snapshot_date``, newest first.

    Meant for ``Simulator.set_notes``, to put notes exactly on a window's edges: age 0 is published on
    ``snapshot_date`` itself (default: today in China), age 30 thirty days earlier.  Items have the
    endpoint's exact layout (the keys, order and types of generated notes); ``date`` is the China day,
    and the ``noteId``'s leading 8 hex digits are the publish time, within the first hour of that day.

    Every attribute argument takes one value for all notes or a sequence with one value per age (in the
    order of ``ages_days``).  Counters left as None are the generated ones as of the end of
    ``snapshot_date``; ``is_video`` None follows the creator's generated profile; ``brand_name`` left out
    gives advertised notes a brand from the creator's pool and organic ones None (pass a string with
    ``is_advertise=False`` for a brand-tagged organic note).  Everything is deterministic in
    ``(seed, user_id, ages_days)``.
    """
    n = len(ages_days)
    ages = [int(a) for a in ages_days]
    if any(a < 0 for a in ages):
        raise ValueError("ages_days must be >= 0")
    if snapshot_date is None:
        snap = clock.now().astimezone(CHINA_TZ).date()
    elif isinstance(snapshot_date, str):
        snap = date.fromisoformat(snapshot_date)
    else:
        snap = snapshot_date
    ads = _per_note(is_advertise, n, "is_advertise")
    brands = _per_note(brand_name, n, "brand_name")
    videos = _per_note(is_video, n, "is_video")
    counters = {
        "readNum": _per_note(reads, n, "reads"),
        "likeNum": _per_note(likes, n, "likes"),
        "collectNum": _per_note(collects, n, "collects"),
        "thirdReadUserNum": _per_note(third_reads, n, "third_reads"),
    }
    profile = make_profile(seed, user_id, brand_names(seed))
    snapshot_end = china_day_start(snap + timedelta(days=1))
    items: list[dict[str, Any]] = []
    for i, age in enumerate(ages):
        rng = random.Random(f"{seed}:{user_id}:item:{i}:{age}")
        ts = china_day_start(snap - timedelta(days=age)) + rng.randrange(60, 3600)
        seed_note = make_note(rng, ts, profile)
        brand = brands[i]
        if isinstance(brand, _Auto):
            brand = rng.choice(profile.brand_pool) if ads[i] else None
        video = videos[i]
        seed_note = replace(
            seed_note,
            is_ad=bool(ads[i]),
            brand=brand,
            is_video=seed_note.is_video if video is None else bool(video),
        )
        item = seed_note.live(snapshot_end)
        for key, values in counters.items():
            if values[i] is not None:
                item[key] = int(values[i])
        items.append(item)
    items.sort(key=lambda it: (it["date"], it["noteId"]), reverse=True)
    return items


def to_ts(dt: datetime) -> float:
    """Unix time of ``dt``; a naive datetime is taken as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def utc_now() -> datetime:
    """The pipeline's clock (:mod:`pgy_pipeline.clock`), the default ``now`` of a simulator."""
    return clock.now()


# --------------------------------------------------------------------------------------------
# Pugongying's own figures (the Note Performance endpoint)
# --------------------------------------------------------------------------------------------


def hidden_counters(item: dict[str, Any]) -> tuple[int, int, int]:
    """``(comments, shares, impressions)`` of a listed note: counters the notes list does not carry.

    Fixed fractions of its reads, drawn from its ``noteId``, so every counter grows with the reads and
    two simulators agree.
    """
    rng = random.Random(f"hidden:{item.get('noteId')}")
    comment_frac, share_frac, imp_factor = (
        rng.uniform(0.002, 0.012),
        rng.uniform(0.001, 0.006),
        rng.uniform(3, 8),
    )
    reads = int(item.get("readNum") or 0)
    return round(reads * comment_frac), round(reads * share_frac), round(reads * imp_factor)


def _median(values: list[int]) -> int | float:
    """The median as DuckDB's ``median()`` computes it: the mean of the middle two for an even count."""
    ordered = sorted(values)
    n = len(ordered)
    mid = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return int(mid) if float(mid).is_integer() else mid


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}" if whole else "0.0"


def _rate_notes(items: list[Any], opts: dict[str, str], today: date) -> list[dict[str, Any]]:
    """The listed notes one query covers: its window ends the day before ``today``."""
    days = 30 if opts["dateType"] == "DAY_30" else 90
    chosen = []
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("readNum"), int):
            continue
        try:
            day = date.fromisoformat(str(it.get("date"))[:10])
        except ValueError:
            continue
        branded = bool(it.get("isAdvertise")) or bool(str(it.get("brandName") or "").strip())
        wanted = branded if opts["business"] == "COOPERATE_NOTE" else not branded
        kind = {"PHOTO_TEXT": False, "VIDEO": True}.get(opts["noteType"])
        if kind is not None and bool(it.get("isVideo")) != kind:
            wanted = False
        if opts["advertiseSwitch"] == "ORGANIC_ONLY" and it.get("isAdvertise"):
            wanted = False
        if wanted and today - timedelta(days=days) <= day < today:
            chosen.append(it)
    return chosen


def note_rate_figures(items: list[Any], opts: dict[str, str], now_ts: float) -> dict[str, Any]:
    """The ``data`` of a Note Performance answer over the listed ``items`` (LATEST order) at ``now_ts``.

    As recorded from the real service: ``interactionMedian`` is the sum of the like, collect and
    comment medians; a note's ``interactionNum`` counts likes, collects, comments and shares;
    ``interactionRate`` is all interactions over all reads, in percent; with no note every median is
    0 and the beyond rates stay filled.
    """
    today = datetime.fromtimestamp(now_ts, CHINA_TZ).date()
    notes = _rate_notes(items, opts, today)
    rng = random.Random(f"beyond:{opts}:{len(items)}")
    beyond = {k: f"{rng.uniform(20, 95):.1f}" for k in ("read", "imp", "interaction")}
    rows: list[tuple[dict[str, Any], int, int, int, int, int, int]] = []
    for it in notes:
        comments, shares, imps = hidden_counters(it)
        likes, collects = int(it.get("likeNum") or 0), int(it.get("collectNum") or 0)
        rows.append((it, int(it["readNum"]), likes, collects, comments, shares, imps))
    names = ("read", "like", "collect", "comment", "share", "imp")
    col: dict[str, list[int]] = {name: [] for name in names}
    for row in rows:
        for name, value in zip(names, row[1:], strict=True):
            col[name].append(int(value))
    med = {
        name: (_median(col[name]) if rows else 0)
        for name in names
    }
    interactions = [r[2] + r[3] + r[4] + r[5] for r in rows]
    return {
        "noteNumber": len(rows),
        "videoNoteNumber": sum(1 for r in rows if r[0].get("isVideo")),
        "hundredLikePercent": _percent(sum(1 for r in rows if r[2] >= 100), len(rows)),
        "thousandLikePercent": _percent(sum(1 for r in rows if r[2] >= 1000), len(rows)),
        "noteType": [],
        "impMedian": med["imp"],
        "impMedianBeyondRate": beyond["imp"],
        "readMedian": med["read"],
        "readMedianBeyondRate": beyond["read"],
        "interactionMedian": med["like"] + med["collect"] + med["comment"] if rows else 0,
        "interactionRate": _percent(sum(interactions), sum(col["read"])),
        "interactionBeyondRate": beyond["interaction"],
        "likeMedian": med["like"],
        "collectMedian": med["collect"],
        "commentMedian": med["comment"],
        "shareMedian": med["share"],
        "notes": [_rate_note(r, med) for r in rows] or None,
        "mEngagementNum": _median(interactions) if rows else 0,
    }


def _rate_note(row: tuple[Any, ...], med: dict[str, int | float]) -> dict[str, Any]:
    it, reads, likes, collects, comments, shares, imps = row

    def beyond(value: int, median: int | float) -> float:
        return round(value / median - 1, 3) if median else 0.0

    return {
        "noteId": it.get("noteId"),
        "publishTime": it.get("date"),
        "impNum": imps,
        "impBeyondRate": beyond(imps, med["imp"]),
        "readNum": reads,
        "readBeyondRate": beyond(reads, med["read"]),
        "interactionNum": likes + collects + comments + shares,
        "likeNum": likes,
        "collectNum": collects,
    }
