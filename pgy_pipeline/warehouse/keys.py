"""How snapshots are named: a creator id and a calendar day in Asia/Shanghai (by :mod:`pgy_pipeline.clock`)."""

from __future__ import annotations

from datetime import date

from pgy_pipeline.clock import SHANGHAI, today_shanghai

PartitionKey = tuple[str, date]  # (creator_id, snapshot_date)

__all__ = ["SHANGHAI", "PartitionKey", "today_shanghai"]
