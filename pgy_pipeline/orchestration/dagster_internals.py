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
  (``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS``, read by the event log storage).

No other module reads or sets a ``DAGSTER_*`` variable of Dagster's internals (``test_layers.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence

from dagster import AssetKey, DagsterEvent, DagsterInstance
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition as AssetJobDefinition,
)
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
