"""Definitions for the Dagster UI benchmark (``benchmarks.dagster_ui``); ``benchmarks.ui_location`` is the
code location its webserver and daemon load, configured by the environment:

* ``PGY_UIBENCH_DEFS=real`` (default): the project's own definitions, ``build_defs(Settings.from_env())``;
  the benchmark points ``PGY_CREATORS_FILE``, ``PGY_DUCKDB_PATH``, ``PGY_SNAPSHOT_CRON`` and
  ``PGY_PARTITIONING`` at its temporary files and layout.
* ``PGY_UIBENCH_DEFS=standin``: the same three asset keys, partition shapes, job and a schedule that
  asks for one range run over today's partitions, with bodies that do nothing (the UI, a backfill
  launch and a schedule tick never execute a step in this benchmark).
* ``PGY_UIBENCH_START=YYYY-MM-DD``: the first day of the date dimension. History of more days than
  have passed since the project's ``SNAPSHOT_START_DATE`` needs an earlier start; the partitions
  module is loaded with that one constant changed (before anything imports it), so every definition
  built from it (both layouts) gets the longer date dimension. Benchmark-only.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import warnings

warnings.filterwarnings("ignore", message=".*is currently in beta.*")
warnings.filterwarnings("ignore", category=DeprecationWarning)

from dagster import (  # noqa: E402  (Dagster itself does not import the partitions module)
    AssetKey,
    BackfillPolicy,
    DefaultScheduleStatus,
    Definitions,
    RunRequest,
    ScheduleEvaluationContext,
    asset,
    define_asset_job,
    schedule,
)

from pgy_pipeline.orchestration.registry import CreatorRegistryResource  # noqa: E402  (does not import it either)

PARTITIONS_MODULE = "pgy_pipeline.orchestration.partitions"
COHORTS = [f"c{i:02d}" for i in range(64)]


def load_partitions_with_start(start: str) -> None:
    """Import the partitions module with ``SNAPSHOT_START_DATE = start`` (fails loudly if it moved)."""
    if PARTITIONS_MODULE in sys.modules:
        if getattr(sys.modules[PARTITIONS_MODULE], "SNAPSHOT_START_DATE", None) == start:
            return
        raise RuntimeError(f"{PARTITIONS_MODULE} was imported before the start date could be set")
    import pgy_pipeline.orchestration  # noqa: F401  (the parent package, without the module)

    spec = importlib.util.find_spec(PARTITIONS_MODULE)
    assert spec is not None and spec.origin is not None and spec.loader is not None
    source = open(spec.origin, encoding="utf-8").read()
    pattern = re.compile(r'^SNAPSHOT_START_DATE = "\d{4}-\d{2}-\d{2}"', re.M)
    if not pattern.search(source):
        raise RuntimeError(f"SNAPSHOT_START_DATE not found in {spec.origin}: update benchmarks/ui_defs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[PARTITIONS_MODULE] = module
    exec(
        compile(pattern.sub(f'SNAPSHOT_START_DATE = "{start}"', source), spec.origin, "exec"), module.__dict__
    )


def cohort_partitions_def():  # type: ignore[no-untyped-def]
    """The project's cohort x date partitions, or the same shape built here until it exists."""
    from dagster import MultiPartitionsDefinition, StaticPartitionsDefinition

    from pgy_pipeline.orchestration import partitions

    found = getattr(partitions, "cohort_note_partitions", None)
    if found is not None:
        return found
    return MultiPartitionsDefinition(
        {"cohort": StaticPartitionsDefinition(COHORTS), "date": partitions.snapshot_date_partitions}
    )


def standin_defs(layout: str):  # type: ignore[no-untyped-def]
    """Same asset keys, partitions, job and schedule name as the pipeline; nothing executes."""
    from pgy_pipeline.orchestration import partitions

    pdef = partitions.note_partitions if layout == "creator" else cohort_partitions_def()
    common = {"partitions_def": pdef, "backfill_policy": BackfillPolicy.single_run(), "group_name": "pgy"}

    @asset(key=AssetKey(["raw", "note_pages"]), **common)
    def note_pages() -> None:
        """Raw pages (stand-in)."""

    @asset(key=AssetKey(["analytics", "notes"]), deps=[note_pages], **common)
    def notes() -> None:
        """Notes (stand-in)."""

    @asset(key=AssetKey(["analytics", "creator_engagement_metrics"]), deps=[notes], **common)
    def creator_engagement_metrics() -> None:
        """Metrics (stand-in)."""

    snapshot_job = define_asset_job(
        "snapshot_job", selection=[note_pages, notes, creator_engagement_metrics], partitions_def=pdef
    )

    @schedule(
        name="daily_snapshot_schedule",
        cron_schedule=os.environ.get("PGY_SNAPSHOT_CRON", "0 8 * * *"),
        execution_timezone="Asia/Shanghai",
        job=snapshot_job,
        default_status=DefaultScheduleStatus.RUNNING,
    )
    def daily_snapshot_schedule(
        context: ScheduleEvaluationContext, creator_registry: CreatorRegistryResource
    ) -> list[RunRequest]:
        registry = creator_registry.load()  # the roster is read whatever the layout
        when = context.scheduled_execution_time
        day = when.astimezone(partitions.SHANGHAI).date() if when else partitions.today_shanghai()
        if layout == "creator":
            registered = list(context.instance.get_dynamic_partitions("creators"))
            first, last = registered[0], registered[-1]
        else:
            first, last = COHORTS[0], COHORTS[-1]
        tags = {
            "dagster/asset_partition_range_start": f"{first}|{day}",
            "dagster/asset_partition_range_end": f"{last}|{day}",
            "pgy/creators": str(len(registry.active_ids)),
        }
        return [RunRequest(run_key=f"daily-{day}", tags=tags)]

    return Definitions(
        assets=[note_pages, notes, creator_engagement_metrics],
        jobs=[snapshot_job],
        schedules=[daily_snapshot_schedule],
        resources={
            "creator_registry": CreatorRegistryResource(
                path=os.environ.get("PGY_CREATORS_FILE", "creators.yaml")
            )
        },
    )
