"""Request handling, rate limit, call log and admin endpoints (pgy_pipeline.simulator.server), over real loopback HTTP."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
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


# ---------------------------------------------------------------------------------------------------
# Creators unknown to the marketplace
# ---------------------------------------------------------------------------------------------------


def test_unknown_creator_answers_an_empty_success(sim: Simulator, client: httpx.Client) -> None:
    u = busy_creator(sim, 20)
    assert get(client, u).json()["data"]["total"] > 0
    sim.set_unknown(u)
    for params in ({}, {"pageNumber": 2}, {"orderType": "MOST_READ", "advertiseSwitch": "ORGANIC_ONLY"}):
        assert get(client, u, **params).json() == {
            "code": 0,
            "message": "success",
            "data": {"list": [], "total": 0},
        }
    assert sim.notes_for(u) == [] and sim.is_unknown(u)
    sim.add_fault("insert_notes", user_id=u, n=3)  # an account outside the marketplace publishes nothing
    assert get(client, u).json()["data"] == {"list": [], "total": 0}
    assert sim.calls[-1].code == 0 and sim.calls[-1].billed  # the vendor bills these answers
    sim.set_unknown(u, False)
    assert get(client, u).json()["data"]["total"] > 0


def test_unknown_creator_over_http_and_by_id_prefix(sim: Simulator, client: httpx.Client) -> None:
    u = UIDS[3]
    assert client.post("/__sim/unknown", json={"user_id": u}).json() == {"ok": True}
    assert get(client, u).json()["data"] == {"list": [], "total": 0}
    assert client.post("/__sim/unknown", json={"user_id": u, "unknown": False}).json() == {"ok": True}
    assert get(client, u).json()["data"]["total"] == len(sim.notes_for(u)) > 0
    assert client.post("/__sim/unknown", json={}).status_code == 400

    prefixed = "000000" + UIDS[4][6:]
    assert sim.is_unknown(prefixed) and not sim.is_unknown(UIDS[4])
    assert get(client, prefixed).json()["data"] == {"list": [], "total": 0}
    sim.set_note_count(prefixed, 3)  # an explicit override wins over the id rule
    assert get(client, prefixed).json()["data"]["total"] == 3
    sim.set_unknown(prefixed)
    assert get(client, prefixed).json()["data"]["total"] == 0


# ---------------------------------------------------------------------------------------------------
# Rate limit and latency at runtime, shared by every client of one server
# ---------------------------------------------------------------------------------------------------

_BURST = """
import json, sys, time, urllib.request
url, start_at, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
while time.time() < start_at:
    time.sleep(0.001)
codes = []
for _ in range(n):
    with urllib.request.urlopen(url, timeout=10) as r:
        codes.append(json.loads(r.read())["code"])
