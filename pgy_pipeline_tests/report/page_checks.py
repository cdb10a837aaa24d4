"""What a person must be able to read in a rendered report, checked in the browser's DOM.

- Axes: date ticks are whole days (``MM-DD``: no "23:59:59.999"), count ticks whole numbers, no
  label twice on one axis (the sign of ticks finer than their format).
- The roster: every creator with a snapshot that day, and every active creator of the registry, is
  either a point of the roster chart or listed under it with a reason.
- Glyphs: every character of the page's text (SVG and HTML) is drawn from a font that has it, not as
  the missing-glyph box ("tofu"). Each character is drawn on a canvas in the page's font list and
  compared with the drawing of U+10FFFD, a private-use codepoint no font has: the same pixels, or
  none, mean tofu. ``CSS.getPlatformFontsForNode`` cannot tell this alone: a glyph no font has is
  counted under the first font of the list.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pgy_pipeline_tests.report.cdp import Browser, chromium_binary

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"  # screenshots (git-ignored)

NOTDEF_PROBE = "\U0010fffd"  # private use, plane 16: in no font
DAY_TICK = re.compile(r"\d{2}-\d{2}")  # tickformat %m-%d
WHOLE_TICK = re.compile(r"\d{1,3}(,\d{3})*|\d+|\d+[kM]")  # 0, 500, 1,500, 2616, 10k, 2M (not 1.5k)
SUB_DAY = re.compile(r"\d:\d\d|\.\d{3}\b")  # 23:59, 00:00:00.001

TICKS_JS = """(() => {
  const out = {};
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    out[gd.id] = [...gd.querySelectorAll('.cartesianlayer g.subplot')].map(sp => ({
      subplot: sp.getAttribute('class'),
      x: [...sp.querySelectorAll('.xaxislayer-above g[class*=tick] text')].map(t => t.textContent),
      y: [...sp.querySelectorAll('.yaxislayer-above g[class*=tick] text')].map(t => t.textContent),
    }));
  }
  return out;
})()"""

ROSTER_JS = """(() => {
  const gd = document.getElementById('roster-scatter');
  return {
    drawn: gd.data.flatMap(t => (t.customdata || []).map(c => c[3])),
    points: gd.querySelectorAll('.scatterlayer .points path.point').length,
    labels: [...gd.querySelectorAll('.scatterlayer .textpoint text')].map(t => t.textContent),
    listed: [...document.querySelectorAll('#roster-not-drawn li[data-creator-id]')].map(
      li => [li.dataset.creatorId, (li.querySelector('.reason') || {}).textContent || '']),
  };
})()"""

# Draws each distinct grapheme of ``texts`` (not ASCII) in the page's font list, and U+10FFFD as
# the missing-glyph reference; returns the graphemes checked and those drawn as tofu.
GLYPHS_JS = """((texts, probe) => {
  const font = getComputedStyle(document.body).fontFamily;
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (g) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = '40px ' + font;
    ctx.textBaseline = 'middle';
    ctx.fillStyle = '#000';
    ctx.fillText(g, 8, 32);
    return ctx.getImageData(0, 0, 64, 64).data;
  };
  const notdef = draw(probe);
  const same = (a, b) => a.every((v, i) => v === b[i]);
  const blank = (a) => { for (let i = 3; i < a.length; i += 4) if (a[i] !== 0) return false; return true; };
  const segmenter = new Intl.Segmenter(undefined, {granularity: 'grapheme'});
  const seen = new Set(), out = {font, checked: [], tofu: [], emoji: [], han: []};
  for (const text of texts) for (const {segment: g} of segmenter.segment(text)) {
    if (seen.has(g) || /^[\\u0000-\\u007f]$/.test(g) || /^\\s+$/u.test(g)) continue;
    seen.add(g);
    out.checked.push(g);
    if (/\\p{Extended_Pictographic}/u.test(g)) out.emoji.push(g);
    if (/\\p{Script=Han}/u.test(g)) out.han.push(g);
    const px = draw(g);
    if (same(px, notdef) || blank(px)) out.tofu.push(g);
  }
  return out;
})"""

PAGE_TEXT_JS = (
    "[...document.querySelectorAll('svg text')].map(t => t.textContent).concat([document.body.innerText])"
)


def require_chromium() -> str:
    """Chromium's path; a skip without it, a failure in CI (where .ci/run installs it)."""
    binary = chromium_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs it with apt-get install chromium")
        pytest.skip(
            "chromium is not installed (apt-get install chromium fonts-wqy-zenhei fonts-noto-color-emoji)"
        )
    return binary


@dataclass
class Glyphs:
    font: str
    checked: list[str]
    tofu: list[str]
    emoji: list[str]
    han: list[str]


def glyphs(browser: Browser, texts: list[str] | None = None) -> Glyphs:
    """Which characters of ``texts`` (default: all the page's text) the page draws as tofu."""
    if texts is None:
        texts = browser.evaluate(PAGE_TEXT_JS)
    found = browser.evaluate(f"({GLYPHS_JS})({json.dumps(texts)}, {json.dumps(NOTDEF_PROBE)})")
    return Glyphs(**found)


