"""Tests of :mod:`pgy_pipeline.api.client` against the simulator over real loopback HTTP.

Every call is counted twice: on the simulator's side (``simulator.calls``) and in the client's own
``stats``; the two must agree. Retries use tiny backoffs or a fake ``sleep`` so the file runs in seconds.
"""

from __future__ import annotations

import logging
import math
import pickle
import socket
import statistics
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import tenacity
from tenacity import RetryError

from pgy_pipeline import errors as errors_module
from pgy_pipeline.api.client import AdvertiseSwitch, NotesQuery, OrderType, Page, PgyClient
from pgy_pipeline.api.transport import CODE_TABLE, reset_circuit_breakers
from pgy_pipeline.errors import (
    AccountError,
    AccountRejectedError,
    AuthError,
    CircuitOpenError,
    InsufficientBalanceError,
    InvalidCreatorIdError,
    InvalidInputError,
    InvalidParameterError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    PgyError,
    QuotaExceededError,
    RateLimitedError,
    RetriesExhaustedError,
    SpendingCapError,
    TransientError,
    UnexpectedResponseError,
    UnsupportedTargetError,
    UsageLimitError,
)
from pgy_pipeline.simulator import MESSAGES, VENDOR_CODES, Simulator, is_billed
from pgy_pipeline_tests.conftest import TEST_TOKEN, creator_ids

# A frozen clock keeps the live counters (and so MOST_READ / MOST_INTERACT order) identical between the
# simulator's own view (notes_for) and what it serves.
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
VALID_ID = creator_ids(1, prefix="valid")[0]


@pytest.fixture
def sim(simulator: Simulator) -> Simulator:
    simulator.clock = lambda: NOW
    return simulator


def make_client(sim: Simulator, **overrides: Any) -> PgyClient:
    settings: dict[str, Any] = dict(
        base_url=sim.base_url,
        timeout_s=2,
        backoff_initial_s=0.001,
        rate_limit_backoff_s=0.001,
        max_rps=None,
    )
    settings.update(overrides)
    return PgyClient(TEST_TOKEN, **settings)


@pytest.fixture
def client(sim: Simulator) -> Iterator[PgyClient]:
    with make_client(sim) as c:
        yield c


class Sleeps(list):
    """A fake ``sleep``: records what the client asked for and returns at once."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [it["noteId"] for it in items]


def creator(sim: Simulator, n: int, tag: str) -> str:
    cid = creator_ids(1, prefix=tag)[0]
    sim.set_note_count(cid, n)
    return cid


def assert_stats(c: PgyClient, sim: Simulator, *, retries: int, outcomes: dict[str, int]) -> None:
    """The client's accounting agrees with the calls the simulator received."""
    assert c.stats.calls == sim.call_count()
    assert c.stats.calls == sum(outcomes.values())
    assert c.stats.retries == retries
    assert dict(c.stats.outcomes) == outcomes
    assert c.stats.as_dict() == {
        "calls": c.stats.calls,
        "retries": retries,
        "outcomes": dict(sorted(outcomes.items())),
    }


# --------------------------------------------------------------------------------------------
# 1-2. Pagination: every note once, fewest calls, hard page cap
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("total", [0, 1, 8, 9, 300])
@pytest.mark.parametrize("page_size", [1, 8, 10, 20])
def test_pagination_returns_every_note_once_with_fewest_calls(
    sim: Simulator, page_size: int, total: int
) -> None:
    sim.page_size = page_size
    cid = creator(sim, total, f"pag-{page_size}-{total}")
    expected = ids(sim.notes_for(cid))
    assert len(expected) == total and len(set(expected)) == total

    with make_client(sim) as c:
        scan = c.scan_notes(cid)

    got = ids(scan.notes)
    assert got == expected  # each note exactly once, in list order
    want_calls = max(1, math.ceil(total / page_size))
    assert sim.call_count(cid) == want_calls
    assert [call.page for call in sim.calls] == list(range(1, want_calls + 1))
    assert [p.page_number for p in scan.pages] == list(range(1, want_calls + 1))
    assert scan.calls == want_calls
    assert scan.stop_reason == ("empty_page" if total == 0 else "reached_total")
    assert scan.total == total and scan.drift == [] and scan.duplicate_note_ids == []
    assert_stats(c, sim, retries=0, outcomes={"0": want_calls})


def test_72_notes_at_page_size_8_take_exactly_9_calls(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 72, "seventy-two")
    scan = client.scan_notes(cid)
    assert sim.call_count(cid) == 9
    assert ids(scan.notes) == ids(sim.notes_for(cid))
    assert [len(p.items) for p in scan.pages] == [8] * 9  # no 10th, empty, page
    assert scan.stop_reason == "reached_total"


def test_creator_with_no_notes_takes_one_call(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 0, "empty")
    scan = client.scan_notes(cid)
    assert sim.call_count(cid) == 1
    assert scan.notes == [] and scan.total == 0 and scan.stop_reason == "empty_page"
    assert scan.drift == []


def test_pages_carry_what_was_received(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 12, "pagefields")
    pages = list(client.iter_pages(cid))
    assert [p.page_number for p in pages] == [1, 2]
    for page, call in zip(pages, sim.calls, strict=True):
        assert isinstance(page, Page)
        assert page.creator_id == cid and page.code == 0 and page.total == 12 and page.attempts == 1
        assert page.params == call.params  # exactly what reached the service (minus the token)
        assert page.fetched_at.tzinfo is not None and page.fetched_at.utcoffset().total_seconds() == 0
        assert '"code":0' in page.body_text
    assert ids(pages[0].items) + ids(pages[1].items) == ids(sim.notes_for(cid))


def test_hard_page_cap(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    cid = creator(sim, 300, "cap")
    with make_client(sim, max_pages=3) as c, caplog.at_level(logging.WARNING):
        scan = c.scan_notes(cid)
    assert sim.call_count(cid) == 3
    assert [call.page for call in sim.calls] == [1, 2, 3]
    assert scan.stop_reason == "page_cap"
    assert ids(scan.notes) == ids(sim.notes_for(cid))[:24]
    assert any("page cap" in d and "300" in d for d in scan.drift), scan.drift
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "page cap" in r.getMessage()]
    assert len(warnings) == 1 and cid in warnings[0].getMessage()
    assert_stats(c, sim, retries=0, outcomes={"0": 3})


