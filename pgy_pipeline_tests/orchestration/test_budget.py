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
from pgy_pipeline.orchestration.budget import BudgetVerdict, read_spent_budget, record_verdict
from pgy_pipeline.orchestration.call_books import CallBooks
from pgy_pipeline.orchestration.partitions import SHANGHAI
from pgy_pipeline.orchestration.registry import CreatorRegistryResource
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.ledger import CallJournal
from pgy_pipeline_tests.conftest import creator_ids, fast_api, run_pipeline, step_failure_messages

TODAY = today_shanghai()


def stored_pages(db_path: str) -> dict[str, int]:
    with duckdb.connect(db_path, read_only=True) as conn:
        rows = conn.execute("SELECT creator_id, count(*) FROM raw.note_pages GROUP BY ALL").fetchall()
    return {str(c): int(n) for c, n in rows}


# Four first snapshots of 3 pages each: 12 calls in all. A first snapshot is sized by its first page
# (the service's total), one at a time, so the books decide every start on known needs.
NEED = 12


@pytest.mark.parametrize(
    ("budget", "billed", "written", "over"),
    [(NEED + 1, NEED, 4, 0), (NEED, NEED, 4, 0), (NEED - 1, NEED, 4, 1), (7, 9, 3, 2), (1, 3, 1, 2)],
)
def test_the_budget_cuts_between_creators_and_every_paid_page_is_stored(
    budget, billed, written, over, instance, simulator, duckdb_resource, db_path
):
    ids = creator_ids(4, prefix="budget")
    instance.add_dynamic_partitions("creators", ids)
    for c in ids:
        simulator.set_note_count(c, 20)  # 3 pages each
    api = fast_api(simulator, daily_call_budget=budget)
    result = run_pipeline(instance, api, duckdb_resource, ids)
    assert sum(c.billed for c in simulator.calls) == billed
    pages = stored_pages(db_path)
    assert len(pages) == written and sum(pages.values()) == billed  # no paid page thrown away
    with duckdb.connect(db_path, read_only=True) as conn:
        [(in_ledger,)] = conn.execute("SELECT count(*) FILTER (WHERE billed) FROM meta.api_calls").fetchall()
    assert in_ledger == billed
    left = [c for c in ids if c not in pages]
    assert {c.user_id for c in simulator.calls}.isdisjoint(left)  # not one call for them
    assert result.success is (not left)
    if left:
        [message] = step_failure_messages(result)
        assert (
            f"daily call budget of {budget} calls (PGY_DAILY_CALL_BUDGET) spent until 00:00 Asia/Shanghai"
            in (message)
        )
        assert all(c in message for c in left)
    verdict = read_spent_budget(instance, budget)
    assert (verdict is not None) is (billed >= budget)
    assert (verdict.billed if verdict else billed) == billed and over == max(0, billed - budget)


def test_a_spent_budget_makes_no_call_the_same_day_and_names_the_creators(
    instance, simulator, duckdb_resource, db_path
):
    ids = creator_ids(4, prefix="spent")
    instance.add_dynamic_partitions("creators", ids)
    for c in ids:
        simulator.set_note_count(c, 20)
    api = fast_api(simulator, daily_call_budget=7)
    assert not run_pipeline(instance, api, duckdb_resource, ids).success
    left = [c for c in ids if c not in stored_pages(db_path)]
    assert len(left) == 1
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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_books_finish_every_started_creator_and_pass_the_budget_only_by_missed_estimates(
    tmp_path: Path, seed: int
):
    books = CallBooks(CallJournal(tmp_path, "r", TODAY), limit=50, spent_before=11)
    rng = random.Random(seed)
    plan = {f"c{i}": [rng.random() < 0.8 for _ in range(rng.randint(1, 12))] for i in range(16)}
    estimates = {name: rng.choice([None, 1, 2, 4, 8]) for name in plan}
    lock = threading.Lock()
    billed: dict[str, int] = {}
    declined: list[str] = []

    def creator(name: str, outcomes: list[bool]) -> None:
        if not books.before_creator(name, estimates[name]):
            with lock:
                declined.append(name)
            return
        try:
            for number, is_billed in enumerate(outcomes, start=1):
                books.before_call(name, number)  # never refused once started
                books.after_call(name, _call(name, is_billed))
                if number == 1 and estimates[name] is None:
                    books.expect_calls(name, sum(outcomes))
                with lock:
                    billed[name] = billed.get(name, 0) + is_billed
        finally:
            books.after_creator(name)

    threads = [threading.Thread(target=creator, args=item) for item in plan.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(billed.values())
    assert set(billed) | set(declined) == set(plan) and declined  # the budget declined some
    missed = sum(max(0, n - (estimates[c] or 1)) for c, n in billed.items())
    assert total <= 50 - 11 + missed
    assert books.billed_today == 11 + total and books.over_budget_by == max(0, 11 + total - 50)
    assert books.journal.totals() == {"calls": len(books.journal.calls), "billed_calls": total}
    books.journal.close()


def test_an_unsized_creator_holds_every_other_start_until_its_first_page_sizes_it(tmp_path: Path):
    books = CallBooks(CallJournal(tmp_path, "r", TODAY), limit=10)
    assert books.before_creator("a", None)
    decided: dict[str, bool] = {}
    waiter = threading.Thread(target=lambda: decided.setdefault("b", books.before_creator("b", 3)))
    waiter.start()
    waiter.join(timeout=0.3)
    assert waiter.is_alive() and not decided  # waits: a's size is unknown
    books.before_call("a", 1)
    books.after_call("a", _call("a", True))
    books.expect_calls("a", 9)  # a needs 8 more: 10 - 1 - 8 = 1 left, too little for b
    books.after_creator("a")  # a stops early (fewer pages than its total said): its room comes back
    waiter.join(timeout=5)
    assert decided == {"b": True}
    books.after_creator("b")
    books.journal.close()


def test_a_call_outside_any_started_creator_is_refused_when_the_budget_is_spent(tmp_path: Path):
    books = CallBooks(CallJournal(tmp_path, "r", TODAY), limit=2, spent_before=2)
    with pytest.raises(BudgetExhaustedError, match="daily call budget of 2 calls"):
        books.before_call("x", 1)
    assert books.refused_calls == 1
    books.journal.close()


def test_no_budget_means_no_refusal(tmp_path: Path):
    books = CallBooks(CallJournal(tmp_path, "r", TODAY))
    assert books.before_creator("a", 10_000)
    for _ in range(100):
        books.before_call("a", 1)
        books.after_call("a", _call("a", True))
    assert books.billed_today == 100
    books.journal.close()
