"""Injected faults (pgy_pipeline.simulator.faults), over real loopback HTTP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from pgy_pipeline.simulator import MESSAGES, VENDOR_CODES, Simulator

from .support import CHINA, NOW, UIDS, busy_creator, get, ids


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


@pytest.mark.parametrize("via_http", [False, True])
def test_every_vendor_code_is_injectable_per_creator_with_a_message(
    sim: Simulator, client: httpx.Client, via_http: bool
) -> None:
    assert VENDOR_CODES == (100, 101, 201, 202, 300, 301, 302, 303, 400, 404, 500, 503, 600, 601, 602)
    u, other = busy_creator(sim, 10), UIDS[-1]
    for code in VENDOR_CODES:
        message = f"vendor says {code}"
        if via_http:
            fault = {"kind": "code", "user_id": u, "params": {"code": code, "message": message}}
            assert client.post("/__sim/faults", json=fault).status_code == 200
        else:
            sim.add_fault("code", code=code, message=message, user_id=u)
        assert get(client, other).json()["code"] == 0  # another creator is not hit
        r = get(client, u)
        assert r.status_code == 200 and r.json() == {"code": code, "message": message, "data": None}
        assert get(client, u).json()["code"] == 0  # used up
        record = sim.calls[-2]
        assert (record.user_id, record.outcome, record.http_status, record.code) == (u, code, 200, code)
        assert record.billed is (code == 201)
    # Without a message: the documented one, or a generic one for codes the vendor does not document.
    sim.add_fault("code", code=601, user_id=u)
    assert get(client, u).json()["message"] == MESSAGES[601] == "Insufficient Balance"
    sim.add_fault("code", code=202, user_id=u)
    assert get(client, u).json() == {"code": 202, "message": "Error", "data": None}


def test_fault_hook_runs_before_the_page_is_read_and_may_drop(sim: Simulator, client: httpx.Client) -> None:
    u = busy_creator(sim, 20)
    before = sim.notes_for(u)
    seen: list[tuple[str, int | None]] = []

    def delete_newest(user_id: str, page: int | None) -> None:
        seen.append((user_id, page))
        sim.set_notes(user_id, before[1:])  # under the simulator's lock: it is reentrant

    sim.add_fault("hook", user_id=u, page=2, fn=delete_newest)
    assert ids(get(client, u).json()["data"]["list"]) == ids(before[:8])
    page2 = get(client, u, pageNumber=2).json()["data"]
    assert seen == [(u, 2)]
    assert page2["total"] == len(before) - 1 and ids(page2["list"]) == ids(before[9:17])
    assert sim.calls[-1].faults == ("hook",) and sim.calls[-1].billed

    sim.add_fault("hook", user_id=u, fn=lambda user_id, page: "drop")
    with pytest.raises(httpx.RemoteProtocolError):
        get(client, u)
    assert sim.calls[-1].outcome == "drop" and not sim.calls[-1].billed
    assert get(client, u).json()["code"] == 0  # times=1: used up

    with pytest.raises(ValueError, match="needs fn"):
        sim.add_fault("hook")
    fault = {"kind": "hook", "user_id": u, "params": {"fn": "print"}}  # no callable over HTTP
    assert client.post("/__sim/faults", json=fault).status_code == 400
