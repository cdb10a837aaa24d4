"""Lake profile only: the scheduled maintenance of a DuckLake warehouse.

Every partition write on a lake adds small Parquet files and a snapshot; deleting a partition's old
rows adds delete files. Left alone, queries slow down and storage grows with every run. This job
merges adjacent small files, expires snapshots older than a week, deletes the files no remaining
snapshot needs and any orphan left by a run killed before its commit. Its figures land in the run's
metadata (the step's output) and in its log. It runs beside snapshot runs: each operation is its own
transaction and is retried when it conflicts with a writer.
"""

from datetime import timedelta

from dagster import (
    Config,
    DefaultScheduleStatus,
    Failure,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    job,
    op,
)
from pydantic import Field

from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline.warehouse.lake import run_maintenance

DEFAULT_MAINTENANCE_CRON = "30 4 * * *"


class LakeMaintenanceConfig(Config):
    """Run config of ``lake_maintenance_job``."""

    expire_snapshots_older_than_days: float = Field(
        default=7.0, description="Snapshots older than this are expired (time travel stops there)."
    )
    cleanup_files_older_than_hours: float = Field(
        default=1.0, description="Files of expired snapshots are deleted this long after expiry."
    )
    orphans_older_than_hours: float = Field(
        default=24.0,
        description="Files no snapshot knows are deleted past this age (younger ones may be a live commit's).",
    )


@op(description="Merge small lake files, expire old snapshots, delete unneeded and orphaned files.")
def compact_lake(
    context: OpExecutionContext, config: LakeMaintenanceConfig, duckdb: PgyDuckDBResource
) -> Output[None]:
    if not duckdb.is_lake:
        raise Failure(
            description="lake maintenance needs the lake profile (PGY_DUCKDB_PATH=ducklake:...); "
            "a DuckDB file needs none."
        )
    with duckdb.get_connection() as conn:
        figures = run_maintenance(
            conn,
            expire_older_than=timedelta(days=config.expire_snapshots_older_than_days),
            cleanup_older_than=timedelta(hours=config.cleanup_files_older_than_hours),
            orphan_older_than=timedelta(hours=config.orphans_older_than_hours),
        )
    values = figures.as_dict()
    context.log.info("lake maintenance: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    return Output(None, metadata={k: MetadataValue.int(v) for k, v in values.items()})


@job(description="Lake profile: compact the DuckLake warehouse and expire its old snapshots.")
def lake_maintenance_job() -> None:
    compact_lake()


def build_lake_maintenance_schedule(cron_schedule: str = DEFAULT_MAINTENANCE_CRON) -> ScheduleDefinition:
    """``lake_maintenance_schedule`` at ``cron_schedule`` (Asia/Shanghai; PGY_LAKE_MAINTENANCE_CRON)."""
    return ScheduleDefinition(
        name="lake_maintenance_schedule",
        cron_schedule=cron_schedule,
        execution_timezone="Asia/Shanghai",
        job=lake_maintenance_job,
        default_status=DefaultScheduleStatus.RUNNING,
        description="Compacts the lake once a day, outside the snapshot hour.",
    )
