"""The whole graph in one place: every asset, check, job, schedule, sensor and resource.

``defs`` is built by :func:`build_defs`, which tests and benchmarks call too with resources of their
own. Configuration comes from the environment, read here once at load time by
:meth:`Settings.from_env` and handed to resources (as ``EnvVar`` where a value is secret or
operator-owned); assets never read the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from dagster import (
    AssetsDefinition,
    AssetSpec,
    Definitions,
    EnvVar,
    ExecutorDefinition,
    in_process_executor,
    map_asset_specs,
)

from pgy_pipeline.orchestration.analyst_assets import ANALYST_ASSETS, analyst_job, analyst_refresh_sensor
from pgy_pipeline.orchestration.assets import build_snapshot_assets, creators
from pgy_pipeline.orchestration.automation import (
    DEFAULT_SNAPSHOT_CRON,
    api_failure_sensor,
    api_guard_reset_job,
    build_creator_registry_sensor,
    build_daily_snapshot_schedule,
    build_raw_pages_followup_sensor,
    build_snapshot_jobs,
    creator_registry_job,
)
from pgy_pipeline.orchestration.dagster_internals import emit_one_planned_event_per_asset
from pgy_pipeline.orchestration.lake_maintenance import (
    DEFAULT_MAINTENANCE_CRON,
    build_lake_maintenance_schedule,
    lake_maintenance_job,
)
from pgy_pipeline.orchestration.partitions import PARTITIONINGS, SNAPSHOT_START_DATE, first_day_partitions
from pgy_pipeline.orchestration.pugongying_assets import figures_in_snapshot_job
from pgy_pipeline.orchestration.registry import CreatorRegistryResource
from pgy_pipeline.orchestration.resources import (
    FIGURE_CADENCES,
    NO_TOKEN_WARNING,
    PgyApiResource,
    PgyDuckDBResource,
)
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.lake import is_lake
from pgy_pipeline.warehouse.replica import first_snapshot_day

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_or(environ: Mapping[str, str], name: str, default: str) -> str | EnvVar:
    """``EnvVar(name)`` when the variable is set (resolved at run time, never shown), else the default."""
    return EnvVar(name) if environ.get(name) else default


def _env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    """A positive number from the environment, with an error that names the variable."""
    raw = environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a valid float") from None
    if value <= 0:
        raise ValueError(f"environment variable {name}={raw!r} must be positive")
    return value


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from the environment, with an error that names the variable."""
    raw = environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a valid int") from None
    if value <= 0:
        raise ValueError(f"environment variable {name}={raw!r} must be positive")
    return value


