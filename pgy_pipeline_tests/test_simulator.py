"""Tests of the simulator of the Just One API Pugongying notes endpoint, over real loopback HTTP."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from pgy_pipeline.simulator import API_PATH, MESSAGES, CallRecord, Simulator

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TOKEN = "sim-token"
# fmt: off
NOTE_KEYS = {
    "readNum", "likeNum", "collectNum", "isAdvertise", "isVideo", "noteId", "imgUrl", "title", "brandName",
    "date", "thirdReadUserNum",
}
# fmt: on
LIVE = ("readNum", "likeNum", "collectNum", "thirdReadUserNum")
CHINA = timezone(timedelta(hours=8))


def uid(i: int) -> str:
    return hashlib.sha256(f"creator-{i}".encode()).hexdigest()[:24]


UIDS = [uid(i) for i in range(120)]


class Clock:
    """A settable clock for the simulator."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sim(clock: Clock) -> Iterator[Simulator]:
    with Simulator(now=clock) as s:
        yield s


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=5.0) as c:
        yield c


def get(client: httpx.Client, user_id: str | None, **params: Any) -> httpx.Response:
    query: dict[str, Any] = {"token": TOKEN}
    if user_id is not None:
        query["userId"] = user_id
    query.update(params)
    return client.get(API_PATH, params=query)


def fetch_all(client: httpx.Client, user_id: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        body = get(client, user_id, pageNumber=page, **params).json()
        assert body["code"] == 0, body
        if not body["data"]["list"]:
            return items, body["data"]["total"]
        items.extend(body["data"]["list"])
        page += 1


def busy_creator(sim: Simulator, minimum: int, *, growing: bool = False) -> str:
    """A generated creator with at least ``minimum`` notes (and posting after NOW if ``growing``)."""
    later = NOW + timedelta(days=30)
    for u in UIDS:
        n = len(sim.notes_for(u, NOW))
        if n >= minimum and (not growing or len(sim.notes_for(u, later)) > n):
            return u
    raise AssertionError("no suitable creator")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [it["noteId"] for it in items]


# ---------------------------------------------------------------------------------------------------
# Generated data
# ---------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------
# Request handling
# ---------------------------------------------------------------------------------------------------


def test_success_envelope_and_defaults(sim: Simulator, client: httpx.Client) -> None:
    u = busy_creator(sim, 20)
    r = get(client, u)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["code"] == 0 and body["message"] == "success"
    assert body["data"]["total"] == len(sim.notes_for(u))
    assert body["data"]["list"] == sim.notes_for(u)[:8]
    explicit = get(
        client,
        u,
        advertiseSwitch="ALL",
        orderType="LATEST",
        noteType="ALL",
        isThirdPlatform="NO",
        pageNumber=1,
    ).json()
    assert explicit == body


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"advertiseSwitch": "ORGANIC_ONLY"}, lambda n: not n["isAdvertise"]),
        ({"noteType": "COOPERATION"}, lambda n: n["isAdvertise"]),
        ({"noteType": "PHOTO_TEXT"}, lambda n: not n["isVideo"]),
        ({"noteType": "VIDEO"}, lambda n: n["isVideo"]),
        ({"isThirdPlatform": "YES"}, lambda n: n["thirdReadUserNum"] > 0),
        ({"isThirdPlatform": "NO"}, lambda n: True),
        (
            {"advertiseSwitch": "ORGANIC_ONLY", "noteType": "VIDEO"},
            lambda n: not n["isAdvertise"] and n["isVideo"],
        ),
    ],
)
def test_filters(sim: Simulator, client: httpx.Client, params: dict[str, str], keep: Any) -> None:
    sim.page_size = 1000
    seen_nonempty = False
    for u in UIDS[:12]:
        expected = [n for n in sim.notes_for(u) if keep(n)]
        body = get(client, u, **params).json()
        assert body["data"]["list"] == expected
        assert body["data"]["total"] == len(expected)
        seen_nonempty = seen_nonempty or bool(expected)
    assert seen_nonempty