def test_page_cap_not_reported_when_last_allowed_page_reaches_total(sim: Simulator) -> None:
    cid = creator(sim, 24, "cap-exact")
    with make_client(sim, max_pages=3) as c:
        scan = c.scan_notes(cid)
    assert sim.call_count(cid) == 3
    assert scan.stop_reason == "reached_total" and scan.drift == []


# --------------------------------------------------------------------------------------------
# 3-5. Terminal codes, the circuit breaker, 400 and unknown codes
# --------------------------------------------------------------------------------------------

ACCOUNT_CASES = [
    pytest.param(100, AuthError, ("token invalid or inactive", "JUSTONEAPI_TOKEN"), id="100-auth"),
    pytest.param(
        303, QuotaExceededError, ("daily quota exceeded", "no more calls until tomorrow"), id="303-quota"
    ),
    pytest.param(600, PermissionDeniedError, ("permission denied", "may not call"), id="600-permission"),
    pytest.param(601, InsufficientBalanceError, ("insufficient balance", "top up"), id="601-balance"),
]


@pytest.mark.parametrize(("code", "cls", "phrases"), ACCOUNT_CASES)
def test_account_error_is_terminal_and_opens_the_breaker(
    sim: Simulator, code: int, cls: type[AccountError], phrases: tuple[str, ...]
) -> None:
    cid, other = creator_ids(2, prefix=f"acct{code}")
    sim.set_note_count(cid, 20)
    sim.add_fault("code", user_id=cid, page=2, times=None, code=code)
    with make_client(sim) as c:
        with pytest.raises(cls) as info:
            c.fetch_page(cid, 2)
        err = info.value
        assert type(err) is cls and isinstance(err, AccountError) and not isinstance(err, TransientError)
        assert sim.call_count() == 1  # not retried
        assert (err.code, err.creator_id, err.page) == (code, cid, 2)
        assert err.service_message == MESSAGES[code]
        for phrase in phrases:
            assert phrase in str(err)
        assert f"code {code}" in str(err) and cid in str(err) and "page 2" in str(err)
        assert_stats(c, sim, retries=0, outcomes={str(code): 1})

        # The breaker is open: no further call reaches the service, for any creator or method.
        for attempt in (
            lambda: c.fetch_page(other),
            lambda: c.scan_notes(other),
            lambda: c.fetch_page(cid, 1),
        ):
            with pytest.raises(CircuitOpenError) as refused:
                attempt()
            assert refused.value.code == code
            assert err.message in str(refused.value)
        assert refused.value.creator_id == cid and refused.value.page == 1
        assert sim.call_count() == 1
        assert_stats(c, sim, retries=0, outcomes={str(code): 1})

    # Process-wide: a fresh client for the same account is refused too.
    with make_client(sim) as fresh:
        with pytest.raises(CircuitOpenError):
            fresh.scan_notes(other)
        assert fresh.stats.calls == 0
    assert sim.call_count() == 1


def test_account_error_during_scan_stops_on_that_page(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 20, "quota-mid-scan")
    sim.add_fault("code", user_id=cid, page=2, times=1, code=303)
    with pytest.raises(QuotaExceededError) as info:
        client.scan_notes(cid)
    assert info.value.page == 2 and info.value.creator_id == cid
    assert [call.page for call in sim.calls] == [1, 2]
    assert_stats(client, sim, retries=0, outcomes={"0": 1, "303": 1})


def test_wrong_token_is_auth_error_and_breaker_is_per_account(sim: Simulator) -> None:
    cid = creator(sim, 5, "wrongtoken")
    with PgyClient("tok-WRONG-000", base_url=sim.base_url, max_rps=None, backoff_initial_s=0.001) as bad:
        with pytest.raises(AuthError) as info:
            bad.fetch_page(cid)
        assert info.value.code == 100 and info.value.service_message == MESSAGES[100]
        with pytest.raises(CircuitOpenError):
            bad.fetch_page(cid)
    assert sim.call_count() == 1 and sim.calls[0].token_ok is False
    with make_client(sim) as good:  # another account (token) is unaffected
        assert len(good.scan_notes(cid).notes) == 5
    assert sim.call_count() == 2


def test_code_400_is_not_retried_and_does_not_open_the_breaker(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 5, "code400")
    sim.add_fault("code", user_id=cid, times=1, code=400, message="Invalid Parameters: userId")
    with pytest.raises(InvalidRequestError) as info:
        client.fetch_page(cid)
    err = info.value
    assert not isinstance(err, (AccountError, TransientError))
    assert (err.code, err.creator_id, err.page, err.service_message) == (
        400,
        cid,
        1,
        "Invalid Parameters: userId",
    )
    assert "retrying would not help" in str(err)
    assert sim.call_count() == 1
    assert_stats(client, sim, retries=0, outcomes={"400": 1})
    # The breaker stays closed: the next fetch reaches the service and works.
    assert ids(client.scan_notes(cid).notes) == ids(sim.notes_for(cid))
    assert sim.call_count() == 2
    assert_stats(client, sim, retries=0, outcomes={"400": 1, "0": 1})


def test_unknown_business_code_is_unexpected_and_not_retried(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 5, "code999")
    sim.add_fault("code", user_id=cid, times=None, code=999, message="Upstream schema moved")
    with pytest.raises(UnexpectedResponseError) as info:
        client.fetch_page(cid)
    err = info.value
    assert err.code == 999 and err.service_message == "Upstream schema moved"
    assert "999" in str(err) and "Upstream schema moved" in str(err)
    assert sim.call_count() == 1
    assert_stats(client, sim, retries=0, outcomes={"999": 1})
    sim.clear_faults()
    client.fetch_page(cid)  # not an account error: the breaker stays closed
    assert sim.call_count() == 2


def test_code_0_without_data_list_is_unexpected(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 5, "code0-nodata")
    sim.add_fault("code", user_id=cid, times=1, code=0)  # answers {"code": 0, "data": null}
    with pytest.raises(UnexpectedResponseError) as info:
        client.fetch_page(cid)
    assert "data.list" in str(info.value) and sim.call_count() == 1
    assert info.value.code == 0 and info.value.creator_id == cid


# --------------------------------------------------------------------------------------------
# Every business code the vendor documents: calls made, error text, breaker state
# --------------------------------------------------------------------------------------------

