"""The shared transport of every Just One API endpoint: one place for what each call needs.

Nothing here knows an endpoint's parameters or the shape of its data: an
:class:`~pgy_pipeline.api.endpoint.Endpoint` declares those, and :meth:`Transport.call` sends one
request for it and returns the answer's body once its business code says it worked. Nothing here
knows Dagster or DuckDB either.

What every call gets:

* **Business codes decide.** A response's ``code`` field, not its HTTP status, says whether a call
  worked. 301, 500, HTTP 5xx/429, timeouts, dropped connections and bodies that are not JSON are
  retried with exponential backoff and jitter (tenacity; :class:`RetryPolicy`), bounded in attempts
  and in time, except a non-JSON client error page (HTTP 4xx other than 408/425), which no retry would
  heal; 302 and 503 back off longer, 302 honouring ``Retry-After``. 100, 101, 300, 303, 600, 601 and
  602 are terminal for the account: the call is not retried and a process-wide circuit breaker
  refuses every later call, because each one would fail or be billed. 201, 202, 400 and 404 are
  terminal for that request (201 is billed: never retried). Any other code fails, naming it and the
  service's message. :data:`CODE_TABLE` says why for each code; an endpoint may add codes of its own.
* **Pacing.** A limit on request starts per second and on requests in flight
  (:class:`~pgy_pipeline.api.pacing.Pacer`; adaptive: :class:`~pgy_pipeline.api.pacing.AdaptivePacer`;
  across processes: :class:`~pgy_pipeline.api.shared_pacing.PostgresPacer`), shared by every endpoint
  of one client, because the service limits the token.
* **Hooks.** :class:`~pgy_pipeline.api.ledger.CallHooks` hear of every HTTP attempt before and after
  (the billing ledger, the daily budget); each :class:`~pgy_pipeline.api.ledger.ApiCall` names its
  endpoint.
* **A whole-body deadline.** httpx times each read, not the body: a body still trickling in after
  ``timeout_s`` is a timeout.
* **Accounting.** :class:`CallStats` counts calls, retries and outcomes, so a run can say what it cost.
* **The token stays secret.** It is only ever placed in the outgoing query string; reprs, errors and
  log records (including httpx's own request log) never show it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_before_delay

from pgy_pipeline import clock
from pgy_pipeline.api.endpoint import Endpoint, Where
from pgy_pipeline.api.ledger import ApiCall, CallHooks, code_in_body, is_billed
from pgy_pipeline.api.pacing import Pacer
from pgy_pipeline.api.redaction import REDACTOR, redact
from pgy_pipeline.api.shared_pacing import PostgresPacer
from pgy_pipeline.errors import (
    AccountError,
    AccountRejectedError,
    ApiError,
    AuthError,
    CircuitOpenError,
    InsufficientBalanceError,
    InvalidParameterError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
    RetriesExhaustedError,
    ServiceUnavailableError,
    SpendingCapError,
    TransientError,
    UnexpectedResponseError,
    UnsupportedTargetError,
    UsageLimitError,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.justoneapi.com"


# --------------------------------------------------------------------------------------------
# Accounting and the circuit breaker
# --------------------------------------------------------------------------------------------


@dataclass
class CallStats:
    """What a client spent: HTTP calls made, retries, and outcomes by business code or fault."""

    calls: int = 0
    retries: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, outcome: str) -> None:
        with self._lock:
            self.calls += 1
            self.outcomes[outcome] += 1

    def record_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "retries": self.retries,
                "outcomes": dict(sorted(self.outcomes.items())),
            }


class CircuitBreaker:
    """Opens on the first account-level failure and then refuses every call in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tripped_by: AccountError | None = None

    def trip(self, error: AccountError) -> None:
        with self._lock:
            if self.tripped_by is None:
                self.tripped_by = error

    def check(self, creator_id: str | None, page: int | None) -> None:
        error = self.tripped_by
        if error is not None:
            raise CircuitOpenError(
                f"call refused without reaching the service: an earlier call failed with "
                f"'{error.message}', and every further call would fail or be billed",
                code=error.code,
                service_message=error.service_message,
                creator_id=creator_id,
                page=page,
            )


