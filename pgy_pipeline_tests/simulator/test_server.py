"""Request handling, rate limit, call log and admin endpoints (pgy_pipeline.simulator.server), over real loopback HTTP."""

from __future__ import annotations

import http.client
import json
import threading
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest

from pgy_pipeline.simulator import API_PATH, CallRecord, Simulator

from .support import NOW, TOKEN, UIDS, Clock, busy_creator, fetch_all, get


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
