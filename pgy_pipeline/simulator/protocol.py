"""The endpoint's wire protocol: path, parameters, business codes, envelopes and the billing rule.

Kept apart from the server so that the data generator, the fault machinery and the call log can share
one definition of what the real service answers, without importing the HTTP plumbing.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

__all__ = [
    "ADMIN_PREFIX",
    "API_PATH",
    "BILLED_CODES",
    "ENUMS",
    "MESSAGES",
    "NOTES_RATE_PATH",
    "RATE_ENUMS",
    "ROUTES",
    "VENDOR_CODES",
    "error_body",
    "html_page",
    "is_billed",
    "json_bytes",
    "parse_page",
]

API_PATH = "/api/xiaohongshu-pgy/api/solar/kol/dataV2/notesDetail/v1"
#: Pugongying's own note figures ("Note Performance Metrics"): one object per query, no pages.
NOTES_RATE_PATH = "/api/xiaohongshu-pgy/api/solar/kol/dataV3/notesRate/v1"
ADMIN_PREFIX = "/__sim/"

#: Messages of the business codes the vendor documents; other codes answer "Error" unless a message is given.
MESSAGES: dict[int, str] = {
    0: "success",
    100: "Invalid or Inactive Token",
    301: "Collection Failed. Please Retry.",
    302: "Rate Limit Exceeded",
    303: "Daily Quota Exceeded",
    400: "Invalid Parameters",
    500: "Internal Server Error",
    600: "Permission Denied",
    601: "Insufficient Balance",
}

#: Every non-zero business code the vendor's services are known to answer; each is injectable per creator.
VENDOR_CODES: tuple[int, ...] = (100, 101, 201, 202, 300, 301, 302, 303, 400, 404, 500, 503, 600, 601, 602)

#: The vendor bills a request when it answers one of these codes, and nothing else (no HTTP errors,
#: no dropped connections, no other business code).
BILLED_CODES: frozenset[int] = frozenset({0, 201})

#: Enumerated query parameters and their allowed values; the first value is the default.
ENUMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("advertiseSwitch", ("ALL", "ORGANIC_ONLY")),
    ("orderType", ("LATEST", "MOST_READ", "MOST_INTERACT")),
    ("noteType", ("ALL", "COOPERATION", "PHOTO_TEXT", "VIDEO")),
    ("isThirdPlatform", ("NO", "YES")),
)

#: The same for the Note Performance endpoint.
RATE_ENUMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("business", ("DAILY_NOTE", "COOPERATE_NOTE")),
    ("noteType", ("PHOTO_TEXT_AND_VIDEO", "PHOTO_TEXT", "VIDEO")),
    ("dateType", ("DAY_30", "DAY_90")),
    ("advertiseSwitch", ("ALL", "ORGANIC_ONLY")),
)

#: The simulator's route table: each endpoint's path, its name in call records, and its enumerations.
ROUTES: dict[str, tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    API_PATH: ("notes", ENUMS),
    NOTES_RATE_PATH: ("notes_rate", RATE_ENUMS),
}


def is_billed(code: int | None) -> bool:
    """Whether the vendor bills a request whose answer carried business ``code`` (None: no JSON body)."""
    return code is not None and code in BILLED_CODES


def json_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON, non-ASCII written as is (as the real service does)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_body(code: int, message: str | None = None) -> dict[str, Any]:
    """The envelope of a non-zero business code: the service sends ``data: null``."""
    return {"code": code, "message": message or MESSAGES.get(code, "Error"), "data": None}


def html_page(status: int) -> bytes:
    """The small HTML error page a gateway in front of the service sends with an HTTP error."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"<html><body><h1>{status} {phrase}</h1></body></html>".encode()


def parse_page(raw: str | None) -> tuple[int | None, str | None]:
    """Return ``(page, error)``; an absent or empty value means page 1."""
    if raw is None or raw == "":
        return 1, None
    if not raw.isascii() or not raw.isdigit():
        return None, "pageNumber must be an integer >= 1"
    try:
        page = int(raw)
    except ValueError:
        return None, "pageNumber must be an integer >= 1"
    if page < 1:
        return None, "pageNumber must be an integer >= 1"
    return page, None
