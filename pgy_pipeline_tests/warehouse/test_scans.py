"""Window-bounded scans end to end: what they cost, what they store, and that 30d/90d stay exact."""

from __future__ import annotations

import math
from datetime import date, timedelta

import duckdb
import pytest
from dagster import DagsterEventType

from pgy_pipeline.api.client import NotesQuery
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.scans import CreatorHistory, plan_scans
from pgy_pipeline_tests.conftest import creator_ids, run_pipeline, step_summary

TODAY = today_shanghai()
REFRESH = {"ops": {"raw__note_pages": {"config": {"refresh": True}}}}

# 26 notes in the last 90 days, on both edges of both windows (age 90 is outside "the last 90 days"
# when the window ends on the snapshot day, inside when it ends the day before), then 274 older ones,
# four of them inside the 7-day margin.
IN_WINDOW = [
    0,
    1,
    4,
    8,
    11,
    15,
    18,
    22,
    25,
    29,
    30,
    31,
    36,
    40,
    45,
    50,
    54,
    58,
    62,
    66,
    70,
    75,
    80,
    84,
    89,
    90,
]
OLDER = [91, 95, 97, 98] + [101 + 3 * i for i in range(270)]
assert len(IN_WINDOW) == 26 and len(IN_WINDOW) + len(OLDER) == 300