# code: (what it is, the error raised to the caller, a phrase of its text). "account" codes open the
# breaker after one call; "transient" ones are retried to the attempt budget (3 here); "request" ones
# fail that request after one call and stop nothing else.
VENDOR_CODE_CASES: dict[int, tuple[str, type[PgyError], str]] = {
    100: ("account", AuthError, "token invalid or inactive"),
    101: ("account", AccountRejectedError, "rejected the token or account (101, undocumented"),
    201: ("request", NotFoundError, "no content (201): the service found nothing"),
    202: ("request", UnsupportedTargetError, "not supported (202)"),
    300: ("account", UsageLimitError, "usage limit reached (300, undocumented"),
    301: ("transient", RetriesExhaustedError, "collection failed on the service side (301)"),
    302: ("transient", RetriesExhaustedError, "rate limit exceeded (302)"),
    303: ("account", QuotaExceededError, "daily quota exceeded"),
    400: ("request", InvalidRequestError, "rejected the request's parameters (400)"),
    404: ("request", NotFoundError, "not found (404, undocumented business code)"),
    500: ("transient", RetriesExhaustedError, "internal server error on the service side (500)"),
    503: ("transient", RetriesExhaustedError, "service temporarily unavailable (503)"),
    600: ("account", PermissionDeniedError, "permission denied"),
    601: ("account", InsufficientBalanceError, "insufficient balance"),
    602: ("account", SpendingCapError, "spending cap reached (602)"),
}


def test_every_vendor_code_has_a_deliberate_rule_in_the_client() -> None:
    assert set(VENDOR_CODE_CASES) == set(VENDOR_CODES) == set(CODE_TABLE)
    for code, (kind, _, _) in VENDOR_CODE_CASES.items():
        cls = CODE_TABLE[code][0]
        assert issubclass(cls, AccountError) == (kind == "account"), code
        assert issubclass(cls, TransientError) == (kind == "transient"), code
    # errors.py draws every error class in its tree
    for cls in {c for c, _ in CODE_TABLE.values()}:
        assert cls.__name__ in (errors_module.__doc__ or ""), cls.__name__


@pytest.mark.parametrize("code", sorted(VENDOR_CODE_CASES))
def test_each_vendor_code_on_the_simulator(sim: Simulator, code: int) -> None:
    kind, cls, phrase = VENDOR_CODE_CASES[code]
    cid, other = creator_ids(2, prefix=f"vendor-code-{code}")
    sim.set_note_count(cid, 5)
    sim.set_note_count(other, 5)
    service_text = f"what the service said with {code}"
    sim.add_fault("code", user_id=cid, times=None, code=code, message=service_text)
    with make_client(sim, max_attempts=3, sleep=Sleeps()) as c:
        with pytest.raises(cls) as info:
            c.scan_notes(cid)
        err = info.value
        assert type(err) is cls
        assert (err.code, err.service_message, err.creator_id, err.page) == (code, service_text, cid, 1)
        assert phrase in str(err) and f"code {code}" in str(err) and service_text in str(err)
        calls = 3 if kind == "transient" else 1
        assert sim.call_count(cid) == calls
        assert_stats(c, sim, retries=calls - 1, outcomes={str(code): calls})
        # a billed answer (201) is never asked for twice
        assert [call.billed for call in sim.calls] == [is_billed(code)] * calls
        if kind == "account":
            with pytest.raises(CircuitOpenError) as refused:
                c.scan_notes(other)
            assert refused.value.code == code and err.message in str(refused.value)
            assert sim.call_count(other) == 0
        else:
            assert len(c.scan_notes(other).notes) == 5  # the breaker stays closed
            assert sim.call_count(other) == 1


def test_code_503_backs_off_as_long_as_a_rate_limit(sim: Simulator) -> None:
    cid = creator(sim, 5, "backoff503")
    sim.add_fault("code", user_id=cid, times=1, code=503)
    sleeps = Sleeps()
    with make_client(sim, sleep=sleeps, backoff_initial_s=0.01, rate_limit_backoff_s=8.0) as c:
        assert c.fetch_page(cid).attempts == 2
    assert len(sleeps) == 1 and 4.0 <= sleeps[0] <= 8.0


def test_codes_sent_as_numeric_strings_are_read_as_numbers() -> None:
    """The vendor's OpenAPI document declared codes as strings until 2026-08."""
    bodies = iter(
        [
            {"code": "0", "message": "success", "data": {"list": [], "total": 0}},
            {"code": " 602 ", "message": "cap", "data": None},
        ]
    )
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=next(bodies)))
    with PgyClient(TEST_TOKEN, base_url="http://pgy.test", max_rps=None, transport=transport) as c:
        page = c.fetch_page(VALID_ID)
        assert (page.code, page.total, page.items) == (0, 0, [])
        with pytest.raises(SpendingCapError) as info:
            c.fetch_page(VALID_ID)
        assert info.value.code == 602
        assert dict(c.stats.outcomes) == {"0": 1, "602": 1}


def test_a_code_that_is_not_a_number_fails_naming_it_and_the_message() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, json={"code": "E42", "message": "odd", "data": None})
    )
    with PgyClient(TEST_TOKEN, base_url="http://pgy.test", max_rps=None, transport=transport) as c:
        with pytest.raises(UnexpectedResponseError) as info:
            c.fetch_page(VALID_ID)
    assert "undocumented business code 'E42'" in str(info.value) and "odd" in str(info.value)


# --------------------------------------------------------------------------------------------
# 6. Transient faults are retried and the scan still returns every note
# --------------------------------------------------------------------------------------------

TRANSIENT_CASES = [
    # kind, fault params, client outcome key, client overrides
    pytest.param("code", {"code": 301}, "301", {}, id="code-301"),
    pytest.param("code", {"code": 500}, "500", {}, id="code-500"),
    pytest.param("code", {"code": 302}, "302", {}, id="code-302"),
    pytest.param("code", {"code": 302, "retry_after": 2}, "302", {}, id="code-302-retry-after"),
    pytest.param("http_status", {"status": 502}, "http_502", {}, id="http-502-html"),
    pytest.param("http_status", {"status": 503}, "http_503", {}, id="http-503-html"),
    pytest.param("http_429", {"retry_after": 1}, "http_429", {}, id="http-429"),
    pytest.param("html", {}, "invalid_json", {}, id="html-with-200"),
    pytest.param("truncated", {}, "invalid_json", {}, id="truncated-body"),
    pytest.param("drop", {}, "connection_error", {}, id="dropped-connection"),
    pytest.param("latency", {"seconds": 1.0}, "timeout", {"timeout_s": 0.4}, id="latency-past-timeout"),
    # Chunks every 0.1 s never trip httpx's per-read timeout (0.4 s); only a whole-body deadline can.
    pytest.param(
        "trickle",
        {"seconds": 1.5, "interval": 0.1},
        "timeout",
        {"timeout_s": 0.4},
        id="trickle-past-deadline",
    ),
]


