"""How snapshots are named: a creator id and a calendar day in Asia/Shanghai."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

PartitionKey = tuple[str, date]  # (creator_id, snapshot_date)


def today_shanghai(now: datetime | None = None) -> date:
    """The calendar day in Asia/Shanghai, which names a snapshot."""
    return (now or datetime.now(SHANGHAI)).astimezone(SHANGHAI).date()