@pytest.mark.parametrize(
    ("order", "key"),
    [
        ("LATEST", lambda n: (n["date"], n["noteId"])),
        ("MOST_READ", lambda n: (n["readNum"], n["noteId"])),
        ("MOST_INTERACT", lambda n: (n["likeNum"] + n["collectNum"], n["noteId"])),
    ],
)
def test_sort_orders(sim: Simulator, client: httpx.Client, order: str, key: Any) -> None:
    u = busy_creator(sim, 40)
    expected = sorted(sim.notes_for(u), key=key, reverse=True)
    items, total = fetch_all(client, u, orderType=order)
    assert items == expected and total == len(expected)
    organic = sorted((n for n in sim.notes_for(u) if not n["isAdvertise"]), key=key, reverse=True)
    assert fetch_all(client, u, orderType=order, advertiseSwitch="ORGANIC_ONLY")[0] == organic


def test_pagination(sim: Simulator, client: httpx.Client, clock: Clock) -> None:
    u = UIDS[0]
    sim.set_note_count(u, 9)
    p1, p2, p3 = (get(client, u, pageNumber=p).json()["data"] for p in (1, 2, 3))
    assert (len(p1["list"]), len(p2["list"]), p3["list"]) == (8, 1, [])
    assert p1["total"] == p2["total"] == p3["total"] == 9
    assert p1["list"] + p2["list"] == sim.notes_for(u)
    assert get(client, u, pageNumber=10**6).json()["data"] == {"list": [], "total": 9}

    for n in (0, 1, 8, 72, 300):
        sim.set_note_count(u, n)
        items, total = fetch_all(client, u)
        assert total == n and len(items) == n and items == sim.notes_for(u)
    assert get(client, u, pageNumber=9).json()["data"]["list"] == sim.notes_for(u)[64:72]

    sim.set_note_count(u, 72)
    clock.now = NOW + timedelta(days=20)  # pinned creators keep exactly n notes, newest ones
    assert len(sim.notes_for(u)) == 72
    assert sim.notes_for(u)[0]["date"] > sim.notes_for(u, NOW)[0]["date"]

    sim.page_size = 5
    items, total = fetch_all(client, u)
    assert total == 72 and len(items) == 72
    assert len(get(client, u, pageNumber=15).json()["data"]["list"]) == 2


@pytest.mark.parametrize("token", [None, "", "wrong"])
def test_token_is_checked(sim: Simulator, client: httpx.Client, token: str | None) -> None:
    params = {"userId": UIDS[0]} | ({} if token is None else {"token": token})
    body = client.get(API_PATH, params=params).json()
    assert body == {"code": 100, "message": "Invalid or Inactive Token", "data": None}
    assert sim.calls[-1].token_ok is False and sim.calls[-1].outcome == 100


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"userId": ""},
        {"userId": "   "},
        {"orderType": "BOGUS"},
        {"orderType": "latest"},
        {"advertiseSwitch": "NONE"},
        {"noteType": "IMAGE"},
        {"isThirdPlatform": "MAYBE"},
        {"pageNumber": "0"},
        {"pageNumber": "-1"},
        {"pageNumber": "abc"},
        {"pageNumber": "1.5"},
    ],
)
def test_bad_parameters_answer_400(sim: Simulator, client: httpx.Client, params: dict[str, str]) -> None:
    query = {"token": TOKEN, "userId": UIDS[0]} | params
    if params == {}:
        del query["userId"]
    r = client.get(API_PATH, params=query)
    assert r.status_code == 200
    body = r.json()
    assert body["code"] == 400 and body["message"].startswith("Invalid Parameters") and body["data"] is None
    assert sim.calls[-1].outcome == 400


def test_any_user_id_is_served(client: httpx.Client) -> None:
    body = get(client, "not-a-hex-id").json()
    assert body["code"] == 0 and isinstance(body["data"]["total"], int)


def test_other_paths_are_404(client: httpx.Client) -> None:
    assert client.get("/").status_code == 404
    assert client.get(API_PATH + "/x", params={"token": TOKEN}).status_code == 404
    assert client.get("/api/xiaohongshu-pgy/api/solar/kol/dataV2/notesDetail/v2").status_code == 404