@pytest.mark.parametrize("times", [1, 2])
@pytest.mark.parametrize(("kind", "params", "outcome", "overrides"), TRANSIENT_CASES)
def test_transient_fault_is_retried_and_scan_is_complete(
    sim: Simulator, kind: str, params: dict[str, Any], outcome: str, overrides: dict[str, Any], times: int
) -> None:
    cid = creator(sim, 20, f"transient-{kind}")  # 3 pages of 8
    sim.add_fault(kind, user_id=cid, page=2, times=times, **params)
    sleeps = Sleeps()
    with make_client(sim, sleep=sleeps, **overrides) as c:
        scan = c.scan_notes(cid)

    assert ids(scan.notes) == ids(sim.notes_for(cid))
    assert scan.drift == [] and scan.stop_reason == "reached_total"
    assert sim.call_count(cid) == 3 + times
    page2 = [call for call in sim.calls if call.page == 2]
    assert len(page2) == times + 1
    assert all(kind in call.faults for call in page2[:-1]) and kind not in page2[-1].faults
    assert [p.attempts for p in scan.pages] == [1, times + 1, 1]
    assert scan.calls == 3 + times
    assert_stats(c, sim, retries=times, outcomes={"0": 3, outcome: times})
    assert len(sleeps) == times
    if "retry_after" in params:  # Retry-After is honoured exactly (no jitter)
        assert sleeps == [float(params["retry_after"])] * times


def test_code_302_backs_off_longer_than_other_transient_failures(sim: Simulator) -> None:
    cid = creator(sim, 5, "backoff302")
    sleeps = Sleeps()
    with make_client(sim, sleep=sleeps, backoff_initial_s=0.01, rate_limit_backoff_s=8.0) as c:
        sim.add_fault("code", user_id=cid, times=1, code=302)
        assert c.fetch_page(cid).attempts == 2  # 302, then success
        sim.add_fault("code", user_id=cid, times=1, code=301)
        assert c.fetch_page(cid).attempts == 2  # 301, then success
    assert [call.outcome for call in sim.calls] == [302, 0, 301, 0]
    assert len(sleeps) == 2
    assert 4.0 <= sleeps[0] <= 8.0  # rate_limit_backoff_s with jitter in [0.5, 1]
    assert 0.005 <= sleeps[1] <= 0.01  # backoff_initial_s with jitter
    assert_stats(c, sim, retries=2, outcomes={"0": 2, "301": 1, "302": 1})


def test_backoff_grows_exponentially(sim: Simulator) -> None:
    cid = creator(sim, 5, "expo")
    sim.add_fault("code", user_id=cid, times=4, code=500)
    sleeps = Sleeps()
    with make_client(sim, sleep=sleeps, backoff_initial_s=1.0, backoff_max_s=5.0, max_attempts=5) as c:
        assert c.fetch_page(cid).attempts == 5
    assert len(sleeps) == 4
    for n, s in enumerate(sleeps):
        base = min(5.0, 2.0**n)
        assert 0.5 * base <= s <= base, sleeps


# --------------------------------------------------------------------------------------------
# 7. Retries are bounded in attempts and in time
# --------------------------------------------------------------------------------------------

EXHAUST_CASES = [
    pytest.param("code", {"code": 301}, "301", "collection failed", id="code-301"),
    pytest.param("code", {"code": 500}, "500", "internal server error", id="code-500"),
    pytest.param("code", {"code": 302}, "302", "rate limit exceeded", id="code-302"),
    pytest.param("http_status", {"status": 502}, "http_502", "HTTP 502", id="http-502"),
    pytest.param("html", {}, "invalid_json", "not valid JSON", id="html"),
    pytest.param("drop", {}, "connection_error", "connection failed", id="drop"),
]


@pytest.mark.parametrize(("kind", "params", "outcome", "last_phrase"), EXHAUST_CASES)
def test_retries_are_bounded_in_attempts(
    sim: Simulator, kind: str, params: dict[str, Any], outcome: str, last_phrase: str
) -> None:
    cid = creator(sim, 5, f"exhaust-{kind}")
    sim.add_fault(kind, user_id=cid, times=None, **params)
    sleeps = Sleeps()
    with make_client(sim, max_attempts=4, sleep=sleeps) as c:
        with pytest.raises(RetriesExhaustedError) as info:
            c.scan_notes(cid)
        err = info.value
        assert not isinstance(err, TransientError)  # callers must not retry it again blindly
        assert sim.call_count(cid) == 4
        assert err.attempts == 4 and "4 attempts" in str(err)
        assert last_phrase in str(err) and last_phrase in err.last_error
        assert err.creator_id == cid and err.page == 1
        assert_stats(c, sim, retries=3, outcomes={outcome: 4})
        assert len(sleeps) == 3
        # Not an account failure: once the service recovers the same client works.
        sim.clear_faults()
        assert len(c.scan_notes(cid).notes) == 5


