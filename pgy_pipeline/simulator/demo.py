"""The demo's roster: the creators ``creators.yaml`` ships with, as the built-in simulator serves them.

With no ``JUSTONEAPI_TOKEN`` the pipeline reads a simulator configured from :data:`DEMO_CREATORS`:
each creator posts at its own pace, and its cooperation notes name brands of its own pool, so the
README's analyst examples (tag 美妆, brand 花西子) answer on the demo. Any other id answers as the real
service does for an id it has no data for: code 0, an empty list, total 0 (``roster_only``), so a
mistyped id does not look valid. ``creators.yaml`` lists the same ids with names and tags (a test
keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from pgy_pipeline import clock

from .server import Simulator

# Every process serves the same notes: each creator's cadence is anchored at this fixed instant (its
# note_count listed then, new notes at its pace since), so the UI's process, a run's process and the
# demo history's all agree on every note's id, date and counts.
DEMO_ANCHOR = datetime(2026, 9, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DemoCreator:
    user_id: str
    note_count: int  # notes listed at DEMO_ANCHOR
    posts_per_day: float
    brands: tuple[str, ...]  # the brands its cooperation notes name


# Four beauty creators (a peer group needs three), two fashion, two food, one parenting, one travel:
# roughly the mix of a beauty campaign's shortlist.
DEMO_CREATORS: tuple[DemoCreator, ...] = (
    DemoCreator("61a7b3c2000000001f03e9f0", 140, 0.6, ("花西子", "珀莱雅", "薇诺娜")),
    DemoCreator("62b8c4d3000000000e02a1b4", 95, 0.45, ("花西子", "完美日记")),
    DemoCreator("63c9d5e4000000001a04b2c5", 210, 0.8, ("珀莱雅", "花西子", "自然堂")),
    DemoCreator("64dae6f5000000000c05c3d6", 60, 0.3, ("完美日记", "花西子")),
    DemoCreator("5c1a2b3c000000000700f1a2", 120, 0.5, ("太平鸟", "江南布衣")),
    DemoCreator("65ebf706000000001b06d4e7", 75, 0.35, ("太平鸟", "UR")),
    DemoCreator("60d4c2e1000000000101b7c3", 88, 0.4, ("元气森林", "三只松鼠")),
    DemoCreator("66fc0817000000000d07e5f8", 40, 0.2, ("喜茶", "元气森林")),
    DemoCreator("5ff0e6410000000001008400", 150, 0.5, ("飞鹤", "贝亲")),
    DemoCreator("5e8f9a0b0000000001004d5e", 35, 0.1, ("携程", "亚朵")),
)


def demo_simulator(token: str) -> Simulator:
    """A simulator serving the demo's creators, and nobody else (not started)."""
    sim = Simulator(token=token, roster_only=True)
    for creator in DEMO_CREATORS:
        sim.set_brand_pool(creator.user_id, creator.brands)
        sim.set_cadence(creator.user_id, creator.note_count, creator.posts_per_day, at=DEMO_ANCHOR)
    _plant_events(sim)
    return sim


def _plant_events(sim: Simulator) -> None:
    """What the analysts' "what changed" examples look for, on the last days before today (by the wall
    clock, so every process agrees whatever clock a run sets): a note that takes off, and a note
    deleted, each found by the anomalies once two snapshots straddle it."""
    today = clock.today_shanghai(clock.wall_now())
    for days_ago, user_id, kind in (
        (1, DEMO_CREATORS[0].user_id, "viral"),
        (0, DEMO_CREATORS[4].user_id, "deleted"),
    ):
        at = datetime.combine(today - timedelta(days=days_ago), time(0, 30), tzinfo=clock.SHANGHAI)
        sim.plant(user_id, kind, at, rank=2)
