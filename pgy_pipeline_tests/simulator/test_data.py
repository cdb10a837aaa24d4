"""Generated creators and notes (pgy_pipeline.simulator.data), seen through the simulator."""

from __future__ import annotations

import re
import statistics
from datetime import datetime, timedelta

import httpx

from pgy_pipeline.simulator import API_PATH, Simulator

from .support import CHINA, LIVE, NOTE_KEYS, NOW, TOKEN, UIDS, Clock, busy_creator, get, ids


def test_same_seed_same_data_different_seed_different_data() -> None:
    a, b, c = (Simulator(now=lambda: NOW), Simulator(now=lambda: NOW), Simulator(seed=1, now=lambda: NOW))
    for u in UIDS[:20]:
        assert a.notes_for(u) == b.notes_for(u)
    assert [a.notes_for(u) for u in UIDS[:20]] != [c.notes_for(u) for u in UIDS[:20]]
    with a, b, httpx.Client() as http:
        url = API_PATH + f"?token={TOKEN}&userId={UIDS[0]}"
        assert http.get(a.base_url + url).content == http.get(b.base_url + url).content


def test_note_shapes_and_distributions() -> None:
    sim = Simulator(now=lambda: NOW)
    per_creator = {u: sim.notes_for(u) for u in UIDS}
    counts = [len(v) for v in per_creator.values()]
    assert min(counts) == 0 and max(counts) <= 300
    assert 20 <= statistics.median(counts) <= 200
    notes = [n for v in per_creator.values() for n in v]
    for items in per_creator.values():
        assert len(set(ids(items))) == len(items)
        assert items == sorted(items, key=lambda n: (n["date"], n["noteId"]), reverse=True)
    for n in notes:
        assert set(n) == NOTE_KEYS
        assert re.fullmatch(r"[0-9a-f]{24}", n["noteId"])
        published = datetime.fromtimestamp(int(n["noteId"][:8], 16), CHINA)
        assert published.date().isoformat() == n["date"]
        assert published <= NOW
        for key in ("readNum", "likeNum", "collectNum", "thirdReadUserNum"):
            assert type(n[key]) is int and n[key] >= 0
        assert n["likeNum"] <= n["readNum"] and n["collectNum"] <= n["readNum"]
        assert type(n["isAdvertise"]) is bool and type(n["isVideo"]) is bool
        assert n["imgUrl"].startswith("http://ci.xiaohongshu.com/1040g")
        assert n["imgUrl"].endswith("?imageView2/2/w/540/format/jpg/q/75")
        assert re.search(r"[\u4e00-\u9fff]", n["title"])
        if n["isAdvertise"]:
            assert isinstance(n["brandName"], str) and re.search(r"[\u4e00-\u9fff]", n["brandName"])
        else:
            assert n["brandName"] is None
    share = lambda pred: sum(1 for n in notes if pred(n)) / len(notes)  # noqa: E731
    assert 0.12 <= share(lambda n: n["isAdvertise"]) <= 0.28
    assert 0.2 <= share(lambda n: n["isVideo"]) <= 0.8
    assert 0.03 <= share(lambda n: n["thirdReadUserNum"] > 0) <= 0.18
    assert any(n["title"][-1] in "😭😂✨🔥💯🥹👍🌟😍🙌🤣" for n in notes)
    settled = [n["readNum"] for n in notes if n["date"] < "2026-11-01"]
    assert 1000 <= statistics.median(settled) <= 10000
    assert max(settled) > 100_000


def test_reads_grow_and_old_notes_stay_as_the_clock_advances() -> None:
    sim = Simulator(now=lambda: NOW)
    u = busy_creator(sim, 30, growing=True)
    yesterday = {n["noteId"]: n for n in sim.notes_for(u, NOW - timedelta(days=1))}
    today = {n["noteId"]: n for n in sim.notes_for(u, NOW)}
    assert set(yesterday) <= set(today)
    for note_id, old in yesterday.items():
        new = today[note_id]
        assert {k: v for k, v in old.items() if k not in LIVE} == {
            k: v for k, v in new.items() if k not in LIVE
        }
        for key in LIVE:
            assert new[key] >= old[key]
    assert sum(n["readNum"] for n in today.values()) > sum(n["readNum"] for n in yesterday.values())
    newest_common = next(i for i in today if i in yesterday)
    assert today[newest_common]["readNum"] > yesterday[newest_common]["readNum"]


def test_new_notes_appear_over_time(sim: Simulator, client: httpx.Client, clock: Clock) -> None:
    u = busy_creator(sim, 10, growing=True)
    before = get(client, u).json()["data"]
    clock.now = NOW + timedelta(days=30)
    after = get(client, u).json()["data"]
    assert after["total"] > before["total"]
    old_ids = set(ids(sim.notes_for(u, NOW)))
    new_list = sim.notes_for(u)
    assert old_ids <= set(ids(new_list))
    fresh = [n for n in new_list if n["noteId"] not in old_ids]
    assert fresh and all(n["date"] >= "2026-11-26" for n in fresh)
    assert ids(new_list[: len(fresh)]) == ids(fresh)  # new notes are the newest


def test_real_time_clock_by_default() -> None:
    sim = Simulator()
    today = datetime.now(CHINA).date().isoformat()
    notes = [n for u in UIDS[:10] for n in sim.notes_for(u)]
    assert notes and all(n["date"] <= today for n in notes)


def test_notes_for_returns_fresh_copies() -> None:
    sim = Simulator(now=lambda: NOW)
    u = busy_creator(sim, 1)
    first = sim.notes_for(u)
    first[0]["readNum"] = -1
    first.clear()
    assert sim.notes_for(u)[0]["readNum"] >= 0