def test_retries_are_bounded_in_time(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a fake sleep that advances tenacity's clock, the slept total stays under max_retry_time_s."""
    cid = creator(sim, 5, "timebound")
    sim.add_fault("code", user_id=cid, times=None, code=500)
    offset = [0.0]
    sleeps = Sleeps()

    def fake_sleep(seconds: float) -> None:
        sleeps(seconds)
        offset[0] += seconds

    monkeypatch.setattr(tenacity, "time", SimpleNamespace(monotonic=lambda: time.monotonic() + offset[0]))
    with make_client(
        sim, sleep=fake_sleep, backoff_initial_s=1.0, backoff_max_s=1.0, max_retry_time_s=3.0, max_attempts=50
    ) as c:
        with pytest.raises(RetriesExhaustedError) as info:
            c.fetch_page(cid)
    calls = sim.call_count(cid)
    assert 3 <= calls < 50  # stopped by time, not by attempts
    assert info.value.attempts == calls == len(sleeps) + 1
    assert sum(sleeps) < 3.0
    assert c.stats.calls == calls and c.stats.retries == len(sleeps)


def test_retry_after_beyond_the_time_budget_gives_up_at_once(sim: Simulator) -> None:
    cid = creator(sim, 5, "retryafter-budget")
    sim.add_fault("code", user_id=cid, times=None, code=302, retry_after=10)
    sleeps = Sleeps()
    with make_client(sim, sleep=sleeps, max_retry_time_s=5.0, max_attempts=10) as c:
        with pytest.raises(RetriesExhaustedError) as info:
            c.fetch_page(cid)
    assert sleeps == [] and sim.call_count(cid) == 1 and info.value.attempts == 1
    assert info.value.code == 302


# --------------------------------------------------------------------------------------------
# 8. List drift while paging
# --------------------------------------------------------------------------------------------


def test_drift_notes_inserted_while_paging(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 20, "drift-insert")
    before = ids(sim.notes_for(cid))
    sim.add_fault("insert_notes", user_id=cid, page=2, times=1, n=1)
    scan = client.scan_notes(cid)
    assert len(sim.notes_for(cid)) == 21
    assert scan.totals_seen[0] == 20 and 21 in scan.totals_seen
    assert any("total changed" in d and "20 -> 21" in d for d in scan.drift), scan.drift
    assert scan.duplicate_note_ids == [before[7]]  # pushed from page 1 onto page 2
    assert any("more than one page" in d for d in scan.drift)
    got = ids(scan.notes)
    assert len(got) == len(set(got)) and set(got) == set(before)
    assert any("collected 20 distinct notes but the service reports total 21" in d for d in scan.drift)
    assert client.stats.calls == sim.call_count() and client.stats.retries == 0


def test_drift_notes_removed_while_paging(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 20, "drift-remove")
    before = ids(sim.notes_for(cid))
    sim.add_fault("remove_notes", user_id=cid, page=2, times=1, n=1)
    scan = client.scan_notes(cid)
    assert any("total changed" in d and "20 -> 19" in d for d in scan.drift), scan.drift
    got = ids(scan.notes)
    assert len(got) == len(set(got)) and before[8] not in got  # shifted past the page boundary, reported
    assert client.stats.calls == sim.call_count() and client.stats.retries == 0


def test_drift_duplicates_across_pages_are_kept_once(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 20, "drift-dup")
    before = ids(sim.notes_for(cid))
    sim.add_fault("duplicate_across_pages", user_id=cid, times=None)
    scan = client.scan_notes(cid)
    assert ids(scan.notes) == before  # every note, once, in order
    assert scan.duplicate_note_ids and set(scan.duplicate_note_ids) <= set(before)
    assert sum(len(p.items) for p in scan.pages) == len(before) + len(scan.duplicate_note_ids)
    assert any("appeared on more than one page" in d and scan.duplicate_note_ids[0] in d for d in scan.drift)
    assert client.stats.calls == sim.call_count() and client.stats.retries == 0


def test_drift_total_changes_between_pages(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 20, "drift-delta-once")
    sim.add_fault("total_delta", user_id=cid, page=2, times=1, delta=3)
    scan = client.scan_notes(cid)
    assert scan.totals_seen == [20, 23, 20]
    assert any("total changed while paging: 20 -> 23 -> 20" in d for d in scan.drift), scan.drift
    assert ids(scan.notes) == ids(sim.notes_for(cid))


def test_drift_total_disagrees_with_notes(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 20, "drift-delta-always")
    sim.add_fault("total_delta", user_id=cid, times=None, delta=5)
    scan = client.scan_notes(cid)
    assert ids(scan.notes) == ids(sim.notes_for(cid))
    assert scan.stop_reason == "empty_page" and sim.call_count(cid) == 4
    assert any("collected 20 distinct notes but the service reports total 25" in d for d in scan.drift)


# --------------------------------------------------------------------------------------------
# 9. Invalid input is refused before any call
# --------------------------------------------------------------------------------------------

_B = creator_ids(1, prefix="bad")[0]
assert _B != _B.upper()  # the uppercase case below must differ from a valid id
BAD_CREATOR_IDS = [
    pytest.param("", id="empty"),
    pytest.param("abc", id="short"),
    pytest.param(_B[:23], id="23-hex"),
    pytest.param(_B + "a", id="25-hex"),
    pytest.param(_B.upper(), id="uppercase-hex"),
    pytest.param(_B[:12] + "|" + _B[13:], id="pipe"),
    pytest.param(_B[:12] + "," + _B[13:], id="comma"),
    pytest.param(_B[:12] + " " + _B[13:], id="inner-space"),
    pytest.param(" " + _B, id="leading-space"),
    pytest.param(_B + " ", id="trailing-space"),
    pytest.param(_B + "\n", id="trailing-newline"),
    pytest.param("x'; DROP TABLE notes;--", id="sql"),
    pytest.param("a" * 10_000, id="10000-chars"),
    pytest.param(_B[:23] + "é", id="non-ascii"),
    pytest.param("５" * 24, id="fullwidth-digits"),
    pytest.param("٣" * 24, id="arabic-indic-digits"),
    pytest.param(None, id="none"),
    pytest.param(int("1" * 24), id="int"),
]


@pytest.mark.parametrize("bad", BAD_CREATOR_IDS)
def test_invalid_creator_id_is_refused_before_any_call(sim: Simulator, client: PgyClient, bad: Any) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: client.fetch_page(bad),
        lambda: client.scan_notes(bad),
        lambda: list(client.iter_pages(bad)),
    ]
    for call in calls:
        with pytest.raises(InvalidCreatorIdError) as info:
            call()
        err = info.value
        assert isinstance(err, InvalidInputError) and isinstance(err, ValueError)
        assert "24 lowercase hexadecimal" in str(err) and "No API call was made" in str(err)
        assert len(str(err)) < 400  # a 10,000-character id is shortened in the message
    if isinstance(bad, str) and bad.upper() == bad and len(bad) == 24 and bad.isascii() and bad.isalnum():
        assert "lowercase" in str(err)
    assert sim.call_count() == 0 and client.stats.calls == 0


