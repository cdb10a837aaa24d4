"""The only place that touches Dagster APIs outside its public surface (Dagster is pinned).

Dagster has no public way for what this module does; each function names the internal it relies on,
and ``pgy_pipeline_tests/orchestration/test_dagster_internals.py`` fails loudly if an upgrade
changes any of them:

* a small key-value store in the instance's own storage (``run_storage`` cursor values), which
  carries the quota/account guard across runs, hosts and days, on SQLite and PostgreSQL alike;
* adding a tag to a finished run (``DagsterInstance.add_run_tags``), for the failure cause;
* the names of the run tags that make one run cover a range of partitions;
* the chain of causes of a step failure's serialized error;
* the set of materialized partition keys of an asset (``get_materialized_partitions``), which tells the
  schedule how stale each creator is without opening DuckDB;
* the type ``define_asset_job`` returns (``UnresolvedAssetJobDefinition``, not exported), for type hints;
* the environment variable that makes a range run's creation write one planned event per asset
  (``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS``, read by the event log storage);
* a step's per-partition metadata, given for every partition at once (the step context's
  ``_metadata_accumulator``), where ``add_asset_metadata`` checks each key by listing the run's range.

No other module reads or sets a ``DAGSTER_*`` variable of Dagster's internals (``test_layers.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any, TypeVar

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterEvent,
    DagsterInstance,
    DagsterInvariantViolationError,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJobDefinition,
)
from dagster._core.execution.context.metadata_logging import AssetMetadataHandle, OutputMetadataAccumulator
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

__all__ = [
    "AssetJobDefinition",
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "tag_run",
    "error_messages",
    "read_value",
    "write_value",
    "materialized_partitions",
    "PLANNED_EVENTS_VAR",
    "emit_one_planned_event_per_asset",
    "add_partition_metadata",
]


def read_value(instance: DagsterInstance, key: str) -> str | None:
    """A value stored under ``key`` in the instance's storage, or None."""
    value = instance.run_storage.get_cursor_values({key}).get(key)
    return value or None


def write_value(instance: DagsterInstance, key: str, value: str) -> None:
    """Store ``value`` under ``key`` in the instance's storage (an empty string clears it)."""
    instance.run_storage.set_cursor_values({key: value})


def tag_run(instance: DagsterInstance, run_id: str, tags: Mapping[str, str]) -> None:
    """Add tags to an existing run (shown in the runs list)."""
    instance.add_run_tags(run_id, dict(tags))


def error_messages(events: Sequence[DagsterEvent]) -> Iterator[str]:
    """Every message in the cause chains of these step failure events."""
    for event in events:
        error = event.step_failure_data.error if event.step_failure_data else None
        while error is not None:
            yield error.message
            error = error.cause


def materialized_partitions(instance: DagsterInstance, asset_key: AssetKey) -> set[str]:
    """Every partition key of ``asset_key`` with a materialization on record."""
    return set(instance.get_materialized_partitions(asset_key))


PLANNED_EVENTS_VAR = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def emit_one_planned_event_per_asset(environ: MutableMapping[str, str] | None = None) -> None:
    """Make runs created by this process write one "materialization planned" event per asset.

    Without it, creating a run over N partitions writes N planned events per asset, one event-log
    commit each (seconds per range run on SQLite: docs/benchmarks.md). Dagster 1.13.27 reads the
    variable in ``EventLogStorage.supports_partition_subset_in_asset_materialization_planned_events``,
    whose one reader is ``RunDomain.get_materialization_planned_events_for_asset``, called from
    ``create_run``: so it matters in **the process that creates the run**, not in the run worker
    (which only executes a run already created, planned events included). Those processes are:

    * anything that loads the definitions in-process and creates runs: ``dagster asset materialize
      -m pgy_pipeline.definitions``, ``python -m pgy_pipeline snapshot-now``, ``materialize`` and
      ``execute_in_process`` in tests and benchmarks. ``build_defs`` calls this function for them;
    * the webserver (the UI's Materialize, re-executions) and the daemon (schedule, sensors,
      backfills), which never import the definitions (they reach the code through a code server):
      they need the variable in their own environment, set by ``scripts/dev.sh`` and by the
      Kubernetes values for the webserver and daemon pods.

    Sets it only when unset, so an operator's ``false`` wins (exact per-partition planned events;
    the cost: a failed run's partitions may show as missing rather than failed).
    """
    env = os.environ if environ is None else environ
    env.setdefault(PLANNED_EVENTS_VAR, "1")


_Key = TypeVar("_Key", bound=str)  # a partition key: str, or MultiPartitionKey


def add_partition_metadata(
    context: AssetExecutionContext,
    by_partition: Mapping[_Key, Mapping[str, Any]],
    asset_key: AssetKey | None = None,
) -> None:
    """``context.add_asset_metadata(values, partition_key=key)`` for every ``key: values`` at once.

    The same metadata on the same materializations, and the same refusal of a key outside the step's
    partitions. Dagster 1.13.27's ``StepExecutionContext.add_asset_metadata`` checks each key by listing
    every key of the run's range, and listing a range over the dynamic creators dimension asks the
    instance about each creator (``has_dynamic_partition``): N calls for N partitions made N x N
    storage queries (6,400 per step at 80 creators, seconds per run: docs/benchmarks.md, fetch). Here
    the step's keys are listed once, and the metadata goes where ``add_asset_metadata`` puts it, the
    step context's ``_metadata_accumulator``, merged with what is there already.
    """
    if not by_partition:
        return
    step = context.get_step_execution_context()
    key = asset_key or context.asset_key
    targeted = {str(k) for k in context.partition_keys}
    outside = sorted(str(k) for k in by_partition if str(k) not in targeted)
    if outside:
        raise DagsterInvariantViolationError(
            f"Attempted to add metadata for partition key '{outside[0]}' that is not being targeted."
        )
    merged: dict[Any, Mapping[str, Any]] = dict(step._metadata_accumulator.per_output_metadata)
    for part, values in by_partition.items():
        handle = AssetMetadataHandle(asset_key=key, partition_key=part)
        merged[handle] = {**merged.get(handle, {}), **values}
    step._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=merged)
