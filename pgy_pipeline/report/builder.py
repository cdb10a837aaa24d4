"""The per-date HTML report: one self-contained file with interactive charts, readable offline.

Charts are plotly figures; plotly.js is inlined once in the page's head, so the file needs no
network, no CDN and no server. Everything shown is as of the report's snapshot date: metrics of
that date and earlier, each note at its latest snapshot on or before it.

Sections: the roster (read median against engagement rate, coloured by tag, names on hover and as
labels for small rosters; every creator the chart cannot draw is listed under it with the reason);
the day's anomalies as a table; per brand, reads by creator; per creator, the read median over the
snapshots, notes published per week, and the read curves of its top notes (an empty chart says why
instead of showing bare axes). The largest rosters show their top creators and brands (by reads),
and say so.

Axes read the same on the first day and the three-hundredth: dates in whole days (one date gets a
day either side), counts in whole numbers on ticks chosen here (1, 2, 5 x 10^n; "1k", "10k"), and
medians of reads, which can end in .5, rounded half up to whole reads everywhere they are shown.
"""

from __future__ import annotations

import html
import math
import os
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from pgy_pipeline import clock
from pgy_pipeline.errors import InvalidInputError

# CJK first (its Latin and digits too), then the colour emoji fonts of Linux, macOS and Windows for
# the emoji of note titles; a browser takes each character from the first font in the list that has it.
FONT = (
    "'WenQuanYi Zen Hei', 'Noto Sans CJK SC', 'PingFang SC', 'Microsoft YaHei', sans-serif, "
    "'Noto Color Emoji', 'Apple Color Emoji', 'Segoe UI Emoji'"
)
NO_TAG = "(no tag)"
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
WEEKS = 12
WINDOW_DAYS = 30  # the roster and the per-creator medians read the metrics of window '30d'
LABEL_LIMIT = 40  # rosters up to this size get their names written next to the points
DAY_MS = 86_400_000


@dataclass
class ReportSummary:
    """What a report shows: where it is, and how many charts and marks of each kind it holds."""

    path: Path
    snapshot_date: date
    chart_count: int
    roster_points: int
    creators_shown: int
    creators_total: int
    brands_shown: int
    brands_total: int
    anomalies: int
    marks: dict[str, int] = field(default_factory=dict)  # chart id -> data points drawn
    not_drawn: dict[str, str] = field(default_factory=dict)  # creator id -> why the roster chart omits it

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()


@dataclass
class _Charts:
    divs: list[str] = field(default_factory=list)
    marks: dict[str, int] = field(default_factory=dict)

    def add(
        self, chart_id: str, fig: go.Figure, marks: int, height: int, top: int = 50, bottom: int = 50
    ) -> str:
        fig.update_layout(
            font={"family": FONT, "size": 12},
            height=height,
            margin={"l": 70, "r": 20, "t": top, "b": bottom},
            template="plotly_white",
        )
        self.marks[chart_id] = marks
        div: str = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=False,
            div_id=chart_id,
            config={"displaylogo": False, "displayModeBar": False, "responsive": True},
        )
        self.divs.append(div)
        return div