BAD_QUERY_VALUES = [
    pytest.param("advertise_switch", "SOME", "advertiseSwitch", ("ALL", "ORGANIC_ONLY"), id="advertise-SOME"),
    pytest.param("advertise_switch", "all", "advertiseSwitch", ("ALL", "ORGANIC_ONLY"), id="advertise-lower"),
    pytest.param(
        "order_type", "latest", "orderType", ("LATEST", "MOST_READ", "MOST_INTERACT"), id="order-lower"
    ),
    pytest.param(
        "order_type", "NEWEST", "orderType", ("LATEST", "MOST_READ", "MOST_INTERACT"), id="order-bad"
    ),
    pytest.param(
        "note_type", "IMAGE", "noteType", ("ALL", "COOPERATION", "PHOTO_TEXT", "VIDEO"), id="note-type-bad"
    ),
    pytest.param(
        "note_type", "VIDEO ", "noteType", ("ALL", "COOPERATION", "PHOTO_TEXT", "VIDEO"), id="note-type-space"
    ),
    pytest.param("is_third_platform", "TRUE", "isThirdPlatform", ("NO", "YES"), id="third-TRUE"),
    pytest.param("is_third_platform", True, "isThirdPlatform", ("NO", "YES"), id="third-bool"),
    pytest.param("is_third_platform", "", "isThirdPlatform", ("NO", "YES"), id="third-empty"),
    pytest.param("order_type", None, "orderType", ("LATEST", "MOST_READ", "MOST_INTERACT"), id="order-none"),
]


