"""The oracle's own world: a truth model of each creator's notes, the paging rule, the metrics computed
in Python from the documentation, and readers of what the pipeline stored (``test_oracle.py`` drives it).

Nothing here imports the pipeline's SQL or its scan planner: the oracle re-derives what the documents
(README, docs/tables.md) promise, so a disagreement points at one of the two.

* :class:`Note` is one note of the truth; :func:`draw_notes` makes a creator's initial list.
* :func:`simulate_scan` pages a list as the documented stop rule says (full: to ``total`` or an empty
  page; window: also after the first page wholly older than the window and its 7-day margin), applying a
  :class:`Change` (a note published or deleted between two page requests) when its page is asked for.
* :func:`expected_cell` computes one metrics row (window x segment) from a list of notes.
* :func:`whole_list_columns` reads which metric columns need a creator's whole list (NULL in window
  ``all`` on a window-scan day) from the declaration if ``Column`` has such a flag, else from the SQL.
* :func:`read_warehouse` reads every table the oracle checks in one read-only connection.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from pgy_pipeline.clock import SHANGHAI

PAGE_SIZE = 8
WINDOW_DAYS = 90  # the deepest metric window: a window scan must read every note of it
MARGIN_DAYS = 7  # documented margin of a window scan (raw.note_pages)
WINDOWS: tuple[tuple[str, int | None], ...] = (("30d", 30), ("90d", 90), ("all", None))
SEGMENTS = ("all", "organic", "cooperation")
WINDOW_STATUSES = ("window", "window_drifted")
FULL_ON_RECORD = ("full", "empty")  # a full scan on record; a drifted one is not
DRIFTED = ("full_drifted", "window_drifted")
METRIC_COLUMNS = (
    "note_count",
    "video_note_count",
    "read_median",
    "read_mean",
    "interaction_median",
    "like_median",
    "collect_median",
    "engagement_rate",
    "hundred_like_rate",
    "thousand_like_rate",
    "notes_per_week",
    "days_since_last_note",
    "read_gain",
    "previous_snapshot_date",
    "notes_total_reported",
    "interaction_per_note_median",
    "brand_tagged_non_ad_count",
    "read_max",
)
BRANDS = ("花西子", "完美日记", "植物小馆")


# -- the truth --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """One note as the service lists it (the item layout of ``simulator.data.make_note_items``)."""

    note_id: str
    published: date
    reads: int
    likes: int
    collects: int
    third_reads: int
    is_ad: bool
    brand: str | None
    is_video: bool
    title: str

    def item(self) -> dict[str, Any]:
        return {
            "readNum": self.reads,
            "likeNum": self.likes,
            "collectNum": self.collects,
            "isAdvertise": self.is_ad,
            "isVideo": self.is_video,
            "noteId": self.note_id,
            "imgUrl": f"https://sns-img.example/{self.note_id}.jpg",
            "title": self.title,
            "brandName": self.brand,
            "date": self.published.isoformat(),
            "thirdReadUserNum": self.third_reads,
        }

    @property
    def segment(self) -> str:
        """docs/tables.md, analytics.notes: cooperation = marked as an ad or tagged with a brand."""
        tagged = self.brand is not None and any(not ch.isspace() for ch in self.brand)
        return "cooperation" if self.is_ad or tagged else "organic"

    def grown(self, reads: int) -> Note:
        return dataclasses.replace(
            self,
            reads=self.reads + reads,
            likes=self.likes + reads // 12,
            collects=self.collects + reads // 25,
            third_reads=self.third_reads + reads // 20,
        )


def latest_first(notes: list[Note]) -> list[Note]:
    """The service's default order (orderType LATEST): newest publish day first, then newest id."""
    return sorted(notes, key=lambda n: (n.published, n.note_id), reverse=True)