def _rows(conn: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _whole(x: float | None) -> int | None:
    """A count or a median of counts as a whole number, halves rounded up (1,505.5 reads -> 1,506).

    Python's round() and format() round halves to even, the browser's toFixed() rounds them up: the
    report rounds once, here, so the chart, its hover and its title agree."""
    return None if x is None else math.floor(x + 0.5)


def _count_labels(ticks: list[int]) -> list[str]:
    """Whole-number tick labels, in one unit for the axis: 0, 5k, 10k; 0, 500, 1,000, 1,500; 1M, 2M."""
    nonzero = [t for t in ticks if t]
    for unit, suffix in ((1_000_000, "M"), (1_000, "k")):
        if nonzero and all(t % unit == 0 for t in nonzero):
            return [f"{t // unit}{suffix}" if t else "0" for t in ticks]
    return [f"{t:,}" for t in ticks]


def _count_axis(top: float, title: str) -> dict[str, Any]:
    """A linear axis from 0 for counts: ticks at whole multiples of 1, 2 or 5 x 10^n, labelled as such."""
    raw = max(top, 0) / 5
    step = 1
    if raw > 1:
        mag = 10 ** math.floor(math.log10(raw))
        step = next(int(m * mag) for m in (1, 2, 5, 10) if m * mag >= raw)
    upper = max(top * 1.1, step)
    ticks = list(range(0, int(upper) + 1, step))
    return {
        "title": {"text": title},
        "range": [0, upper],
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": _count_labels(ticks),
        "fixedrange": True,
    }


def _log_count_axis(values: list[int], title: str) -> dict[str, Any]:
    """A log axis for counts >= 1 with ticks at 1, 2 and 5 x 10^n (1k, 2k, 5k, 10k ...), from the
    largest such tick at or below the smallest value, so the leftmost point has a label beside it."""
    lo, hi = min(values), max(values)
    candidates = [m * 10**e for e in range(math.floor(math.log10(hi)) + 2) for m in (1, 2, 5)]
    first = max(t for t in candidates if t <= lo)
    left = math.log10(first) - 0.04
    right = math.log10(hi) + 0.12
    ticks = [t for t in candidates if left <= math.log10(t) <= right]
    return {
        "title": {"text": title},
        "type": "log",
        "range": [left, right],
        "tickmode": "array",
        "tickvals": ticks,
        "ticktext": [_count_labels([t])[0] for t in ticks],  # each in its own unit: 500, 1k, 2k
    }


def _date_axis(first: date, last: date, title: str, pad_days: float | None = None) -> dict[str, Any]:
    """A date axis in whole days: ticks every 1, 2, 7 or 14 days (months past about 100 days), counted
    back from ``last`` so it is labelled, and a range of a day either side when there is one date."""
    span = (last - first).days
    pad = timedelta(days=pad_days if pad_days is not None else (1 if span == 0 else 0.5))
    axis: dict[str, Any] = {
        "type": "date",
        "range": [
            (datetime.combine(first, time()) - pad).isoformat(sep=" "),
            (datetime.combine(last, time()) + pad).isoformat(sep=" "),
        ],
        "tickformat": "%m-%d",
        "hoverformat": "%Y-%m-%d",
        "fixedrange": True,
    }
    step = next((d for limit, d in ((6, 1), (13, 2), (48, 7), (97, 14)) if span <= limit), None)
    if span == 0:
        axis.update(tickmode="array", tickvals=[last.isoformat()])  # one date, one tick, centred
    elif step is not None:
        axis.update(dtick=step * DAY_MS, tick0=last.isoformat())
    else:
        axis.update(
            dtick=f"M{1 if span <= 180 else 2 if span <= 370 else 3 if span <= 550 else 6}",
            tick0=first.replace(day=1).isoformat(),
        )
    years = f"{first.year}" if first.year == last.year else f"{first.year}–{last.year}"
    axis["title"] = {"text": f"{title} ({years})"}
    return axis


def _roster(conn: duckdb.DuckDBPyConnection, day: date) -> list[dict[str, Any]]:
    rows = _rows(
        conn,
        """
        SELECT m.creator_id, coalesce(c.display_name, m.creator_id) AS name, coalesce(c.tags, []) AS tags,
               m.note_count, m.read_median, m.engagement_rate, m.notes_per_week,
               p.read_median_percentile, p.engagement_rate_percentile,
               a.notes_total_reported, a.days_since_last_note
        FROM analytics.creator_engagement_metrics AS m
        LEFT JOIN analytics.creators AS c USING (creator_id)
        LEFT JOIN analytics.creator_peer_percentiles AS p
            ON p.creator_id = m.creator_id AND p.snapshot_date = m.snapshot_date AND p.peer_group = 'all'
        LEFT JOIN analytics.creator_engagement_metrics AS a
            ON a.creator_id = m.creator_id AND a.snapshot_date = m.snapshot_date AND a."window" = 'all'
           AND a.segment = 'all'
        WHERE m.snapshot_date = ? AND m."window" = '30d' AND m.segment = 'all'
        ORDER BY m.read_median DESC NULLS LAST, m.creator_id
        """,
        [day],
    )
    for r in rows:
        r["read_median"] = _whole(r["read_median"])
        r["not_drawn"] = _not_drawn_reason(r, day)
    return rows


def _not_drawn_reason(r: dict[str, Any], day: date) -> str | None:
    """Why the roster chart (read median on a log axis, engagement rate) cannot draw this creator."""
    if not r["note_count"] or r["read_median"] is None:
        since = r["days_since_last_note"]
        if since is None and r["notes_total_reported"] == 0:
            return "no notes at all: the service reports none for this creator"
        latest = f" (latest note {(day - timedelta(days=since)).isoformat()})" if since is not None else ""
        return f"no notes in the last {WINDOW_DAYS} days{latest}"
    if r["engagement_rate"] is None:
        return f"its notes of the last {WINDOW_DAYS} days have no reads yet"
    if r["read_median"] < 1:
        return "read median 0: a log axis cannot show it"
    return None


def _unsnapshotted(conn: duckdb.DuckDBPyConnection, day: date) -> list[dict[str, Any]]:
    """Active creators of the registry with no metrics on ``day``, and why (their nearest snapshots)."""
    rows = _rows(
        conn,
        """
        SELECT c.creator_id, coalesce(c.display_name, c.creator_id) AS name, coalesce(c.tags, []) AS tags,
               max(m.snapshot_date) FILTER (WHERE m.snapshot_date < ?) AS before,
               min(m.snapshot_date) FILTER (WHERE m.snapshot_date > ?) AS after
        FROM analytics.creators AS c
        LEFT JOIN analytics.creator_engagement_metrics AS m
            ON m.creator_id = c.creator_id AND m."window" = '30d' AND m.segment = 'all'
        WHERE c.active
        GROUP BY ALL
        HAVING count(*) FILTER (WHERE m.snapshot_date = ?) = 0
        ORDER BY name, c.creator_id
        """,
        [day, day, day],
    )
    for r in rows:
        if r["before"] is not None:
            r["not_drawn"] = f"no snapshot on this date (the last one before it: {r['before'].isoformat()})"
        elif r["after"] is not None:
            r["not_drawn"] = f"no snapshot on this date (its first one is later: {r['after'].isoformat()})"
        else:
            r["not_drawn"] = "no snapshot stored yet"
    return rows


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x * 100:.1f}%" if pct else f"{_whole(x):,}"


