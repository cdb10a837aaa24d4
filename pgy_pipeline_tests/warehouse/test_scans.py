"""Window-bounded scans end to end: what they cost, what they store, and that 30d/90d stay exact."""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta

import duckdb
import pytest
from dagster import DagsterEventType

from pgy_pipeline import clock
from pgy_pipeline.api.client import NotesQuery
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.scans import CreatorHistory, plan_scans
from pgy_pipeline.warehouse.tables import CREATOR_ENGAGEMENT_METRICS
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


def columns_of(db: str) -> list[str]:
    with duckdb.connect(db, read_only=True) as conn:
        return [
            d[0]
            for d in conn.execute(
                "SELECT * EXCLUDE (creator_id, snapshot_date) FROM analytics.creator_engagement_metrics LIMIT 0"
            ).description
        ]


def at_ten(day: date):
    """The pipeline's and the simulator's clock at 10:00 Asia/Shanghai on ``day``."""
    return clock.use_clock(lambda: datetime.combine(day, time(10), tzinfo=clock.SHANGHAI))


def test_a_same_day_refresh_of_a_first_snapshot_scans_in_full_and_keeps_every_note(
    instance, simulator, api, duckdb_resource, db_path
):
    [creator] = creator_ids(1, prefix="refresh300")
    instance.add_dynamic_partitions("creators", [creator])
    simulator.set_notes_at_ages(creator, IN_WINDOW + OLDER, snapshot_date=TODAY)
    with at_ten(TODAY):
        assert run_pipeline(instance, api, duckdb_resource, [creator]).success
        first = metrics(db_path, creator, ("30d", "90d", "all"))
        simulator.reset_stats()
        refreshed = run_pipeline(instance, api, duckdb_resource, [creator], run_config=REFRESH)
    assert refreshed.success
    # The day held a complete list: a refresh never leaves it less complete, so it scans in full again.
    assert simulator.call_count(creator) == math.ceil(300 / simulator.page_size)
    assert metrics(db_path, creator, ("30d", "90d", "all")) == first
    assert first[("all", "all")][2] == 300
    assert query(db_path, "SELECT count(*), count(DISTINCT note_id) FROM analytics.notes") == [(300, 300)]
    assert query(db_path, "SELECT scan_status, covered_from FROM analytics.creator_snapshots") == [
        ("full", None)
    ]
    assert query(db_path, "SELECT DISTINCT scan FROM raw.note_pages") == [("full",)]


def test_a_window_scan_of_a_300_note_creator_costs_5_calls_and_keeps_30d_90d_exact(
    instance, simulator, api, duckdb_resource, db_path
):
    [creator] = creator_ids(1, prefix="window300")
    instance.add_dynamic_partitions("creators", [creator])
    yesterday = TODAY - timedelta(days=1)
    page_size = simulator.page_size

    # Yesterday's first snapshot: a full scan, whatever the schedule says.
    simulator.set_notes_at_ages(creator, IN_WINDOW + OLDER, snapshot_date=yesterday)
    with at_ten(yesterday):
        assert run_pipeline(instance, api, duckdb_resource, [creator], day=yesterday.isoformat()).success
    assert simulator.call_count(creator) == math.ceil(300 / page_size)

    # Today: the last full scan is a day old, so a window scan; then a refresh with scan: full as the truth.
    simulator.set_notes_at_ages(creator, IN_WINDOW + OLDER, snapshot_date=TODAY)
    simulator.reset_stats()
    with at_ten(TODAY):
        scanned = run_pipeline(instance, api, duckdb_resource, [creator])
        assert scanned.success
        calls = simulator.call_count(creator)
        window = metrics(db_path, creator, ("30d", "90d", "all"))
        [snap] = query(
            db_path,
            "SELECT scan_status, notes_loaded, total_reported, pages, covered_from "
            "FROM analytics.creator_snapshots WHERE snapshot_date = ?",
            [TODAY],
        )
        [(scan, since)] = query(
            db_path,
            "SELECT DISTINCT scan, scan_window_from FROM raw.note_pages WHERE snapshot_date = ?",
            [TODAY],
        )
        full_run = run_pipeline(
            instance,
            api,
            duckdb_resource,
            [creator],
            run_config={"ops": {"raw__note_pages": {"config": {"refresh": True, "scan": "full"}}}},
        )
        assert full_run.success
    full = metrics(db_path, creator, ("30d", "90d", "all"))
    assert calls <= math.ceil(26 / page_size) + 1
    assert [c.page for c in simulator.calls][:calls] == list(range(1, calls + 1))

    for key in [k for k in full if k[0] in ("30d", "90d")]:
        assert window[key] == full[key], key
    assert full[("90d", "all")][2] == 25  # note_count: ages 0..89 (age 90 is on the far edge)
    # window 'all': nothing invented from notes the scan did not read; what it knows is kept
    all_row = dict(zip(columns_of(db_path), window[("all", "all")], strict=True))
    assert all_row["note_count"] is None and all_row["read_median"] is None and all_row["read_gain"] is None
    assert all_row["notes_total_reported"] == 300
    assert all_row["days_since_last_note"] == 0
    assert full[("all", "all")][2] == 300

    assert snap == ("window", calls * page_size, 300, calls, TODAY - timedelta(days=90))
    assert (scan, since) == ("window", TODAY - timedelta(days=90))
    # The reconciliation check expects fewer notes than total on a window scan.
    assert check_passed(scanned, "notes_reconcile_with_total") is True


