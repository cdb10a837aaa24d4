"""Generated creators and notes (pgy_pipeline.simulator.data), seen through the simulator."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from pgy_pipeline import clock
from pgy_pipeline.simulator import API_PATH, Simulator, make_note_items

from .support import CHINA, LIVE, NOTE_KEYS, NOW, TOKEN, UIDS, Clock, busy_creator, fetch_all, get, ids


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
        if n["isAdvertise"] or n["brandName"] is not None:  # organic notes may carry a brand too
            assert isinstance(n["brandName"], str) and re.search(r"[\u4e00-\u9fff]", n["brandName"])
    share = lambda pred: sum(1 for n in notes if pred(n)) / len(notes)  # noqa: E731
    assert 0.12 <= share(lambda n: n["isAdvertise"]) <= 0.28
    assert 0.01 <= share(lambda n: not n["isAdvertise"] and n["brandName"] is not None) <= 0.06
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
    today = clock.now().astimezone(CHINA).date().isoformat()
    notes = [n for u in UIDS[:10] for n in sim.notes_for(u)]
    assert notes and all(n["date"] <= today for n in notes)


def test_notes_for_returns_fresh_copies() -> None:
    sim = Simulator(now=lambda: NOW)
    u = busy_creator(sim, 1)
    first = sim.notes_for(u)
    first[0]["readNum"] = -1
    first.clear()
    assert sim.notes_for(u)[0]["readNum"] >= 0


# ---------------------------------------------------------------------------------------------------
# Brand-tagged organic notes, notes published today, raw items at chosen ages
# ---------------------------------------------------------------------------------------------------


def test_some_generated_organic_notes_carry_a_brand_and_filters_treat_them_as_organic(
    sim: Simulator, client: httpx.Client
) -> None:
    sim.page_size = 1000
    tagged: list[tuple[str, dict[str, Any]]] = [
        (u, n) for u in UIDS for n in sim.notes_for(u) if not n["isAdvertise"] and n["brandName"] is not None
    ]
    assert tagged
    u, note = tagged[0]
    organic = get(client, u, advertiseSwitch="ORGANIC_ONLY").json()["data"]["list"]
    cooperation = get(client, u, noteType="COOPERATION").json()["data"]["list"]
    assert note in organic and note not in cooperation


def test_brand_tagged_share_can_be_forced_for_one_creator(sim: Simulator, client: httpx.Client) -> None:
    u, other = busy_creator(sim, 30), UIDS[-1]
    before = sim.notes_for(u)
    other_before = sim.notes_for(other)
    sim.set_brand_tagged_share(u, 1.0)
    sim.page_size = 1000
    served = get(client, u).json()["data"]["list"]
    assert [n["isAdvertise"] for n in served] == [n["isAdvertise"] for n in before]
    assert all(isinstance(n["brandName"], str) and n["brandName"] for n in served)
    strip = lambda items: [{k: v for k, v in n.items() if k != "brandName"} for n in items]  # noqa: E731
    assert strip(served) == strip(before)  # only the brand changes
    assert sim.notes_for(other) == other_before
    assert client.post("/__sim/brand_share", json={"user_id": u, "share": 0}).json() == {"ok": True}
    served = get(client, u).json()["data"]["list"]
    assert all(n["brandName"] is None for n in served if not n["isAdvertise"])
    assert client.post("/__sim/brand_share", json={"user_id": u, "share": 2}).status_code == 400
    sim.clear_overrides(u)
    assert sim.notes_for(u) == before


def test_the_live_timeline_shows_notes_published_today(sim: Simulator, clock: Clock) -> None:
    for days in (0, 3, 10):
        clock.now = NOW + timedelta(days=days)
        today = clock.now.astimezone(CHINA).date().isoformat()
        posted_today = [u for u in UIDS if any(n["date"] == today for n in sim.notes_for(u))]
        assert 3 <= len(posted_today) < len(UIDS) // 2, (days, len(posted_today))


def test_add_note_today_publishes_a_note_on_the_current_china_day(
    sim: Simulator, client: httpx.Client, clock: Clock
) -> None:
    # 16:30 UTC is 00:30 the next day in China: "today" is the China day, not the UTC one.
    clock.now = datetime(2026, 11, 26, 16, 30, tzinfo=UTC)
    u = busy_creator(sim, 10)
    before = sim.notes_for(u)
    note = sim.add_note_today(u)
    assert note["date"] == "2026-11-27"
    published = int(note["noteId"][:8], 16)
    assert datetime(2026, 11, 27, tzinfo=CHINA).timestamp() <= published <= clock.now.timestamp()
    body = get(client, u).json()["data"]
    assert body["total"] == len(before) + 1 and body["list"][0] == note
    assert set(note) == NOTE_KEYS

    raw_user = "raw-today"
    sim.set_notes(raw_user, [{"noteId": "old", "date": "2026-01-01"}])
    r = client.post("/__sim/note_today", json={"user_id": raw_user})
    assert r.status_code == 200 and r.json()["note"]["date"] == "2026-11-27"
    assert [n["noteId"] for n in get(client, raw_user).json()["data"]["list"]][1:] == ["old"]

    sim.set_brand_tagged_share(u, 1.0)  # the note is returned as served, brand included
    note = sim.add_note_today(u)
    assert get(client, u).json()["data"]["list"][0] == note and note["brandName"]

    sim.set_unknown("gone")
    with pytest.raises(ValueError):
        sim.add_note_today("gone")


def test_make_note_items_places_notes_on_exact_china_days() -> None:
    ages = [0, 1, 29, 30, 31, 89, 90, 91]
    items = make_note_items(UIDS[0], ages, snapshot_date="2026-11-26")
    assert [it["date"] for it in items] == [
        (date(2026, 11, 26) - timedelta(days=a)).isoformat() for a in ages
    ]  # newest first
    generated = Simulator(now=lambda: NOW).notes_for(busy_creator(Simulator(now=lambda: NOW), 1))[0]
    for it in items:
        assert list(it) == list(generated)  # same keys in the same order as generated notes
        for key, value in it.items():
            assert type(value) is type(generated[key]) or value is None, key
        published = datetime.fromtimestamp(int(it["noteId"][:8], 16), CHINA)
        assert published.date().isoformat() == it["date"] and published.hour == 0
        assert it["isAdvertise"] is False and it["brandName"] is None
    assert len({it["noteId"] for it in items}) == len(items)
    assert make_note_items(UIDS[0], ages, snapshot_date=date(2026, 11, 26)) == items  # deterministic
    assert make_note_items(UIDS[1], ages, snapshot_date="2026-11-26") != items


def test_make_note_items_takes_attributes_per_note_or_for_all() -> None:
    items = make_note_items(
        "u",
        [5, 0, 2],
        snapshot_date="2026-11-26",
        is_advertise=[True, False, False],
        brand_name=[None, "花西子", None],
        reads=[100, 200, 300],
        likes=7,
        collects=[1, 2, 3],
        third_reads=0,
        is_video=True,
    )
    by_date = {it["date"]: it for it in items}
    assert list(by_date) == ["2026-11-26", "2026-11-24", "2026-11-21"]
    oldest, today, two_days = by_date["2026-11-21"], by_date["2026-11-26"], by_date["2026-11-24"]
    assert (oldest["isAdvertise"], oldest["brandName"], oldest["readNum"]) == (True, None, 100)
    assert (today["isAdvertise"], today["brandName"], today["readNum"]) == (False, "花西子", 200)
    assert (two_days["brandName"], two_days["readNum"], two_days["collectNum"]) == (None, 300, 3)
    assert all(it["likeNum"] == 7 and it["thirdReadUserNum"] == 0 and it["isVideo"] is True for it in items)
    ad = make_note_items("u", [3], snapshot_date="2026-11-26", is_advertise=True)[0]
    assert isinstance(ad["brandName"], str) and ad["brandName"]  # an ad gets a brand unless told
    with pytest.raises(ValueError):
        make_note_items("u", [1, 2], reads=[1])
    with pytest.raises(ValueError):
        make_note_items("u", [-1])


def test_set_notes_at_ages_serves_window_edges_over_http(
    sim: Simulator, client: httpx.Client, clock: Clock
) -> None:
    clock.now = datetime(2026, 11, 26, 17, 0, tzinfo=UTC)  # already 2026-11-27 in China
    items = sim.set_notes_at_ages("edge", [0, 30, 90], is_advertise=False, brand_name="花西子")
    fetched, total = fetch_all(client, "edge")
    assert total == 3 and fetched == items
    assert [it["date"] for it in fetched] == ["2026-11-27", "2026-10-28", "2026-08-29"]
    assert all(it["brandName"] == "花西子" and it["isAdvertise"] is False for it in fetched)
    r = client.post(
        "/__sim/notes_at_ages",
        json={"user_id": "edge2", "ages_days": [1, 2], "snapshot_date": "2026-01-10", "reads": 5},
    )
    assert r.status_code == 200
    served = get(client, "edge2").json()["data"]["list"]
    assert served == r.json()["notes"] and [n["date"] for n in served] == ["2026-01-09", "2026-01-08"]
    assert {n["readNum"] for n in served} == {5}
    bad = client.post("/__sim/notes_at_ages", json={"user_id": "edge3", "ages_days": [1], "colour": "red"})
    assert bad.status_code == 400