def _roster_chart(charts: _Charts, roster: list[dict[str, Any]], not_drawn: list[dict[str, Any]]) -> int:
    by_tag: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in roster:
        if r["not_drawn"] is None:
            by_tag[r["tags"][0] if r["tags"] else NO_TAG].append(r)
    fig = go.Figure()
    points = 0
    label = sum(len(v) for v in by_tag.values()) <= LABEL_LIMIT
    for i, tag in enumerate(sorted(by_tag)):
        rows = by_tag[tag]
        points += len(rows)
        fig.add_trace(
            go.Scatter(
                x=[r["read_median"] for r in rows],
                y=[r["engagement_rate"] * 100 for r in rows],
                mode="markers+text" if label else "markers",
                text=[r["name"] for r in rows],
                textposition="top center",
                name=tag,
                marker={
                    "size": 10,
                    "color": PALETTE[i % len(PALETTE)],
                    "line": {"width": 1, "color": "#fff"},
                },
                customdata=[
                    [
                        " / ".join(r["tags"]) or NO_TAG,
                        r["note_count"],
                        _fmt(r["read_median_percentile"]),
                        r["creator_id"],
                    ]
                    for r in rows
                ],
                hovertemplate=(
                    "<b>%{text}</b><br>tags: %{customdata[0]}<br>read median: %{x:,d} reads"
                    f"<br>engagement: %{{y:.2f}}%<br>notes ({WINDOW_DAYS} d): %{{customdata[1]:,d}}"
                    "<br>beats %{customdata[2]}% of the roster<extra></extra>"
                ),
            )
        )
    total = points + len(not_drawn)
    title = f"Roster: read median against engagement rate ({WINDOW_DAYS} days, all notes)"
    if not_drawn:
        title += f": {points} of {total} creators drawn, {len(not_drawn)} listed below"
    fig.update_layout(
        title=title,
        yaxis={"title": {"text": "engagement rate (% of reads: likes + collects)"}, "rangemode": "tozero"},
        legend={"title": {"text": "tag (first)"}},
    )
    if points:
        fig.update_layout(
            xaxis=_log_count_axis(
                [r["read_median"] for rows in by_tag.values() for r in rows],
                f"read median of the last {WINDOW_DAYS} days (reads, log scale)",
            )
        )
    else:
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.add_annotation(
            text=f"No creator has a read median of the last {WINDOW_DAYS} days on this date: see below.",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            font={"size": 14, "color": "#666"},
        )
    charts.add("roster-scatter", fig, points, 560)
    return points