@pytest.mark.parametrize(("field_name", "value", "param_name", "allowed"), BAD_QUERY_VALUES)
def test_invalid_query_value_names_parameter_and_allowed_values(
    sim: Simulator, field_name: str, value: Any, param_name: str, allowed: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        NotesQuery(**{field_name: value})
    message = str(info.value)
    assert param_name in message
    assert " | ".join(allowed) in message
    assert repr(value) in message
    assert sim.call_count() == 0


@pytest.mark.parametrize("page_number", [0, -1, 1.5, "2", None])
def test_invalid_page_number_is_refused_before_any_call(
    sim: Simulator, client: PgyClient, page_number: Any
) -> None:
    with pytest.raises(InvalidParameterError) as info:
        client.fetch_page(VALID_ID, page_number)
    assert "pageNumber" in str(info.value) and ">= 1" in str(info.value)
    assert sim.call_count() == 0 and client.stats.calls == 0


def test_bool_page_number_is_refused_before_any_call(sim: Simulator, client: PgyClient) -> None:
    with pytest.raises(InvalidParameterError):
        client.fetch_page(VALID_ID, True)
    assert sim.call_count() == 0


@pytest.mark.parametrize(
    "overrides",
    [
        {"timeout_s": 0},
        {"max_attempts": 0},
        {"max_pages": 0},
        {"max_rps": 0},
        {"max_rps": -1.0},
        {"max_concurrency": 0},
    ],
)
def test_invalid_client_settings_are_refused(sim: Simulator, overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError):
        make_client(sim, **overrides)
    with pytest.raises(InvalidParameterError, match="token"):
        PgyClient("", base_url=sim.base_url)
    assert sim.call_count() == 0


# --------------------------------------------------------------------------------------------
# 10. Documented parameters and defaults
# --------------------------------------------------------------------------------------------


def test_every_documented_parameter_is_sent_with_its_default(sim: Simulator, client: PgyClient) -> None:
    cid = creator(sim, 12, "defaults")
    client.scan_notes(cid)
    assert len(sim.calls) == 2
    for n, call in enumerate(sim.calls, start=1):
        assert call.params == {
            "userId": cid,
            "advertiseSwitch": "ALL",
            "orderType": "LATEST",
            "noteType": "ALL",
            "isThirdPlatform": "NO",
            "pageNumber": str(n),
        }
        assert call.token_ok


def _mixed_creator(sim: Simulator) -> str:
    """A creator whose 80 notes include ads and organic notes, videos and photos, third-party reads or not."""
    for cid in creator_ids(60, prefix="mixed"):
        sim.set_note_count(cid, 80)
        notes = sim.notes_for(cid)
        flags = [{n["isAdvertise"] for n in notes}, {n["isVideo"] for n in notes}]
        flags.append({n["thirdReadUserNum"] > 0 for n in notes})
        if all(f == {True, False} for f in flags):
            return cid
    raise AssertionError("no creator with mixed notes")


def _by(*keys: str) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    return lambda notes: sorted(notes, key=lambda n: (sum(n[k] for k in keys), n["noteId"]), reverse=True)


NON_DEFAULT_CASES = [
    pytest.param(
        {"advertise_switch": "ORGANIC_ONLY"}, "advertiseSwitch", "ORGANIC_ONLY",
        lambda ns: [n for n in ns if not n["isAdvertise"]], id="ORGANIC_ONLY",
    ),
    pytest.param(
        {"advertise_switch": AdvertiseSwitch.ORGANIC_ONLY}, "advertiseSwitch", "ORGANIC_ONLY",
        lambda ns: [n for n in ns if not n["isAdvertise"]], id="ORGANIC_ONLY-enum",
    ),
    pytest.param({"order_type": "MOST_READ"}, "orderType", "MOST_READ", _by("readNum"), id="MOST_READ"),
    pytest.param(
        {"order_type": OrderType.MOST_INTERACT}, "orderType", "MOST_INTERACT", _by("likeNum", "collectNum"),
        id="MOST_INTERACT",
    ),
    pytest.param(
        {"note_type": "VIDEO"}, "noteType", "VIDEO", lambda ns: [n for n in ns if n["isVideo"]], id="VIDEO"
    ),
    pytest.param(
        {"note_type": "PHOTO_TEXT"}, "noteType", "PHOTO_TEXT", lambda ns: [n for n in ns if not n["isVideo"]],
        id="PHOTO_TEXT",
    ),
    pytest.param(
        {"note_type": "COOPERATION"}, "noteType", "COOPERATION", lambda ns: [n for n in ns if n["isAdvertise"]],
        id="COOPERATION",
    ),
    pytest.param(
        {"is_third_platform": "YES"}, "isThirdPlatform", "YES",
        lambda ns: [n for n in ns if n["thirdReadUserNum"] > 0], id="YES",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("query_kwargs", "param", "value", "expect"), NON_DEFAULT_CASES)
def test_non_default_values_are_passed_through_and_honoured(
    sim: Simulator,
    client: PgyClient,
    query_kwargs: dict[str, Any],
    param: str,
    value: str,
    expect: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
) -> None:
    cid = _mixed_creator(sim)
    everything = sim.notes_for(cid)
    expected = ids(expect(everything))
    assert 0 < len(expected)
    sim.reset_stats()
    scan = client.scan_notes(cid, NotesQuery(**query_kwargs))
    assert ids(scan.notes) == expected
    assert sim.call_count(cid) == max(1, math.ceil(len(expected) / sim.page_size))
    defaults = {"advertiseSwitch": "ALL", "orderType": "LATEST", "noteType": "ALL", "isThirdPlatform": "NO"}
    for n, call in enumerate(sim.calls, start=1):
        assert call.params == {**defaults, param: value, "userId": cid, "pageNumber": str(n)}
    assert scan.pages[0].params[param] == value
    if param == "advertiseSwitch":
        assert all(n["isAdvertise"] is False for n in scan.notes)


def test_all_non_default_values_together(sim: Simulator, client: PgyClient) -> None:
    cid = _mixed_creator(sim)
    query = NotesQuery(
        advertise_switch="ORGANIC_ONLY", order_type="MOST_READ", note_type="VIDEO", is_third_platform="YES"
    )
    client.fetch_page(cid, 1, query)
    assert sim.calls[-1].params == {
        "userId": cid,
        "advertiseSwitch": "ORGANIC_ONLY",
        "orderType": "MOST_READ",
        "noteType": "VIDEO",
        "isThirdPlatform": "YES",
        "pageNumber": "1",
    }


# --------------------------------------------------------------------------------------------
# 11. Pacing: requests per second and requests in flight
# --------------------------------------------------------------------------------------------


def test_max_rps_spaces_request_starts(sim: Simulator) -> None:
    cid = creator(sim, 160, "rps")  # 20 pages
    with make_client(sim, max_rps=20) as c:
        scan = c.scan_notes(cid)
    assert len(scan.notes) == 160
    arrivals = [call.at for call in sim.calls]
    assert len(arrivals) == 20
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert arrivals[-1] - arrivals[0] >= 0.9 * 19 / 20  # lower bounds only: the machine may be slow
    assert statistics.median(gaps) >= 0.8 / 20


def test_max_rps_is_shared_across_threads(sim: Simulator) -> None:
    cids = creator_ids(4, prefix="rps-threads")
    for cid in cids:
        sim.set_note_count(cid, 40)  # 5 pages each, 20 calls in all
    with make_client(sim, max_rps=20, max_concurrency=4) as c:
        threads = [threading.Thread(target=c.scan_notes, args=(cid,)) for cid in cids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    arrivals = sorted(call.at for call in sim.calls)
    assert len(arrivals) == 20
    assert arrivals[-1] - arrivals[0] >= 0.9 * 19 / 20


def test_max_concurrency_caps_requests_in_flight(sim: Simulator) -> None:
    cids = creator_ids(4, prefix="concurrency")
    for cid in cids:
        sim.set_note_count(cid, 5)  # one page each
    sim.add_fault("latency", times=None, seconds=0.3)
    results: dict[str, list[str]] = {}
    with make_client(sim, max_concurrency=2) as c:

        def run(cid: str) -> None:
            results[cid] = ids(c.scan_notes(cid).notes)

        threads = [threading.Thread(target=run, args=(cid,)) for cid in cids]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
    assert results == {cid: ids(sim.notes_for(cid)) for cid in cids}
    assert elapsed >= 0.55
    arrivals = sorted(call.at for call in sim.calls)
    assert len(arrivals) == 4
    # A third request may only start once one of the two before it has been answered (>= 0.3 s later).
    for a, b in zip(arrivals, arrivals[2:], strict=False):
        assert b - a >= 0.29, arrivals


def test_call_waiting_for_a_slot_is_refused_once_the_breaker_opens(sim: Simulator) -> None:
    first, second = creator_ids(2, prefix="breaker-race")
    sim.add_fault("latency", user_id=first, times=1, seconds=0.6)
    sim.add_fault("code", user_id=first, times=1, code=303)
    outcome: dict[str, Any] = {}
    with make_client(sim, max_concurrency=1) as c:

        def run(cid: str) -> None:
            try:
                outcome[cid] = c.fetch_page(cid)
            except PgyError as exc:
                outcome[cid] = exc

        ta = threading.Thread(target=run, args=(first,))
        ta.start()
        deadline = time.monotonic() + 5
        while sim.call_count(first) == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        tb = threading.Thread(target=run, args=(second,))  # queues behind the slow 303 call
        tb.start()
        ta.join()
        tb.join()
    assert isinstance(outcome[first], QuotaExceededError)
    assert sim.call_count(second) == 0
    assert isinstance(outcome[second], CircuitOpenError)


# --------------------------------------------------------------------------------------------
# 12. The token never leaks
# --------------------------------------------------------------------------------------------


def _texts_of(err: BaseException) -> list[str]:
    """str/repr/args/fields/formatted traceback of an error and everything chained to it."""
    texts: list[str] = []
    todo: list[BaseException | None] = [err]
    seen: set[int] = set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        texts += [str(e), repr(e), repr(e.args), "".join(traceback.format_exception(e))]
        if isinstance(e, PgyError):
            texts.append(repr(vars(e)))
        if isinstance(e, RetryError):
            todo.append(e.last_attempt.exception())
        todo += [e.__cause__, e.__context__]
    return texts


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _collect_errors(sim: Simulator) -> tuple[list[BaseException], list[PgyClient]]:
    """Force every kind of error, with service messages that echo the token."""
    echo = f"token {TEST_TOKEN} rejected"
    cid = creator(sim, 20, "leak")
    errors: list[BaseException] = []
    clients: list[PgyClient] = []

    def capture(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except PgyError as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected an error")

    fast = dict(max_attempts=2, timeout_s=0.3)
    exhausting: list[tuple[str, dict[str, Any]]] = [
        ("code", {"code": 500, "message": echo}),
        ("code", {"code": 301, "message": echo}),
        ("code", {"code": 302, "message": echo, "retry_after": 0}),
        ("http_status", {"status": 502}),
        ("http_429", {"retry_after": 0}),
        ("html", {}),
        ("truncated", {}),
        ("drop", {}),
        ("latency", {"seconds": 0.6}),
        ("trickle", {"seconds": 1.0, "interval": 0.05}),
    ]
    for kind, params in exhausting:
        sim.clear_faults()
        sim.add_fault(kind, user_id=cid, page=2, times=None, **params)
        with make_client(sim, **fast) as c:
            clients.append(c)
            capture(lambda c=c: c.scan_notes(cid))
    sim.clear_faults()
    for code in (400, 999):
        sim.add_fault("code", user_id=cid, times=1, code=code, message=echo)
        with make_client(sim) as c:
            clients.append(c)
            capture(lambda c=c: c.fetch_page(cid))
    for code in (100, 303, 600, 601):
        reset_circuit_breakers()
        sim.add_fault("code", user_id=cid, times=1, code=code, message=echo)
        with make_client(sim) as c:
            clients.append(c)
            capture(lambda c=c: c.fetch_page(cid))
            capture(lambda c=c: c.fetch_page(cid))  # CircuitOpenError
    reset_circuit_breakers()
    with PgyClient(TEST_TOKEN, base_url=f"http://127.0.0.1:{_closed_port()}", max_attempts=2,
                   backoff_initial_s=0.001, max_rps=None) as c:  # fmt: skip
        clients.append(c)
        capture(lambda: c.fetch_page(cid))
    with make_client(sim) as c:
        clients.append(c)
        capture(lambda: c.fetch_page("x'; DROP TABLE notes;--"))
        capture(lambda: NotesQuery(order_type="latest"))
    return errors, clients


def test_token_never_leaks(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "pgy_pipeline", "pgy_pipeline.api.client", "pgy_pipeline.api.transport"):
        caplog.set_level(logging.DEBUG, logger=name)

    errors, clients = _collect_errors(sim)
    kinds = {type(e) for e in errors}
    assert {
        RetriesExhaustedError, InvalidRequestError, UnexpectedResponseError, AuthError, QuotaExceededError,
        PermissionDeniedError, InsufficientBalanceError, CircuitOpenError, InvalidCreatorIdError,
        InvalidParameterError,
    } <= kinds  # fmt: skip
    last_failures = " ".join(e.last_error for e in errors if isinstance(e, RetriesExhaustedError))
    for phrase in ("connection failed", "timeout", "not valid JSON", "HTTP 502", "rate limit"):
        assert phrase in last_failures

    # Pages of a successful scan.
    with make_client(sim) as c:
        clients.append(c)
        scan = c.scan_notes(creator(sim, 20, "leak-ok"))
    page_texts = [repr(p.params) + p.body_text for p in scan.pages] + [repr(scan)]

    # httpx's request log really was captured (and shows the URL, redacted).
    httpx_records = [r for r in caplog.records if r.name == "httpx" and "HTTP Request" in r.getMessage()]
    assert httpx_records and all("token=***" in r.getMessage() for r in httpx_records)

    haystacks = [r.getMessage() for r in caplog.records]
    haystacks += [t for e in errors for t in _texts_of(e)]
    haystacks += [repr(c) + str(c) for c in clients] + page_texts
    haystacks += [caplog.text]
    assert len(haystacks) > 100
    assert [h for h in haystacks if TEST_TOKEN in h] == []


def test_token_with_url_special_characters_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    token = "tok+PGY/special=1"
    caplog.set_level(logging.DEBUG)
    with Simulator(token=token, now=lambda: NOW) as special:
        with PgyClient(token, base_url=special.base_url, max_rps=None) as c:
            c.fetch_page(VALID_ID)
        assert special.calls[0].token_ok
    messages = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request" in m for m in messages)
    for form in (token, quote(token, safe=""), quote_plus(token)):
        assert not [m for m in messages if form in m], form


# --------------------------------------------------------------------------------------------
# 13. Errors survive pickling (Dagster moves them between processes)
# --------------------------------------------------------------------------------------------


def _error_classes() -> list[type[PgyError]]:
    found: list[type[PgyError]] = []
    todo: list[type[PgyError]] = [PgyError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == errors_module.__name__ and cls not in found:
            found.append(cls)
        todo += cls.__subclasses__()
    return sorted(found, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_errors_survive_pickling_with_their_fields(cls: type[PgyError]) -> None:
    extra: dict[str, Any] = {}
    if issubclass(cls, RateLimitedError):
        extra = {"retry_after_s": 2.5}
    if issubclass(cls, RetriesExhaustedError):
        extra = {"attempts": 4, "last_error": "collection failed (301)"}
    err = cls(
        "daily quota exceeded",
        code=303,
        service_message="Daily Quota Exceeded",
        creator_id=VALID_ID,
        page=2,
        http_status=200,
        **extra,
    )
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is cls
    assert vars(clone) == vars(err)
    assert (clone.code, clone.service_message, clone.creator_id, clone.page, clone.http_status) == (
        303, "Daily Quota Exceeded", VALID_ID, 2, 200,
    )  # fmt: skip
    for key, value in extra.items():
        assert getattr(clone, key) == value
    assert str(clone) == str(err) and clone.args == err.args


def test_errors_raised_by_the_client_survive_pickling(sim: Simulator) -> None:
    cid = creator(sim, 5, "pickle")
    raised: list[PgyError] = []
    sim.add_fault("code", user_id=cid, times=None, code=301)
    with make_client(sim, max_attempts=2) as c:
        with pytest.raises(RetriesExhaustedError) as info:
            c.fetch_page(cid)
        raised.append(info.value)
        sim.clear_faults()
        sim.add_fault("code", user_id=cid, times=1, code=601)
        for expected in (InsufficientBalanceError, CircuitOpenError):
            with pytest.raises(expected) as info:
                c.fetch_page(cid)
            raised.append(info.value)
        with pytest.raises(InvalidCreatorIdError) as info:
            c.fetch_page("nope")
        raised.append(info.value)
    for err in raised:
        clone = pickle.loads(pickle.dumps(err))
        assert type(clone) is type(err) and vars(clone) == vars(err) and str(clone) == str(err)
    assert raised[0].attempts == 2 and pickle.loads(pickle.dumps(raised[0])).attempts == 2
