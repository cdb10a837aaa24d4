"""A plain HTTP client for Just One API's Pugongying "User Published Notes (V1)" endpoint.

It knows nothing of Dagster: :mod:`pgy_pipeline.orchestration.resources` builds it from configuration.

What it guarantees:

* **Input first.** Creator ids and query values are checked before any call
  (:class:`~pgy_pipeline.errors.InvalidInputError`).
* **Business codes decide.** A response's ``code`` field, not its HTTP status, says whether a call
  worked. 301, 500, HTTP 5xx/429, timeouts, dropped connections and bodies that are not JSON are
  retried with exponential backoff and jitter (tenacity), bounded in attempts and in time, except a
  non-JSON client error page (HTTP 4xx other than 408/425), which no retry would heal; 302 and 503
  back off longer, 302 honouring ``Retry-After``. 100, 101, 300, 303, 600, 601 and 602 are terminal
  for the account: the call is not retried and a process-wide circuit breaker refuses every later
  call, because each one would fail or be billed. 201, 202, 400 and 404 are terminal for that
  request (201 is billed: never retried). Any other code fails, naming it and the service's message.
  :data:`CODE_TABLE` says why for each code.
* **Fewest calls.** :meth:`PgyClient.scan_notes` pages until the notes collected reach ``total`` or a
  page comes back empty, under a hard page cap; it never assumes a page size. Notes are deduplicated
  by ``noteId``, and list drift while paging (``total`` changing, a note seen twice) is reported. A
  :class:`ScanWindow` bounds a newest-first scan to the notes the metrics windows need.
* **Pacing.** A client-side limit on request starts per second and on requests in flight; an
  adaptive pacer (:mod:`.pacing`) may replace the fixed one.
* **Hooks.** :class:`~pgy_pipeline.api.ledger.CallHooks` hear of every HTTP attempt before and after
  (the billing ledger, the daily budget).
* **Accounting.** :class:`CallStats` counts calls, retries and outcomes, so a run can say what it cost.
* **The token stays secret.** It is only ever placed in the outgoing query string; reprs, errors and
  log records (including httpx's own request log) never show it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict
from urllib.parse import quote, quote_plus

import httpx
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_before_delay

from pgy_pipeline import clock
from pgy_pipeline.api.ledger import ApiCall, CallHooks, code_in_body, is_billed
from pgy_pipeline.errors import (
    AccountError,
    AccountRejectedError,
    ApiError,
    AuthError,
    CircuitOpenError,
    InsufficientBalanceError,
    InvalidCreatorIdError,
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
NOTES_PATH = "/api/xiaohongshu-pgy/api/solar/kol/dataV2/notesDetail/v1"
CREATOR_ID_PATTERN = re.compile(r"[0-9a-f]{24}")


class AdvertiseSwitch(StrEnum):
    ALL = "ALL"
    ORGANIC_ONLY = "ORGANIC_ONLY"


class OrderType(StrEnum):
    LATEST = "LATEST"
    MOST_READ = "MOST_READ"
    MOST_INTERACT = "MOST_INTERACT"


class NoteType(StrEnum):
    ALL = "ALL"
    COOPERATION = "COOPERATION"
    PHOTO_TEXT = "PHOTO_TEXT"
    VIDEO = "VIDEO"


class IsThirdPlatform(StrEnum):
    NO = "NO"
    YES = "YES"


class _Where(TypedDict, total=False):
    """Where a failure happened, as keyword arguments of the error classes."""

    creator_id: str
    page: int
    code: int | None
    service_message: str | None


def _shown(value: object, limit: int = 40) -> str:
    """A short, unambiguous rendering of a bad value for an error message (a pasted token is masked)."""
    text = redact(repr(value), _REDACTOR.secrets)
    if len(text) > limit:
        return f"{text[:limit]}... ({len(str(value))} characters)"
    return text


def validate_creator_id(creator_id: object) -> str:
    """Return ``creator_id`` if it is a Xiaohongshu user id (24 lowercase hex characters), else raise."""
    if not isinstance(creator_id, str) or not CREATOR_ID_PATTERN.fullmatch(creator_id):
        hint = ""
        if isinstance(creator_id, str) and re.fullmatch(r"[0-9a-fA-F]{24}", creator_id):
            hint = " Use lowercase hexadecimal."
        raise InvalidCreatorIdError(
            f"invalid creator id {_shown(creator_id)}: a Xiaohongshu user id is exactly 24 "
            f"lowercase hexadecimal characters (0-9, a-f), e.g. '5a1b2c3d4e5f60718293a4b5'.{hint} "
            "No API call was made."
        )
    return creator_id


def _enum_value(enum: type[StrEnum], name: str, value: object) -> StrEnum:
    if isinstance(value, str) and value in enum.__members__.values():
        return enum(value)
    allowed = " | ".join(m.value for m in enum)
    raise InvalidParameterError(
        f"invalid {name} {_shown(value)}: must be one of {allowed}. No API call was made."
    )


@dataclass(frozen=True)
class NotesQuery:
    """The endpoint's optional parameters, with its documented defaults."""

    advertise_switch: AdvertiseSwitch | str = AdvertiseSwitch.ALL
    order_type: OrderType | str = OrderType.LATEST
    note_type: NoteType | str = NoteType.ALL
    is_third_platform: IsThirdPlatform | str = IsThirdPlatform.NO

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "advertise_switch", _enum_value(AdvertiseSwitch, "advertiseSwitch", self.advertise_switch)
        )
        object.__setattr__(self, "order_type", _enum_value(OrderType, "orderType", self.order_type))
        object.__setattr__(self, "note_type", _enum_value(NoteType, "noteType", self.note_type))
        object.__setattr__(
            self, "is_third_platform", _enum_value(IsThirdPlatform, "isThirdPlatform", self.is_third_platform)
        )

    @property
    def newest_first(self) -> bool:
        """LATEST order with the default filters: the only query a window may bound (see ScanWindow)."""
        return self == NotesQuery()

    def params(self, creator_id: str, page_number: int) -> dict[str, str]:
        """The query parameters of one request, without the token."""
        return {
            "userId": creator_id,
            "advertiseSwitch": str(self.advertise_switch),
            "orderType": str(self.order_type),
            "noteType": str(self.note_type),
            "isThirdPlatform": str(self.is_third_platform),
            "pageNumber": str(page_number),
        }