def _not_drawn_list(rows: list[dict[str, Any]]) -> str:
    """The roster's creators the chart does not draw, each with the reason, right under the chart."""
    if not rows:
        return ""
    items = "".join(
        f"<li data-creator-id='{html.escape(r['creator_id'])}'><b>{html.escape(r['name'])}</b> "
        f"<span class='quiet'>({html.escape(' / '.join(r['tags']) or NO_TAG)})</span>: "
        f"<span class='reason'>{html.escape(r['not_drawn'])}</span></li>"
        for r in rows
    )
    return (
        f"<div id='roster-not-drawn'><p class='meta'>Not in the chart ({len(rows)}):</p>"
        f"<ul>{items}</ul></div>"
    )


def _anomalies(conn: duckdb.DuckDBPyConnection, day: date) -> list[dict[str, Any]]:
    return _rows(
        conn,
        """
        SELECT a.kind, coalesce(c.display_name, a.creator_id) AS name, a.creator_id, a.note_id, a.title,
               a.message
        FROM analytics.anomalies AS a
        LEFT JOIN analytics.creators AS c USING (creator_id)
        WHERE a.snapshot_date = ?
        ORDER BY a.kind, name, a.note_id
        """,
        [day],
    )


def _anomaly_table(rows: list[dict[str, Any]], limit: int) -> str:
    if not rows:
        return "<p class='quiet'>No anomalies on this date.</p>"
    head = "<tr><th>kind</th><th>creator</th><th>note</th><th>what happened</th></tr>"
    body = "".join(
        "<tr>"
        f"<td><span class='kind {html.escape(r['kind'])}'>{html.escape(r['kind'])}</span></td>"
        f"<td>{html.escape(r['name'])}</td>"
        f"<td>{html.escape(r['title'] or r['note_id'] or '')}</td>"
        f"<td>{html.escape(r['message'])}</td>"
        "</tr>"
        for r in rows[:limit]
    )
    more = (
        f"<p class='quiet'>{len(rows) - limit:,} more in analytics.anomalies.</p>"
        if len(rows) > limit
        else ""
    )
    return f"<table id='anomalies'>{head}{body}</table>{more}"


def _brand_rows(conn: duckdb.DuckDBPyConnection, day: date) -> list[dict[str, Any]]:
    # The rules of analytics.brand_notes (cooperation, trimming, latest snapshot), as of `day`.
    return _rows(
        conn,
        """
        WITH per_note AS (
            SELECT creator_id, note_id,
                   arg_max({'brand': nullif(trim(brand_name, ' ' || chr(9) || chr(10) || chr(13) || chr(160)
                                                 || chr(12288)), ''), 'read_num': read_num}, snapshot_date) AS l
            FROM analytics.notes
            WHERE snapshot_date <= ? AND (is_advertise OR brand_name IS NOT NULL)
            GROUP BY ALL
        )
        SELECT l.brand AS brand, p.creator_id, coalesce(c.display_name, p.creator_id) AS name,
               count(*) AS notes, coalesce(sum(l.read_num), 0)::BIGINT AS reads
        FROM per_note AS p
        LEFT JOIN analytics.creators AS c USING (creator_id)
        WHERE l.brand IS NOT NULL
        GROUP BY ALL
        """,
        [day],
    )


def _brand_charts(
    charts: _Charts, rows: list[dict[str, Any]], max_brands: int, max_bars: int
) -> tuple[int, int]:
    by_brand: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_brand[r["brand"]].append(r)
    ranked = sorted(by_brand, key=lambda b: (-sum(r["reads"] for r in by_brand[b]), b))
    for i, brand in enumerate(ranked[:max_brands]):
        creators = sorted(by_brand[brand], key=lambda r: (-r["reads"], r["name"]))[:max_bars]
        creators.reverse()  # horizontal bars read top-down
        total = sum(r["reads"] for r in by_brand[brand])
        fig = go.Figure(
            go.Bar(
                x=[r["reads"] for r in creators],
                y=[r["name"] for r in creators],
                orientation="h",
                text=[f"{r['notes']} note{'s' if r['notes'] != 1 else ''}" for r in creators],
                textposition="auto",
                marker={"color": PALETTE[i % len(PALETTE)]},
                hovertemplate="<b>%{y}</b><br>reads: %{x:,}<br>%{text}<extra></extra>",
            )
        )
        more = len(by_brand[brand]) - len(creators)
        fig.update_layout(
            title=f"{brand}: {total:,} reads from {len(by_brand[brand])} creator(s)"
            + (f" (top {len(creators)} shown)" if more > 0 else ""),
            xaxis=_count_axis(max(r["reads"] for r in creators), "reads (each note at its latest snapshot)"),
            yaxis={"automargin": True},
            showlegend=False,
        )
        charts.add(f"brand-{i}", fig, len(creators), 140 + 28 * len(creators))
    return min(len(ranked), max_brands), len(ranked)


