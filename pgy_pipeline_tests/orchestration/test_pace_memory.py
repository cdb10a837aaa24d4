"""The learned pace carries over to the next run through the Dagster instance's own storage: on a real
instance on disk (the project's dagster.yaml), reopened between runs as the next process opens it, and
also when the run that learned it dies before its fetch ends. Mechanism only: no times, no rates."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dagster import DagsterInstance

from pgy_pipeline.api.pacing import AdaptivePacer, PaceState
from pgy_pipeline.definitions import PROJECT_ROOT
from pgy_pipeline.orchestration.api_access import api_access
from pgy_pipeline.orchestration.pace_memory import read_pace
from pgy_pipeline_tests.conftest import creator_ids, fast_api, run_pipeline, step_summary


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _home(tmp_path: Path) -> Path:
    """A Dagster home with the project's own instance settings (SQLite storage on disk)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def test_the_pacer_hands_over_its_pace_as_it_moves_at_most_once_per_interval():
    clock = FakeClock()
    saved: list[PaceState] = []
    pacer = AdaptivePacer(10.0, 4, start_rps=2.0, clock=clock, on_change=saved.append, save_every_s=1.0)
    for _ in range(200):  # slow start: the pace grows after each second's worth of successes
        clock.t += 0.05
        pacer.observe(False, clock.t)
    assert pacer.rate == 10.0
    assert saved and saved[-1] == pacer.state()  # the climb's end is handed over
    assert [s.rate_rps for s in saved] == sorted(s.rate_rps for s in saved)
    changes = [t for t, _ in pacer.history[1:]]
    assert len(saved) <= len(changes)
    count = len(saved)
    for _ in range(50):  # at the ceiling, nothing moves: nothing to hand over
        clock.t += 0.05
        pacer.observe(False, clock.t)
    assert len(saved) == count
    clock.t += 5
    pacer.observe(True, clock.t - 0.1)  # a 302 cuts the pace: handed over with the estimate
    assert saved[-1] == PaceState(pacer.rate, 10.0)


def test_a_second_run_on_the_reopened_instance_starts_at_the_pace_the_first_left(
    tmp_path, simulator, duckdb_resource
):
    ids = creator_ids(3, prefix="carry")
    for c in ids:
        simulator.set_note_count(c, 40)
    api = fast_api(simulator, max_rps=200.0, start_rps=2.0)  # 15 calls: the pace climbs
    home = _home(tmp_path)
    with DagsterInstance.from_config(str(home)) as first_process:
        first_process.add_dynamic_partitions("creators", ids)
        first = run_pipeline(first_process, api, duckdb_resource, ids)
        assert first.success
        ran = step_summary(first, "raw__note_pages")["api_pacing"].value
    with DagsterInstance.from_config(str(home)) as second_process:
        remembered = read_pace(second_process, f"simulator:{simulator.base_url}")
        assert remembered is not None
        assert ran["start_rps"] == 2.0 and round(remembered.rate_rps, 3) == ran["final_rps"]
        second = run_pipeline(
            second_process,
            api,
            duckdb_resource,
            ids,
            run_config={"ops": {"raw__note_pages": {"config": {"refresh": True}}}},
        )
        assert second.success
        pacing = step_summary(second, "raw__note_pages")["api_pacing"].value
    assert pacing["start_rps"] == round(remembered.rate_rps, 3) > 2.0


def test_a_run_that_dies_mid_fetch_leaves_the_pace_it_had_learned(tmp_path, simulator):
    api = fast_api(simulator, max_rps=200.0, start_rps=2.0)
    pace_at = f"simulator:{simulator.base_url}"
    home = _home(tmp_path)
    with DagsterInstance.from_config(str(home)) as dying:
        context: Any = SimpleNamespace(instance=dying, log=logging.getLogger("test"))
        client = api_access(context, api).open_client(None)  # type: ignore[arg-type]
        pacer = client.pacer
        assert isinstance(pacer, AdaptivePacer) and pacer.start_rps == 2.0
        while pacer.rate < 4.0:  # climbing, as answers come back
            pacer.observe(False, time.monotonic())
        climbed = pacer.state()
        # ... and the process dies here: no client.close(), no close_client()
    with DagsterInstance.from_config(str(home)) as next_process:
        remembered = read_pace(next_process, pace_at)
        assert remembered is not None and remembered.rate_rps > 2.0
        assert remembered.rate_rps <= climbed.rate_rps
        context = SimpleNamespace(instance=next_process, log=logging.getLogger("test"))
        client = api_access(context, api).open_client(None)  # type: ignore[arg-type]
        try:
            assert isinstance(client.pacer, AdaptivePacer)
            assert client.pacer.start_rps == remembered.rate_rps  # the next run starts there
        finally:
            client.close()