def draw_note(rng: random.Random, creator: str, serial: int, published: date, *, fresh: bool = False) -> Note:
    """A note published on ``published``; ``fresh`` ones (published today) have few reads yet."""
    start = int(datetime.combine(published, time(0), tzinfo=SHANGHAI).timestamp())
    ts = start + rng.randrange(60, 3600)
    note_id = f"{ts:08x}" + hashlib.sha1(f"{creator}:{serial}".encode()).hexdigest()[:16]
    if fresh:
        reads = rng.choice([0, rng.randint(1, 300)])
    else:
        reads = rng.choice([0, rng.randint(1, 400), rng.randint(400, 6000), rng.randint(6000, 250_000)])
    likes = int(reads * rng.choice([0.0, 0.02, 0.06, 0.15]))
    collects = int(reads * rng.choice([0.0, 0.01, 0.04]))
    kind = rng.random()
    if kind < 0.2:
        is_ad, brand = True, rng.choice([*BRANDS, None])
    elif kind < 0.3:
        is_ad, brand = False, rng.choice(BRANDS)  # brand-tagged, not an ad: cooperation all the same
    elif kind < 0.35:
        is_ad, brand = False, " "  # a blank brand is no brand: organic
    else:
        is_ad, brand = False, None
    return Note(
        note_id=note_id,
        published=published,
        reads=reads,
        likes=likes,
        collects=collects,
        third_reads=reads // 20,
        is_ad=is_ad,
        brand=brand,
        is_video=rng.random() < 0.4,
        title=f"note {serial} of {creator[:6]}",
    )


def draw_age(rng: random.Random) -> int:
    """Days before the first day: on the windows' edges, inside the 90 days and its margin, or older."""
    r = rng.random()
    if r < 0.15:
        return rng.choice([0, 1, 2, 29, 30, 31, 88, 89, 90, 91, 96, 97, 98])
    if r < 0.55:
        return rng.randint(0, 100)
    return rng.randint(100, 600)


def draw_notes(rng: random.Random, creator: str, count: int, day: date, serials: Counter[str]) -> list[Note]:
    notes = []
    for _ in range(count):
        serials[creator] += 1
        notes.append(draw_note(rng, creator, serials[creator], day - timedelta(days=draw_age(rng))))
    return latest_first(notes)


# -- paging -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """The list shifts by one note between two page requests: before page ``page`` is served, ``insert``
    publishes ``note`` (today's, so it lists first) or ``delete`` removes the newest note."""

    kind: str
    page: int
    note: Note | None = None

    def apply(self, notes: list[Note]) -> list[Note]:
        if self.kind == "insert":
            assert self.note is not None
            return latest_first([self.note, *notes])
        return notes[1:]


@dataclass
class ScanResult:
    """What one scan of a creator pays and stores, by the documented rules."""

    mode: str  # 'full' | 'window'
    day: date
    before: list[Note]  # the list when the scan started
    after: list[Note]  # the list when it ended (differs only when the change fired)
    pages: list[list[Note]] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)
    stored: list[Note] = field(default_factory=list)  # deduplicated by note id, in list order
    fired: bool = False

    @property
    def drifted(self) -> bool:
        return len(set(self.totals)) > 1

    @property
    def moved(self) -> int:
        """Notes published or deleted while paging."""
        return abs(len(self.after) - len(self.before)) if self.fired else 0

    @property
    def total(self) -> int:
        return self.totals[-1]

    @property
    def status(self) -> str:
        """analytics.creator_snapshots.scan_status, as docs/tables.md (and the drift rule) define it."""
        if sum(len(p) for p in self.pages) == 0 and self.total == 0:
            return "empty"
        if self.drifted:
            return "window_drifted" if self.mode == "window" else "full_drifted"
        if len(self.stored) >= self.total:
            return "full"
        return "window" if self.mode == "window" else "partial"

    def served(self) -> dict[str, Note]:
        """Every note as it was served (a note deleted while paging keeps the values it was read with)."""
        out = {n.note_id: n for n in self.after}
        out.update({n.note_id: n for n in self.before})
        for page in self.pages:
            out.update({n.note_id: n for n in page})
        return out


