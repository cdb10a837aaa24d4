"""What a snapshot step works on: its (creator, date) keys, and the Dagster partitions they report to.

In the ``creator`` layout the two are the same thing: one partition per creator and date. In the
``cohort`` layout (:mod:`.partitions`) a step's partitions are cohorts x dates, and its creators
come from elsewhere: ``raw/note_pages`` takes the registry's active creators of those cohorts
(:func:`fetch_scope`), the rebuilds take the creators whose raw pages are stored for those dates
(:func:`stored_scope`). Figures are kept per creator in DuckDB either way; a cohort partition's
metadata sums them (:meth:`StepScope.per_partition`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import duckdb
from dagster import AssetExecutionContext, MetadataValue, MultiPartitionKey

from pgy_pipeline.api.client import validate_creator_id
from pgy_pipeline.errors import InvalidCreatorIdError, InvalidInputError
from pgy_pipeline.orchestration.partitions import (
    cohort_of,
    cohort_partition_key,
    context_cohort_days,
    context_partition_keys,
    partition_key,
)
from pgy_pipeline.orchestration.registry import Registry
from pgy_pipeline.warehouse.keys import PartitionKey
from pgy_pipeline.warehouse.storage import stored_raw_creators


@dataclass(frozen=True)
class StepScope:
    """A step's creators x dates (``keys``) and the Dagster partitions of the step (``partitions``)."""

    keys: list[PartitionKey]
    partitions: list[MultiPartitionKey]
    cohort_days: list[tuple[str, date]] | None = None  # None in the creator layout

    @property
    def by_cohort(self) -> bool:
        return self.cohort_days is not None

    def partition_of(self, key: PartitionKey) -> MultiPartitionKey:
        """The Dagster partition a (creator, date) reports to."""
        if self.by_cohort:
            return cohort_partition_key(cohort_of(key[0]), key[1])
        return partition_key(*key)

    def per_partition(
        self, figures: Mapping[PartitionKey, Mapping[str, Any]]
    ) -> dict[MultiPartitionKey, dict[str, Any]]:
        """Per-creator figures as per-partition metadata: as they are in the creator layout; in the
        cohort layout, per cohort and date: ``creators`` counted, numbers summed, texts counted
        (``<name>_counts``). Every partition of the step gets an entry, an empty cohort too."""
        if not self.by_cohort:
            return {partition_key(*key): dict(values) for key, values in figures.items()}
        summed: dict[MultiPartitionKey, dict[str, Any]] = {p: {"creators": 0} for p in self.partitions}
        counted: dict[MultiPartitionKey, dict[str, dict[str, int]]] = {}
        for key, values in figures.items():
            part = self.partition_of(key)
            into = summed.setdefault(part, {"creators": 0})
            into["creators"] += 1
            for name, value in values.items():
                if isinstance(value, bool) or value is None:
                    continue
                if isinstance(value, int | float):
                    into[name] = into.get(name, 0) + value
                elif isinstance(value, str) and name != "creator":
                    texts = counted.setdefault(part, {}).setdefault(f"{name}_counts", {})
                    texts[value] = texts.get(value, 0) + 1
        for part, by_name in counted.items():
            for name, counts in by_name.items():
                summed[part][name] = MetadataValue.json(dict(sorted(counts.items())))
        return summed

    def by_partition(self) -> dict[MultiPartitionKey, list[PartitionKey]]:
        """The step's keys grouped by the partition they report to (every partition, empty ones too)."""
        grouped: dict[MultiPartitionKey, list[PartitionKey]] = {p: [] for p in self.partitions}
        for key in self.keys:
            grouped.setdefault(self.partition_of(key), []).append(key)
        return grouped


def creator_scope(context: AssetExecutionContext) -> StepScope:
    """The creator layout: every partition is one (creator, date), validated before any call."""
    keys = context_partition_keys(context)
    return StepScope(keys=keys, partitions=[partition_key(*k) for k in keys])


def _named_creators(names: Iterable[str], what: str) -> list[str]:
    """Validated ids from run config, every bad one named in one error."""
    ids, problems = [], []
    for raw in names:
        try:
            ids.append(validate_creator_id(raw))
        except InvalidCreatorIdError as exc:
            problems.append(exc.message.replace(" No API call was made.", ""))
    if problems:
        raise InvalidCreatorIdError(f"{what}: " + " | ".join(problems[:10]) + ". No API call was made.")
    return ids


def fetch_scope(
    context: AssetExecutionContext,
    registry: Registry,
    creators: Sequence[str] = (),
    skip_creators: Sequence[str] = (),
) -> StepScope:
    """The cohort layout's ``raw/note_pages``: the active registry creators of the step's cohorts, or
    only ``creators`` (any registry creator, active or not), less ``skip_creators``.

    Every problem is refused before any API call: a bad key, a bad id, a creator not in the
    registry, or one outside the step's cohorts (the message names its cohort).
    """
    cohort_days = context_cohort_days(context)
    cohorts = {c for c, _ in cohort_days}
    if creators:
        wanted = _named_creators(creators, "run config 'creators'")
        known = {c.creator_id for c in registry.creators}
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise InvalidInputError(
                f"run config 'creators' names {len(unknown)} creator(s) not in the registry: "
                f"{', '.join(unknown[:10])}. Add them to the registry file first. No API call was made."
            )
        outside = [f"{c} (cohort {cohort_of(c)})" for c in wanted if cohort_of(c) not in cohorts]
        if outside:
            raise InvalidInputError(
                f"run config 'creators' names {len(outside)} creator(s) outside this run's cohorts "
                f"({', '.join(sorted(cohorts))}): {', '.join(outside[:10])}. Select their cohorts' "
                "partitions. No API call was made."
            )
    else:
        wanted = registry.active_ids
    skip = set(_named_creators(skip_creators, "run config 'skip_creators'"))
    members: dict[str, list[str]] = {}  # cohort -> creators, each id hashed once
    for creator_id in wanted:
        if creator_id not in skip:
            members.setdefault(cohort_of(creator_id), []).append(creator_id)
    keys = [(creator_id, day) for cohort, day in cohort_days for creator_id in members.get(cohort, [])]
    return StepScope(
        keys=keys, partitions=[cohort_partition_key(c, d) for c, d in cohort_days], cohort_days=cohort_days
    )


def stored_scope(context: AssetExecutionContext, conn: duckdb.DuckDBPyConnection) -> StepScope:
    """The cohort layout's rebuilds: every creator of the step's cohorts whose raw pages are stored
    for the step's dates."""
    cohort_days = context_cohort_days(context)
    wanted = set(cohort_days)
    stored = stored_raw_creators(conn, sorted({d for _, d in cohort_days}))
    keys = [(c, d) for c, d in stored if (cohort_of(c), d) in wanted]
    return StepScope(
        keys=keys, partitions=[cohort_partition_key(c, d) for c, d in cohort_days], cohort_days=cohort_days
    )