# --------------------------------------------------------------------------------------------
# Secrets never reach a log record
# --------------------------------------------------------------------------------------------


class _RedactSecrets(logging.Filter):
    """Replaces registered secrets in log records (httpx logs every request URL at INFO)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                record.msg, record.args = redact(message, self.secrets), None
        return True


_REDACTOR = _RedactSecrets()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_REDACTOR)


def redact(text: str, secrets: set[str] | list[str] | tuple[str, ...]) -> str:
    """Return ``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# --------------------------------------------------------------------------------------------
# Pacing, accounting and the circuit breaker
# --------------------------------------------------------------------------------------------


class Pacer:
    """Spaces request starts at least ``1 / max_rps`` apart and caps requests in flight.

    Even spacing rather than a bucket that allows bursts: the service counts requests in its own
    window, and a burst at a window's edge is exactly what earns a 302.
    """

    def __init__(self, max_rps: float | None, max_concurrency: int) -> None:
        if max_rps is not None and max_rps <= 0:
            raise InvalidParameterError(f"max_rps must be positive, got {max_rps!r}")
        if max_concurrency < 1:
            raise InvalidParameterError(f"max_concurrency must be at least 1, got {max_concurrency!r}")
        # A 3% margin: requests leave exactly 1/rps apart but reach the service with a little jitter,
        # and its one-second window would then now and then see rps + 1 requests.
        self.interval = 0.0 if max_rps is None else 1.03 / max_rps
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._gate = threading.Lock()
        self._last_release = -math.inf

    def _interval(self) -> float:
        """The spacing of the next release (fixed here; :mod:`.pacing` adapts it)."""
        return self.interval

    def observe(self, rate_limited: bool, released_at: float) -> None:
        """Feedback on one answered call released at ``released_at`` (monotonic); fixed pace ignores it."""

    def rate_limit_wait_s(self, attempt: int) -> float | None:
        """How long a request answered 302 waits before its retry; None: the client's own backoff."""
        return None

    def __enter__(self) -> Pacer:
        self._slots.acquire()
        # The gate is held while sleeping, so releases happen one after another and each is timed
        # from the previous one's actual release: a thread that wakes late never squeezes the next.
        with self._gate:
            wait = self._last_release + self._interval() - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_release = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()

    def close(self) -> None:
        """Nothing to free in-process; a shared pacer closes its database connection."""


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
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One successful response page, as received."""

    creator_id: str
    page_number: int
    params: dict[str, str]  # the request's query, never the token
    fetched_at: datetime  # UTC
    attempts: int
    code: int
    total: int | None
    items: list[Any]
    body_text: str  # the response body verbatim
    scan: str = "full"  # how the creator's scan was asked for: 'full' or 'window'
    scan_window_from: date | None = None  # a window scan's ScanWindow.since


#: Days beyond the deepest metrics window that a window scan still reads. The metrics use notes published
#: within 90 days of the snapshot (whether the window ends on the snapshot day or the day before), so
#: the scan must see every note from ``snapshot - 90`` on. Stopping only after a whole page older than
#: ``snapshot - 97`` keeps that true even when the list's order is off by up to a week (a note listed
#: after one up to 7 days older than itself); larger disorder is reported, see Scan.order_breaks.
WINDOW_MARGIN_DAYS = 7
#: The deepest window the metrics read, in days before the snapshot.
DEEPEST_WINDOW_DAYS = 90


@dataclass(frozen=True)
class ScanWindow:
    """Bound a LATEST-order scan: notes published before ``since`` are not needed.

    Paging stops after the first page whose every item has a readable date before
    ``since - margin_days``, in newest-first order and no newer than the item before the page, or at
    ``total``, whichever comes first. A page with a missing or unreadable date, or with dates out of
    order (a pinned note, say), never ends the scan.
    """

    since: date
    margin_days: int = WINDOW_MARGIN_DAYS

    @classmethod
    def for_snapshot(cls, snapshot_date: date, days: int = DEEPEST_WINDOW_DAYS) -> ScanWindow:
        return cls(since=snapshot_date - timedelta(days=days))

    @property
    def cutoff(self) -> date:
        """A page entirely older than this day ends the scan."""
        return self.since - timedelta(days=self.margin_days)


def _item_date(item: object) -> date | None:
    if not isinstance(item, dict):
        return None
    try:
        return date.fromisoformat(str(item.get("date"))[:10])
    except ValueError:
        return None


@dataclass
class Scan:
    """Every page of one creator's notes for one query, with what happened while paging."""

    creator_id: str
    query: NotesQuery
    pages: list[Page] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)  # deduplicated by noteId, in list order
    totals_seen: list[int] = field(default_factory=list)
    duplicate_note_ids: list[str] = field(default_factory=list)
    items_without_id: int = 0
    stop_reason: str = ""
    window: ScanWindow | None = None  # set for a window-bounded scan
    # places where a note is listed after one older than itself by more than the window margin
    order_breaks: list[str] = field(default_factory=list)

    @property
    def total(self) -> int | None:
        return self.totals_seen[-1] if self.totals_seen else None

    @property
    def calls(self) -> int:
        return sum(p.attempts for p in self.pages)

    @property
    def drift(self) -> list[str]:
        """Plain-language notes on list movement while paging; empty when the scan was clean."""
        found = []
        if len(set(self.totals_seen)) > 1:
            found.append(f"total changed while paging: {' -> '.join(map(str, _runs(self.totals_seen)))}")
        if self.duplicate_note_ids:
            found.append(
                f"{len(self.duplicate_note_ids)} note(s) appeared on more than one page "
                f"(kept once): {', '.join(self.duplicate_note_ids[:5])}"
            )
        if (
            self.total is not None
            and self.stop_reason not in ("page_cap", "window")
            and len(self.notes) != self.total
        ):
            found.append(
                f"collected {len(self.notes)} distinct notes but the service reports total {self.total}"
            )
        if self.stop_reason == "page_cap":
            found.append(
                f"stopped at the page cap ({len(self.pages)} pages) before reaching total {self.total}"
            )
        return found


