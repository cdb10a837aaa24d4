"""Each benchmark at tiny size: the report's structure and its correctness figures. No timing assertions.

The full suite is ``python -m benchmarks.run`` (see docs/benchmarks.md); this keeps it runnable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks import fetch, report
from benchmarks.run import parse_args, run
from pgy_pipeline_tests.suite_checks import NEEDS_POSTGRES, missing


@pytest.fixture(scope="module")
def smoke() -> dict[str, Any]:
    """Every benchmark once, at ``--smoke`` sizes (3 creators, 2,000 notes, 20 creators x 1 and 3 days)."""
    args = parse_args(["--smoke"])
    return {"args": args, "results": run(args, log=lambda *_: None)}


def _creators_with_notes(args) -> int:
    counts = fetch.note_counts(fetch.creator_ids(args.creators, prefix="fetch"), args.fetch_max_notes)
    return sum(1 for n in counts.values() if n > 0)


def test_fetch_pipeline_makes_exactly_the_minimum_calls_and_loses_nothing(smoke):
    r = smoke["results"]["fetch"]
    p = r["runs"]["pipeline"]
    assert p["success"] is True
    assert p["notes_expected"] > 0
    assert p["notes_lost"]["max"] == 0
    assert p["calls"]["max"] == r["min_calls"]
    assert p["calls_302"]["max"] == 0
    assert p["calls_past_last_page"]["max"] == 0
    assert p["metric_rows"] == smoke["args"].creators * 9  # 3 windows x 3 segments
    assert p["ledger_calls"]["max"] == r["min_calls"]  # every call in the billing ledger
    assert {"raw__note_pages", "analytics__notes", "analytics__creator_engagement_metrics"} <= set(
        p["steps_s"]
    )
    for key in (
        "wall_s",
        "fetch_s",
        "wall_over_bound",
        "fetch_over_bound",
        "before_fetch_s",
        "after_fetch_s",
    ):
        assert p[key]["n"] == 1 and p[key]["median"] is not None


def test_fetch_sample_loop_wastes_one_empty_page_per_creator_with_notes(smoke):
    r = smoke["results"]["fetch"]
    s = r["runs"]["sample_loop"]
    wasted = _creators_with_notes(smoke["args"])
    assert s["notes_lost"]["max"] == 0
    assert s["calls_past_last_page"]["max"] == wasted
    assert s["calls"]["max"] == r["min_calls"] + wasted
    assert s["wall_over_pipeline"] > 0


def test_fetch_dlt_rest_api(smoke):
    """dlt is in the test extra: the comparison behind the docs' "faster than dlt" runs every time."""
    r = smoke["results"]["fetch"]
    wasted = _creators_with_notes(smoke["args"])
    for kind in ("dlt", "dlt_parallel"):
        d = r["runs"][kind]
        assert "skipped" not in d, f"{kind}: {d.get('skipped')} (the test extra installs dlt)"
        assert d["success"] is True, d["errors"]
        assert d["notes_lost"]["max"] == 0  # tiny run, well under the rate limit
        assert d["calls_past_last_page"]["max"] == wasted


def test_fetch_counts_notes_lost_to_302_answers(tmp_path: Path):
    """The instrument itself: an unpaced client over the limit gets 302s, and the lost notes are counted."""
    creators = fetch.creator_ids(4, prefix="lossy")
    counts = {c: 20 for c in creators}  # 3 pages each
    res = fetch.run_alternative(
        "sample_loop", creators, counts, latency_s=0.0, rate_rps=2.0, page_size=8, workdir=tmp_path
    )
    assert res["calls_302"] >= 1
    assert res["notes_lost"] > 0
    assert res["creators_short"] >= 1
    assert res["notes_expected"] == 80


def test_orchestration(smoke):
    o = smoke["results"]["orchestration"]
    assert o["range_run_s"]["n"] == 1 and o["per_creator_run_s"]["n"] == 1
    assert o["extrapolated"] is True  # 1 of 2 one-creator runs timed
    assert o["ratio_per_creator_over_range"] > 0
    assert 0 <= o["range_non_fetch_share"]["median"] <= 1


def test_normalize_keeps_every_note(smoke):
    n = smoke["results"]["normalize"]
    assert n["setup"]["notes"] == 2000
    assert n["notes_lost"] == 0
    for variant in ("pipeline", "plain_sql", "plain_sql_json_transform"):
        assert n["variants"][variant]["rows"] == 2000
        assert n["variants"][variant]["peak_rss_mb"]["median"] > 0
    assert n["variants"]["pipeline"]["rejects"] == 0
    assert n["pipeline_over_plain"]["n"] == 1


def test_metrics_history(smoke):
    m = smoke["results"]["metrics"]
    creators = smoke["args"].metrics_creators
    assert set(m["by_history"]) == {"1", "3"}
    for r in m["by_history"].values():
        assert r["metric_rows"] == creators * 9
        assert r["rows_with_previous"] == creators * 9  # every creator has an earlier snapshot to compare
        assert r["rows_scanned"]["analytics.notes"] > 0
    assert m["ratio_longest_over_shortest"] > 0


def test_scans_window_costs_less_with_identical_30d_90d_metrics(smoke):
    sc = smoke["results"]["scans"]
    assert sc["metric_rows_differing"] == 0
    assert sc["metric_rows_compared"] == smoke["args"].scans_creators * smoke["args"].scans_days * 6
    assert sc["scans"]["window"]["full"] == smoke["args"].scans_creators  # the first day only
    assert sc["calls"]["window"] < sc["calls"]["full"]
    assert sc["ratio_full_over_window"] > 1


