"""Hand-built snapshots for the analyst's desk, written through the pipeline's own write functions.

Each snapshot is a list of note items in the endpoint's layout, paged as the API would serve them
(``replace_raw_pages``), then normalized (``rebuild_notes``) and measured (``rebuild_metrics``), so the
views and tables under test read exactly what a real run would have stored.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from pgy_pipeline.api.client import Page
from pgy_pipeline.warehouse.storage import (
    ensure_schema,
    rebuild_metrics,
    rebuild_notes,
    replace_creators,
    replace_raw_pages,
)

PAGE_SIZE = 20


def hex_id(*parts: object, n: int = 24) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:n]


@dataclass
class Note:
    """One note as served at one snapshot."""

    note_id: str
    title: str
    published: date
    reads: int
    likes: int = 0
    collects: int = 0
    is_ad: bool = False
    brand: str | None = None
    is_video: bool = False

    def item(self) -> dict[str, Any]:
        return {
            "readNum": self.reads,
            "likeNum": self.likes,
            "collectNum": self.collects,
            "isAdvertise": self.is_ad,
            "isVideo": self.is_video,
            "noteId": self.note_id,
            "imgUrl": f"http://ci.xiaohongshu.com/{self.note_id}",
            "title": self.title,
            "brandName": self.brand,
            "date": self.published.isoformat(),
            "thirdReadUserNum": 0,
        }


@dataclass
class Creator:
    creator_id: str
    display_name: str
    tags: list[str] = field(default_factory=list)


def pages_for(creator_id: str, day: date, notes: list[Note], total: int | None = None) -> list[Page]:
    """The pages the API would serve for ``notes`` (newest first), ``total`` defaulting to their count."""
    ordered = sorted(notes, key=lambda n: (n.published, n.note_id), reverse=True)
    total = len(ordered) if total is None else total
    chunks = [ordered[i : i + PAGE_SIZE] for i in range(0, len(ordered), PAGE_SIZE)] or [[]]
    fetched = datetime(day.year, day.month, day.day, 2, 0, tzinfo=UTC)
    pages = []
    for i, chunk in enumerate(chunks, start=1):
        body = {"code": 0, "message": "success", "data": {"total": total, "list": [n.item() for n in chunk]}}
        pages.append(
            Page(
                creator_id=creator_id,
                page_number=i,
                params={"userId": creator_id, "pageNumber": str(i)},
                fetched_at=fetched,
                attempts=1,
                code=0,
                total=total,
                items=body["data"]["list"],
                body_text=json.dumps(body, ensure_ascii=False),
            )
        )
    return pages


def write_snapshots(
    conn: duckdb.DuckDBPyConnection,
    snapshots: dict[tuple[str, date], list[Note]],
    totals: dict[tuple[str, date], int] | None = None,
) -> None:
    """Store every snapshot's raw pages, then rebuild notes and metrics day by day (oldest first)."""
    ensure_schema(conn)
    totals = totals or {}
    pages = {key: pages_for(key[0], key[1], notes, totals.get(key)) for key, notes in snapshots.items()}
    replace_raw_pages(conn, pages)
    for day in sorted({d for _, d in snapshots}):
        keys = [k for k in snapshots if k[1] == day]
        assert not rebuild_notes(conn, keys)
        assert not rebuild_metrics(conn, keys)


def write_creators(conn: duckdb.DuckDBPyConnection, creators: list[Creator]) -> None:
    ensure_schema(conn)
    table = pa.table(
        {
            "creator_id": [c.creator_id for c in creators],
            "display_name": [c.display_name for c in creators],
            "tags": [c.tags for c in creators],
            "active": [True] * len(creators),
        },
        schema=pa.schema(
            [
                ("creator_id", pa.string()),
                ("display_name", pa.string()),
                ("tags", pa.list_(pa.string())),
                ("active", pa.bool_()),
            ]
        ),
    )
    replace_creators(conn, table)


SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["小美", "阿花", "甜甜", "晓雪", "一一", "安琪", "子涵", "欣怡", "佳佳", "梦瑶"]
TAGS = ["美妆", "美食", "旅行", "母婴"]
BRANDS = ["花西子", "完美日记", "元气森林", "喜茶"]
TOPICS = ["秋冬护肤", "上海探店", "周末露营", "宝宝辅食", "平价好物", "通勤穿搭", "咖啡测评", "减脂餐"]


@dataclass
class Roster:
    """A fixture roster: creators, their snapshots, and the last snapshot date."""

    creators: list[Creator]
    snapshots: dict[tuple[str, date], list[Note]]
    last_day: date
    days: list[date]


def fixture_roster(n_creators: int = 20, n_snapshots: int = 10, last_day: date = date(2026, 3, 10)) -> Roster:
    """About 20 creators with Chinese names and tags, ``n_snapshots`` daily snapshots (one gap).

    Each creator posts every 2-6 days; reads saturate with age as real notes do; every third note is
    a brand cooperation; one note vanishes on the last day and another spikes, so the report has
    anomalies to show.
    """
    days = [last_day - timedelta(days=i) for i in range(n_snapshots)][::-1]
    days = [d for d in days if d != days[len(days) // 2]]  # one missing day: a two-day gap
    creators: list[Creator] = []
    snapshots: dict[tuple[str, date], list[Note]] = {}
    for i in range(n_creators):
        rng = random.Random(f"roster:{i}")
        cid = hex_id("roster", i)
        tags = [TAGS[i % len(TAGS)]] + ([TAGS[(i + 1) % len(TAGS)]] if i % 5 == 0 else [])
        creators.append(Creator(cid, SURNAMES[i % len(SURNAMES)] + GIVEN[i % len(GIVEN)], tags))
        scale = math.exp(rng.uniform(math.log(800), math.log(60000)))
        gap = rng.randint(2, 6)
        published = [last_day - timedelta(days=k * gap + rng.randint(0, 1)) for k in range(24)]
        base = []
        for k, pub in enumerate(published):
            final = int(scale * rng.lognormvariate(0, 0.6))
            coop = k % 3 == 0
            base.append(
                (
                    hex_id("note", i, k),
                    f"{TOPICS[(i + k) % len(TOPICS)]}｜第{k + 1}篇",
                    pub,
                    final,
                    coop,
                    BRANDS[(i + k) % len(BRANDS)] if coop else None,
                    rng.uniform(1.5, 5.0),
                    rng.uniform(0.02, 0.07),
                )
            )
        for day in days:
            notes = []
            for note_id, title, pub, final, coop, brand, tau, like_frac in base:
                if pub > day:
                    continue
                if i == 0 and note_id == base[3][0] and day == last_day:
                    continue  # vanishes on the last day
                age = (day - pub).days + 1
                reads = int(final * (1 - math.exp(-age / tau)))
                if i == 1 and note_id == base[8][0] and day == last_day:
                    reads += 400_000  # an old note suddenly read again
                notes.append(
                    Note(
                        note_id,
                        title,
                        pub,
                        reads,
                        likes=int(reads * like_frac),
                        collects=int(reads * like_frac / 3),
                        is_ad=coop,
                        brand=brand,
                        is_video=int(note_id[:2], 16) % 2 == 0,
                    )
                )
            snapshots[(cid, day)] = notes
    return Roster(creators, snapshots, last_day, days)
