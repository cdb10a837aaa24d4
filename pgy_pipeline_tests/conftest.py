"""Shared fixtures: a simulator on real loopback HTTP, a temporary DuckDB file and Dagster instance."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    ExecuteInProcessResult,
    instance_for_test,
    materialize,
)

from pgy_pipeline.clock import SHIFT_VAR, shift_for_one_day

# One Asia/Shanghai day for the whole suite, however close to midnight it starts: every test, the
# pipeline, the simulator and the processes they start read "now" through pgy_pipeline.clock, which
# this shift moves to 08:00 of the day the suite started (16 hours of headroom). Set before any test
# module is imported, so module-level TODAY constants agree with the pipeline's.
os.environ.setdefault(SHIFT_VAR, str(shift_for_one_day()))

from pgy_pipeline.api.transport import reset_circuit_breakers  # noqa: E402
from pgy_pipeline.orchestration.assets import creator_engagement_metrics, note_pages, notes
from pgy_pipeline.orchestration.automation import range_tags as snapshot_range_tags
from pgy_pipeline.orchestration.partitions import today_shanghai
from pgy_pipeline.orchestration.resources import PgyApiResource, PgyDuckDBResource
from pgy_pipeline.simulator import Simulator

warnings.filterwarnings("ignore", message=".*is currently in beta.*")

# The collected-tests count for scripts/run_suite.py, PostgreSQL skips listed at the end (failures
# under CI): see the plugin's docstring.
pytest_plugins = ["pgy_pipeline_tests.suite_checks"]

# A recognisable token: tests search for these bytes everywhere the pipeline writes.
TEST_TOKEN = "tok-PGYTEST-7f3e9a1c5b"
ALL_ASSETS = [note_pages, notes, creator_engagement_metrics]


def creator_ids(n: int, prefix: str = "c") -> list[str]:
    """``n`` deterministic, valid 24-hex creator ids."""
    return [hashlib.sha1(f"{prefix}{i}".encode()).hexdigest()[:24] for i in range(n)]


@pytest.fixture(autouse=True)
def _fresh_circuit_breakers() -> Iterator[None]:
    reset_circuit_breakers()
    yield
    reset_circuit_breakers()


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    sim = Simulator(token=TEST_TOKEN)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def fast_api(sim: Simulator, **overrides) -> PgyApiResource:
    """The API resource against ``sim``, with tiny backoffs so retry tests run in milliseconds."""
    settings = dict(
        token=TEST_TOKEN,
        base_url=sim.base_url,
        timeout_s=5.0,
        max_rps=1000.0,
        max_concurrency=4,
        backoff_initial_s=0.01,
        rate_limit_backoff_s=0.01,
    )
    settings.update(overrides)
    return PgyApiResource(**settings)


@pytest.fixture
def api(simulator: Simulator) -> PgyApiResource:
    return fast_api(simulator)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "pgy.duckdb")


@pytest.fixture
def duckdb_resource(db_path: str) -> PgyDuckDBResource:
    return PgyDuckDBResource(database=db_path, lock_wait_s=2.0)


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as inst:
        yield inst


def range_tags(creators: list[str], day: str | None = None) -> dict[str, str]:
    """Run tags for one run over ``creators`` (contiguous in registration order) on ``day``."""
    when = date.fromisoformat(day) if day else today_shanghai()
    return snapshot_range_tags(creators[0], creators[-1], when)


def setup_creators(
    instance: DagsterInstance, simulator: Simulator, prefix: str, note_counts: list[int]
) -> list[str]:
    """Creators with these note counts on the simulator, registered as partitions of ``instance``."""
    ids = creator_ids(len(note_counts), prefix=prefix)
    for c, n in zip(ids, note_counts, strict=True):
        simulator.set_note_count(c, n)
    instance.add_dynamic_partitions("creators", ids)
    return ids


def run_pipeline(
    instance: DagsterInstance,
    api: PgyApiResource,
    duckdb_resource: PgyDuckDBResource,
    creators: list[str],
    day: str | None = None,
    assets: list | None = None,
    run_config: dict | None = None,
) -> ExecuteInProcessResult:
    """Materialize ``assets`` (default: all three) for ``creators`` on ``day`` as one range run."""
    return materialize(
        assets or ALL_ASSETS,
        instance=instance,
        resources={"pgy_api": api, "duckdb": duckdb_resource},
        tags=range_tags(creators, day),
        run_config=run_config,
        raise_on_error=False,
    )


def step_summary(result: ExecuteInProcessResult, node: str) -> dict:
    """A step's totals and previews (``run_total/...``, preview tables): its one summary observation.

    They are logged once per step, not copied into each partition's materialization."""
    key = AssetKey(node.split("__"))
    found = [
        e.event_specific_data.asset_observation.metadata
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_OBSERVATION
        and e.event_specific_data.asset_observation.asset_key == key
    ]
    assert len(found) == 1, f"{node}: expected one step summary, found {len(found)}"
    return found[0]


def error_chain_text(err) -> str:
    """A serialized Dagster error's message and every cause's, one per line."""
    texts = []
    while err is not None:
        texts.append(err.message)
        err = err.cause
    return "\n".join(texts)


def step_failure_messages(result: ExecuteInProcessResult) -> list[str]:
    """Every step failure's error text (message plus cause), for assertions on what a person sees."""
    return [error_chain_text(e.step_failure_data.error) for e in result.all_events if e.is_step_failure]


REPO_ROOT = Path(__file__).resolve().parent.parent


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any of the project's settings (a newcomer's shell), the
    suite's clock shift kept (see the top of this file), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGY_", "JUSTONEAPI_", "DAGSTER_"))}
    env[SHIFT_VAR] = os.environ.get(SHIFT_VAR, "")
    return {**env, **extra}


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    """A fresh clone of this checkout's committed tree, with this checkout's installed environment
    (so the project's scripts install nothing)."""
    import subprocess

    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(REPO_ROOT / ".venv")
    return clone