def _runs(values: list[int]) -> list[int]:
    out: list[int] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


# --------------------------------------------------------------------------------------------
# The client
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
    600: (PermissionDeniedError, "permission denied: this account may not call the notes endpoint"),
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


class PgyClient:
    """Calls the notes endpoint with validation, retries, pacing, accounting and a circuit breaker."""

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
        self.max_attempts = max_attempts
        self.max_retry_time_s = max_retry_time_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.rate_limit_backoff_s = rate_limit_backoff_s
        self.max_pages = max_pages
        self.pacer: Pacer
        if pacer is not None:
            # An adaptive pacer (:mod:`.pacing`) given instead of the fixed one.
            self.pacer = pacer
        elif pacing_url:
            # Shared across processes and hosts (PGY_PACING_URL); imported only when asked for.
            from pgy_pipeline.api.shared_pacing import PostgresPacer

            self.pacer = PostgresPacer(pacing_url, token, max_rps, max_concurrency)
        else:
            self.pacer = Pacer(max_rps, max_concurrency)
        self.hooks = hooks
        self.stats = CallStats()
        self.breaker = circuit_breaker_for(self.base_url, token)
        self._sleep = sleep
        self._random = random.Random()
        # httpx logs the URL with the token percent-encoded: redact every form it can take.
        _REDACTOR.secrets.update({token, quote(token, safe=""), quote_plus(token)})
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            headers={"User-Agent": "pgy_pipeline"},
        )

    def __repr__(self) -> str:
        return f"PgyClient(base_url={self.base_url!r}, token=***)"

    def close(self) -> None:
        self._http.close()
        self.pacer.close()

    def __enter__(self) -> PgyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request -------------------------------------------------------------------------

    def _request_once(
        self, creator_id: str, page_number: int, params: dict[str, str], attempt: int = 1
    ) -> tuple[dict[str, Any], str]:
        """One HTTP call; returns (body, body text) on code 0, else raises a typed error.

        The hooks hear of it before (they may refuse it) and after (with its :class:`ApiCall`).
        """
        self.breaker.check(creator_id, page_number)
        hooks = self.hooks
        if hooks is None:
            return self._attempt(creator_id, page_number, params, attempt, [])
        hooks.before_call(creator_id, page_number)
        sent: list[ApiCall] = []
        try:
            return self._attempt(creator_id, page_number, params, attempt, sent)
        finally:
            hooks.after_call(creator_id, sent[0] if sent else None)

    def _attempt(
        self, creator_id: str, page_number: int, params: dict[str, str], attempt: int, sent: list[ApiCall]
    ) -> tuple[dict[str, Any], str]:
        where: _Where = {"creator_id": creator_id, "page": page_number}
        failure: TransientError | None = None
        raw, status, retry_after, failed_as = b"", None, None, ""
        with self.pacer:
            # Again after waiting for a slot: another thread may have opened the breaker meanwhile.
            self.breaker.check(creator_id, page_number)
            released = time.monotonic()
            called_at = clock.now()
            deadline = released + self.timeout_s
            try:
                with self._http.stream("GET", NOTES_PATH, params={**params, "token": self._token}) as resp:
                    status = resp.status_code
                    chunks = []
                    for chunk in resp.iter_bytes():
                        chunks.append(chunk)
                        # httpx times each read, not the whole body: a trickling body would never end.
                        if time.monotonic() > deadline:
                            failed_as = "timeout"
                            failure = TransientError(
                                f"response body still arriving after {self.timeout_s:g} s (timeout)", **where
                            )
                            break
                    raw = b"".join(chunks)
                    retry_after = _retry_after_s(resp.headers.get("Retry-After"))
            except httpx.TimeoutException:
                failed_as = "timeout"
                failure = TransientError(f"no response within {self.timeout_s:g} s (timeout)", **where)
            except httpx.TransportError as exc:
                failed_as = "connection_error"
                detail = redact(f"{type(exc).__name__}: {exc}", _REDACTOR.secrets)
                failure = TransientError(f"connection failed ({detail})", **where)
            code_seen = code_in_body(raw) if raw and status is not None else None
            sent.append(
                ApiCall(
                    creator_id=creator_id,
                    page_number=page_number,
                    attempt=attempt,
                    called_at=called_at,
                    latency_ms=(time.monotonic() - released) * 1000,
                    http_status=status,
                    code=code_seen,
                    outcome=failed_as or (str(code_seen) if code_seen is not None else f"http_{status}"),
                    bytes=len(raw),
                    billed=is_billed(code_seen),
                )
            )
            if status is not None and not failed_as:
                self.pacer.observe(code_seen == 302 or status == 429, released)
        if failure is not None:
            self.stats.record(failed_as)
            # Raised outside the except block, so the httpx exception (whose request URL holds the
            # token) is not even kept as __context__.
            raise failure
        assert status is not None  # an HTTP answer arrived

        if status == 429:
            self.stats.record("http_429")
            raise RateLimitedError(
                "rate limited (HTTP 429): backing off", http_status=429, retry_after_s=retry_after, **where
            )
        text = raw.decode("utf-8", errors="replace")
        try:
            body, parsed = json.loads(text), True
        except ValueError:
            body, parsed = None, False
        if not parsed:
            snippet = redact(text[:80], _REDACTOR.secrets)
            described = f"HTTP {status}, {len(raw)} bytes, starts {snippet!r}"
            if 400 <= status < 500 and status not in (408, 425):
                # A client error page (a proxy's 403 or 404, a wrong base URL) will not heal by retrying.
                self.stats.record(f"http_{status}")
                raise UnexpectedResponseError(
                    f"the service answered a non-JSON error page ({described}): not retried; check "
                    "JUSTONEAPI_BASE_URL and any proxy in between",
                    http_status=status,
                    **where,
                )
            self.stats.record(f"http_{status}" if status >= 500 else "invalid_json")
            raise TransientError(f"response is not valid JSON ({described})", http_status=status, **where)
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
        message = body.get("message") if isinstance(body.get("message"), str) else None
        message = redact(message, _REDACTOR.secrets) if message else message
        self.stats.record(str(code if code is not None else raw_code))
        ctx: _Where = {**where, "code": code, "service_message": message}
        if code == 0:
            return body, text
        rule = CODE_TABLE.get(code) if code is not None else None
        if rule is None:
            raise UnexpectedResponseError(
                f"undocumented business code {raw_code!r}: not retried, and other calls go on; "
                "report it to Just One API if it persists",
                **ctx,
            )
        cls, explanation = rule
        if issubclass(cls, RateLimitedError):
            raise cls(explanation, retry_after_s=retry_after, **ctx)
        error = cls(explanation, **ctx)
        if isinstance(error, AccountError):
            self.breaker.trip(error)
        raise error

    def _wait_s(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        n = state.attempt_number
        if isinstance(exc, RateLimitedError | ServiceUnavailableError):
            if isinstance(exc, RateLimitedError) and exc.retry_after_s is not None:
                return min(exc.retry_after_s, self.max_retry_time_s)
            paced = self.pacer.rate_limit_wait_s(n) if isinstance(exc, RateLimitedError) else None
            base = paced if paced is not None else self.rate_limit_backoff_s * 2.0 ** (n - 1)
        else:
            base = self.backoff_initial_s * 2.0 ** (n - 1)
        # Full jitter on top of the exponential step keeps parallel workers from retrying in lockstep.
        return float(min(self.backoff_max_s, base) * (0.5 + self._random.random() / 2))

    def fetch_page(self, creator_id: str, page_number: int = 1, query: NotesQuery | None = None) -> Page:
        """Fetch one page, retrying transient failures; raise a typed error otherwise."""
        validate_creator_id(creator_id)
        if isinstance(page_number, bool) or not isinstance(page_number, int) or page_number < 1:
            raise InvalidParameterError(f"invalid pageNumber {_shown(page_number)}: must be an integer >= 1")
        query = query or NotesQuery()
        params = query.params(creator_id, page_number)
        attempts = 0

        def attempt() -> tuple[dict[str, Any], str]:
            nonlocal attempts
            attempts += 1
            return self._request_once(creator_id, page_number, params, attempts)

        retrying = Retrying(
            retry=retry_if_exception_type(TransientError),
            stop=stop_after_attempt(self.max_attempts) | stop_before_delay(self.max_retry_time_s),
            wait=self._wait_s,
            sleep=self._sleep,
            before_sleep=lambda state: self.stats.record_retry(),
        )
        try:
            body, text = retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            assert isinstance(last, ApiError)
            raise RetriesExhaustedError(
                f"gave up after {attempts} attempt{'s' if attempts != 1 else ''}; last failure: {last.message}. The service may be "
                "struggling: rerun later (pages already fetched are kept)",
                attempts=attempts,
                last_error=str(last),
                code=last.code,
                service_message=last.service_message,
                http_status=last.http_status,
                creator_id=creator_id,
                page=page_number,
            ) from None
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("list", []), list):
            raise UnexpectedResponseError(
                "code 0 but 'data.list' is missing or not a list: the endpoint's format may have changed",
                code=0,
                creator_id=creator_id,
                page=page_number,
            )
        total = data.get("total")
        try:
            total = int(total) if total is not None else None
        except (TypeError, ValueError):
            total = None
        return Page(
            creator_id=creator_id,
            page_number=page_number,
            params=params,
            fetched_at=clock.now(),
            attempts=attempts,
            code=0,
            total=total,
            items=data.get("list") or [],
            body_text=text,
        )

    # -- every page --------------------------------------------------------------------------

    def iter_pages(
        self,
        creator_id: str,
        query: NotesQuery | None = None,
        scan: Scan | None = None,
        window: ScanWindow | None = None,
    ) -> Iterator[Page]:
        """Yield pages from 1 until the distinct notes reach ``total``, a page is empty, or the cap;
        with a ``window``, also after the first page wholly past it (see :class:`ScanWindow`).

        Pass a :class:`Scan` to have it filled in as pages arrive.
        """
        validate_creator_id(creator_id)
        query = query or NotesQuery()
        if window is not None and not query.newest_first:
            raise InvalidParameterError(
                "a window-bounded scan needs orderType LATEST and the default filters (the list must come "
                "newest first); scan this query in full. No API call was made."
            )
        scan = scan if scan is not None else Scan(creator_id, query)
        scan.window = window
        seen: set[str] = {n["noteId"] for n in scan.notes}
        margin = timedelta(days=window.margin_days if window is not None else WINDOW_MARGIN_DAYS)
        previous: date | None = None  # date of the item listed just before
        for page_number in range(1, self.max_pages + 1):
            page = self.fetch_page(creator_id, page_number, query)
            scan.pages.append(page)
            if page.total is not None:
                scan.totals_seen.append(page.total)
                if page_number == 1 and window is None and self.hooks is not None:
                    # The first page sizes a full scan: the books can now keep the budget exactly.
                    per_page = max(1, len(page.items))
                    self.hooks.expect_calls(creator_id, min(self.max_pages, max(1, -(-page.total // per_page))))
            for item in page.items:
                note_id = item.get("noteId") if isinstance(item, dict) else None
                if not isinstance(note_id, str) or not note_id:
                    scan.items_without_id += 1
                    continue
                if note_id in seen:
                    scan.duplicate_note_ids.append(note_id)
                    continue
                seen.add(note_id)
                scan.notes.append(item)
            dates = [_item_date(item) for item in page.items]
            # Past the window: every date readable, older than the cutoff, and in order from the
            # item before this page on. Out-of-order dates (a pinned note) never end a scan.
            in_order = True
            for position, day in enumerate(dates, start=1):
                if day is not None and previous is not None and day > previous:
                    in_order = False
                    if day - previous > margin:
                        scan.order_breaks.append(
                            f"page {page_number} item {position}: {day} listed after {previous}"
                        )
                previous = day if day is not None else previous
            past_window = (
                window is not None
                and in_order
                and bool(dates)
                and all(d is not None and d < window.cutoff for d in dates)
            )
            yield page
            if not page.items:
                scan.stop_reason = "empty_page"
                return
            # Items without a noteId still occupy places in the list: count them toward total.
            if page.total is not None and len(seen) + scan.items_without_id >= page.total:
                scan.stop_reason = "reached_total"
                return
            if past_window:
                scan.stop_reason = "window"
                return
        scan.stop_reason = "page_cap"
        log.warning(
            "creator %s: stopped at the page cap of %d pages before reaching total %s",
            creator_id,
            self.max_pages,
            scan.total,
        )

    def scan_notes(
        self, creator_id: str, query: NotesQuery | None = None, window: ScanWindow | None = None
    ) -> Scan:
        """Fetch every page of a creator's notes (or those a ``window`` needs); see :meth:`iter_pages`."""
        query = query or NotesQuery()
        scan = Scan(creator_id, query)
        for _ in self.iter_pages(creator_id, query, scan, window):
            pass
        return scan


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
