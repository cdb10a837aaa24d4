"""Partitions, and their validation. Two layouts of the same tables (``PGY_PARTITIONING``):

* ``creator`` (the default): creator (dynamic, one partition per registered creator) x snapshot
  date (daily, Asia/Shanghai). Per-creator status, backfill and rerun in the UI; the right layout
  up to about 1,000 creators.
* ``cohort``: :data:`COHORT_COUNT` stable cohorts of creators x snapshot date, for large rosters.
  A creator's cohort is a hash of its id (:func:`cohort_of`), so it never changes when others join
  or leave. A cohort partition stands for every creator of the cohort; the steps expand it into
  creators (from the registry for ``raw/note_pages``, from the stored raw pages for the rebuilds)
  and keep per-creator skip and resume inside it. Dagster then keeps 64 x days partitions per asset
  at any roster size, and a daily run writes 64 materializations per asset instead of one per
  creator (docs/production.md, *Partitioning for large rosters*).

The DuckDB tables are keyed by (creator_id, snapshot_date) in both layouts: switching loses and
re-fetches nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import date

from dagster import (
    AssetExecutionContext,
    DailyPartitionsDefinition,
    DynamicPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    PartitionsDefinition,
    StaticPartitionsDefinition,
)

from pgy_pipeline.api.client import validate_creator_id
from pgy_pipeline.errors import InvalidCreatorIdError, InvalidInputError
from pgy_pipeline.warehouse.keys import SHANGHAI, PartitionKey, today_shanghai

__all__ = [
    "SHANGHAI",
    "today_shanghai",
    "partition_key",
    "parse_partition_key",
    "context_partition_keys",
    "cohort_of",
    "cohort_partition_key",
    "parse_cohort_key",
    "context_cohort_days",
    "partition_day",
    "PARTITIONINGS",
]
# The earliest date partitions can start on. The definitions start at the project's first snapshot
# day instead (``first_day_partitions``, set from PGY_FIRST_SNAPSHOT_DATE or the stored snapshots in
# definitions.py), so the UI offers no dates that cannot hold data.
SNAPSHOT_START_DATE = "2026-01-01"

creator_partitions = DynamicPartitionsDefinition(name="creators")


def date_partitions(start_date: str = SNAPSHOT_START_DATE) -> DailyPartitionsDefinition:
    """Daily Asia/Shanghai snapshot dates from ``start_date``, today's included."""
    return DailyPartitionsDefinition(
        start_date=start_date,
        timezone="Asia/Shanghai",
        end_offset=1,  # today's (still open) day is a partition: snapshots are taken during the day
    )


snapshot_date_partitions = date_partitions()
note_partitions = MultiPartitionsDefinition({"creator": creator_partitions, "date": snapshot_date_partitions})

# 64 cohorts x 730 days is 46,720 partitions per asset: under Dagster's advice of 100,000 for two
# years at any roster size, and about 156 creators per cohort at 10,000. Changing the count moves
# creators between cohorts (Dagster's cohort history would then mean other creators), so it is fixed.
COHORT_COUNT = 64
COHORTS = [f"c{i:02d}" for i in range(COHORT_COUNT)]
cohort_partitions = StaticPartitionsDefinition(COHORTS)
cohort_note_partitions = MultiPartitionsDefinition(
    {"cohort": cohort_partitions, "date": snapshot_date_partitions}
)
PARTITIONINGS = ("creator", "cohort")


def first_day_partitions(
    partitions_def: PartitionsDefinition | None, start_date: str
) -> PartitionsDefinition | None:
    """``partitions_def`` with its date dimension starting on ``start_date`` (others unchanged)."""
    dates = date_partitions(start_date)
    if isinstance(partitions_def, DailyPartitionsDefinition):
        return dates
    if isinstance(partitions_def, MultiPartitionsDefinition):
        return MultiPartitionsDefinition(
            {
                d.name: dates if isinstance(d.partitions_def, DailyPartitionsDefinition) else d.partitions_def
                for d in partitions_def.partitions_defs
            }
        )
    return partitions_def


def cohort_of(creator_id: str) -> str:
    """The creator's cohort: a hash of its id, so it never depends on who else is registered."""
    digest = hashlib.sha1(creator_id.encode("utf-8")).hexdigest()
    return COHORTS[int(digest[:8], 16) % COHORT_COUNT]


def cohort_partition_key(cohort: str, snapshot_date: date | str) -> MultiPartitionKey:
    """The Dagster partition key of one cohort's snapshot."""
    day = snapshot_date if isinstance(snapshot_date, str) else snapshot_date.isoformat()
    return MultiPartitionKey({"cohort": cohort, "date": day})


def _iso_day(key: str, day: str) -> date:
    """``day`` of partition key ``key`` as a date, or an error naming both."""
    try:
        return date.fromisoformat(day)
    except ValueError:
        raise InvalidInputError(f"partition key {key!r}: {day!r} is not a YYYY-MM-DD date") from None


def partition_day(key: str) -> date:
    """The snapshot date of a partition key of either layout (``member|YYYY-MM-DD``)."""
    return _iso_day(key, str(key).rsplit("|", 1)[-1])


def parse_cohort_key(key: str) -> tuple[str, date]:
    """``cohort|date`` (or a MultiPartitionKey) to a validated (cohort, date)."""
    if isinstance(key, MultiPartitionKey):
        cohort, day = key.keys_by_dimension["cohort"], key.keys_by_dimension["date"]
    else:
        parts = str(key).split("|")
        if len(parts) != 2:
            raise InvalidInputError(f"partition key {key!r} is not 'cohort|date'")
        cohort, day = parts
    if cohort not in COHORTS:
        raise InvalidInputError(
            f"partition key {key!r}: {cohort!r} is not a cohort (c00 to c{COHORT_COUNT - 1:02d})"
        )
    return cohort, _iso_day(key, day)


def context_cohort_days(context: AssetExecutionContext) -> list[tuple[str, date]]:
    """Every (cohort, date) of this step, all validated first (one error names every bad key)."""
    found, problems = [], []
    for key in context.partition_keys:
        try:
            found.append(parse_cohort_key(key))
        except InvalidInputError as exc:
            problems.append(exc.message)
    if problems:
        raise InvalidInputError(
            f"{len(problems)} partition key(s) rejected before any API call: " + " | ".join(problems[:10])
        )
    return found


def cohorts_in_order(cohorts: Sequence[str]) -> list[str]:
    """``cohorts`` in the cohort dimension's order (the order partition ranges follow)."""
    wanted = set(cohorts)
    return [c for c in COHORTS if c in wanted]


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
    return creator_id, _iso_day(key, day)


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