def query(db: str, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(db, read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def metrics(db: str, creator: str, windows: tuple[str, ...]) -> dict:
    rows = query(
        db,
        "SELECT * EXCLUDE (creator_id, snapshot_date) FROM analytics.creator_engagement_metrics "
        'WHERE creator_id = ? AND "window" IN (SELECT unnest(?)) ORDER BY "window", segment',
        [creator, list(windows)],
    )
    return {(r[0], r[1]): r for r in rows}


def check_passed(result, name: str) -> bool:
    [passed] = [
        e.event_specific_data.passed
        for e in result.all_events
        if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
        and e.event_specific_data.check_name == name
    ]
    return passed


def test_a_window_scan_of_a_300_note_creator_costs_5_calls_and_keeps_30d_90d_exact(
    instance, simulator, api, duckdb_resource, db_path
):
    [creator] = creator_ids(1, prefix="window300")
    instance.add_dynamic_partitions("creators", [creator])
    simulator.set_notes_at_ages(creator, IN_WINDOW + OLDER, snapshot_date=TODAY)
    page_size = simulator.page_size

    # First snapshot: a full scan, whatever the schedule says.
    assert run_pipeline(instance, api, duckdb_resource, [creator]).success
    assert simulator.call_count(creator) == math.ceil(300 / page_size)
    full = metrics(db_path, creator, ("30d", "90d", "all"))

    # The same day again (refresh follows the schedule's rule): the last full scan is today, so a window scan.
    simulator.reset_stats()
    refreshed = run_pipeline(instance, api, duckdb_resource, [creator], run_config=REFRESH)
    assert refreshed.success
    calls = simulator.call_count(creator)
    assert calls <= math.ceil(26 / page_size) + 1
    assert [c.page for c in simulator.calls] == list(range(1, calls + 1))
    window = metrics(db_path, creator, ("30d", "90d", "all"))

    for key in [k for k in full if k[0] in ("30d", "90d")]:
        assert window[key] == full[key], key
    assert full[("90d", "all")][2] == 25  # note_count: ages 0..89 (age 90 is on the far edge)
    # window 'all': nothing invented from notes the scan did not read; what it knows is kept
    columns = [
        d[0]
        for d in duckdb.connect(db_path, read_only=True)
        .execute(
            "SELECT * EXCLUDE (creator_id, snapshot_date) FROM analytics.creator_engagement_metrics LIMIT 0"
        )
        .description
    ]
    all_row = dict(zip(columns, window[("all", "all")], strict=True))
    assert all_row["note_count"] is None and all_row["read_median"] is None and all_row["read_gain"] is None
    assert all_row["notes_total_reported"] == 300
    assert all_row["days_since_last_note"] == 0
    assert full[("all", "all")][2] == 300

    [snap] = query(
        db_path,
        "SELECT scan_status, notes_loaded, total_reported, pages, covered_from FROM analytics.creator_snapshots",
    )
    assert snap == ("window", calls * page_size, 300, calls, TODAY - timedelta(days=90))
    [(scan, since)] = query(db_path, "SELECT DISTINCT scan, scan_window_from FROM raw.note_pages")
    assert (scan, since) == ("window", TODAY - timedelta(days=90))

    # The reconciliation check expects fewer notes than total on a window scan.
    assert check_passed(refreshed, "notes_reconcile_with_total") is True


def test_reconciliation_still_catches_a_short_full_scan(instance, simulator, api, duckdb_resource, db_path):
    [creator] = creator_ids(1, prefix="shortfull")
    instance.add_dynamic_partitions("creators", [creator])
    simulator.set_notes_at_ages(creator, list(range(0, 200, 10)), snapshot_date=TODAY)
    simulator.add_fault("total_delta", user_id=creator, times=None, delta=3)  # total says 23, 20 listed
    result = run_pipeline(instance, api, duckdb_resource, [creator])
    assert check_passed(result, "notes_reconcile_with_total") is False
    assert query(db_path, "SELECT scan_status FROM analytics.creator_snapshots") == [("partial",)]


def test_out_of_order_dates_never_end_a_scan_early_and_large_breaks_are_flagged(
    instance, simulator, api, duckdb_resource, db_path
):
    [creator] = creator_ids(1, prefix="pinned")
    instance.add_dynamic_partitions("creators", [creator])
    items = simulator.set_notes_at_ages(
        creator, [50] + [100 + 4 * i for i in range(60)] + [300], snapshot_date=TODAY
    )
    assert run_pipeline(instance, api, duckdb_resource, [creator]).success  # first snapshot: full
    # A year-old note pinned on top makes page 1 all old but out of order; the recent note comes on page 2.
    recent, old, pinned = items[0], items[1:-1], items[-1]
    simulator.set_notes(creator, [pinned, *old[:7], recent, *old[7:]])
    simulator.reset_stats()
    result = run_pipeline(instance, api, duckdb_resource, [creator], run_config=REFRESH)
    assert result.success
    assert [c.page for c in simulator.calls] == [1, 2, 3]  # page 3: all old and in order
    got = {r[0] for r in query(db_path, "SELECT note_id FROM analytics.notes")}
    assert recent["noteId"] in got
    flagged = step_summary(result, "raw__note_pages")["out_of_order_dates"].value
    assert flagged == {
        creator: [
            f"page 1 item 2: {old[0]['date']} listed after {pinned['date']}",
            f"page 2 item 1: {recent['date']} listed after {old[6]['date']}",
        ]
    }


def test_plan_scans_full_when_needed_and_neediest_first():
    today = date(2026, 12, 2)
    a, b, c, d, e = creator_ids(5, prefix="plan")
    history = {
        b: CreatorHistory(today - timedelta(days=1), today - timedelta(days=3), 10, 3),
        c: CreatorHistory(today - timedelta(days=5), today - timedelta(days=7), 12, None),
        d: CreatorHistory(today - timedelta(days=2), None, None, 2),
    }
    plan = plan_scans([a, b, c, d, e], history, today, query=NotesQuery(), full_every_days=7)
    assert plan.order == [a, e, c, d, b]  # never snapshotted (registration order), then stalest
    assert set(plan.windows) == {b}
    assert plan.estimates == {a: 1, e: 1, c: 13, d: 1, b: 3}
    assert "7+ days old" in plan.reasons[c] and "first snapshot" in plan.reasons[d]
    forced = plan_scans([b], history, today, query=NotesQuery(), force_full=True)
    assert forced.windows == {} and "scan: full" in forced.reasons[b]
    other = plan_scans([b], history, today, query=NotesQuery(order_type="MOST_READ"))
    assert other.windows == {}


@pytest.mark.parametrize("every", [1, 3])
def test_full_scan_every_days_comes_from_the_resource(every, instance, simulator, duckdb_resource, db_path):
    from pgy_pipeline_tests.conftest import fast_api

    [creator] = creator_ids(1, prefix=f"every{every}")
    instance.add_dynamic_partitions("creators", [creator])
    simulator.set_notes_at_ages(creator, IN_WINDOW + OLDER, snapshot_date=TODAY)
    api = fast_api(simulator, full_scan_every_days=every)
    with duckdb.connect(db_path) as conn:
        from pgy_pipeline.warehouse.schema import ensure_schema

        ensure_schema(conn)
        # a full scan two days ago: fresh enough for a window scan only when every > 2
        conn.execute(
            "INSERT INTO analytics.creator_snapshots (creator_id, snapshot_date, scan_status, total_reported,"
            " notes_loaded, pages, calls, billed_calls, fetched_at, covered_from)"
            " VALUES (?, ?, 'full', 300, 300, 38, 38, 38, now()::TIMESTAMP, NULL)",
            [creator, TODAY - timedelta(days=2)],
        )
    assert run_pipeline(instance, api, duckdb_resource, [creator]).success
    expected_full = every <= 2
    assert (simulator.call_count(creator) == 38) is expected_full


def test_only_a_newest_first_query_may_be_window_bounded(simulator):
    from pgy_pipeline.api.client import PgyClient, ScanWindow
    from pgy_pipeline.errors import InvalidParameterError
    from pgy_pipeline_tests.conftest import TEST_TOKEN

    [creator] = creator_ids(1, prefix="mostread")
    with PgyClient(TEST_TOKEN, base_url=simulator.base_url) as client:
        with pytest.raises(InvalidParameterError, match="orderType LATEST"):
            client.scan_notes(creator, NotesQuery(order_type="MOST_READ"), ScanWindow.for_snapshot(TODAY))
    assert simulator.call_count() == 0
