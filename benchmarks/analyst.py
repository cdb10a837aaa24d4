"""Benchmark 5: the analyst's desk at full size.

A DuckDB file with C creators (default 1,000) x D daily snapshots (default 90) x 40 notes per
snapshot (3.6M note rows), built directly by SQL in a few seconds: each creator posts every other
day, so consecutive snapshots share 39 notes and reads grow with each note's age; every fifth note
is a cooperation with one of 50 brands (some names padded with spaces, matched after trimming);
now and then a note is missing from a day (a vanished note) or reads jump (a spike). Raw pages
(5 per snapshot, the columns the SQL reads; the total counts every note ever posted, so each
snapshot looks like a scan bounded by publish date, and the oldest note leaving the 40 is not
taken for a vanished one) and the registry (10 tags, 1-2 per creator) are
written too, and ``rebuild_metrics`` runs for every date as the daily runs would.

Then, ``repeats`` times each, on a fresh connection: an analyst's typical query against each view
(one tag's peer ranking, one brand's cooperations and totals, one creator's note history, one
day's changes), the percentile and anomaly rebuilds for the last date, and the HTML report of the
last date. Targets: each query < 1 s, each rebuild < 10 s, the report < 30 s.
"""

from __future__ import annotations

import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import spread

NOTES_PER_SNAPSHOT = 40
PAGE_SIZE = 8
LAST_DATE = date(2026, 11, 26)
TAGS = ["美妆", "美食", "旅行", "母婴", "穿搭", "家居", "数码", "健身", "宠物", "读书"]
QUERY_TARGET_S = 1.0
BUILD_TARGET_S = 10.0
REPORT_TARGET_S = 30.0

CREATORS_SQL = """
INSERT INTO analytics.creators (creator_id, display_name, tags, active, updated_at)
SELECT
    substr(md5('analyst:' || c), 1, 24),
    '创作者' || c,
    CASE WHEN c % 3 = 0 THEN [$tags[c % 10 + 1], $tags[(c // 10) % 10 + 1]] ELSE [$tags[c % 10 + 1]] END,
    true,
    now()::TIMESTAMP
FROM range($creators) AS t(c)
"""

NOTES_SQL = """
INSERT INTO analytics.notes (
    creator_id, snapshot_date, note_id, title, published_date, is_video, is_advertise, brand_name,
    read_num, like_num, collect_num, interaction_num, third_read_user_num, img_url, list_position,
    page_number, fetched_at, quality_issues
)
SELECT
    substr(md5('analyst:' || c), 1, 24) AS creator_id,
    day AS snapshot_date,
    substr(md5(c || ':' || k), 1, 24) AS note_id,
    '笔记标题 ' || k AS title,
    $origin::DATE + (2 * k)::INTEGER AS published_date,
    k % 2 = 0 AS is_video,
    k % 5 = 0 AS is_advertise,
    CASE WHEN k % 5 = 0 THEN (CASE WHEN k % 15 = 0 THEN ' ' ELSE '' END) || '品牌' || (hash(c, k) % 50) END AS brand_name,
    reads AS read_num,
    reads // 40 AS like_num,
    reads // 150 AS collect_num,
    reads // 40 + reads // 150 AS interaction_num,
    0 AS third_read_user_num,
    'http://ci.xiaohongshu.com/' || md5(c || ':' || k) AS img_url,
    (j + 1)::INTEGER AS list_position,
    (j // $page_size + 1)::INTEGER AS page_number,
    day::TIMESTAMP AS fetched_at,
    []::VARCHAR[] AS quality_issues
FROM (
    SELECT c, day, j, ((day - $origin::DATE) // 2) - j AS k
    FROM range($creators) AS t(c),
         (SELECT ($last::DATE - d::INTEGER) AS day FROM range($days) AS q(d)),
         range($notes) AS r(j)
) AS base,
LATERAL (
    SELECT (
        (500 + (hash(c, k) % 30000) * (1 + (c % 7)))
        * least(1.0, (day - ($origin::DATE + (2 * k)::INTEGER) + 1) / 6.0)
        + CASE WHEN hash(c, k, day) % 20000 = 0 THEN 250000 ELSE 0 END
    )::BIGINT AS reads
) AS r
WHERE hash(c, k, day) % 4000 <> 1  -- now and then a note is missing from a day
"""

