"""Streaks of empty snapshots, kept in a real temporary Dagster instance."""

from __future__ import annotations

from datetime import date, timedelta

from pgy_pipeline import clock
from pgy_pipeline.api.client import Page
from pgy_pipeline.orchestration.dagster_internals import write_value
from pgy_pipeline.orchestration.empty_streaks import (
    NO_DATA_MESSAGE,
    RECHECK_DAYS,
    STREAKS_KEY,
    WEEKLY_AFTER,
    deferred_creators,
    deferred_text,
    forget,
    is_empty_scan,
    read_streaks,
    record_snapshots,
)

DAY = date(2026, 11, 20)


def page(items: list, total: int | None, number: int = 1) -> Page:
    return Page("c", number, {}, clock.now(), 1, 0, total, items, "{}")


def test_a_streak_counts_snapshot_days_and_ends_with_data(instance):
    for n in range(WEEKLY_AFTER):
        streaks = record_snapshots(instance, DAY + timedelta(days=n), ["x"], ["y"])
        assert streaks["x"].count == n + 1
    record_snapshots(instance, DAY + timedelta(days=WEEKLY_AFTER - 1), ["x"], [])  # same day again
    streak = read_streaks(instance)["x"]
    assert (streak.count, streak.first, streak.weekly) == (WEEKLY_AFTER, DAY.isoformat(), True)
    last = DAY + timedelta(days=WEEKLY_AFTER - 1)
    assert streak.next_check == last + timedelta(days=RECHECK_DAYS)
    assert "checks it only weekly" in streak.describe()
    record_snapshots(instance, last + timedelta(days=7), [], ["x"])
    assert read_streaks(instance) == {}


def test_only_weekly_creators_are_deferred_and_only_until_their_next_check(instance):
    for n in range(WEEKLY_AFTER):
        record_snapshots(instance, DAY + timedelta(days=n), ["weekly"], [])
    record_snapshots(instance, DAY, ["young"], [])
    streaks = read_streaks(instance)
    last = DAY + timedelta(days=WEEKLY_AFTER - 1)
    assert set(deferred_creators(streaks, ["weekly", "young", "other"], last)) == {"weekly"}
    assert set(deferred_creators(streaks, ["weekly"], last + timedelta(days=RECHECK_DAYS - 1))) == {"weekly"}
    assert deferred_creators(streaks, ["weekly"], last + timedelta(days=RECHECK_DAYS)) == {}
    assert deferred_creators(streaks, ["young"], last) == {}
    text = deferred_text(deferred_creators(streaks, ["weekly"], last))
    assert NO_DATA_MESSAGE in text and "weekly" in text and "billed" in text


def test_forget_drops_only_the_named_creators(instance):
    record_snapshots(instance, DAY, ["a", "b"], [])
    assert forget(instance, ["a", "nobody"]) == ["a"]
    assert set(read_streaks(instance)) == {"b"}
    assert forget(instance, []) == []


def test_a_damaged_stored_value_counts_as_no_streaks(instance):
    write_value(instance, STREAKS_KEY, "{not json")
    assert read_streaks(instance) == {}
    write_value(instance, STREAKS_KEY, '{"a": {"count": 1}}')
    assert read_streaks(instance) == {}
    assert record_snapshots(instance, DAY, ["a"], [])["a"].count == 1


def test_an_empty_scan_is_code_0_with_no_items_and_total_0():
    assert is_empty_scan([page([], 0)])
    assert is_empty_scan([page([], None)])
    assert not is_empty_scan([])
    assert not is_empty_scan([page([], 3)])  # the service reports notes it did not list: not 'empty'
    assert not is_empty_scan([page([{"noteId": "n"}], 1)])
    assert not is_empty_scan([page([{"noteId": "n"}], 1), page([], 0, 2)])