def test_raw_notes_are_served_verbatim(sim: Simulator, client: httpx.Client) -> None:
    raw: list[Any] = [
        {"noteId": None, "readNum": "12", "extra": {"a": [1, 2]}},
        {"title": "缺字段"},
        {"readNum": -5, "likeNum": 1.5, "isAdvertise": "false", "date": "2026/11/01", "noteId": "x"},
    ] + [{"noteId": f"{i:024x}", "readNum": i} for i in range(10)]
    sim.set_notes("raw-user", raw)
    raw[0]["noteId"] = "mutated after the call"
    items, total = fetch_all(client, "raw-user", orderType="MOST_READ", noteType="VIDEO")
    assert total == 13 and items[0] == {"noteId": None, "readNum": "12", "extra": {"a": [1, 2]}}
    assert items[1:] == raw[1:]
    assert sim.notes_for("raw-user")[1:] == raw[1:]


def test_keep_alive_connection_is_reused(sim: Simulator) -> None:
    conn = http.client.HTTPConnection(sim.base_url.removeprefix("http://"), timeout=5)
    try:
        conn.request("GET", f"{API_PATH}?token={TOKEN}&userId={UIDS[1]}")
        first = conn.getresponse()
        assert json.loads(first.read())["code"] == 0
        sock = conn.sock
        conn.request("GET", f"{API_PATH}?token={TOKEN}&userId={UIDS[1]}&pageNumber=2")
        second = conn.getresponse()
        assert json.loads(second.read())["code"] == 0
        assert conn.sock is sock
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------------


def test_fault_code_hits_matching_requests_only(sim: Simulator, client: httpx.Client) -> None:
    u, other = busy_creator(sim, 20), UIDS[-1]
    sim.add_fault("code", code=301, user_id=u, page=2)
    assert get(client, u).json()["code"] == 0
    assert get(client, other, pageNumber=2).json()["code"] == 0
    assert get(client, u, pageNumber=2).json() == {"code": 301, "message": MESSAGES[301], "data": None}
    assert get(client, u, pageNumber=2).json()["code"] == 0  # times=1: used up
    assert sim.calls[-2].outcome == 301 and sim.calls[-2].faults == ("code",)

    sim.add_fault("code", code=302, retry_after=2, times=2)
    for _ in range(2):
        r = get(client, u)
        assert r.json()["code"] == 302 and r.json()["message"] == "Rate Limit Exceeded"
        assert r.headers["retry-after"] == "2"
    assert get(client, u).json()["code"] == 0

    sim.add_fault("code", code=600, message="custom", times=None)
    assert [get(client, u).json()["message"] for _ in range(3)] == ["custom"] * 3
    sim.clear_faults()
    assert get(client, u).json()["code"] == 0


def test_fault_http_status_and_429_and_html(sim: Simulator, client: httpx.Client) -> None:
    u = UIDS[2]
    sim.add_fault("http_status", status=502)
    r = get(client, u)
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    assert r.text == "<html><body><h1>502 Bad Gateway</h1></body></html>"
    sim.add_fault("http_status", status=503)
    assert get(client, u).status_code == 503

    sim.add_fault("http_429", retry_after=3)
    r = get(client, u)
    assert r.status_code == 429 and r.headers["retry-after"] == "3"

    sim.add_fault("html")
    r = get(client, u)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        r.json()
    assert [c.outcome for c in sim.calls] == ["http_502", "http_503", "http_429", "html"]
    assert get(client, u).json()["code"] == 0


def test_fault_truncated(sim: Simulator, client: httpx.Client) -> None:
    u = busy_creator(sim, 8)
    full = get(client, u).content
    sim.add_fault("truncated")
    r = get(client, u)
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content)
    assert 0 < len(r.content) < len(full) and full.startswith(r.content)
    with pytest.raises(json.JSONDecodeError):
        r.json()
    assert sim.calls[-1].outcome == "truncated"


def test_fault_drop(sim: Simulator, client: httpx.Client) -> None:
    sim.add_fault("drop", user_id=UIDS[3])
    with pytest.raises(httpx.RemoteProtocolError):
        get(client, UIDS[3])
    assert sim.calls[-1].outcome == "drop"
    assert get(client, UIDS[3]).json()["code"] == 0


def test_fault_latency(sim: Simulator, client: httpx.Client) -> None:
    sim.add_fault("latency", seconds=0.3)
    t0 = time.monotonic()
    assert get(client, UIDS[4]).json()["code"] == 0
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    get(client, UIDS[4])
    assert time.monotonic() - t0 < 0.25