print(json.dumps(codes))
"""


def _max_in_rolling_second(times: list[float]) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_rate_limit_set_over_http_is_shared_by_client_processes(sim: Simulator, client: httpx.Client) -> None:
    r = client.post("/__sim/settings", json={"rate_limit_rps": 5})
    assert r.status_code == 200 and r.json()["settings"]["rate_limit_rps"] == 5
    assert client.get("/__sim/settings").json() == {"rate_limit_rps": 5, "latency_s": 0.0, "page_size": 8}
    url = f"{sim.base_url}{API_PATH}?token={TOKEN}&userId={UIDS[0]}"
    start_at = time.time() + 1.5  # every process fires at once, after all have started
    # Each process alone stays within the limit (4 < 5): 302s can only come from the shared window.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _BURST, url, str(start_at), "4"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    codes = [c for codes in results for c in codes]
    assert sorted(set(codes)) == [0, 302] and len(codes) == 12
    accepted = [c.at for c in sim.calls if c.outcome == 0]
    assert _max_in_rolling_second(accepted) <= 5
    assert codes.count(0) == len(accepted) >= 5
    assert all(c.code == 302 and not c.billed for c in sim.calls if c.outcome == 302)

    client.post("/__sim/settings", json={"rate_limit_rps": None})
    time.sleep(1.05)
    assert [get(client, UIDS[0]).json()["code"] for _ in range(10)] == [0] * 10
    assert client.post("/__sim/settings", json={"rate_limit_rps": -1}).status_code == 400
    assert client.post("/__sim/settings", json={"speed": 1}).status_code == 400


def test_rate_limit_counts_answered_requests_in_any_rolling_second() -> None:
    with Simulator(now=lambda: NOW, rate_limit_rps=3) as sim, httpx.Client(base_url=sim.base_url) as client:
        codes = []
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:  # a steady stream, faster than the limit, for 2.5 s
            codes.append(get(client, UIDS[1]).json()["code"])
            time.sleep(0.02)
        accepted = [c.at for c in sim.calls if c.outcome == 0]
        assert _max_in_rolling_second(accepted) == 3
        assert 6 <= len(accepted) <= 9 and codes.count(302) > len(accepted)


def test_latency_set_over_http(sim: Simulator, client: httpx.Client) -> None:
    assert client.post("/__sim/settings", json={"latency_s": 0.3}).json()["settings"]["latency_s"] == 0.3
    t0 = time.monotonic()
    assert get(client, UIDS[2]).json()["code"] == 0
    assert time.monotonic() - t0 >= 0.3
    client.post("/__sim/settings", json={"latency_s": 0})
    t0 = time.monotonic()
    get(client, UIDS[2])
    assert time.monotonic() - t0 < 0.25
    assert client.post("/__sim/settings", json={"page_size": 3}).status_code == 200
    assert len(get(client, busy_creator(sim, 5)).json()["data"]["list"]) == 3


# ---------------------------------------------------------------------------------------------------
# The call log, as a billing ledger is checked against it
# ---------------------------------------------------------------------------------------------------


def test_call_log_records_status_code_and_billing() -> None:
    secret = "tok-LEDGER-5e1d"
    with Simulator(token=secret, now=lambda: NOW) as sim, httpx.Client(base_url=sim.base_url) as client:
        u = busy_creator(sim, 20)

        def call(**params: Any) -> None:
            try:
                client.get(API_PATH, params={"token": secret, "userId": u} | params)
            except httpx.TransportError:
                pass  # the dropped connection

        call()  # 0
        sim.add_fault("code", code=201, page=2)
        call(pageNumber=2)  # 201
        sim.add_fault("code", code=301)
        call()  # 301
        client.get(API_PATH, params={"token": "wrong", "userId": u})  # 100
        call(pageNumber="x")  # 400
        for kind, params in [("http_status", {"status": 503}), ("http_429", {}), ("html", {}), ("drop", {})]:
            sim.add_fault(kind, **params)
            call()
        sim.add_fault("truncated")
        call()
        sim.set_unknown("gone")
        call(userId="gone")

        expected = [
            # (page, http_status, code, billed)
            (1, 200, 0, True),
            (2, 200, 201, True),
            (1, 200, 301, False),
            (1, 200, 100, False),
            (None, 200, 400, False),
            (1, 503, None, False),
            (1, 429, None, False),
            (1, 200, None, False),
            (1, None, None, False),
            (1, 200, 0, True),  # truncated after the service answered code 0: billed
            (1, 200, 0, True),  # an unknown creator's empty list: billed
        ]
        assert [(c.page, c.http_status, c.code, c.billed) for c in sim.calls] == expected
        assert [c.user_id for c in sim.calls] == [u] * 10 + ["gone"]

        r = client.get("/__sim/calls")
        assert r.status_code == 200 and secret not in r.text
        body = r.json()
        assert body["next"] == 11 and body["calls"] == [c.to_json() for c in sim.calls]
        rows = body["calls"]
        assert [(c["page"], c["http_status"], c["code"], c["billed"]) for c in rows] == expected
        assert rows[1]["params"] == {"userId": u, "pageNumber": "2"} and rows[1]["faults"] == ["code"]
        assert all("token" not in c["params"] for c in rows)
        later = client.get("/__sim/calls", params={"since": 9}).json()
        assert later["calls"] == rows[9:] and later["next"] == 11
        assert sum(c["billed"] for c in rows) == 4