def metric_rows(db: str, creator: str, day: date) -> dict[tuple[str, str], dict[str, object]]:
    """One snapshot's metric rows as {column: value}, keyed by (window, segment)."""
    with duckdb.connect(db, read_only=True) as conn:
        cursor = conn.execute(
            "SELECT * FROM analytics.creator_engagement_metrics WHERE creator_id = ? AND snapshot_date = ?",
            [creator, day],
        )
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    return {(r["window"], r["segment"]): r for r in rows}


def test_window_all_of_a_window_scan_day_is_null_exactly_where_the_declaration_needs_every_note(
    instance, simulator, api, duckdb_resource, db_path
):
    """tables.py's needs_every_note decides it: on a window-scan day window 'all' leaves every flagged
    column NULL, and every other one is what a full scan of the same day gives. Then a full scan after
    a window-scan day leaves read_gain of window 'all' NULL (the previous scan read part of the notes)."""
    [creator] = creator_ids(1, prefix="everynote")
    instance.add_dynamic_partitions("creators", [creator])
    ages = IN_WINDOW + OLDER
    # The most-read note is an old one that a window scan does not reach, so a read_max taken from the
    # notes a window scan read would differ from the truth; every third note is an ad, so both segments
    # have recent notes.
    reads = [5_000 + 10 * i for i in range(len(ages))]
    reads[-1] = 900_000
    attributes = {"is_advertise": [i % 3 == 2 for i in range(len(ages))], "reads": reads}
    full = {"ops": {"raw__note_pages": {"config": {"refresh": True, "scan": "full"}}}}

    def snapshot(day: date, run_config: dict | None = None) -> tuple[str, dict]:
        simulator.set_notes_at_ages(creator, ages, snapshot_date=day, **attributes)
        with at_ten(day):
            result = run_pipeline(
                instance, api, duckdb_resource, [creator], day=day.isoformat(), run_config=run_config
            )
        assert result.success
        [(status,)] = query(
            db_path, "SELECT scan_status FROM analytics.creator_snapshots WHERE snapshot_date = ?", [day]
        )
        return status, metric_rows(db_path, creator, day)

    yesterday, tomorrow, after = (TODAY + timedelta(days=d) for d in (-1, 1, 2))
    assert snapshot(yesterday)[0] == "full"  # the first snapshot
    status, window_day = snapshot(TODAY)
    assert status == "window"
    status, full_day = snapshot(TODAY, full)  # the same day read whole: the truth
    assert status == "full"

    needing = [c.name for c in CREATOR_ENGAGEMENT_METRICS.columns_needing_every_note()]
    kept = [
        c.name
        for c in CREATOR_ENGAGEMENT_METRICS.columns
        if not c.needs_every_note and c.name not in ("creator_id", "snapshot_date", "window", "segment")
    ]
    for segment in ("all", "organic", "cooperation"):
        on_window, on_full = window_day[("all", segment)], full_day[("all", segment)]
        assert {c: on_window[c] for c in needing} == dict.fromkeys(needing), segment
        assert {c: on_window[c] for c in kept} == {c: on_full[c] for c in kept}, segment
    # not a vacuous NULL: a full scan gives each of them a value (notes_per_week is NULL for 'all')
    assert [c for c in needing if full_day[("all", "all")][c] is None] == ["notes_per_week"]
    assert full_day[("all", "all")]["read_max"] == 900_000
    assert window_day[("90d", "all")] == full_day[("90d", "all")]  # the window holds every 90d note

    # A window-scan day, then a full scan: read_gain of window 'all' would compare part of the notes.
    assert snapshot(tomorrow)[0] == "window"
    status, after_window = snapshot(after, full)
    assert status == "full"
    assert after_window[("all", "all")]["read_gain"] is None
    assert after_window[("all", "all")]["previous_snapshot_date"] == tomorrow
    assert after_window[("all", "all")]["read_max"] == 900_000
    assert after_window[("90d", "all")]["read_gain"] == 0  # same reads: the 90d notes are compared


