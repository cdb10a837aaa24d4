"""The daily call budget: never passed, creators left for tomorrow named, the tick skipped with why."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import duckdb
import pytest
from dagster import build_schedule_context

from pgy_pipeline import clock
from pgy_pipeline.api.ledger import ApiCall
from pgy_pipeline.errors import BudgetExhaustedError
from pgy_pipeline.orchestration.automation import build_daily_snapshot_schedule
from pgy_pipeline.orchestration.budget import BudgetVerdict, CallBooks, read_spent_budget, record_verdict
from pgy_pipeline.orchestration.partitions import SHANGHAI
from pgy_pipeline.orchestration.registry import CreatorRegistryResource
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.ledger import CallJournal
from pgy_pipeline_tests.conftest import creator_ids, fast_api, run_pipeline, step_failure_messages

TODAY = today_shanghai()


def test_a_budget_of_n_calls_is_never_passed_and_the_message_names_it(
    instance, simulator, duckdb_resource, db_path
):
    ids = creator_ids(4, prefix="budget")
    instance.add_dynamic_partitions("creators", ids)
    for c in ids:
        simulator.set_note_count(c, 20)  # 3 pages each: 12 calls for all four
    api = fast_api(simulator, daily_call_budget=7)
    result = run_pipeline(instance, api, duckdb_resource, ids)
    assert not result.success
    billed = sum(c.billed for c in simulator.calls)
    assert billed <= 7
    [message] = step_failure_messages(result)
    assert "daily call budget of 7 calls (PGY_DAILY_CALL_BUDGET) spent until 00:00 Asia/Shanghai" in message
    with duckdb.connect(db_path, read_only=True) as conn:
        written = {r[0] for r in conn.execute("SELECT DISTINCT creator_id FROM raw.note_pages").fetchall()}
        in_ledger = conn.execute("SELECT count(*) FILTER (WHERE billed) FROM meta.api_calls").fetchall()[0][0]
    assert in_ledger == billed
    left = [c for c in ids if c not in written]
    assert written and left
    assert all(c in message for c in left)

    # Later the same day: the budget is spent, so no call at all, and the message says so again.
    simulator.reset_stats()
    again = run_pipeline(instance, api, duckdb_resource, left)
    assert not again.success and simulator.call_count() == 0
    [message] = step_failure_messages(again)
    assert "daily call budget of 7 calls" in message and all(c in message for c in left)
    assert read_spent_budget(instance, 7) is not None
    assert read_spent_budget(instance, 50) is None  # a bigger budget today is not spent


def test_the_schedule_skips_its_tick_while_the_budget_is_spent(instance, tmp_path: Path):
    registry = tmp_path / "creators.yaml"
    ids = creator_ids(2, prefix="tick")
    registry.write_text("creators:\n" + "".join(f"  - id: {c}\n    name: n\n" for c in ids), encoding="utf-8")
    instance.add_dynamic_partitions("creators", ids)
    schedule = build_daily_snapshot_schedule(daily_call_budget=100)

    def tick():
        from pgy_pipeline.definitions import Settings, build_defs
        from pgy_pipeline.orchestration.resources import PgyApiResource, PgyDuckDBResource

        defs = build_defs(
            Settings(
                pgy_api=PgyApiResource(daily_call_budget=100),
                duckdb=PgyDuckDBResource(database=str(tmp_path / "x.duckdb")),
                creator_registry=CreatorRegistryResource(path=str(registry)),
            )
        )
        with build_schedule_context(
            instance=instance,
            repository_def=defs.get_repository_def(),
            scheduled_execution_time=clock.now().astimezone(SHANGHAI),
            resources={"creator_registry": defs.resources["creator_registry"]},
        ) as context:
            return schedule.evaluate_tick(context)

    assert tick().run_requests  # nothing spent yet
    record_verdict(instance, BudgetVerdict(TODAY.isoformat(), 100, 100, 3))
    result = tick()
    assert not result.run_requests
    assert "daily call budget of 100 calls (PGY_DAILY_CALL_BUDGET) spent until 00:00 Asia/Shanghai" in (
        result.skip_message or ""
    )
    record_verdict(instance, BudgetVerdict("2000-01-01", 100, 100, 3))  # another day: lifted
    assert tick().run_requests


def _call(creator: str, billed: bool) -> ApiCall:
    return ApiCall(creator, 1, 1, clock.now(), 1.0, 200, 0 if billed else 302, "x", 10, billed)


@pytest.mark.parametrize("seed", [1, 2])
def test_books_never_let_concurrent_calls_pass_the_budget(tmp_path: Path, seed: int):
    books = CallBooks(CallJournal(tmp_path, "r", TODAY), limit=50, spent_before=11)
    rng = random.Random(seed)
    plan = {f"c{i}": [rng.random() < 0.8 for _ in range(rng.randint(1, 12))] for i in range(16)}
    lock = threading.Lock()
    billed = [0]

    def creator(name: str, outcomes: list[bool]) -> None:
        if not books.before_creator(name, rng.randint(1, 4)):
            return
        try:
            for is_billed in outcomes:
                try:
                    books.before_call(name, 1)
                except BudgetExhaustedError:
                    return
                books.after_call(name, _call(name, is_billed))
                with lock:
                    billed[0] += is_billed
        finally:
            books.after_creator(name)

    threads = [threading.Thread(target=creator, args=item) for item in plan.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert billed[0] <= 50 - 11
    assert books.billed_today == 11 + billed[0]
    assert books.journal.totals() == {"calls": len(books.journal.calls), "billed_calls": billed[0]}
    books.journal.close()


def test_no_budget_means_no_refusal(tmp_path: Path):
    books = CallBooks(CallJournal(tmp_path, "r", TODAY))
    assert books.before_creator("a", 10_000)
    for _ in range(100):
        books.before_call("a", 1)
        books.after_call("a", _call("a", True))
    assert books.billed_today == 100
    books.journal.close()