def simulate_scan(notes: list[Note], day: date, mode: str, change: Change | None = None) -> ScanResult:
    """Page ``notes`` (LATEST order) as README and docs/tables.md describe: pages from 1 until the
    distinct notes reach the page's ``total`` or a page is empty; a window scan also stops after the
    first page whose every date is before ``day - 90 - 7`` (in order, which the truth always is)."""
    cutoff = day - timedelta(days=WINDOW_DAYS + MARGIN_DAYS)
    current = list(notes)
    scan = ScanResult(mode=mode, day=day, before=list(notes), after=current)
    seen: set[str] = set()
    previous: date | None = None
    for page_number in range(1, 1001):
        if change is not None and not scan.fired and page_number == change.page:
            current = change.apply(current)
            scan.fired = True
        items = current[(page_number - 1) * PAGE_SIZE : page_number * PAGE_SIZE]
        scan.pages.append(items)
        scan.totals.append(len(current))
        for n in items:
            if n.note_id not in seen:
                seen.add(n.note_id)
                scan.stored.append(n)
        in_order = True
        for n in items:
            if previous is not None and n.published > previous:
                in_order = False
            previous = n.published
        past_window = (
            mode == "window" and in_order and bool(items) and all(n.published < cutoff for n in items)
        )
        if not items or len(seen) >= len(current) or past_window:
            break
    scan.after = current
    return scan


# -- the metrics, from docs/tables.md ---------------------------------------------------------------


def median(values: list[float]) -> float | None:
    """DuckDB's ``median`` (an interpolated 0.5 quantile): the mean of the two middle values if even."""
    if not values:
        return None
    v = sorted(values)
    mid = len(v) // 2
    return float(v[mid]) if len(v) % 2 else (v[mid - 1] + v[mid]) / 2.0


def in_window(n: Note, day: date, days: int | None) -> bool:
    """30d / 90d: published from ``day - N`` to ``day - 1``, both included; 'all': every note."""
    return days is None or day - timedelta(days=days) <= n.published < day


def in_segment(n: Note, segment: str) -> bool:
    return segment == "all" or n.segment == segment


def expected_cell(
    notes: list[Note],
    day: date,
    window_days: int | None,
    segment: str,
    *,
    previous: date | None,
    previous_reads: dict[str, int] | None,
    total: int,
) -> dict[str, Any]:
    """One row of analytics.creator_engagement_metrics, computed in Python from docs/tables.md."""
    cell = [n for n in notes if in_window(n, day, window_days) and in_segment(n, segment)]
    reads = [n.reads for n in cell]
    likes = [n.likes for n in cell]
    collects = [n.collects for n in cell]
    like_m, collect_m = median(likes), median(collects)
    gain: int | None = None
    if previous is not None:
        prev = previous_reads or {}
        gain = sum(n.reads - prev[n.note_id] for n in cell if n.note_id in prev)
    return {
        "note_count": len(cell),
        "video_note_count": sum(n.is_video for n in cell),
        "read_median": median(reads),
        "read_mean": sum(reads) / len(reads) if reads else None,
        "interaction_median": None if like_m is None or collect_m is None else like_m + collect_m,
        "like_median": like_m,
        "collect_median": collect_m,
        "engagement_rate": (sum(likes) + sum(collects)) / sum(reads) if sum(reads) else None,
        "hundred_like_rate": sum(x >= 100 for x in likes) / len(likes) if likes else None,
        "thousand_like_rate": sum(x >= 1000 for x in likes) / len(likes) if likes else None,
        "notes_per_week": None if window_days is None else len(cell) / (window_days / 7.0),
        "days_since_last_note": (day - max(n.published for n in cell)).days if cell else None,
        "read_gain": gain,
        "previous_snapshot_date": previous,
        "notes_total_reported": total,
        "interaction_per_note_median": median([n.likes + n.collects for n in cell]),
        "brand_tagged_non_ad_count": sum(n.segment == "cooperation" and not n.is_ad for n in cell),
        "read_max": max(reads) if reads else None,
    }


def same_value(expected: Any, got: Any) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, float) or isinstance(got, float):
        return math.isclose(float(expected), float(got), rel_tol=1e-9, abs_tol=1e-9)
    return bool(expected == got)


