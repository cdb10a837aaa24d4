"""The HTML report on a fixture roster of 20 creators and 10 snapshots, opened in headless Chromium.

Besides the 20, the roster has a creator gone quiet (its notes are all older than 30 days, their
titles with emoji) and a registered creator with no snapshot yet: the report must account for both.

The browser test asserts what a person would see: no console error, no network request, every chart
drawn with as many marks as the data has (counted in the DOM, expected counts computed from the
DuckDB file, not taken from the builder), Chinese names and titles present, date ticks in days and
count ticks whole (read from the DOM), every creator drawn or listed with a reason, and no character
drawn as tofu (see page_checks.py; a second browser without the emoji font shows the check failing).
It saves a screenshot under pgy_pipeline_tests/artifacts/ (git-ignored) and prints its path.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from pgy_pipeline.errors import InvalidInputError
from pgy_pipeline.report import build_report, report_path
from pgy_pipeline.report.builder import WEEKS, _count_axis, _date_axis, _log_count_axis, _whole
from pgy_pipeline.warehouse.analyst import rebuild_anomalies, rebuild_peer_percentiles
from pgy_pipeline_tests.analyst_support import (
    Creator,
    Note,
    fixture_roster,
    hex_id,
    write_creators,
    write_snapshots,
)
from pgy_pipeline_tests.report import page_checks
from pgy_pipeline_tests.report.cdp import Browser
from pgy_pipeline_tests.report.page_checks import ARTIFACTS, require_chromium

QUIET = Creator(hex_id("roster", "quiet"), "安静的小周", ["旅行"])
NEWCOMER = Creator(hex_id("roster", "new"), "新来的小李", ["美食"])
QUIET_TITLES = ["露营装备清单🏕️✨", "秋冬护肤｜敏感肌也能用😭", "周末探店🔥真的绝了"]


@pytest.fixture(scope="module")
def roster_db(tmp_path_factory):
    roster = fixture_roster(n_creators=20, n_snapshots=10)
    # Quiet: three notes, 40 to 60 days before the last snapshot, so none is in any day's 30-day window.
    quiet_notes = [
        Note(
            hex_id("quiet", k),
            title,
            roster.last_day - timedelta(days=40 + 10 * k),
            3_000 * (k + 1),
            likes=90,
        )
        for k, title in enumerate(QUIET_TITLES)
    ]
    snapshots = dict(roster.snapshots) | {(QUIET.creator_id, day): quiet_notes for day in roster.days}
    path = tmp_path_factory.mktemp("report") / "pgy.duckdb"
    with duckdb.connect(str(path)) as conn:
        write_creators(conn, [*roster.creators, QUIET, NEWCOMER])
        write_snapshots(conn, snapshots)
        rebuild_peer_percentiles(conn, roster.days)
        rebuild_anomalies(conn, roster.days)
    return path, roster


@pytest.fixture(scope="module")
def report(roster_db):
    path, roster = roster_db
    out = report_path(str(path), roster.last_day)
    with duckdb.connect(str(path)) as conn:
        summary = build_report(conn, roster.last_day, out)
    return summary


def expected_marks(db: Path, day, creators_shown: int) -> dict[str, int]:
    """Marks each chart must draw, straight from the tables (not from the report builder)."""
    with duckdb.connect(str(db), read_only=True) as conn:
        roster = conn.execute(
            "SELECT creator_id FROM analytics.creator_engagement_metrics WHERE snapshot_date = ? "
            "AND \"window\" = '30d' AND segment = 'all' ORDER BY read_median DESC NULLS LAST, creator_id",
            [day],
        ).fetchall()
        points = conn.execute(
            "SELECT count(*) FROM analytics.creator_engagement_metrics WHERE snapshot_date = ? "
            "AND \"window\" = '30d' AND segment = 'all' AND read_median IS NOT NULL AND engagement_rate IS NOT NULL",
            [day],
        ).fetchall()[0][0]
        brands = conn.execute(
            "SELECT brand_name, count(DISTINCT creator_id) FROM analytics.brand_notes GROUP BY 1 "
            "ORDER BY sum(read_num) DESC, 1"
        ).fetchall()
        marks = {"roster-scatter": points}
        for i, (_, creators) in enumerate(brands):
            marks[f"brand-{i}"] = min(creators, 15)
        for i, (creator_id,) in enumerate(roster[:creators_shown]):
            medians = conn.execute(
                "SELECT count(*) FROM analytics.creator_engagement_metrics WHERE creator_id = ? AND "
                "\"window\" = '30d' AND segment = 'all' AND read_median IS NOT NULL AND snapshot_date <= ?",
                [creator_id, day],
            ).fetchall()[0][0]
            curve_points = conn.execute(
                "WITH top AS (SELECT note_id FROM analytics.notes WHERE creator_id = ? AND snapshot_date = ? "
                "ORDER BY read_num DESC, note_id LIMIT 5) "
                "SELECT count(*) FROM analytics.note_history WHERE creator_id = ? AND snapshot_date <= ? "
                "AND note_id IN (SELECT note_id FROM top)",
                [creator_id, day, creator_id, day],
            ).fetchall()[0][0]
            published = conn.execute(
                "SELECT count(*) FROM analytics.notes WHERE creator_id = ? AND snapshot_date = ? "
                "AND published_date > ? AND published_date <= ?",
                [creator_id, day, day - timedelta(days=7 * WEEKS), day],
            ).fetchall()[0][0]
            # 12 weekly bars, or none (and a sentence) when nothing was published in those weeks
            marks[f"creator-{i}"] = medians + (WEEKS if published else 0) + curve_points
    return marks


def test_report_is_one_self_contained_file_next_to_the_database(roster_db, report):
    db, roster = roster_db
    assert report.path == db.parent / "reports" / f"{roster.last_day.isoformat()}.html"
    assert report.url.startswith("file:///") and report.url.endswith(".html")
    text = report.path.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=", text), "a script is loaded from elsewhere"
    assert not re.search(r"<link[^>]+href=", text), "a stylesheet is loaded from elsewhere"
    # plotly.js itself is inline (its only URL, for geo maps' topojson, is never fetched: see the browser test)
    assert "Plotly.newPlot" in text and len(text) > 3_000_000
    assert report.roster_points == 20 and report.creators_shown == 21 and report.brands_total == 4
    assert report.not_drawn == {
        QUIET.creator_id: f"no notes in the last 30 days (latest note {roster.last_day - timedelta(days=40)})",
        NEWCOMER.creator_id: "no snapshot stored yet",
    }
    assert report.anomalies == 2  # the fixture's vanished note and spike
    assert report.chart_count == 1 + report.brands_shown + report.creators_shown
    assert not list(report.path.parent.glob(".*.tmp")), "the atomic write left its temporary file"
    assert report.marks == expected_marks(db, roster.last_day, report.creators_shown)


def test_report_limits_are_checked_and_a_past_date_is_reported_as_of_that_date(roster_db, tmp_path):
    db, roster = roster_db
    with duckdb.connect(str(db), read_only=True) as conn:
        with pytest.raises(InvalidInputError, match="max_creators"):
            build_report(conn, roster.last_day, tmp_path / "x.html", max_creators=0)
        early = build_report(conn, roster.days[0], tmp_path / "early.html", max_creators=3, max_brands=2)
    assert early.creators_shown == 3 and early.brands_shown == 2 and early.anomalies == 0
    assert set(early.not_drawn) == {QUIET.creator_id, NEWCOMER.creator_id}
    # the first snapshot's report shows the first snapshot's figures (brands are checked on the last)
    charts = {k: v for k, v in early.marks.items() if not k.startswith("brand-")}
    assert charts == {
        k: v for k, v in expected_marks(db, roster.days[0], 3).items() if not k.startswith("brand-")
    }


def test_report_renders_in_headless_chromium_with_every_chart_and_no_error(roster_db, report):
    binary = require_chromium()
    db, roster = roster_db
    expected = expected_marks(db, roster.last_day, report.creators_shown)
    with Browser(binary, width=1400, height=1000) as browser:
        browser.open(report.url)
        browser.wait_for(
            f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {len(expected)}"
            " && document.readyState === 'complete'"
        )
        browser.pump(1.0)  # let late errors arrive
        drawn = browser.evaluate(
            """(() => {
                const out = {};
                for (const el of document.querySelectorAll('.js-plotly-plot')) {
                    out[el.id] = el.querySelectorAll('.scatterlayer .points path.point, .barlayer g.point').length;
                }
                return out;
            })()"""
        )
        svg_text = browser.evaluate(
            "[...document.querySelectorAll('svg text')].map(t => t.textContent).join(' ')"
        )
        body_text = browser.evaluate("document.body.innerText")
        ticks = page_checks.axis_ticks(browser)
        roster_problems = page_checks.roster_problems(
            browser, page_checks.expected_roster(db, roster.last_day)
        )
        glyphs = page_checks.glyphs(browser)
        probe = page_checks.glyphs(browser, [page_checks.NOTDEF_PROBE, "周"])
        legend = page_checks.mark_first_emoji_legend(browser)
        legend_fonts = browser.platform_fonts("[data-glyph-probe]") if legend else []
        shot = browser.screenshot(ARTIFACTS / f"report-{roster.last_day.isoformat()}.png")
        # the same page in two screen-sized parts, legible at a glance
        browser.screenshot(ARTIFACTS / "report-top.png", 0, 1800)
        creators_top = browser.evaluate("document.getElementById('creator-0').getBoundingClientRect().top")
        browser.screenshot(ARTIFACTS / "report-creators.png", max(0, creators_top - 60), 1300)
    print(f"\nreport screenshots: {shot}, and report-top.png, report-creators.png beside it")
    assert browser.console_errors == []
    assert [u for u in browser.requests if not u.startswith(("file:", "data:", "about:"))] == []
    assert drawn == expected
    names = [c.display_name for c in roster.creators]
    assert all(name in svg_text for name in names), "a creator's name is missing from the charts"
    assert "上海探店" in body_text and "花西子" in svg_text and "美妆" in svg_text

    # Axes: days and whole counts; the roster's log axis labels its decades.
    assert page_checks.tick_problems(ticks) == []
    first = {a["subplot"]: bool(a["x"] and a["y"]) for a in ticks["creator-0"]}
    assert first == {"subplot xy": True, "subplot x2y2": True, "subplot x3y3": True}, (
        "no ticks found in the DOM"
    )
    roster_x = ticks["roster-scatter"][0]["x"]
    assert {"1k", "10k"} <= set(roster_x), roster_x
    quiet = f"creator-{report.creators_shown - 1}"  # no read median: shown last
    medians = [a["x"] for a in ticks[quiet] if a["subplot"] == "subplot xy"]
    assert medians in ([], [[]]), "the quiet creator's median chart shows bare axes"
    assert "No read median: no notes in the last" in svg_text  # wrapped: lines join without a space

    # Every creator is drawn or listed with its reason; the two that cannot be drawn are listed.
    assert roster_problems == []
    assert f"{QUIET.display_name} ({QUIET.tags[0]}): no notes in the last 30 days" in body_text
    assert f"{NEWCOMER.display_name} ({NEWCOMER.tags[0]}): no snapshot stored yet" in body_text

    # Glyphs: the detector flags a codepoint no font has, and nothing on the page is tofu.
    assert probe.tofu == [page_checks.NOTDEF_PROBE] and probe.checked == [page_checks.NOTDEF_PROBE, "周"]
    assert glyphs.tofu == [], f"drawn as tofu in {glyphs.font}: {glyphs.tofu}; legend fonts {legend_fonts}"
    assert {"🏕️", "✨", "😭", "🔥"} <= set(glyphs.emoji) and {"安", "静", "周"} <= set(glyphs.han)
    assert legend and legend_fonts, "no note title with an emoji in a legend"
    assert shot.stat().st_size > 50_000


def test_the_glyph_check_fails_in_a_browser_without_an_emoji_font(report, tmp_path):
    """The same report and check in a Chromium that sees every installed font but the emoji ones:
    the emoji of the note titles come out as tofu, so the check above would fail on such a machine."""
    binary = require_chromium()
    if shutil.which("fc-list") is None:
        if os.environ.get("CI"):
            pytest.fail("fc-list is not installed: .ci/run installs it with apt-get install fontconfig")
        pytest.skip("fc-list is not installed (apt-get install fontconfig)")
    env = page_checks.fontconfig_without(tmp_path, "emoji")
    with Browser(binary, width=1400, height=1000, env=env) as browser:
        browser.open(report.url)
        browser.wait_for("document.readyState === 'complete' && !!document.querySelector('.legendtext')")
        glyphs = page_checks.glyphs(browser)
        legend = page_checks.mark_first_emoji_legend(browser)
        legend_fonts = browser.platform_fonts("[data-glyph-probe]") if legend else []
    assert {"🏕️", "✨", "🔥"} <= set(glyphs.tofu), glyphs.tofu
    assert not set(glyphs.han) & set(glyphs.tofu), "Chinese should still have its font"
    assert legend_fonts and not any("emoji" in name.lower() for name, _ in legend_fonts)


def test_axes_read_in_whole_days_and_whole_numbers_from_day_one_to_day_three_hundred():
    day = date(2026, 12, 5)
    one = _date_axis(day, day, "snapshot date")
    assert one["range"] == ["2026-12-04 00:00:00", "2026-12-06 00:00:00"] and one["tickvals"] == [
        "2026-12-05"
    ]
    assert one["tickformat"] == "%m-%d" and one["title"]["text"] == "snapshot date (2026)"
    month = _date_axis(day - timedelta(days=29), day, "snapshot date")
    assert month["dtick"] == 7 * 86_400_000 and month["tick0"] == "2026-12-05"
    year = _date_axis(day - timedelta(days=299), day, "snapshot date")
    assert year["dtick"] == "M2" and year["title"]["text"] == "snapshot date (2026)"
    assert _date_axis(date(2025, 12, 20), date(2026, 1, 10), "d")["title"]["text"] == "d (2025–2026)"
    # medians of reads end in .5: rounded half up, as the browser rounds, not to even as Python does
    assert [_whole(1504.5), _whole(1505.5), _whole(0.4)] == [1505, 1506, 0]
    counts = _count_axis(3, "notes")
    assert counts["tickvals"] == [0, 1, 2, 3] and counts["ticktext"] == ["0", "1", "2", "3"]
    reads = _count_axis(13_943, "reads")
    assert reads["ticktext"] == ["0", "5k", "10k", "15k"]
    assert _count_axis(1_508, "reads")["ticktext"] == ["0", "500", "1,000", "1,500"]
    roster = _log_count_axis([1_189, 2_617, 13_943], "read median")
    assert roster["ticktext"] == ["1k", "2k", "5k", "10k"] and roster["type"] == "log"
    assert _log_count_axis([560, 41_000], "x")["ticktext"] == ["500", "1k", "2k", "5k", "10k", "20k", "50k"]