def test_a_same_day_refresh_of_a_window_day_scans_the_window_again(
    instance, simulator, api, duckdb_resource, db_path
):
    [creator] = creator_ids(1, prefix="refreshwin")
    instance.add_dynamic_partitions("creators", [creator])
    yesterday = TODAY - timedelta(days=1)
    simulator.set_notes_at_ages(creator, IN_WINDOW + OLDER, snapshot_date=yesterday)
    with at_ten(yesterday):
        assert run_pipeline(instance, api, duckdb_resource, [creator], day=yesterday.isoformat()).success
    with at_ten(TODAY):
        assert run_pipeline(instance, api, duckdb_resource, [creator]).success
        simulator.reset_stats()
        assert run_pipeline(instance, api, duckdb_resource, [creator], run_config=REFRESH).success
    # The plan reads the days before today: yesterday's full scan is fresh, so the window again.
    assert simulator.call_count(creator) <= math.ceil(26 / simulator.page_size) + 1
    assert query(
        db_path, "SELECT scan_status FROM analytics.creator_snapshots WHERE snapshot_date = ?", [TODAY]
    ) == [("window",)]


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
    yesterday = TODAY - timedelta(days=1)
    with at_ten(yesterday):  # first snapshot: full
        assert run_pipeline(instance, api, duckdb_resource, [creator], day=yesterday.isoformat()).success
    # A year-old note pinned on top makes page 1 all old but out of order; the recent note comes on page 2.
    recent, old, pinned = items[0], items[1:-1], items[-1]
    simulator.set_notes(creator, [pinned, *old[:7], recent, *old[7:]])
    simulator.reset_stats()
    with at_ten(TODAY):  # a window scan
        result = run_pipeline(instance, api, duckdb_resource, [creator])
    assert result.success
    assert [c.page for c in simulator.calls] == [1, 2, 3]  # page 3: all old and in order
    got = {
        r[0] for r in query(db_path, "SELECT note_id FROM analytics.notes WHERE snapshot_date = ?", [TODAY])
    }
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
    assert plan.estimates == {a: None, e: None, c: 13, d: None, b: 4}  # None: sized by page 1
    assert (
        "7+ days old" in plan.reasons[c]
        and "no full scan on record" in plan.reasons[d]
        and "first snapshot" in plan.reasons[a]
    )
    forced = plan_scans([b], history, today, query=NotesQuery(), force_full=True)
    assert forced.windows == {} and "scan: full" in forced.reasons[b]
    other = plan_scans([b], history, today, query=NotesQuery(order_type="MOST_READ"))
    assert other.windows == {}


@pytest.mark.parametrize(
    ("today_status", "full"),
    [
        ("full", True),
        ("empty", True),
        ("partial", True),
        ("full_drifted", True),
        ("window", False),
        (None, False),
    ],
)
def test_a_refresh_never_plans_a_day_less_complete_than_it_was(today_status, full):
    today = date(2026, 12, 2)
    [b] = creator_ids(1, prefix="plan")
    history = {
        b: CreatorHistory(today - timedelta(days=1), today - timedelta(days=3), 10, 3, today_status, 11)
    }
    plan = plan_scans([b], history, today, query=NotesQuery(), full_every_days=7)
    assert (b not in plan.windows) is full
    if full:
        assert "refresh of today's" in plan.reasons[b]
        assert plan.estimates[b] == (12 if today_status in ("full", "empty") else 11)


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