def whole_list_columns() -> tuple[frozenset[str], str]:
    """The metric columns that need the creator's whole list (NULL in window 'all' on a window-scan day),
    and where that came from: a boolean flag on ``tables.Column`` if the declaration has one, else the
    SET list of the first UPDATE in ``sql/metrics_window_scans.sql``."""
    from pgy_pipeline.warehouse import tables

    flags = [
        f.name
        for f in dataclasses.fields(tables.Column)
        if f.name != "nullable" and str(f.type).replace("builtins.", "") in ("bool", "<class 'bool'>")
    ]
    preferred = [f for f in flags if re.search(r"whole|full|window|list|all", f)] or flags
    if preferred:
        flag = preferred[0]
        metrics = tables.relation("analytics.creator_engagement_metrics")
        return frozenset(c.name for c in metrics.columns if getattr(c, flag)), f"tables.Column.{flag}"
    sql = (
        resources.files("pgy_pipeline.warehouse").joinpath("sql/metrics_window_scans.sql").read_text("utf-8")
    )
    body = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    match = re.search(r"UPDATE\s+_metrics\s+AS\s+m\s+SET(.*?)\bFROM\b", body, re.S | re.I)
    assert match, "no UPDATE ... SET list in metrics_window_scans.sql"
    names = {part.split("=", 1)[0].strip().strip('"') for part in match.group(1).split(",") if "=" in part}
    return frozenset(names), "sql/metrics_window_scans.sql"


# -- what the pipeline stored -----------------------------------------------------------------------


@dataclass
class Warehouse:
    raw: dict[tuple[str, date], tuple[int, frozenset[str]]]  # pages, scan modes
    notes: dict[tuple[str, date], list[tuple[Any, ...]]]
    snapshots: dict[tuple[str, date], str]
    metrics: dict[tuple[str, date], dict[tuple[str, str], dict[str, Any]]]
    calls: Counter[tuple[Any, ...]]

    @classmethod
    def empty(cls) -> Warehouse:
        return cls({}, {}, {}, {}, Counter())


def read_warehouse(db_path: str) -> Warehouse:
    if not Path(db_path).exists():
        return Warehouse.empty()
    with duckdb.connect(db_path, read_only=True) as conn:
        have = {
            f"{s}.{n}"
            for s, n in conn.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        }
        if "raw.pages" not in have:  # raw.note_pages is a view of it
            return Warehouse.empty()
        raw = {
            (c, d): (int(n), frozenset(modes))
            for c, d, n, modes in conn.execute(
                "SELECT creator_id, snapshot_date, count(*), list(DISTINCT scan) FROM raw.note_pages GROUP BY 1, 2"
            ).fetchall()
        }
        notes: dict[tuple[str, date], list[tuple[Any, ...]]] = defaultdict(list)
        for row in conn.execute(
            "SELECT creator_id, snapshot_date, note_id, published_date, read_num, like_num, collect_num, "
            "is_video, is_advertise, brand_name FROM analytics.notes ORDER BY list_position"
        ).fetchall():
            notes[(row[0], row[1])].append(row[2:])
        snapshots = {
            (c, d): s
            for c, d, s in conn.execute(
                "SELECT creator_id, snapshot_date, scan_status FROM analytics.creator_snapshots"
            ).fetchall()
        }
        cursor = conn.execute("SELECT * FROM analytics.creator_engagement_metrics ORDER BY ALL")
        names = [d[0] for d in cursor.description]
        metrics: dict[tuple[str, date], dict[tuple[str, str], dict[str, Any]]] = defaultdict(dict)
        for row in cursor.fetchall():
            r = dict(zip(names, row, strict=True))
            metrics[(r["creator_id"], r["snapshot_date"])][(r["window"], r["segment"])] = r
        calls = Counter(
            conn.execute(
                "SELECT snapshot_date, creator_id, page_number, http_status, code, billed FROM meta.api_calls"
            ).fetchall()
        )
    return Warehouse(raw, dict(notes), snapshots, dict(metrics), calls)


def spooled(db_path: str, day: date) -> set[str]:
    """Creators whose pages wait in the spool for ``day`` (fetched, not yet written)."""
    folder = Path(db_path + ".spool") / day.isoformat()
    return {p.stem for p in folder.glob("*.json")} if folder.exists() else set()
