"""When a step publishes the analysts' read replica, and which snapshot days it says it changed.

A run's steps write one after another (raw pages, then notes, then metrics; the analyst tables by
date). The replica is published once per run, by the last step that writes: a step publishes unless an
asset downstream of it that also writes is selected in the same run (:func:`publishes_replica`). If
that later step fails, what the earlier ones wrote stays in the change journal and goes out with the
next publication.

Each write tells the journal the snapshot days it may change (:func:`step_days`): the dates of the
step's partitions, whatever the layout (``creator|date``, ``cohort|date`` or a date), plus the days of
any spooled calls it writes into the ledger. A publication then rewrites only those days' rows (see
:mod:`pgy_pipeline.warehouse.replica`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from dagster import AssetExecutionContext, AssetKey

from pgy_pipeline.orchestration.asset_keys import REPORT_KEY
from pgy_pipeline.warehouse.ledger import PendingCalls

#: Assets whose step writes nothing analysts read in the replica (the HTML reports are files).
NOT_PUBLISHING = frozenset({REPORT_KEY})


def _day(part: str) -> date | None:
    try:
        return date.fromisoformat(part)
    except ValueError:
        return None


def step_days(context: AssetExecutionContext) -> set[date]:
    """The snapshot dates of the step's partitions (every dimension that is a date)."""
    days: set[date] = set()
    if not context.has_partition_key and not context.has_partition_key_range:
        return days
    for key in context.partition_keys:
        for part in str(key).split("|"):
            day = _day(part)
            if day is not None:
                days.add(day)
    return days


def pending_days(pending: PendingCalls) -> set[date]:
    """The snapshot days of spooled calls about to go into the ledger (a killed run's, maybe older)."""
    if not pending.count:
        return set()
    return {d for d in pending.table.column("snapshot_date").to_pylist() if isinstance(d, date)}


def publishes_replica(context: AssetExecutionContext) -> bool:
    """True when no asset downstream of this step's assets, one that writes the DuckDB file, is
    selected in this run: this step is the run's last writer and publishes the replica."""
    layer = context.job_def.asset_layer
    graph = layer.asset_graph
    # the run's selection; empty or None when the run is the whole job (as ``materialize`` makes it)
    in_run: set[AssetKey] = set(context.run.asset_selection or layer.selected_asset_keys)
    seen: set[AssetKey] = set()
    frontier: list[AssetKey] = list(context.selected_asset_keys)
    while frontier:
        key = frontier.pop()
        children = graph.get(key).child_entity_keys if graph.has(key) else set()
        for child in children:
            if not isinstance(child, AssetKey) or child in seen:
                continue
            seen.add(child)
            if child in in_run and child not in NOT_PUBLISHING:
                return False
            frontier.append(child)
    return True


def days_and(*groups: Iterable[date]) -> set[date]:
    return {d for group in groups for d in group}