def _creator_series(
    conn: duckdb.DuckDBPyConnection, day: date, creator_ids: list[str], top_notes: int
) -> tuple[dict[str, list[tuple[date, float]]], dict[str, dict[date, int]], dict[str, list[dict[str, Any]]]]:
    conn.execute("CREATE OR REPLACE TEMP TABLE _report_creators (creator_id VARCHAR)")
    try:
        if creator_ids:
            conn.execute(
                "INSERT INTO _report_creators SELECT unnest(?::VARCHAR[])",
                [creator_ids],
            )
        medians: dict[str, list[tuple[date, float]]] = defaultdict(list)
        for cid, d, v in conn.execute(
            """
            SELECT creator_id, snapshot_date, read_median FROM analytics.creator_engagement_metrics
            WHERE creator_id IN (SELECT creator_id FROM _report_creators)
              AND "window" = '30d' AND segment = 'all' AND snapshot_date <= ? AND read_median IS NOT NULL
            ORDER BY creator_id, snapshot_date
            """,
            [day],
        ).fetchall():
            medians[cid].append((d, v))
        weeks: dict[str, dict[date, int]] = defaultdict(dict)
        for cid, week, n in conn.execute(
            """
            SELECT creator_id, date_trunc('week', published_date)::DATE AS week, count(*)
            FROM analytics.notes
            WHERE creator_id IN (SELECT creator_id FROM _report_creators) AND snapshot_date = ?
              AND published_date > ? AND published_date <= ?
            GROUP BY ALL
            """,
            [day, day - timedelta(days=7 * WEEKS), day],
        ).fetchall():
            weeks[cid][week] = int(n)
        curves: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in _rows(
            conn,
            """
            WITH top AS (
                SELECT creator_id, note_id, title, read_num
                FROM analytics.notes
                WHERE creator_id IN (SELECT creator_id FROM _report_creators) AND snapshot_date = ?
                QUALIFY row_number() OVER (PARTITION BY creator_id ORDER BY read_num DESC NULLS LAST, note_id) <= ?
            )
            SELECT t.creator_id, t.note_id, t.title, t.read_num AS final_reads,
                   list(n.snapshot_date ORDER BY n.snapshot_date) AS days,
                   list(n.read_num ORDER BY n.snapshot_date) AS reads
            FROM top AS t
            JOIN analytics.notes AS n
                ON n.creator_id = t.creator_id AND n.note_id = t.note_id AND n.snapshot_date <= ?
            GROUP BY ALL
            ORDER BY t.creator_id, final_reads DESC NULLS LAST, t.note_id
            """,
            [day, top_notes, day],
        ):
            curves[row["creator_id"]].append(row)
        return medians, weeks, curves
    finally:
        conn.execute("DROP TABLE IF EXISTS _report_creators")


def _empty_panel(fig: go.Figure, col: int, message: str) -> None:
    """Say why a subplot has nothing to draw, in place of its bare axes."""
    fig.update_xaxes(visible=False, row=1, col=col)
    fig.update_yaxes(visible=False, row=1, col=col)
    suffix = "" if col == 1 else str(col)
    x0, x1 = fig.layout[f"xaxis{suffix}"].domain
    y0, y1 = fig.layout[f"yaxis{suffix}"].domain
    fig.add_annotation(
        text="<br>".join(textwrap.wrap(message, 40)),
        xref="paper",
        yref="paper",
        x=(x0 + x1) / 2,
        y=(y0 + y1) / 2,
        showarrow=False,
        font={"size": 13, "color": "#666"},
    )


