"""Definitions for the orchestration benchmark's ``dagster asset materialize`` runs.

The pipeline's whole graph (``build_defs``) with its own resources, pointed by the environment at the
benchmark's simulator and DuckDB file: ``PGY_BENCH_SIM_URL``, ``PGY_BENCH_TOKEN``, ``PGY_BENCH_DB``.
The project's own executor (what ``build_defs`` gives users) unless ``PGY_BENCH_EXECUTOR`` names one
(``multiprocess``: one process per step; ``in_process``). ``PGY_BENCH_MAX_RPS`` sets the client's
ceiling (default: far above any limit, for the orchestration benchmark).
"""

from __future__ import annotations

import os
import warnings

from dagster import in_process_executor, multiprocess_executor

from pgy_pipeline.definitions import Settings, build_defs
from pgy_pipeline.orchestration.registry import CreatorRegistryResource
from pgy_pipeline.orchestration.resources import PgyApiResource, PgyDuckDBResource

warnings.filterwarnings("ignore", message=".*is currently in beta.*")

defs = build_defs(
    Settings(
        pgy_api=PgyApiResource(
            token=os.environ.get("PGY_BENCH_TOKEN", "unset"),
            base_url=os.environ.get("PGY_BENCH_SIM_URL", "http://127.0.0.1:9"),
            max_rps=float(os.environ.get("PGY_BENCH_MAX_RPS", "10000")),
            max_concurrency=4,
            timeout_s=30.0,
        ),
        duckdb=PgyDuckDBResource(database=os.environ.get("PGY_BENCH_DB", "/tmp/pgy-bench-orch.duckdb")),
        creator_registry=CreatorRegistryResource(path=os.environ.get("PGY_BENCH_REGISTRY", "creators.yaml")),
    ),
    executor={"in_process": in_process_executor, "multiprocess": multiprocess_executor}.get(
        os.environ.get("PGY_BENCH_EXECUTOR", "")
    ),
)
