"""The raw step's phases as plain Python: no Dagster instance, no run, no API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pgy_pipeline.api.client import NotesQuery, Page
from pgy_pipeline.errors import PastSnapshotDateError, PgyError
from pgy_pipeline.orchestration import raw_pages
from pgy_pipeline.orchestration.call_books import CallBooks
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.ledger import CallJournal
from pgy_pipeline.warehouse.scans import ScanPlan
from pgy_pipeline.warehouse.spool import Spool

TODAY = today_shanghai()
A, B, C = "a" * 24, "b" * 24, "c" * 24


def page(creator_id: str, items: list[object], total: int | None) -> Page:
    return Page(creator_id, 1, {}, datetime.now(UTC), 1, 0, total, items, "{}")


def request(
    tmp_path: Path, keys: list[tuple[str, object]], budget: int | None = None
) -> raw_pages.StepRequest:
    return raw_pages.StepRequest(
        keys=keys,  # type: ignore[arg-type]
        today=TODAY,
        query=NotesQuery("ALL", "LATEST", "ALL", "NO"),
        refresh=False,
        force_full=False,
        full_every_days=7,
        budget=budget,
        data_source="simulator",
        database=str(tmp_path / "pgy.duckdb"),
        spool_path=tmp_path / "spool",
        run_id="run",
    )


def test_the_plan_skips_stored_partitions_takes_spooled_pages_and_fetches_the_rest(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.save(B, TODAY, [page(B, [{"noteId": "n"}], 1)])
    keys = [(A, TODAY), (B, TODAY), (C, TODAY)]
    plan = raw_pages.plan_fetch(keys, {(A, TODAY)}, refresh=False, today=TODAY, spool=spool)
    assert (
        plan.stored == {(A, TODAY)}
        and list(plan.from_spool) == [(B, TODAY)]
        and plan.to_fetch == [(C, TODAY)]
    )
    refreshed = raw_pages.plan_fetch(keys, {(A, TODAY)}, refresh=True, today=TODAY, spool=spool)
    assert refreshed.stored == set() and refreshed.to_fetch == [(A, TODAY), (C, TODAY)]


def test_the_plan_refuses_a_past_date_before_any_call(tmp_path):
    yesterday = TODAY - timedelta(days=1)
    with pytest.raises(PastSnapshotDateError, match=f"launch today's partitions instead: {A}\\|{TODAY}"):
        raw_pages.plan_fetch([(A, yesterday)], set(), refresh=False, today=TODAY, spool=Spool(tmp_path))
    # already stored and not refreshed: nothing to fetch, so no refusal
    assert raw_pages.plan_fetch([(A, yesterday)], {(A, yesterday)}, False, TODAY, Spool(tmp_path)).stored


def planned(to_fetch: list[str], billed_before: int = 0) -> raw_pages.StepPlan:
    fetch = raw_pages.FetchPlan(keys=[(c, TODAY) for c in to_fetch], stored=set())
    fetch.to_fetch = list(fetch.keys)
    return raw_pages.StepPlan(fetch, {}, ScanPlan(order=list(to_fetch)), billed_before)


def test_a_spent_budget_leaves_every_creator_for_tomorrow_without_opening_a_client(tmp_path):
    def no_client(hooks: object) -> object:
        raise AssertionError("no client may be opened once the day's budget is spent")

    access = raw_pages.ApiAccess(no_client, lambda client: None, lambda line: None)  # type: ignore[arg-type]
    spending = raw_pages.spend(
        request(tmp_path, [(A, TODAY), (B, TODAY)], budget=5), planned([A, B], 5), access
    )
    assert spending.deferred == [A, B] and spending.pages == {} and spending.stats["calls"] == 0
    verdict = spending.verdict(TODAY)
    assert verdict is not None and verdict.spent and verdict.left_for_tomorrow == 2


def test_the_report_names_failed_and_deferred_creators_and_marks_what_was_written(tmp_path):
    req = request(tmp_path, [(A, TODAY), (B, TODAY), (C, TODAY)], budget=3)
    plan = planned([A, B, C])
    books = CallBooks(CallJournal(tmp_path / "spool", "run", TODAY), 3, 3)
    spending = raw_pages.Spending(books, {(A, TODAY): [page(A, [], 0)]})
    spending.failures = {B: PgyError("boom")}
    spending.deferred = [C]
    written = raw_pages.Written(1, [(A, TODAY, 1, 1, 0, 0, 0)])
    result = raw_pages.report_step(req, plan, spending, written, {A: "Alice"})
    assert result.figures[(A, TODAY)]["status"] == "fetched"
    assert result.figures[(A, TODAY)]["creator"] == f"Alice ({A})"
    assert result.empty_by_day == {TODAY: ([A], [])} and result.first == {A, B, C}
    assert result.written == [(A, TODAY)] and result.unfinished == [(B, TODAY), (C, TODAY)]
    assert result.failure is not None
    assert result.failure.startswith("1 of 3 creator(s) failed, 1 left for tomorrow; 1 written")
    assert "1 creator(s) left for tomorrow: daily call budget of 3 calls" in result.failure
    assert f"- {B}: PgyError: boom" in result.failure
    assert isinstance(result.metadata["run_total/no_pugongying_data"], raw_pages.Json)
    assert result.metadata["left_for_tomorrow"] == raw_pages.Json([C])


def test_a_step_with_nothing_failed_reports_no_failure(tmp_path):
    books = CallBooks(CallJournal(tmp_path / "spool", "run", TODAY))
    spending = raw_pages.Spending(books, {})
    plan = raw_pages.StepPlan(raw_pages.FetchPlan([(A, TODAY)], {(A, TODAY)}), {}, ScanPlan(order=[]), 0)
    written = raw_pages.Written(0, [(A, TODAY, 2, 0, 0, 5, 5)])
    result = raw_pages.report_step(request(tmp_path, [(A, TODAY)]), plan, spending, written, {})
    assert result.failure is None and "failed_creators" not in result.metadata
    assert result.figures[(A, TODAY)]["status"] == raw_pages.UNCHANGED and result.stored == {(A, TODAY)}