def _creator_chart(
    charts: _Charts,
    index: int,
    creator: dict[str, Any],
    medians: list[tuple[date, float]],
    weeks: dict[date, int],
    curves: list[dict[str, Any]],
    day: date,
) -> None:
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            f"read median ({WINDOW_DAYS} d) by snapshot",
            "notes published per week",
            "reads of its top notes",
        ),
        horizontal_spacing=0.08,
    )
    marks = 0
    # Medians and read curves share one date axis: the snapshot dates either of them shows.
    snapshot_days = [d for d, _ in medians] + [d for c in curves for d in c["days"]]
    if snapshot_days:
        date_axis = _date_axis(min(snapshot_days), max(snapshot_days), "snapshot date")
    median_values = [_whole(v) or 0 for _, v in medians]
    if medians:
        fig.add_trace(
            go.Scatter(
                x=[d.isoformat() for d, _ in medians],
                y=median_values,
                mode="lines+markers",
                name="read median",
                line={"color": PALETTE[0]},
                hovertemplate="%{x|%Y-%m-%d}: %{y:,d} reads<extra>read median</extra>",
            ),
            row=1,
            col=1,
        )
        fig.update_xaxes(date_axis, row=1, col=1)
        fig.update_yaxes(_count_axis(max(median_values), "read median (reads)"), row=1, col=1)
        marks += len(medians)
    elif creator["not_drawn"]:
        _empty_panel(fig, 1, f"No read median: {creator['not_drawn']}")
    else:
        _empty_panel(fig, 1, "No read median stored up to this date")
    monday = day - timedelta(days=day.weekday())
    week_starts = [monday - timedelta(weeks=k) for k in range(WEEKS - 1, -1, -1)]
    counts = [weeks.get(w, 0) for w in week_starts]
    if any(counts):
        fig.add_trace(
            go.Bar(
                x=[w.isoformat() for w in week_starts],
                y=counts,
                name="notes per week",
                marker={"color": PALETTE[2]},
                hovertemplate="week of %{x|%Y-%m-%d}: %{y:,d} note(s)<extra></extra>",
            ),
            row=1,
            col=2,
        )
        fig.update_xaxes(
            _date_axis(week_starts[0], week_starts[-1], "week starting Monday", pad_days=4), row=1, col=2
        )
        fig.update_yaxes(_count_axis(max(counts), "notes published"), row=1, col=2)
        marks += len(week_starts)
    else:
        _empty_panel(fig, 2, f"No notes published in the last {WEEKS} weeks")
    for k, curve in enumerate(curves):
        title = curve["title"] or curve["note_id"]
        fig.add_trace(
            go.Scatter(
                x=[d.isoformat() for d in curve["days"]],
                y=curve["reads"],
                mode="lines+markers",
                name=title[:24],
                line={"color": PALETTE[(k + 3) % len(PALETTE)]},
                hovertemplate=f"{html.escape(title[:40])}<br>%{{x|%Y-%m-%d}}: %{{y:,d}} reads<extra></extra>",
            ),
            row=1,
            col=3,
        )
        marks += len(curve["days"])
    if curves:
        top = max((v for c in curves for v in c["reads"] if v is not None), default=0)
        fig.update_xaxes(date_axis, row=1, col=3)
        fig.update_yaxes(_count_axis(top, "reads"), row=1, col=3)
    else:
        _empty_panel(fig, 3, "No notes in this snapshot")
    tags = " / ".join(creator["tags"]) or NO_TAG
    figures = (
        f"not in the roster chart: {creator['not_drawn']}"
        if creator["not_drawn"]
        else f"read median {_fmt(creator['read_median'])}, "
        f"engagement {_fmt(creator['engagement_rate'], pct=True)}"
    )
    fig.update_layout(
        title=f"{creator['name']} · {tags} · {figures}",
        legend={"orientation": "h", "y": -0.32, "yanchor": "top", "font": {"size": 11}},
        bargap=0.2,
    )
    charts.add(f"creator-{index}", fig, marks, 440, top=90, bottom=110)


CSS = """
body { font-family: %(font)s; margin: 24px auto; max-width: 1400px; color: #222; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
.meta, .quiet { color: #666; } .grid { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
table { border-collapse: collapse; width: 100%%; font-size: 13px; }
th, td { border-bottom: 1px solid #eee; padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: #fafafa; } .kind { font-family: monospace; padding: 1px 6px; border-radius: 3px; background: #eee; }
.note_disappeared, .total_dropped { background: #fde2e1; } .read_spike { background: #e1f0fd; }
.reads_decreased { background: #fff1cc; } .creator_went_quiet { background: #ececec; }
#roster-not-drawn ul { margin-top: 4px; } #roster-not-drawn li { margin: 2px 0; }
"""