PAGES_SQL = """
INSERT INTO raw.note_pages (
    creator_id, snapshot_date, page_number, request_params, fetched_at, attempts, code, total,
    item_count, body
)
SELECT
    substr(md5('analyst:' || c), 1, 24),
    $last::DATE - d::INTEGER,
    (p + 1)::INTEGER,
    '{}'::JSON,
    ($last::DATE - d::INTEGER)::TIMESTAMP,
    1,
    0,
    -- every note the creator ever posted: the stored 40 are its newest, as a scan bounded by date
    ((($last::DATE - d::INTEGER) - $origin::DATE) // 2 + 1)::INTEGER,
    $page_size,
    '{"code": 0, "data": {"list": [], "total": 0}}'::JSON
FROM range($creators) AS t(c), range($days) AS q(d), range($pages) AS r(p)
"""


def _fill(sql: str, values: dict[str, str]) -> str:
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
        sql = sql.replace(name, value)
    return sql


def build(db_path: Path, creators: int, days: int) -> dict[str, Any]:
    """The file described above; returns its sizes and how long each part took."""
    import duckdb

    from pgy_pipeline.warehouse.storage import ensure_schema, rebuild_metrics

    origin = LAST_DATE - timedelta(days=400)
    values = {
        "$origin": f"'{origin.isoformat()}'",
        "$last": f"'{LAST_DATE.isoformat()}'",
        "$creators": str(creators),
        "$days": str(days),
        "$notes": str(NOTES_PER_SNAPSHOT),
        "$page_size": str(PAGE_SIZE),
        "$pages": str(-(-NOTES_PER_SNAPSHOT // PAGE_SIZE)),
        "$tags": "[" + ", ".join(f"'{t}'" for t in TAGS) + "]",
    }
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    with duckdb.connect(str(db_path)) as conn:
        conn.execute("SET enable_progress_bar = false")
        ensure_schema(conn)
        for sql in (CREATORS_SQL, PAGES_SQL, NOTES_SQL):
            conn.execute(_fill(sql, values))
        conn.execute("CHECKPOINT")
        out["rows_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        ids = [c for (c,) in conn.execute("SELECT creator_id FROM analytics.creators ORDER BY 1").fetchall()]
        for back in range(days - 1, -1, -1):
            day = LAST_DATE - timedelta(days=back)
            assert not rebuild_metrics(conn, [(c, day) for c in ids])
        conn.execute("CHECKPOINT")
        out["metrics_s"] = time.perf_counter() - t1
        out["notes_rows"] = conn.execute("SELECT count(*) FROM analytics.notes").fetchall()[0][0]
        out["page_rows"] = conn.execute("SELECT count(*) FROM raw.note_pages").fetchall()[0][0]
        out["metric_rows"] = conn.execute(
            "SELECT count(*) FROM analytics.creator_engagement_metrics"
        ).fetchall()[0][0]
    out["seconds"] = time.perf_counter() - t0
    out["file_mb"] = db_path.stat().st_size / 1e6
    return out


def queries(conn: Any, day: date) -> dict[str, tuple[str, list[Any]]]:
    """The analyst's typical questions, as the README asks them (parameters picked from the data)."""
    creator = conn.execute("SELECT min(creator_id) FROM analytics.creators").fetchall()[0][0]
    brand = (
        conn.execute("SELECT brand_name FROM analytics.notes WHERE brand_name IS NOT NULL ORDER BY 1 LIMIT 1")
        .fetchall()[0][0]
        .strip()
    )
    return {
        "tag: who beats their peers": (
            "SELECT c.display_name, p.read_median, p.read_median_percentile, p.engagement_rate_percentile "
            "FROM analytics.creator_peer_percentiles AS p JOIN analytics.creators AS c USING (creator_id) "
            "WHERE p.peer_group = ? AND p.snapshot_date = ? ORDER BY p.read_median_percentile DESC NULLS LAST",
            [TAGS[0], day],
        ),
        "brand: cooperations by creator": (
            "SELECT display_name, cooperation_notes, read_num, engagement_rate, read_gain_since_first_seen "
            "FROM analytics.brand_cooperations WHERE brand_name = ? ORDER BY read_num DESC",
            [brand],
        ),
        "brand: totals": ("SELECT * FROM analytics.brands WHERE brand_name = ?", [brand]),
        "creator: note history": (
            "SELECT note_id, snapshot_date, read_num, read_num_change, read_num_change_per_day "
            "FROM analytics.note_history WHERE creator_id = ? ORDER BY note_id, snapshot_date",
            [creator],
        ),
        "day: biggest gains since the previous snapshot": (
            "SELECT creator_id, note_id, title, read_num_change, days_between_snapshots "
            "FROM analytics.note_history WHERE snapshot_date = ? ORDER BY read_num_change DESC NULLS LAST LIMIT 20",
            [day],
        ),
        "day: anomalies": (
            "SELECT kind, creator_id, message FROM analytics.anomalies WHERE snapshot_date = ?",
            [day],
        ),
    }


def measure_once(db_path: Path, reports_dir: Path) -> dict[str, Any]:
    """One round: the rebuilds of the last date, every query, then the report, on fresh connections."""
    from pgy_pipeline.orchestration.resources import PgyDuckDBResource
    from pgy_pipeline.report import build_report
    from pgy_pipeline.warehouse.analyst import rebuild_anomalies, rebuild_peer_percentiles

    resource = PgyDuckDBResource(database=str(db_path))
    out: dict[str, Any] = {"queries": {}}
    with resource.get_connection() as conn:
        t = time.perf_counter()
        out["percentile_rows"] = rebuild_peer_percentiles(conn, [LAST_DATE])[LAST_DATE]
        out["percentiles_s"] = time.perf_counter() - t
    with resource.get_connection() as conn:
        t = time.perf_counter()
        out["anomaly_rows"] = rebuild_anomalies(conn, [LAST_DATE])[LAST_DATE]
        out["anomalies_s"] = time.perf_counter() - t
    with resource.get_connection() as conn:
        for name, (sql, params) in queries(conn, LAST_DATE).items():
            t = time.perf_counter()
            rows = conn.execute(sql, params).fetchall()
            out["queries"][name] = {"seconds": time.perf_counter() - t, "rows": len(rows)}
    with resource.get_connection() as conn:
        t = time.perf_counter()
        summary = build_report(conn, LAST_DATE, reports_dir / f"{LAST_DATE.isoformat()}.html")
        out["report_s"] = time.perf_counter() - t
        out["report_mb"] = summary.path.stat().st_size / 1e6
        out["report_charts"] = summary.chart_count
    return out


def run(*, creators: int = 1000, days: int = 90, repeats: int = 3, log: Any = print) -> dict[str, Any]:
    out: dict[str, Any] = {
        "setup": {
            "creators": creators,
            "days": days,
            "notes_per_snapshot": NOTES_PER_SNAPSHOT,
            "repeats": repeats,
            "date": LAST_DATE.isoformat(),
        }
    }
    with tempfile.TemporaryDirectory(prefix="pgy-bench-analyst-") as tmp:
        db = Path(tmp) / "analyst.duckdb"
        out["build"] = build(db, creators, days)
        log(
            f"  analyst: built {out['build']['notes_rows']:,} note rows in {out['build']['rows_s']:.1f} s, "
            f"metrics for {days} days in {out['build']['metrics_s']:.1f} s ({out['build']['file_mb']:.0f} MB)"
        )
        rounds = [measure_once(db, Path(tmp) / "reports") for _ in range(repeats)]
    last = rounds[-1]
    out["percentiles_s"] = spread(r["percentiles_s"] for r in rounds)
    out["anomalies_s"] = spread(r["anomalies_s"] for r in rounds)
    out["report_s"] = spread(r["report_s"] for r in rounds)
    out["percentile_rows"] = last["percentile_rows"]
    out["anomaly_rows"] = last["anomaly_rows"]
    out["report_mb"] = last["report_mb"]
    out["report_charts"] = last["report_charts"]
    out["queries"] = {
        name: {
            "seconds": spread(r["queries"][name]["seconds"] for r in rounds),
            "rows": last["queries"][name]["rows"],
        }
        for name in last["queries"]
    }
    log(
        f"  analyst: percentiles {out['percentiles_s']['median']:.2f} s, anomalies "
        f"{out['anomalies_s']['median']:.2f} s, report {out['report_s']['median']:.2f} s; slowest query "
        f"{max(q['seconds']['max'] for q in out['queries'].values()):.3f} s"
    )
    return out
