"""Helpers shared by the simulator tests: ids, a settable clock, and small HTTP wrappers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from pgy_pipeline.simulator import API_PATH, Simulator

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