def test_pacing_loses_no_note_and_learns_a_pace(smoke):
    pc = smoke["results"]["pacing"]
    for which in ("first", "second"):
        assert pc[which]["notes_lost"] == 0 and pc[which]["failures"] == 0
        assert pc[which]["calls"] >= pc[which]["calls_302"] >= 0
    assert 0 < pc["learned"]["rate_rps"] <= pc["setup"]["ceiling_rps"]
    assert pc["second"]["pacer"]["start_rps"] == round(pc["learned"]["rate_rps"], 3)


def test_pacing_shared_by_two_processes_answers_every_page(smoke):
    """The shared pacing part ran, through PostgreSQL and without it (its 302 counts are figures only)."""
    sh = smoke["results"]["pacing"]["shared"]
    if "skipped" in sh:
        missing(f"the shared pacing benchmark {NEEDS_POSTGRES}: {sh['skipped']}")
    pages = sh["setup"]["processes"] * sh["setup"]["pages_per_process"]
    for which in ("shared", "separate"):
        r = sh[which]
        assert r["answered"] == pages, (which, r)
        assert r["calls"] == r["answered"] + r["calls_302"], (which, r)
    rows = {r["key"]: r for r in report.verdicts(smoke["results"])}
    assert rows["pacing_shared_302"]["value"] == sh["shared"]["calls_302"]
    assert rows["pacing_separate_302"]["value"] == sh["separate"]["calls_302"]


def test_analyst_desk(smoke):
    a = smoke["results"]["analyst"]
    creators, days = smoke["args"].analyst_creators, smoke["args"].analyst_days
    assert a["build"]["notes_rows"] > creators * days * 39  # 40 a day, now and then one missing
    assert a["build"]["metric_rows"] == creators * days * 9
    assert a["percentile_rows"] > creators  # 'all' plus each creator's tags
    assert a["report_charts"] > 1
    for name, q in a["queries"].items():
        assert q["seconds"]["n"] == 1, name
    assert a["queries"]["creator: note history"]["rows"] > 0
    assert a["queries"]["brand: cooperations by creator"]["rows"] > 0


def test_replica_analyst_never_fails_and_the_main_file_contrast_is_measured(smoke):
    r = smoke["results"]["replica"]
    a = r["analyst"]
    assert a["queries"] > 0 and a["errors"] == 0, a["error_samples"]
    assert all(v >= 1 for v in a["versions_seen"])
    assert r["run_with_analyst_s"]["n"] == r["run_without_analyst_s"]["n"] == 1
    assert r["main_file"]["queries"] > 0  # the contrast ran (its failures are reported, not asserted)
    sizes = r["history"]["sizes"]
    assert len(sizes) == 2 and sizes[1]["database_bytes"] > sizes[0]["database_bytes"]
    assert all(e["publish"]["modes"] == ["changed days"] and e["publish"]["seconds"]["n"] == 3 for e in sizes)


def test_report_lists_every_target_and_keeps_history(smoke, tmp_path: Path):
    machine = {
        "date": "2026-01-01 00:00 UTC",
        "revision": "abc123",
        "cpu_model": "test",
        "cpus": 2,
        "cpus_usable": 2,
        "memory_gib": 1.0,
        "os": "Linux",
        "python": "3.11",
        "versions": {"dagster": "x"},
        "load_before": 1.0,
        "load_after": 1.0,
    }
    path = tmp_path / "benchmarks.md"
    first = report.write(path, smoke["results"], machine, "python -m benchmarks.run --smoke", 1.0)
    for heading in (
        "## Machine",
        "## Targets",
        "## 1. Fetch",
        "## 2. Orchestration",
        "## 3. Load and normalize",
        "## 4. Metrics",
        "## 5. The analyst's desk",
        "## 6. Reading while the pipeline writes",
        "## 7. Calls per creator-day",
        "## 8. Adaptive pacing",
        "## How to run",
    ):
        assert heading in first
    assert "Before and after" not in first
    keys = {r["key"] for r in report.verdicts(smoke["results"])}
    assert {
        "fetch_over_bound",
        "wall_over_bound",
        "calls_302",
        "calls_over_min",
        "notes_lost",
        "faster_than_sample_loop",
        "orchestration_ratio",
        "normalize_over_plain",
        "normalize_peak_rss",
        "metrics_flat",
        "scans_ratio",
        "scans_metrics_identical",
        "pacing_302_share",
        "pacing_throughput",
        "pacing_notes_lost",
        "analyst_slowest_query",
        "analyst_percentiles",
        "analyst_anomalies",
        "analyst_report",
        "replica_analyst_errors",
        "replica_wall_growth",
        "replica_publish_growth",
    } <= keys
    second = report.write(path, smoke["results"], {**machine, "date": "2026-01-02 00:00 UTC"}, "again", 1.0)
    assert "## Before and after" in second
    history = json.loads(re.search(r"<!-- benchmarks-history\n(.*?)\n-->", second, re.S).group(1))
    assert [h["date"] for h in history] == ["2026-01-01 00:00 UTC", "2026-01-02 00:00 UTC"]


def test_storage_benchmark_rebuilds_every_day_identically_and_counts_note_days():
    """Benchmark 9 (run only when named) at a tiny size: its figures, and a zero-call rebuild of every
    stored day that gives the same tables."""
    from benchmarks import storage

    r = storage.run(creators=4, days=3, log=lambda *_: None)
    assert r["rebuild_differing_rows"] == 0
    assert r["note_days"] > r["distinct_texts"] > 0
    assert r["bytes_per_note_day"] == r["bytes"] / r["note_days"]