def test_fault_trickle(sim: Simulator) -> None:
    u = busy_creator(sim, 8)
    expected = sim.notes_for(u)[:8]
    sim.add_fault("trickle", seconds=0.6, interval=0.1)
    with httpx.Client(base_url=sim.base_url, timeout=httpx.Timeout(5.0, read=0.4)) as patient:
        t0 = time.monotonic()
        r = get(patient, u)
        assert time.monotonic() - t0 >= 0.5
        assert r.json()["data"]["list"] == expected
    sim.add_fault("trickle", seconds=0.6, interval=0.1)
    with httpx.Client(base_url=sim.base_url, timeout=httpx.Timeout(5.0, read=0.03)) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            get(impatient, u)
    assert [c.outcome for c in sim.calls] == ["trickle", "trickle"]


def test_fault_insert_notes_shifts_pages(sim: Simulator, client: httpx.Client) -> None:
    u = busy_creator(sim, 30)
    page1 = get(client, u).json()["data"]
    sim.add_fault("insert_notes", user_id=u, page=2, n=2)
    page2 = get(client, u, pageNumber=2).json()["data"]
    assert page2["total"] == page1["total"] + 2
    assert ids(page2["list"][:2]) == ids(page1["list"][-2:])  # the drift a pager sees
    now_list = sim.notes_for(u)
    assert len(now_list) == page1["total"] + 2
    assert now_list[2:10] == page1["list"]
    fresh = now_list[:2]
    assert all(n["date"] == NOW.astimezone(CHINA).date().isoformat() for n in fresh)
    assert int(fresh[0]["noteId"][:8], 16) >= int(NOW.timestamp())
    assert get(client, u).json()["data"]["total"] == page1["total"] + 2  # permanent


def test_fault_remove_notes(sim: Simulator, client: httpx.Client) -> None:
    u = busy_creator(sim, 30)
    before = sim.notes_for(u)
    sim.add_fault("remove_notes", user_id=u, page=2, n=1)
    page2 = get(client, u, pageNumber=2).json()["data"]
    assert page2["total"] == len(before) - 1
    assert page2["list"] == before[9:17]
    assert sim.notes_for(u) == before[1:]


def test_fault_duplicate_across_pages_and_total_delta(sim: Simulator, client: httpx.Client) -> None:
    u = busy_creator(sim, 30)
    full = sim.notes_for(u)
    sim.add_fault("duplicate_across_pages", page=2)
    page2 = get(client, u, pageNumber=2).json()["data"]
    assert page2["list"] == full[7:15] and page2["total"] == len(full)
    assert get(client, u, pageNumber=2).json()["data"]["list"] == full[8:16]

    sim.add_fault("total_delta", delta=3)
    body = get(client, u).json()["data"]
    assert body["total"] == len(full) + 3 and body["list"] == full[:8]


def test_fault_rate_is_probabilistic_and_reproducible() -> None:
    outcomes = []
    for _ in range(2):
        with Simulator(now=lambda: NOW) as sim, httpx.Client(base_url=sim.base_url) as client:
            sim.add_fault("code", code=500, rate=0.5)
            outcomes.append([get(client, UIDS[5]).json()["code"] for _ in range(40)])
    assert outcomes[0] == outcomes[1]
    assert 5 <= outcomes[0].count(500) <= 35 and 5 <= outcomes[0].count(0) <= 35


def test_unknown_fault_kind_is_rejected() -> None:
    with pytest.raises(ValueError):
        Simulator().add_fault("explode")
    with pytest.raises(ValueError):
        Simulator().add_fault("code")


# ---------------------------------------------------------------------------------------------------
# Rate limit, concurrency, stats, admin, CLI
# ---------------------------------------------------------------------------------------------------


def test_rate_limit_answers_302() -> None:
    with Simulator(now=lambda: NOW, rate_limit_rps=5) as sim, httpx.Client(base_url=sim.base_url) as client:
        codes = [get(client, UIDS[6]).json()["code"] for _ in range(8)]
        assert codes == [0] * 5 + [302] * 3
        assert get(client, UIDS[6]).json()["message"] == "Rate Limit Exceeded"
        time.sleep(1.05)
        assert get(client, UIDS[6]).json()["code"] == 0
        assert [c.outcome for c in sim.calls].count(302) == 4


