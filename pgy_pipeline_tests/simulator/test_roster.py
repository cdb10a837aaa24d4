"""Benchmark rosters (pgy_pipeline.simulator.roster) and their cadence timelines, over real loopback HTTP."""

from __future__ import annotations

import re
import statistics
from datetime import date, datetime, timedelta

import httpx
import pytest

from pgy_pipeline.simulator import RosterCreator, Simulator, roster

from .support import CHINA, NOTE_KEYS, NOW, Clock, fetch_all


def _in_last_days(items: list[dict[str, object]], days: int, today: date) -> int:
    first = (today - timedelta(days=days - 1)).isoformat()
    return sum(1 for it in items if str(it["date"]) >= first)


def test_roster_is_long_tailed_and_deterministic() -> None:
    creators = roster(200, seed=7)
    assert creators == roster(200, seed=7) and creators != roster(200, seed=8)
    assert len({c.user_id for c in creators}) == 200
    assert all(
        re.fullmatch(r"[0-9a-f]{24}", c.user_id) and not c.user_id.startswith("000000") for c in creators
    )
    counts = [c.note_count for c in creators]
    rates = [c.posts_per_day for c in creators]
    assert min(counts) == 5 and max(counts) == 600
    assert statistics.mean(counts) > 1.5 * statistics.median(counts)  # a long tail of prolific creators
    assert 20 <= statistics.median(counts) <= 150
    assert 1 / 30 <= min(rates) < 1 / 20 and 0.8 < max(rates) <= 1.0
    daily = [c.note_count for c in creators if c.posts_per_day > 0.5]
    monthly = [c.note_count for c in creators if c.posts_per_day < 1 / 15]
    assert statistics.median(daily) > 5 * statistics.median(monthly)
    assert roster(0) == [] and len(roster(3, min_notes=10, max_notes=10)) == 3
    assert {c.note_count for c in roster(20, min_notes=10, max_notes=10)} == {10}
    with pytest.raises(ValueError):
        roster(5, min_posts_per_day=0)


def test_loaded_roster_has_its_note_counts_and_cadence_at_the_clock(clock: Clock) -> None:
    creators = roster(40, seed=1) + [
        RosterCreator("a" * 24, 300, 1.0),  # daily
        RosterCreator("b" * 24, 40, 1 / 30),  # monthly
        RosterCreator("c" * 24, 120, 1 / 7),  # weekly
    ]
    with Simulator(now=clock) as sim, httpx.Client(base_url=sim.base_url) as client:
        sim.load_roster(creators)
        today = NOW.astimezone(CHINA).date()
        for c in creators:
            items, total = fetch_all(client, c.user_id)
            assert total == len(items) == c.note_count, c
            assert items == sorted(items, key=lambda n: (n["date"], n["noteId"]), reverse=True)
            assert all(set(n) == NOTE_KEYS for n in items)
            assert all(datetime.fromtimestamp(int(n["noteId"][:8], 16), CHINA) <= NOW for n in items)
        daily, monthly, weekly = (sim.notes_for(c.user_id) for c in creators[-3:])
        assert 80 <= _in_last_days(daily, 90, today) <= 100
        assert 2 <= _in_last_days(monthly, 90, today) <= 4
        assert 11 <= _in_last_days(weekly, 90, today) <= 15
        span = (date.fromisoformat(monthly[0]["date"]) - date.fromisoformat(monthly[-1]["date"])).days
        assert 39 * 30 * 0.85 <= span <= 39 * 30 * 1.15

        clock.now = NOW + timedelta(days=30)  # the cadence goes on: about 30 more for the daily one
        later = sim.notes_for(creators[-3].user_id)
        assert 25 <= len(later) - 300 <= 35
        assert [n["noteId"] for n in later[-300:]] == [n["noteId"] for n in daily]  # old notes stay


def test_roster_over_http_at_a_given_clock(sim: Simulator, client: httpx.Client) -> None:
    creators = roster(5, seed=3)
    at = NOW - timedelta(days=10)
    r = client.post("/__sim/roster", json={"creators": [c.to_json() for c in creators], "at": at.isoformat()})
    assert r.json() == {"ok": True, "creators": 5}
    for c in creators:
        assert len(sim.notes_for(c.user_id, at)) == c.note_count
        assert len(sim.notes_for(c.user_id)) >= c.note_count  # ten days later, maybe more
    assert RosterCreator.from_json(creators[0].to_json()) == creators[0]
    assert client.post("/__sim/roster", json={"creators": [{"user_id": "x"}]}).status_code == 400
    bad = {"creators": [{"user_id": "x", "note_count": 3, "posts_per_day": 0}]}
    assert client.post("/__sim/roster", json=bad).status_code == 400