def _env_choice(environ: Mapping[str, str], name: str, allowed: Sequence[str], default: str) -> str:
    """One of ``allowed`` from the environment, with an error that names the variable and the choices."""
    raw = (environ.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in allowed:
        raise ValueError(f"environment variable {name}={raw!r} must be one of: {', '.join(allowed)}")
    return raw


def _lock_url(environ: Mapping[str, str]) -> str | EnvVar:
    """Where the step locks live: ``PGY_LOCK_URL``, else the team profile's ``DAGSTER_PG_URL`` (the same
    server as Dagster's storage, so every host shares them), else lock files beside the DuckDB file.
    As ``EnvVar``: the URL may hold a password, and is resolved only inside the run."""
    for name in ("PGY_LOCK_URL", "DAGSTER_PG_URL"):
        if environ.get(name):
            return EnvVar(name)
    return ""


def _first_snapshot_date(environ: Mapping[str, str], database: str) -> str:
    """Where the date partitions start, so that the UI offers no date before the project's first
    snapshot: ``PGY_FIRST_SNAPSHOT_DATE``, else the earliest snapshot stored, else today."""
    raw = (environ.get("PGY_FIRST_SNAPSHOT_DATE") or "").strip()
    today = today_shanghai()
    if raw:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ValueError(
                f"environment variable PGY_FIRST_SNAPSHOT_DATE={raw!r} is not a YYYY-MM-DD date"
            ) from None
        if not date.fromisoformat(SNAPSHOT_START_DATE) <= day <= today:
            raise ValueError(
                f"environment variable PGY_FIRST_SNAPSHOT_DATE={raw!r} must be between {SNAPSHOT_START_DATE} "
                f"and today ({today.isoformat()}, Asia/Shanghai)"
            )
        return day.isoformat()
    if is_lake(database):
        return SNAPSHOT_START_DATE  # a lake's history is not read at load time: set the variable
    return min(first_snapshot_day(database) or today, today).isoformat()


def default_duckdb_path(simulated: bool) -> str:
    """Simulated and real data never share a default file."""
    return str(PROJECT_ROOT / "data" / ("pgy_demo.duckdb" if simulated else "pgy.duckdb"))


@dataclass(frozen=True)
class Settings:
    """Everything an operator configures, read from the environment once."""

    pgy_api: PgyApiResource
    duckdb: PgyDuckDBResource
    creator_registry: CreatorRegistryResource
    snapshot_cron: str = DEFAULT_SNAPSHOT_CRON
    simulated: bool = True
    lake: bool = False
    lake_maintenance_cron: str = DEFAULT_MAINTENANCE_CRON
    # creator x date (per-creator status in the UI) or cohort x date (large rosters): PGY_PARTITIONING
    partitioning: str = "creator"
    # The first date partition (ISO): PGY_FIRST_SNAPSHOT_DATE, else the earliest stored snapshot, else today.
    first_snapshot_date: str = SNAPSHOT_START_DATE

    def __post_init__(self) -> None:
        if self.partitioning not in PARTITIONINGS:
            raise ValueError(
                f"PGY_PARTITIONING={self.partitioning!r} is not a partitioning: use "
                + " or ".join(PARTITIONINGS)
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        simulated = not env.get("JUSTONEAPI_TOKEN")
        lake = is_lake(env.get("PGY_DUCKDB_PATH", ""))
        if lake and not env.get("PGY_LAKE_DATA_PATH"):
            raise ValueError(
                "PGY_DUCKDB_PATH names a DuckLake (ducklake:...), so PGY_LAKE_DATA_PATH must say where its "
                "data files go: a directory every run can reach, or s3://bucket/prefix"
            )
        return cls(
            pgy_api=PgyApiResource(
                token=_env_or(env, "JUSTONEAPI_TOKEN", ""),
                base_url=_env_or(env, "JUSTONEAPI_BASE_URL", "https://api.justoneapi.com"),
                timeout_s=_env_float(env, "JUSTONEAPI_TIMEOUT_S", 60.0),
                # The real service's limit is not published: the pace starts at a safe 2 requests/s
                # and learns the limit, up to this ceiling. The demo's local simulator has no limit
                # worth respecting, so the demo starts at its ceiling.
                max_rps=_env_float(env, "JUSTONEAPI_MAX_RPS", 20.0 if simulated else 10.0),
                start_rps=_env_float(env, "JUSTONEAPI_START_RPS", 2.0) if not simulated else None,
                adaptive_pacing=env.get("JUSTONEAPI_ADAPTIVE_PACING", "true").strip().lower()
                not in ("0", "false", "no", "off"),
                max_concurrency=_env_int(env, "JUSTONEAPI_MAX_CONCURRENCY", 4),
                full_scan_every_days=_env_int(env, "PGY_FULL_SCAN_EVERY_DAYS", 7),
                daily_call_budget=_env_int(env, "PGY_DAILY_CALL_BUDGET", 0),  # unset: no budget
                pacing_url=_env_or(env, "PGY_PACING_URL", ""),
                # They cost calls: opt-in on real data; the demo shows them.
                pugongying_figures=_env_choice(
                    env, "PGY_PUGONGYING_FIGURES", FIGURE_CADENCES, "daily" if simulated else "off"
                ),
            ),
            duckdb=PgyDuckDBResource(
                database=_env_or(env, "PGY_DUCKDB_PATH", default_duckdb_path(simulated)),
                lock_wait_s=_env_float(env, "PGY_DUCKDB_LOCK_WAIT_S", 120.0),
                spool_dir=env.get("PGY_SPOOL_DIR") or "",
                lock_dir=env.get("PGY_LOCK_DIR") or "",
                lock_url=_lock_url(env),
                step_lock_wait_s=_env_float(env, "PGY_LOCK_WAIT_S", 600.0),
                lake_data_path=env.get("PGY_LAKE_DATA_PATH") or "",
                s3_endpoint=env.get("PGY_S3_ENDPOINT") or "",
                s3_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "",
                s3_url_style=env.get("PGY_S3_URL_STYLE") or "",
                s3_use_ssl=(env.get("PGY_S3_USE_SSL") or "true").lower() not in ("0", "false", "no"),
                s3_access_key_id=_env_or(env, "AWS_ACCESS_KEY_ID", ""),
                s3_secret_access_key=_env_or(env, "AWS_SECRET_ACCESS_KEY", ""),
                s3_session_token=_env_or(env, "AWS_SESSION_TOKEN", ""),
            ),
            creator_registry=CreatorRegistryResource(
                path=env.get("PGY_CREATORS_FILE") or str(PROJECT_ROOT / "creators.yaml"),
            ),
            snapshot_cron=env.get("PGY_SNAPSHOT_CRON") or DEFAULT_SNAPSHOT_CRON,
            simulated=simulated,
            lake=lake,
            lake_maintenance_cron=env.get("PGY_LAKE_MAINTENANCE_CRON") or DEFAULT_MAINTENANCE_CRON,
            partitioning=(env.get("PGY_PARTITIONING") or "creator").strip().lower(),
            first_snapshot_date=_first_snapshot_date(
                env, env.get("PGY_DUCKDB_PATH") or default_duckdb_path(simulated)
            ),
        )


def _flag_simulated(spec: AssetSpec) -> AssetSpec:
    """Without a token, every asset fed by the API says in the UI that its data is simulated."""
    return spec.replace_attributes(description=f"{NO_TOKEN_WARNING}\n\n{spec.description}")


def build_defs(
    settings: Settings | None = None, *, executor: ExecutorDefinition | None = None, **resource_overrides: Any
) -> Definitions:
    """The whole graph with ``settings`` (default: from the environment); keyword arguments replace
    resources by name (``pgy_api=..., duckdb=...``), as tests and benchmarks do.

    Runs execute their steps in the run's own process (``in_process_executor``) unless ``executor``
    says otherwise: a snapshot's three steps run one after another anyway, and a process per step
    cost seconds of start-up each (docs/benchmarks.md, fetch).

    A range run created in this process (``dagster asset materialize``, ``snapshot-now``, tests)
    writes one planned event per asset, not one per partition
    (:func:`~pgy_pipeline.orchestration.dagster_internals.emit_one_planned_event_per_asset`).
    """
    emit_one_planned_event_per_asset()
    settings = settings or Settings.from_env()
    # Everything computed from the API's data says so when that data is simulated.
    layout = settings.partitioning
    api_assets: list[AssetsDefinition] = list(
        map_asset_specs(
            lambda spec: spec.replace_attributes(
                partitions_def=first_day_partitions(spec.partitions_def, settings.first_snapshot_date)
            ),
            [*build_snapshot_assets(layout), *ANALYST_ASSETS],
        )
    )
    if settings.simulated:
        api_assets = list(map_asset_specs(_flag_simulated, api_assets))
    resources: dict[str, Any] = {
        "pgy_api": settings.pgy_api,
        "duckdb": settings.duckdb,
        "creator_registry": settings.creator_registry,
        **resource_overrides,
    }
    snapshot_job, analytics_rebuild_job = build_snapshot_jobs(
        layout, pugongying_figures=figures_in_snapshot_job(settings.pgy_api.pugongying_figures)
    )
    jobs: list[Any] = [
        snapshot_job,
        analytics_rebuild_job,
        creator_registry_job,
        api_guard_reset_job,
        analyst_job,
    ]
    schedules = [
        build_daily_snapshot_schedule(
            settings.snapshot_cron, settings.pgy_api.budget, partitioning=layout, job=snapshot_job
        )
    ]
    if settings.lake:
        jobs.append(lake_maintenance_job)
        schedules.append(build_lake_maintenance_schedule(settings.lake_maintenance_cron))
    return Definitions(
        assets=[*api_assets, creators],
        jobs=jobs,
        schedules=schedules,
        sensors=[
            build_creator_registry_sensor(layout, snapshot_job),
            build_raw_pages_followup_sensor(layout, analytics_rebuild_job),
            api_failure_sensor,
            analyst_refresh_sensor,
        ],
        resources=resources,
        executor=executor or in_process_executor,
        metadata={
            "data_source": "simulator (JUSTONEAPI_TOKEN unset)" if settings.simulated else "justoneapi"
        },
    )


defs = build_defs()
