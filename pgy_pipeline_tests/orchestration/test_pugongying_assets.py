"""Pugongying's own figures end to end: the simulator over loopback HTTP, a real DuckDB file, a real
temporary Dagster instance; ours beside theirs in analytics.metrics_vs_pugongying."""

from __future__ import annotations

import duckdb
import pytest

from pgy_pipeline.orchestration.assets import (
    creator_engagement_metrics,
    note_pages,
    notes,
    pugongying,
    pugongying_raw,
)
from pgy_pipeline.simulator.data import hidden_counters
from pgy_pipeline_tests.conftest import fast_api, run_pipeline, setup_creators

ASSETS = [note_pages, notes, creator_engagement_metrics, pugongying_raw, pugongying]


def rows(db_path: str, sql: str, params: list | None = None) -> list[dict]:
    with duckdb.connect(db_path, read_only=True) as conn:
        cur = conn.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def hidden_share(db_path: str, row: dict) -> float:
    """Comments + shares the simulator added to the cell's notes, over their reads."""
    notes = rows(
        db_path,
        "SELECT note_id, read_num FROM analytics.notes WHERE creator_id = ? AND snapshot_date = ? AND segment = ? "
        "AND published_date >= snapshot_date - CAST(rtrim(?, 'd') AS INTEGER) AND published_date < snapshot_date",
        [row["creator_id"], row["snapshot_date"], row["segment"], row["window"]],
    )
    extra = sum(sum(hidden_counters({"noteId": n["note_id"], "readNum": n["read_num"]})[:2]) for n in notes)
    return extra / sum(n["read_num"] for n in notes)


@pytest.fixture
def fetched(instance, simulator, duckdb_resource, db_path):
    ids = setup_creators(instance, simulator, "pgyfig", [60, 33, 0])
    result = run_pipeline(
        instance, fast_api(simulator, pugongying_figures="daily"), duckdb_resource, ids, assets=ASSETS
    )
    assert result.success
    return ids


def test_ours_and_pugongyings_counts_and_medians_match_and_interactions_differ_by_what_we_lack(
    fetched, db_path
):
    cells = rows(
        db_path, "SELECT * FROM analytics.metrics_vs_pugongying WHERE pgy_note_count > 0 ORDER BY ALL"
    )
    assert {c["creator_id"] for c in cells} == set(fetched[:2])
    assert {(c["window"], c["segment"]) for c in cells} >= {("30d", "organic"), ("90d", "organic")}
    assert any(c["pgy_comment_median"] > 0 for c in cells)  # the gap is there to see
    for c in cells:
        assert c["note_count_diff"] == 0, c
        assert (c["read_median_diff"], c["like_median_diff"], c["collect_median_diff"]) == (0, 0, 0), c
        assert c["interaction_median_diff"] == -c["pgy_comment_median"], c
        assert c["interaction_median_with_comments"] == c["pgy_interaction_median"], c
        # Pugongying rounds its rate to 0.1 percentage point
        assert c["engagement_rate_diff"] == pytest.approx(-hidden_share(db_path, c), abs=0.0005 + 1e-9), c


def test_each_call_is_in_the_ledger_under_its_endpoint_and_a_creator_off_pugongying_costs_one_of_each(
    fetched, simulator, db_path
):
    ledger = rows(db_path, "SELECT creator_id, endpoint, count(*) AS calls FROM meta.api_calls GROUP BY ALL")
    by = {(r["creator_id"], r["endpoint"]): r["calls"] for r in ledger}
    for creator in fetched:
        served = [c for c in simulator.calls if c.user_id == creator]
        for endpoint in ("notes", "notes_rate"):
            assert by[(creator, endpoint)] == sum(1 for c in served if c.endpoint == endpoint)
        assert by[(creator, "notes_rate")] <= 4
    off = fetched[2]
    assert by[(off, "notes")] == 1 and by[(off, "notes_rate")] == 1
    stored = rows(db_path, "SELECT count(*) AS n FROM raw.pugongying_note_rates WHERE creator_id = ?", [off])
    assert stored[0]["n"] == 1


def test_the_daily_budget_caps_both_endpoints_together(instance, simulator, duckdb_resource, db_path):
    ids = setup_creators(instance, simulator, "pgybud", [40, 40])  # 5 + 5 notes calls, then 4 for one creator: the other is deferred
    api = fast_api(simulator, pugongying_figures="daily", daily_call_budget=15)
    run_pipeline(instance, api, duckdb_resource, ids, assets=ASSETS)
    [total] = rows(
        db_path,
        "SELECT count(*) FILTER (WHERE billed) AS billed, count(DISTINCT endpoint) AS e FROM meta.api_calls",
    )
    assert total["billed"] <= 15 and total["e"] == 2
    assert sum(1 for c in simulator.calls if c.billed) == total["billed"]
    assert rows(db_path, "SELECT count(*) AS n FROM raw.pugongying_note_rates")[0]["n"] < 8


def test_off_means_no_call_to_the_endpoint(instance, simulator, duckdb_resource, db_path):
    ids = setup_creators(instance, simulator, "pgyoff", [20])
    run_pipeline(instance, fast_api(simulator, pugongying_figures="off"), duckdb_resource, ids, assets=ASSETS)
    assert [c.endpoint for c in simulator.calls] == ["notes"] * len(simulator.calls)
    assert rows(db_path, "SELECT count(*) AS n FROM raw.pugongying_note_rates")[0]["n"] == 0


def test_the_cadence_decides_who_is_due_and_a_bad_one_is_named_before_any_call():
    from datetime import date, timedelta

    from pgy_pipeline.errors import InvalidParameterError
    from pgy_pipeline.orchestration.pugongying_assets import _due

    today = date(2026, 12, 5)
    last = {"a": today - timedelta(days=7), "b": today - timedelta(days=6)}
    assert _due("daily", ["a", "b", "c"], last, today) == ["a", "b", "c"]
    assert _due("weekly", ["a", "b", "c"], last, today) == ["a", "c"]  # c: never fetched
    assert _due("off", ["a", "b", "c"], last, today) == []
    with pytest.raises(InvalidParameterError, match="PGY_PUGONGYING_FIGURES"):
        _due("hourly", ["a"], last, today)