def mark_first_emoji_legend(browser: Browser) -> str | None:
    """Tag the first legend entry with an emoji (a note title) so it can be found by selector."""
    found = browser.evaluate(
        """(() => {
          const el = [...document.querySelectorAll('.legendtext')]
            .find(t => /\\p{Extended_Pictographic}/u.test(t.textContent));
          if (!el) return null;
          el.setAttribute('data-glyph-probe', '1');
          return el.textContent;
        })()"""
    )
    return str(found) if found is not None else None


def tick_problems(ticks: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Tick labels a reader would stumble on, one line each (empty when the axes read well)."""
    problems = []
    for chart, axes in ticks.items():
        for axis in axes:
            where = f"{chart} {axis['subplot']}"
            for kind in ("x", "y"):
                labels = axis[kind]
                if len(set(labels)) != len(labels):
                    problems.append(f"{where} {kind}: a label repeats: {labels}")
                problems += [
                    f"{where} {kind}: tick finer than a day: {t!r}" for t in labels if SUB_DAY.search(t)
                ]
            dates, counts = (
                (axis["x"], axis["y"])
                if chart.startswith("creator-")
                else ([], axis["x"])
                if chart.startswith("brand-") or chart == "roster-scatter"
                else ([], [])
            )
            problems += [f"{where}: not a day tick: {t!r}" for t in dates if not DAY_TICK.fullmatch(t)]
            problems += [f"{where}: not a whole count: {t!r}" for t in counts if not WHOLE_TICK.fullmatch(t)]
    return problems


def axis_ticks(browser: Browser) -> dict[str, list[dict[str, Any]]]:
    ticks: dict[str, list[dict[str, Any]]] = browser.evaluate(TICKS_JS)
    return ticks


def expected_roster(db: Path, day: date) -> dict[str, dict[str, Any]]:
    """Every creator the report must account for, straight from the tables: those with metrics on
    ``day`` and the registry's active ones, with their 30-day note count (None: no snapshot)."""
    with duckdb.connect(str(db), read_only=True) as conn:
        rows = conn.execute(
            """
            SELECT coalesce(m.creator_id, c.creator_id), coalesce(c.display_name, m.creator_id), m.note_count
            FROM (SELECT creator_id, note_count FROM analytics.creator_engagement_metrics
                  WHERE snapshot_date = ? AND "window" = '30d' AND segment = 'all') AS m
            FULL JOIN (SELECT * FROM analytics.creators WHERE active) AS c USING (creator_id)
            """,
            [day],
        ).fetchall()
    return {cid: {"name": name, "notes_30d": n} for cid, name, n in rows}


def roster_problems(browser: Browser, expected: dict[str, dict[str, Any]]) -> list[str]:
    """Creators neither drawn nor listed with a reason, or drawn and listed both, or listed wrongly."""
    seen = browser.evaluate(ROSTER_JS)
    drawn, listed = set(seen["drawn"]), dict(seen["listed"])
    problems = []
    if seen["points"] != len(seen["drawn"]):
        problems.append(f"roster chart: {seen['points']} points drawn for {len(seen['drawn'])} creators")
    for cid, who in sorted(expected.items()):
        if cid not in drawn and cid not in listed:
            problems.append(f"{who['name']} ({cid}) is neither in the roster chart nor listed under it")
        if cid in drawn and cid in listed:
            problems.append(f"{who['name']} ({cid}) is both drawn and listed as not drawn")
        if cid in listed and not listed[cid].strip():
            problems.append(f"{who['name']} ({cid}) is listed without a reason")
        if who["notes_30d"] == 0 and "no notes" not in listed.get(cid, ""):
            problems.append(f"{who['name']} ({cid}) has no 30-day notes; listed as {listed.get(cid)!r}")
        if who["notes_30d"] is None and "no snapshot" not in listed.get(cid, ""):
            problems.append(f"{who['name']} ({cid}) has no snapshot; listed as {listed.get(cid)!r}")
    problems += [
        f"{cid} is in the report but not in the tables" for cid in (drawn | set(listed)) - set(expected)
    ]
    if len(seen["labels"]) not in (0, len(seen["drawn"])):
        problems.append(f"roster chart: {len(seen['labels'])} name labels for {len(seen['drawn'])} points")
    return problems


def fontconfig_without(folder: Path, family: str) -> dict[str, str]:
    """Environment for a Chromium that sees every installed font except those whose family matches
    ``family`` (a regular expression): links to the kept font files, and a fontconfig file for them."""
    listing = subprocess.run(
        ["fc-list", "--format", "%{file}\t%{family}\n"], capture_output=True, text=True, check=True
    ).stdout
    kept = folder / "fonts"
    kept.mkdir(parents=True)
    files: dict[str, bool] = {}
    for line in listing.splitlines():
        path, _, families = line.partition("\t")
        if path:
            files[path] = files.get(path, True) and not re.search(family, families, re.IGNORECASE)
    for i, (path, keep) in enumerate(sorted(files.items())):
        if keep:
            os.symlink(path, kept / f"{i:04d}-{Path(path).name}")
    conf = folder / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        f"<fontconfig><dir>{kept}</dir><cachedir>{folder / 'cache'}</cachedir></fontconfig>\n",
        encoding="utf-8",
    )
    return {"FONTCONFIG_FILE": str(conf)}