_BREAKERS: dict[tuple[str, str], CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def circuit_breaker_for(base_url: str, token: str) -> CircuitBreaker:
    """The process-wide breaker of one account (keyed by a hash of the token, never the token)."""
    key = (base_url.rstrip("/"), hashlib.sha256(token.encode()).hexdigest())
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(key, CircuitBreaker())


def reset_circuit_breakers() -> None:
    """Close every breaker in this process (for tests and for an operator's explicit reset)."""
    with _BREAKERS_LOCK:
        _BREAKERS.clear()


# --------------------------------------------------------------------------------------------
# The code table and the retry policy
# --------------------------------------------------------------------------------------------

# Every business code the vendor documents, and what the client does with it. Sources: the endpoint's
# page (0, 100, 301, 302, 303, 400, 500, 600, 601), the vendor's API usage guide (201, and its billing
# table: only 0 and 201 are billed) and the code enum of its OpenAPI document (101, 202, 300, 404, 503,
# 602, which no vendor text explains). A code absent from the billing table is taken as not billed.
#
# * Account codes (an AccountError): every further call would fail, or be billed for nothing. The call
#   is not retried, the process-wide breaker opens, and the asset sets the stored guard.
# * Transient codes (a TransientError): retried with backoff within the attempt and time budgets.
# * Request codes (any other ApiError): that request fails, nothing else stops.
CODE_TABLE: dict[int, tuple[type[ApiError], str]] = {
    # --- account: no retry, breaker, guard ---
    100: (AuthError, "API token invalid or inactive: check JUSTONEAPI_TOKEN; no further calls will be made"),
    # Undocumented (an enum member only). It sits next to 100, so it is most likely about the token or
    # the account: stopping costs a pause, calling on could cost money. An operator clears the guard.
    101: (
        AccountRejectedError,
        "the service rejected the token or account (101, undocumented; treated like 100): check the "
        "Just One API account and JUSTONEAPI_TOKEN; no further calls will be made",
    ),
    # Undocumented; the only vendor text is a fixture of its SDK's tests that pairs 300 with "quota
    # exceeded". Handled like the daily quota: calls pause until tomorrow and then resume by themselves,
    # so a wrong guess costs at most a day, while calling on through a quota would fail every call.
    300: (
        UsageLimitError,
        "usage limit reached (300, undocumented; the vendor's SDK pairs it with 'quota exceeded'): "
        "treated like the daily quota, no more calls until tomorrow (Asia/Shanghai)",
    ),
    303: (QuotaExceededError, "daily quota exceeded: no more calls until tomorrow (Asia/Shanghai)"),
    600: (PermissionDeniedError, "permission denied: this account may not call this endpoint"),
    601: (InsufficientBalanceError, "insufficient balance: top up the Just One API account, then retry"),
    # A per-token spending cap. No vendor text says when (or whether) it resets, so it is not treated
    # as a daily quota: calls stay paused until an operator has raised the cap and clears the guard.
    602: (
        SpendingCapError,
        "spending cap reached (602): this token's spending limit is used up; raise it in the Just One "
        "API console, then clear the guard; no further calls will be made",
    ),
    # --- transient: retried ---
    301: (TransientError, "collection failed on the service side (301): retrying"),
    302: (RateLimitedError, "rate limit exceeded (302): backing off"),
    500: (TransientError, "internal server error on the service side (500): retrying"),
    # The OpenAPI document's HTTP 503 reads "Service temporarily unavailable": worth retrying, after
    # the longer waits of a rate limit, so the retries do not land while the service is still down.
    503: (ServiceUnavailableError, "service temporarily unavailable (503): retrying after a longer wait"),
    # --- this request fails, no retry ---
    # "No Content Available": the resource does not exist, and the vendor bills it. A retry would be
    # billed again for the same answer, so it is never retried.
    201: (
        NotFoundError,
        "no content (201): the service found nothing for this request (a wrong id, or the creator left "
        "the marketplace); not retried, because every 201 is billed",
    ),
    # "Some items are not supported; ... code is 202 and retrying will not help" (OpenAPI text of
    # other endpoints).
    202: (
        UnsupportedTargetError,
        "not supported (202): the endpoint does not support this target; retrying would not help",
    ),
    400: (
        InvalidRequestError,
        "the service rejected the request's parameters (400): check the creator id and query; "
        "retrying would not help",
    ),
    # Undocumented as a business code. A wrong or retired path comes back from the gateway without a
    # 'code' field, so a 404 code is the service saying that what was asked for does not exist: the
    # request fails, not retried (not billed, but a retry would get the same answer).
    404: (
        NotFoundError,
        "not found (404, undocumented business code): the service has nothing for this request; not retried",
    ),
}


def _business_code(value: object) -> int | None:
    """The body's ``code`` as an int: the vendor's OpenAPI document declared codes as strings until
    2026-08, so ``"0"`` counts as 0. None when it is not a whole number (an undocumented code)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How long a failing request keeps trying: bounded in attempts and in time, with full jitter."""

    max_attempts: int = 5
    max_retry_time_s: float = 300.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    rate_limit_backoff_s: float = 10.0  # 302 / 503: the longer first step

    def wait_s(self, error: BaseException | None, attempt: int, pacer: Pacer, jitter: float) -> float:
        """The wait before retry ``attempt + 1`` after ``error``; ``jitter`` is uniform in [0, 1)."""
        if isinstance(error, RateLimitedError | ServiceUnavailableError):
            if isinstance(error, RateLimitedError) and error.retry_after_s is not None:
                return min(error.retry_after_s, self.max_retry_time_s)
            paced = pacer.rate_limit_wait_s(attempt) if isinstance(error, RateLimitedError) else None
            base = paced if paced is not None else self.rate_limit_backoff_s * 2.0 ** (attempt - 1)
        else:
            base = self.backoff_initial_s * 2.0 ** (attempt - 1)
        # Full jitter on top of the exponential step keeps parallel workers from retrying in lockstep.
        return float(min(self.backoff_max_s, base) * (0.5 + jitter / 2))


@dataclass(frozen=True)
class Answer:
    """A successful answer (business code 0): the parsed body, its text verbatim, and the attempts it took."""

    body: dict[str, Any]
    text: str
    attempts: int


@dataclass
class _Exchange:
    """What came back from one HTTP attempt, before any judgement of it."""

    raw: bytes = b""
    status: int | None = None
    retry_after: float | None = None
    failed_as: str = ""  # "timeout" or "connection_error" when no whole answer came
    failure: TransientError | None = None


# --------------------------------------------------------------------------------------------
# The transport
# --------------------------------------------------------------------------------------------


class Transport:
    """Sends requests for any :class:`~pgy_pipeline.api.endpoint.Endpoint`, with validation of the
    answer's envelope, retries, pacing, accounting, billing hooks and a circuit breaker."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = 60.0,
        max_attempts: int = 5,
        max_retry_time_s: float = 300.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        rate_limit_backoff_s: float = 10.0,
        max_rps: float | None = 2.0,
        max_concurrency: int = 4,
        max_pages: int = 1000,
        pacing_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        pacer: Pacer | None = None,
        hooks: CallHooks | None = None,
    ) -> None:
        if not token:
            raise InvalidParameterError("an API token is required (set JUSTONEAPI_TOKEN)")
        if timeout_s <= 0:
            raise InvalidParameterError(f"timeout_s must be positive, got {timeout_s!r}")
        if max_attempts < 1 or max_pages < 1:
            raise InvalidParameterError("max_attempts and max_pages must be at least 1")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retry = RetryPolicy(
            max_attempts, max_retry_time_s, backoff_initial_s, backoff_max_s, rate_limit_backoff_s
        )
        self.max_pages = max_pages
        self.pacer: Pacer = _pacer(pacer, pacing_url, token, max_rps, max_concurrency)
        self.hooks = hooks
        self.stats = CallStats()
        self.breaker = circuit_breaker_for(self.base_url, token)
        self._sleep = sleep
        self._random = random.Random()
        # httpx logs the URL with the token percent-encoded: redact every form it can take.
        REDACTOR.secrets.update({token, quote(token, safe=""), quote_plus(token)})
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            headers={"User-Agent": "pgy_pipeline"},
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, token=***)"

    def close(self) -> None:
        self._http.close()
        self.pacer.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request, retried ----------------------------------------------------------------

    def call(self, endpoint: Endpoint, params: dict[str, str], where: Where) -> Answer:
        """Send one request for ``endpoint``, retrying transient failures; raise a typed error otherwise."""
        attempts = 0

        def attempt() -> tuple[dict[str, Any], str]:
            nonlocal attempts
            attempts += 1
            return self._request_once(endpoint, params, where, attempts)

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.retry.max_attempts) | stop_before_delay(self.retry.max_retry_time_s),
            wait=self._wait_s,
            sleep=self._sleep,
            before_sleep=lambda state: self.stats.record_retry(),
        )
        try:
            body, text = retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            assert isinstance(last, ApiError)
            raise _exhausted(last, attempts, where) from None
        return Answer(body, text, attempts)

    def _wait_s(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return self.retry.wait_s(error, state.attempt_number, self.pacer, self._random.random())

    def _request_once(
        self, endpoint: Endpoint, params: dict[str, str], where: Where, attempt: int
    ) -> tuple[dict[str, Any], str]:
        """One HTTP call; returns (body, body text) on code 0, else raises a typed error.

        The hooks hear of it before (they may refuse it) and after (with its :class:`ApiCall`).
        """
        creator_id, page = where.get("creator_id", ""), where.get("page", 1)
        self.breaker.check(creator_id, page)
        hooks = self.hooks
        sent: list[ApiCall] = []
        if hooks is None:
            return self._attempt(endpoint, params, where, attempt, sent)
        hooks.before_call(creator_id, page)
        try:
            return self._attempt(endpoint, params, where, attempt, sent)
        finally:
            hooks.after_call(creator_id, sent[0] if sent else None)

    def _attempt(
        self, endpoint: Endpoint, params: dict[str, str], where: Where, attempt: int, sent: list[ApiCall]
    ) -> tuple[dict[str, Any], str]:
        with self.pacer:
            # Again after waiting for a slot: another thread may have opened the breaker meanwhile.
            self.breaker.check(where.get("creator_id"), where.get("page"))
            released = time.monotonic()
            called_at = clock.now()
            got = self._exchange(endpoint, params, where, released + self.timeout_s)
            code_seen = code_in_body(got.raw) if got.raw and got.status is not None else None
            sent.append(
                ApiCall(
                    creator_id=where.get("creator_id", ""),
                    page_number=where.get("page", 1),
                    attempt=attempt,
                    called_at=called_at,
                    latency_ms=(time.monotonic() - released) * 1000,
                    http_status=got.status,
                    code=code_seen,
                    outcome=got.failed_as
                    or (str(code_seen) if code_seen is not None else f"http_{got.status}"),
                    bytes=len(got.raw),
                    billed=is_billed(code_seen),
                    endpoint=endpoint.name,
                )
            )
            if got.status is not None and not got.failed_as:
                self.pacer.observe(code_seen == 302 or got.status == 429, released)
        if got.failure is not None:
            self.stats.record(got.failed_as)
            # Raised outside any except block, so the httpx exception (whose request URL holds the
            # token) is not even kept as __context__.
            raise got.failure
        return self._judge(endpoint, got, where)

    def _exchange(
        self, endpoint: Endpoint, params: dict[str, str], where: Where, deadline: float
    ) -> _Exchange:
        """Send the request and read the whole body by ``deadline`` (monotonic)."""
        got = _Exchange()
        try:
            with self._http.stream("GET", endpoint.path, params={**params, "token": self._token}) as resp:
                got.status = resp.status_code
                chunks = []
                for chunk in resp.iter_bytes():
                    chunks.append(chunk)
                    # httpx times each read, not the whole body: a trickling body would never end.
                    if time.monotonic() > deadline:
                        got.failed_as = "timeout"
                        got.failure = TransientError(
                            f"response body still arriving after {self.timeout_s:g} s (timeout)", **where
                        )
                        break
                got.raw = b"".join(chunks)
                got.retry_after = _retry_after_s(resp.headers.get("Retry-After"))
        except httpx.TimeoutException:
            got.failed_as = "timeout"
            got.failure = TransientError(f"no response within {self.timeout_s:g} s (timeout)", **where)
        except httpx.TransportError as exc:
            got.failed_as = "connection_error"
            detail = redact(f"{type(exc).__name__}: {exc}", REDACTOR.secrets)
            got.failure = TransientError(f"connection failed ({detail})", **where)
        return got

    def _judge(self, endpoint: Endpoint, got: _Exchange, where: Where) -> tuple[dict[str, Any], str]:
        """The body of an answer whose business code is 0; any other answer raises its typed error."""
        status = got.status
        assert status is not None  # an HTTP answer arrived
        if status == 429:
            self.stats.record("http_429")
            raise RateLimitedError(
                "rate limited (HTTP 429): backing off",
                http_status=429,
                retry_after_s=got.retry_after,
                **where,
            )
        text = got.raw.decode("utf-8", errors="replace")
        try:
            body: Any = json.loads(text)
        except ValueError:
            raise self._not_json(text, len(got.raw), status, where) from None
        if status >= 500:
            self.stats.record(f"http_{status}")
            raise TransientError(f"server error HTTP {status}", http_status=status, **where)
        if not isinstance(body, dict) or "code" not in body:
            self.stats.record("unexpected_body")
            raise UnexpectedResponseError(
                "response JSON has no 'code' field: the endpoint's format may have changed; "
                "the body is not stored",
                http_status=status,
                **where,
            )
        raw_code = body.get("code")
        code = _business_code(raw_code)
        self.stats.record(str(code if code is not None else raw_code))
        if code == 0:
            return body, text
        message = body.get("message") if isinstance(body.get("message"), str) else None
        shown = redact(message, REDACTOR.secrets) if message else None
        raise self._code_error(endpoint, code, raw_code, shown, where, got.retry_after)

    def _not_json(self, text: str, size: int, status: int, where: Where) -> ApiError:
        snippet = redact(text[:80], REDACTOR.secrets)
        described = f"HTTP {status}, {size} bytes, starts {snippet!r}"
        if 400 <= status < 500 and status not in (408, 425):
            # A client error page (a proxy's 403 or 404, a wrong base URL) will not heal by retrying.
            self.stats.record(f"http_{status}")
            return UnexpectedResponseError(
                f"the service answered a non-JSON error page ({described}): not retried; check "
                "JUSTONEAPI_BASE_URL and any proxy in between",
                http_status=status,
                **where,
            )
        self.stats.record(f"http_{status}" if status >= 500 else "invalid_json")
        return TransientError(f"response is not valid JSON ({described})", http_status=status, **where)

    def _code_error(
        self,
        endpoint: Endpoint,
        code: int | None,
        raw_code: object,
        message: str | None,
        where: Where,
        retry_after: float | None,
    ) -> ApiError:
        ctx: Where = {**where, "code": code, "service_message": message}
        rule = endpoint.rule(code, CODE_TABLE)
        if rule is None:
            return UnexpectedResponseError(
                f"undocumented business code {raw_code!r}: not retried, and other calls go on; "
                "report it to Just One API if it persists",
                **ctx,
            )
        cls, explanation = rule
        if issubclass(cls, RateLimitedError):
            return cls(explanation, retry_after_s=retry_after, **ctx)
        error = cls(explanation, **ctx)
        if isinstance(error, AccountError):
            self.breaker.trip(error)
        return error


def _pacer(
    given: Pacer | None, pacing_url: str | None, token: str, max_rps: float | None, slots: int
) -> Pacer:
    if given is not None:
        return given  # an adaptive pacer (:mod:`.pacing`) given instead of the fixed one
    if pacing_url:
        return PostgresPacer(pacing_url, token, max_rps, slots)  # shared across processes (PGY_PACING_URL)
    return Pacer(max_rps, slots)


def _exhausted(last: ApiError, attempts: int, where: Where) -> RetriesExhaustedError:
    return RetriesExhaustedError(
        f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}; last failure: {last.message}. "
        "The service may be struggling: rerun later (pages already fetched are kept)",
        attempts=attempts,
        last_error=str(last),
        code=last.code,
        service_message=last.service_message,
        http_status=last.http_status,
        creator_id=where.get("creator_id"),
        page=where.get("page"),
    )


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
