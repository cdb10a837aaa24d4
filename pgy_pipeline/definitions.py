"""The whole graph in one place: every asset, check, job, schedule, sensor and resource.

Configuration comes from the environment, read here once at load time and handed to resources as
``EnvVar`` where a value is secret or operator-owned; assets never read the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import AssetSpec, Definitions, EnvVar, map_asset_specs

from pgy_pipeline.assets import creator_engagement_metrics, creators, note_pages, notes
from pgy_pipeline.automation import (
    DEFAULT_SNAPSHOT_CRON,
    analytics_rebuild_job,
    api_failure_sensor,
    api_guard_reset_job,
    build_daily_snapshot_schedule,
    creator_registry_job,
    creator_registry_sensor,
    raw_pages_followup_sensor,
    snapshot_job,
)
from pgy_pipeline.registry import CreatorRegistryResource
from pgy_pipeline.resources import NO_TOKEN_WARNING, PgyApiResource
from pgy_pipeline.storage import PgyDuckDBResource

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_or(name: str, default: str) -> str | EnvVar:
    """``EnvVar(name)`` when the variable is set (resolved at run time, never shown), else the default."""
    return EnvVar(name) if os.getenv(name) else default


def _env_number(name: str, default: float, kind: type = float) -> float:
    """A numeric setting from the environment, with an error that names the variable."""
    raw = os.getenv(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a valid {kind.__name__}") from None
    if value <= 0:
        raise ValueError(f"environment variable {name}={raw!r} must be positive")
    return value


def default_duckdb_path(simulated: bool) -> str:
    """Simulated and real data never share a default file."""
    return str(PROJECT_ROOT / "data" / ("pgy_demo.duckdb" if simulated else "pgy.duckdb"))


_SIMULATED = not os.getenv("JUSTONEAPI_TOKEN")

pgy_api = PgyApiResource(
    token=_env_or("JUSTONEAPI_TOKEN", ""),
    base_url=_env_or("JUSTONEAPI_BASE_URL", "https://api.justoneapi.com"),
    timeout_s=_env_number("JUSTONEAPI_TIMEOUT_S", 60.0),
    # The real service's limit is not published: 2 requests/s is a safe start. The local simulator
    # of the demo has no limit worth respecting, so the demo runs faster.
    max_rps=_env_number("JUSTONEAPI_MAX_RPS", 20.0 if _SIMULATED else 2.0),
    max_concurrency=_env_number("JUSTONEAPI_MAX_CONCURRENCY", 4, int),
)
duckdb_resource = PgyDuckDBResource(
    database=_env_or("PGY_DUCKDB_PATH", default_duckdb_path(_SIMULATED)),
    lock_wait_s=_env_number("PGY_DUCKDB_LOCK_WAIT_S", 120.0),
    spool_dir=os.getenv("PGY_SPOOL_DIR") or "",
)

creator_registry = CreatorRegistryResource(
    path=os.getenv("PGY_CREATORS_FILE") or str(PROJECT_ROOT / "creators.yaml"),
)
daily_snapshot_schedule = build_daily_snapshot_schedule(
    os.getenv("PGY_SNAPSHOT_CRON") or DEFAULT_SNAPSHOT_CRON
)


def _flag_simulated(spec: AssetSpec) -> AssetSpec:
    """Without a token, every asset fed by the API says in the UI that its data is simulated."""
    return spec.replace_attributes(description=f"{NO_TOKEN_WARNING}\n\n{spec.description}")


api_assets = [note_pages, notes, creator_engagement_metrics]
if _SIMULATED:
    api_assets = map_asset_specs(_flag_simulated, api_assets)

defs = Definitions(
    assets=[*api_assets, creators],
    jobs=[snapshot_job, analytics_rebuild_job, creator_registry_job, api_guard_reset_job],
    schedules=[daily_snapshot_schedule],
    sensors=[creator_registry_sensor, raw_pages_followup_sensor, api_failure_sensor],
    resources={"pgy_api": pgy_api, "duckdb": duckdb_resource, "creator_registry": creator_registry},
    metadata={"data_source": "simulator (JUSTONEAPI_TOKEN unset)" if _SIMULATED else "justoneapi"},
)
