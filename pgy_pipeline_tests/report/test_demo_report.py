"""The demo's report on its first day and after 30 days, built as the pipeline builds it.

The sample creators of creators.yaml, served by the demo's simulator: for each day, the pipeline's
clock (``pgy_pipeline.clock.use_clock``, which the simulator's default clock reads too) is set to
10:00 Asia/Shanghai of that day and the three snapshot assets are materialized for it in one range
run; then the analyst assets (percentiles, anomalies, the report) for the last day. The report is
opened in headless Chromium and checked as page_checks.py says (day ticks, whole counts, every
creator drawn or listed with a reason, no tofu), and its screenshot is saved under
pgy_pipeline_tests/artifacts/ (git-ignored): report-demo-1-day.png, report-demo-30-days.png, each
with -top.png and -creators.png parts.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, materialize

from pgy_pipeline import clock
from pgy_pipeline.orchestration.analyst_assets import ANALYST_ASSETS, REPORT_KEY
from pgy_pipeline.orchestration.registry import load_registry
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline.report import report_path
from pgy_pipeline.simulator.demo import demo_simulator
from pgy_pipeline_tests.analyst_support import Creator, write_creators
from pgy_pipeline_tests.conftest import TEST_TOKEN, fast_api, run_pipeline
from pgy_pipeline_tests.report import page_checks
from pgy_pipeline_tests.report.cdp import Browser
from pgy_pipeline_tests.report.page_checks import ARTIFACTS, require_chromium

REGISTRY = Path(__file__).resolve().parents[2] / "creators.yaml"


def build_demo(folder: Path, n_days: int) -> tuple[Path, Path]:
    """The demo's DuckDB file after ``n_days`` daily snapshots ending today, and today's report."""
    registry = load_registry(REGISTRY)
    ids = registry.active_ids
    db = folder / "pgy.duckdb"
    today = clock.today_shanghai()
    resource = PgyDuckDBResource(database=str(db), lock_wait_s=5.0)
    # An in-memory Dagster instance: the demo needs runs, not their history on disk (and it is faster).
    with demo_simulator(TEST_TOKEN) as simulator, DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("creators", ids)
        api = fast_api(simulator)
        for k in range(n_days - 1, -1, -1):
            day = today - timedelta(days=k)
            at_ten = datetime.combine(day, time(10), tzinfo=clock.SHANGHAI)
            with clock.use_clock(lambda at=at_ten: at):
                result = run_pipeline(instance, api, resource, ids, day=day.isoformat())
            assert result.success, f"snapshot of {day} failed"
        with duckdb.connect(str(db)) as conn:
            write_creators(
                conn, [Creator(c.creator_id, c.display_name or "", list(c.tags)) for c in registry.creators]
            )
        analyst = materialize(
            ANALYST_ASSETS, instance=instance, resources={"duckdb": resource}, partition_key=today.isoformat()
        )
        assert analyst.success
        assert analyst.asset_materializations_for_node(REPORT_KEY.to_python_identifier())
    with duckdb.connect(str(db), read_only=True) as conn:
        days = conn.execute(
            "SELECT count(DISTINCT snapshot_date), count(DISTINCT creator_id) FROM analytics.creator_engagement_metrics"
        ).fetchall()
    assert days == [(n_days, len(ids))]
    return db, report_path(str(db), today)


@pytest.mark.parametrize("n_days", [1, 30], ids=["1-day", "30-days"])
def test_the_demo_report_reads_well_on_day_one_and_day_thirty(n_days, tmp_path):
    binary = require_chromium()
    db, report = build_demo(tmp_path, n_days)
    today = clock.today_shanghai()
    name = f"report-demo-{n_days}-{'day' if n_days == 1 else 'days'}"
    with Browser(binary, width=1400, height=1000) as browser:
        browser.open(report.resolve().as_uri())
        browser.wait_for(
            "document.querySelectorAll('[id^=creator-] .main-svg').length >= 5 && document.readyState === 'complete'"
        )
        browser.pump(0.5)
        ticks = page_checks.axis_ticks(browser)
        roster = page_checks.roster_problems(browser, page_checks.expected_roster(db, today))
        glyphs = page_checks.glyphs(browser)
        shot = browser.screenshot(ARTIFACTS / f"{name}.png")
        # and in two screen-sized parts: the roster, and the first creators
        browser.screenshot(ARTIFACTS / f"{name}-top.png", 0, 1200)
        creators_top = browser.evaluate("document.getElementById('creator-0').getBoundingClientRect().top")
        browser.screenshot(ARTIFACTS / f"{name}-creators.png", max(0, creators_top - 60), 1300)
    print(f"\ndemo report ({n_days} day(s)): {shot}, and {name}-top.png, {name}-creators.png beside it")
    assert browser.console_errors == []
    assert page_checks.tick_problems(ticks) == []
    assert roster == []
    assert glyphs.tofu == [], f"drawn as tofu in {glyphs.font}: {glyphs.tofu}"
    assert glyphs.han and glyphs.emoji, "the demo's names and note titles should have Chinese and emoji"
    # The snapshot dates: one tick on day one (the date, centred), a tick a week over 30 days.
    median_ticks = [
        t
        for chart, axes in ticks.items()
        if chart.startswith("creator-")
        for axis in axes
        if axis["subplot"] == "subplot xy"
        for t in axis["x"]
    ]
    label = today.strftime("%m-%d")
    assert label in median_ticks
    if n_days == 1:
        assert set(median_ticks) == {label}
    else:
        first = (today - timedelta(days=28)).strftime("%m-%d")
        assert first in median_ticks and (today - timedelta(days=1)).strftime("%m-%d") not in median_ticks