def test_latency_overlaps_across_concurrent_requests() -> None:
    with Simulator(now=lambda: NOW, latency_s=0.2) as sim:
        results: list[int] = []

        def worker(i: int) -> None:
            with httpx.Client(base_url=sim.base_url, timeout=5) as client:
                results.append(get(client, UIDS[i]).json()["code"])

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        assert results == [0] * 10
        assert 0.2 <= elapsed < 1.0  # serially this would take 2 s


def test_calls_are_recorded(sim: Simulator, client: httpx.Client) -> None:
    get(client, UIDS[7], pageNumber=2, orderType="MOST_READ")
    get(client, UIDS[8])
    client.get(API_PATH, params={"token": "bad", "userId": UIDS[8]})
    assert sim.call_count() == 3 and sim.call_count(UIDS[8]) == 2 and sim.call_count("nobody") == 0
    first = sim.calls[0]
    assert isinstance(first, CallRecord)
    assert (first.user_id, first.page, first.outcome, first.token_ok) == (UIDS[7], 2, 0, True)
    assert first.params == {"userId": UIDS[7], "pageNumber": "2", "orderType": "MOST_READ"}
    assert sim.calls[1].page == 1
    assert sim.calls[2].token_ok is False and "token" not in sim.calls[2].params
    assert first.at <= sim.calls[1].at <= sim.calls[2].at <= time.monotonic()
    client.get("/__sim/stats")
    client.get("/elsewhere")
    assert sim.call_count() == 3  # only the notes endpoint is recorded
    sim.reset_stats()
    assert sim.call_count() == 0 and sim.calls == []


def test_admin_endpoints(sim: Simulator, client: httpx.Client) -> None:
    u = UIDS[9]
    r = client.post("/__sim/faults", json={"kind": "code", "user_id": u, "page": 1, "params": {"code": 303}})
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert get(client, u).json()["code"] == 303
    assert get(client, u).json()["code"] == 0

    assert client.post("/__sim/note_count", json={"user_id": u, "n": 9}).json() == {"ok": True}
    assert get(client, u).json()["data"]["total"] == 9
    assert client.post("/__sim/notes", json={"user_id": "r", "notes": [{"a": 1}]}).status_code == 200
    assert get(client, "r").json()["data"] == {"list": [{"a": 1}], "total": 1}

    stats = client.get("/__sim/stats").json()
    assert stats == {"calls": 4, "by_user": {u: 3, "r": 1}, "by_outcome": {"303": 1, "0": 3}}

    client.post("/__sim/faults", json={"kind": "http_status", "times": None, "params": {"status": 500}})
    assert get(client, u).status_code == 500
    assert client.post("/__sim/reset").json() == {"ok": True}
    assert client.get("/__sim/stats").json() == {"calls": 0, "by_user": {}, "by_outcome": {}}
    assert get(client, u).status_code == 200  # faults cleared

    assert client.post("/__sim/faults", json={"kind": "nope"}).status_code == 400
    assert client.post("/__sim/faults", content=b"{not json").status_code == 400
    assert client.post("/__sim/note_count", json={"user_id": u}).status_code == 400
    assert client.get("/__sim/unknown").status_code == 404


def test_stop_closes_the_server() -> None:
    sim = Simulator(now=lambda: NOW)
    url = sim.start()
    assert url.startswith("http://127.0.0.1:") and sim.base_url == url
    with httpx.Client(base_url=url) as client:
        assert get(client, UIDS[0]).status_code == 200
    sim.stop()
    sim.stop()
    with pytest.raises(httpx.TransportError), httpx.Client(base_url=url, timeout=2) as client:
        get(client, UIDS[0])
    with pytest.raises(RuntimeError):
        _ = sim.base_url


def test_command_line_server() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgy_pipeline.simulator",
            "--port",
            "0",
            "--token",
            "cli-token",
            "--page-size",
            "3",
            "--now",
            "2026-11-26T12:00:00+00:00",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        body = httpx.get(url + API_PATH, params={"token": "cli-token", "userId": UIDS[0]}).json()
        assert body["code"] == 0 and len(body["data"]["list"]) == min(3, body["data"]["total"])
        assert body["data"]["list"] == Simulator(now=lambda: NOW).notes_for(UIDS[0])[:3]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
