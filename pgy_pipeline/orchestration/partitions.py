"""Partitions: creator (dynamic) x snapshot date (daily, Asia/Shanghai), and their validation."""

from __future__ import annotations

from datetime import date

from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from pgy_pipeline.api.client import validate_creator_id
from pgy_pipeline.errors import InvalidCreatorIdError, InvalidInputError
from pgy_pipeline.warehouse.keys import SHANGHAI, PartitionKey, today_shanghai

__all__ = ["SHANGHAI", "today_shanghai", "partition_key", "parse_partition_key", "context_partition_keys"]
SNAPSHOT_START_DATE = "2026-01-01"

creator_partitions = DynamicPartitionsDefinition(name="creators")
snapshot_date_partitions = DailyPartitionsDefinition(
    start_date=SNAPSHOT_START_DATE,
    timezone="Asia/Shanghai",
    end_offset=1,  # today's (still open) day is a partition: snapshots are taken during the day
)
note_partitions = MultiPartitionsDefinition({"creator": creator_partitions, "date": snapshot_date_partitions})


def partition_key(creator_id: str, snapshot_date: date | str) -> MultiPartitionKey:
    """The Dagster partition key of one creator's snapshot."""
    day = snapshot_date if isinstance(snapshot_date, str) else snapshot_date.isoformat()
    return MultiPartitionKey({"creator": creator_id, "date": day})


def parse_partition_key(key: str) -> PartitionKey:
    """``creator|date`` (or a MultiPartitionKey) to a validated (creator_id, date)."""
    if isinstance(key, MultiPartitionKey):
        creator_id, day = key.keys_by_dimension["creator"], key.keys_by_dimension["date"]
    else:
        parts = str(key).split("|")
        if len(parts) != 2:
            raise InvalidCreatorIdError(
                f"partition key {key!r} is not 'creator|date': a creator id must not contain '|'. "
                "No API call was made."
            )
        creator_id, day = parts
    validate_creator_id(creator_id)
    try:
        return creator_id, date.fromisoformat(day)
    except ValueError:
        raise InvalidInputError(f"partition key {key!r}: {day!r} is not a YYYY-MM-DD date") from None


def context_partition_keys(context: AssetExecutionContext) -> list[PartitionKey]:
    """Every (creator_id, date) of this step, whether it runs one partition or a range.

    All keys are validated first, and every bad key is named in one error, so nothing reaches the
    API or SQL unless the whole set is clean.
    """
    keys, problems = [], []
    for key in context.partition_keys:
        try:
            keys.append(parse_partition_key(key))
        except InvalidInputError as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidCreatorIdError(
            f"{len(problems)} partition key(s) rejected before any API call: "
            + " | ".join(problems[:10])
            + ("" if len(problems) <= 10 else f" | ... and {len(problems) - 10} more")
        )
    return keys
