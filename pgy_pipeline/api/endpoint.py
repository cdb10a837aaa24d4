"""What an endpoint declares, and the checks every endpoint's parameters share.

An :class:`Endpoint` is the small part of a Just One API endpoint that the shared
:class:`~pgy_pipeline.api.transport.Transport` needs: its name (the ledger's ``endpoint`` column), its
path, and any business codes of its own. The endpoint's module holds the rest beside it: its query
model with validation (checked before any call), how to read an answer, and its paginator with a
stop rule and a cap when it has pages (:mod:`pgy_pipeline.api.client` for the notes list) or none
(:mod:`pgy_pipeline.api.notes_rate`).

Adding an endpoint: a module with its :class:`Endpoint`, a query dataclass whose ``params`` returns
the request's query without the token, and a function that calls
:meth:`~pgy_pipeline.api.transport.Transport.call` and reads the answer. The transport, the ledger
and the budget need no change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TypedDict

from pgy_pipeline.api.redaction import REDACTOR, redact
from pgy_pipeline.errors import ApiError, InvalidCreatorIdError, InvalidParameterError

CREATOR_ID_PATTERN = re.compile(r"[0-9a-f]{24}")

#: What a code means and what the transport does with it: the error to raise, and why.
CodeRule = tuple[type[ApiError], str]


class Where(TypedDict, total=False):
    """Where a failure happened, as keyword arguments of the error classes."""

    creator_id: str
    page: int
    code: int | None
    service_message: str | None


@dataclass(frozen=True)
class Endpoint:
    """One Just One API endpoint, as the transport sees it."""

    name: str  # as the ledger records it (meta.api_calls.endpoint)
    path: str
    summary: str
    #: Codes whose meaning differs on this endpoint; every other code follows the shared table.
    codes: Mapping[int, CodeRule] = field(default_factory=lambda: MappingProxyType({}))

    def rule(self, code: int | None, shared: Mapping[int, CodeRule]) -> CodeRule | None:
        """What ``code`` means here: this endpoint's own rule, else the shared table's; None if unknown."""
        if code is None:
            return None
        return self.codes.get(code) or shared.get(code)


def shown(value: object, limit: int = 40) -> str:
    """A short, unambiguous rendering of a bad value for an error message (a pasted token is masked)."""
    text = redact(repr(value), REDACTOR.secrets)
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
            f"invalid creator id {shown(creator_id)}: a Xiaohongshu user id is exactly 24 "
            f"lowercase hexadecimal characters (0-9, a-f), e.g. '5a1b2c3d4e5f60718293a4b5'.{hint} "
            "No API call was made."
        )
    return creator_id


def enum_value(enum: type[StrEnum], name: str, value: object) -> StrEnum:
    """``value`` as a member of ``enum``, or an error naming the parameter and the allowed values."""
    if isinstance(value, str) and value in enum.__members__.values():
        return enum(value)
    allowed = " | ".join(m.value for m in enum)
    raise InvalidParameterError(
        f"invalid {name} {shown(value)}: must be one of {allowed}. No API call was made."
    )


def check_enum_fields(query: object, fields: Mapping[str, tuple[type[StrEnum], str]]) -> None:
    """In a frozen query's ``__post_init__``: each field ``attr -> (enum, wire name)`` becomes its enum
    member, or the query is refused naming the parameter (see :func:`enum_value`)."""
    for attr, (enum, name) in fields.items():
        object.__setattr__(query, attr, enum_value(enum, name, getattr(query, attr)))
