"""What one HTTP call cost: the record the client hands to its hooks after every attempt.

Plain data (no Dagster, no DuckDB). The client builds one :class:`ApiCall` per HTTP attempt that
reached the network (a call refused by the circuit breaker or the daily budget never does) and gives
it to :class:`CallHooks` ``after_call``; the orchestration layer journals it to the spool and, with
the pages, into ``meta.api_calls``, and the daily budget settles its reservation from it.

Billing follows the vendor's guide: a call is billed when the answer carries business code 0 or 201,
and only then (no HTTP error, dropped connection or other code is billed). The guide also warns that
a request abandoned on a client timeout may still be charged; such calls are recorded with no code
and ``billed`` false, and their ``outcome`` says ``timeout``, so a bill can be reconciled against them.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

#: Business codes the vendor bills (its API usage guide): 0 (success) and 201 (no such target).
BILLED_CODES: frozenset[int] = frozenset({0, 201})

# The service writes "code" first; a body cut short still shows it, and billing was decided before the cut.
_LEADING_CODE = re.compile(rb'^\s*\{\s*"code"\s*:\s*"?(-?\d{1,6})')


def is_billed(code: int | None) -> bool:
    """Whether the vendor bills a call answered with business ``code`` (None: no JSON code seen)."""
    return code is not None and code in BILLED_CODES


def code_in_body(raw: bytes) -> int | None:
    """The business code of a response body, also when the body is cut short or not valid JSON."""
    try:
        body = json.loads(raw)
    except ValueError:
        match = _LEADING_CODE.match(raw[:200])
        return int(match.group(1)) if match else None
    if isinstance(body, dict):
        code = body.get("code")
        if isinstance(code, int) and not isinstance(code, bool):
            return code
        if isinstance(code, str) and code.lstrip("-").isdigit():
            return int(code)
    return None


@dataclass(frozen=True)
class ApiCall:
    """One HTTP attempt, as the ledger keeps it. Never holds the token."""

    creator_id: str
    page_number: int
    attempt: int  # 1 for the first try of a page, 2 for its first retry...
    called_at: datetime  # when the request left, UTC
    latency_ms: float  # request start to the end of the body (or the failure)
    http_status: int | None  # None: no HTTP answer (timeout, dropped connection)
    code: int | None  # business code in the body; None when there was none to read
    outcome: str  # the business code as text, or http_<status>, timeout, connection_error, invalid_json
    bytes: int  # response body bytes received
    billed: bool
    endpoint: str = "notes"  # the Endpoint's name (journals written before endpoints had names: notes)
    call_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["called_at"] = self.called_at.isoformat()
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ApiCall:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}  # a journal line carries more
        when = datetime.fromisoformat(str(values.pop("called_at")))
        return cls(called_at=when if when.tzinfo else when.replace(tzinfo=UTC), **values)


class CallHooks(Protocol):
    """What the client and the fetch loop tell whoever keeps the books (ledger, daily budget).

    ``before_creator`` may decline a creator before its first call (False: leave it for another day);
    its estimate is None when nothing is known of the creator's list (a first snapshot);
    ``expect_calls`` tells, once the first page of a full scan has shown the service's total, how many
    calls the whole scan takes;
    ``before_call`` may refuse a call by raising :class:`~pgy_pipeline.errors.BudgetExhaustedError`;
    ``after_call`` gets every attempt that went out, or None when an admitted call never left.
    They are called from the fetch threads at once: implementations lock.
    """

    def before_creator(self, creator_id: str, estimated_calls: int | None) -> bool: ...
    def expect_calls(self, creator_id: str, calls: int) -> None: ...

    def after_creator(self, creator_id: str) -> None: ...

    def before_call(self, creator_id: str, page_number: int) -> None: ...

    def after_call(self, creator_id: str, call: ApiCall | None) -> None: ...