def build_report(
    conn: duckdb.DuckDBPyConnection,
    snapshot_date: date,
    path: Path,
    *,
    max_creators: int = 30,
    max_brands: int = 12,
    max_bars: int = 15,
    top_notes: int = 5,
    max_anomaly_rows: int = 200,
) -> ReportSummary:
    """Write the report of ``snapshot_date`` to ``path`` (atomically: a reader never sees half a file)."""
    for name, value in (
        ("max_creators", max_creators),
        ("max_brands", max_brands),
        ("max_bars", max_bars),
        ("top_notes", top_notes),
        ("max_anomaly_rows", max_anomaly_rows),
    ):
        if value < 1:
            raise InvalidInputError(f"{name} must be at least 1, got {value}")
    charts = _Charts()
    roster = _roster(conn, snapshot_date)
    unsnapshotted = _unsnapshotted(conn, snapshot_date)
    not_drawn = [r for r in roster if r["not_drawn"]] + unsnapshotted
    points = _roster_chart(charts, roster, not_drawn)
    anomalies = _anomalies(conn, snapshot_date)
    brands_shown, brands_total = _brand_charts(charts, _brand_rows(conn, snapshot_date), max_brands, max_bars)
    brand_divs = charts.divs[1:]
    shown = roster[:max_creators]
    medians, weeks, curves = _creator_series(conn, snapshot_date, [c["creator_id"] for c in shown], top_notes)
    for i, creator in enumerate(shown):
        cid = creator["creator_id"]
        _creator_chart(
            charts, i, creator, medians.get(cid, []), weeks.get(cid, {}), curves.get(cid, []), snapshot_date
        )
    creator_divs = charts.divs[1 + len(brand_divs) :]

    source = conn.execute("SELECT source FROM meta.data_source LIMIT 1").fetchall()
    kinds: dict[str, int] = defaultdict(int)
    for a in anomalies:
        kinds[a["kind"]] += 1
    generated = clock.now().strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        "<html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>Creator report {snapshot_date.isoformat()}</title>",
        f"<style>{CSS % {'font': FONT}}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script>",
        "</head><body>",
        f"<h1>Creator report, snapshot of {snapshot_date.isoformat()}</h1>",
        f"<p class='meta'>{len(roster):,} creators with metrics on this date"
        + (f" ({len(unsnapshotted)} more in the registry without one)" if unsnapshotted else "")
        + "; data source: "
        f"{html.escape(source[0][0] if source else 'unknown')}; generated {generated}. Figures are as of "
        "this snapshot date. Medians of reads are rounded to whole reads (halves up).</p>",
        "<h2>Roster</h2>",
        charts.divs[0],
        _not_drawn_list(not_drawn),
        f"<h2>Anomalies ({len(anomalies):,})</h2>",
        "<p class='meta'>" + (", ".join(f"{k}: {n}" for k, n in sorted(kinds.items())) or "none") + "</p>",
        _anomaly_table(anomalies, max_anomaly_rows),
        f"<h2>Brands ({brands_total:,})</h2>",
        (
            f"<p class='meta'>The {brands_shown} brands with the most reads of {brands_total}.</p>"
            if brands_total > brands_shown
            else ""
        ),
        "<div class='grid'>" + "".join(f"<div>{d}</div>" for d in brand_divs) + "</div>"
        if brand_divs
        else "<p class='quiet'>No cooperation notes name a brand yet.</p>",
        f"<h2>Creators ({len(shown)} of {len(roster):,})</h2>",
        (
            f"<p class='meta'>The {len(shown)} creators with the highest read median; the others are in "
            "analytics.note_history and analytics.creator_engagement_metrics.</p>"
            if len(roster) > len(shown)
            else ""
        ),
        *creator_divs,
        "</body></html>",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return ReportSummary(
        path=path,
        snapshot_date=snapshot_date,
        chart_count=len(charts.divs),
        roster_points=points,
        creators_shown=len(shown),
        creators_total=len(roster),
        brands_shown=brands_shown,
        brands_total=brands_total,
        anomalies=len(anomalies),
        marks=dict(charts.marks),
        not_drawn={r["creator_id"]: r["not_drawn"] for r in not_drawn},
    )


def report_path(database: str, snapshot_date: date) -> Path:
    """``reports/<date>.html`` in the folder of the DuckDB file ``database`` (``data/reports/`` for the demo)."""
    if database == ":memory:" or database.startswith("md:"):
        folder = Path("data")
    else:
        folder = Path(database).resolve().parent
    return folder / "reports" / f"{snapshot_date.isoformat()}.html"
