"""Adaptive pacing: it finds a hidden limit, backs off on 302, climbs slowly, and is remembered."""

from __future__ import annotations

from pgy_pipeline.api.client import PgyClient
from pgy_pipeline.api.ingest import fetch_creators
from pgy_pipeline.api.pacing import AdaptivePacer, PaceState
from pgy_pipeline.orchestration.pace_memory import read_pace
from pgy_pipeline_tests.conftest import TEST_TOKEN, creator_ids, fast_api, run_pipeline, step_summary


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_cut_on_302_once_per_overload_then_additive_climb_to_the_ceiling():
    clock = FakeClock()
    pacer = AdaptivePacer(10.0, 4, start_rps=8.0, clock=clock)
    assert pacer.slow_start and pacer.rate == 8.0
    pacer.observe(True, released_at=clock.t - 0.1)
    assert pacer.rate == 8.0 * 0.85 and not pacer.slow_start and pacer.limit_estimate == 8.0
    clock.t += 0.2
    pacer.observe(True, released_at=clock.t - 0.5)  # released before the cut: same overload
    assert pacer.rate == 8.0 * 0.85 and pacer.cuts == 1 and pacer.rate_limited == 2
    rates = []
    for _ in range(3000):
        clock.t += 0.1
        pacer.observe(False, released_at=clock.t)
        rates.append(pacer.rate)
    assert rates == sorted(rates) and max(rates) <= 10.0
    # additive: one small step per second's worth of successes, slower near the last limit
    steps = [b - a for a, b in zip(rates, rates[1:], strict=False) if b > a]
    assert all(s <= 0.02 * 10.0 + 1e-9 for s in steps)
    assert pacer.rate == 10.0  # reached the ceiling and stays


def test_slow_start_and_a_learned_start():
    clock = FakeClock()
    fresh = AdaptivePacer(20.0, 4, start_rps=2.0, clock=clock)
    for _ in range(3):
        fresh.observe(False, clock.t)
    assert fresh.rate == 3.0  # grew by half after a second's worth (2 calls) of successes
    learned = AdaptivePacer(20.0, 4, start_rps=2.0, learned=PaceState(6.5, 7.2), clock=clock)
    assert learned.rate == 6.5 and not learned.slow_start
    capped = AdaptivePacer(5.0, 4, learned=PaceState(6.5, 7.2), clock=clock)
    assert capped.rate == 5.0  # the ceiling wins over memory


def test_finds_a_hidden_limit_on_the_simulator_without_losing_a_note(simulator):
    simulator.configure(rate_limit_rps=30)
    ids = creator_ids(30, prefix="aimd")
    for c in ids:
        simulator.set_note_count(c, 60)  # 8 pages each: 240 calls
    pacer = AdaptivePacer(80.0, 4, start_rps=10.0)
    client = PgyClient(TEST_TOKEN, base_url=simulator.base_url, pacer=pacer)
    with client:
        outcome = fetch_creators(client, ids)
    assert not outcome.failures
    assert all(len(s.notes) == 60 for s in outcome.scans.values())
    rejected = sum(1 for c in simulator.calls if c.outcome == 302)
    assert 1 <= rejected <= 0.1 * len(simulator.calls)
    assert pacer.cuts >= 1 and 0.6 * 30 <= pacer.rate <= 1.2 * 30


def test_the_learned_pace_is_remembered_for_the_next_run(instance, simulator, duckdb_resource):
    simulator.configure(rate_limit_rps=40)
    ids = creator_ids(3, prefix="memo")
    instance.add_dynamic_partitions("creators", ids)
    for c in ids:
        simulator.set_note_count(c, 40)
    api = fast_api(simulator, max_rps=200.0, start_rps=20.0)
    first = run_pipeline(instance, api, duckdb_resource, ids)
    assert first.success
    remembered = read_pace(instance, f"simulator:{simulator.base_url}")
    assert remembered is not None
    ran = step_summary(first, "raw__note_pages")["api_pacing"].value
    assert ran["start_rps"] == 20.0 and remembered.rate_rps == ran["final_rps"]
    second = run_pipeline(
        instance,
        api,
        duckdb_resource,
        ids,
        run_config={"ops": {"raw__note_pages": {"config": {"refresh": True}}}},
    )
    pacing = step_summary(second, "raw__note_pages")["api_pacing"].value
    assert pacing["start_rps"] == round(remembered.rate_rps, 3)
