"""Benchmark 4: metrics for one snapshot date as history grows.

For H in (10, 30, 90): a DuckDB file with C creators (default 1,000) and H earlier daily snapshots plus
the measured date, written day by day in date order as the daily runs would: raw pages (5 per creator and snapshot, 8
notes each, stored as the pipeline stores fetched pages) and ``analytics.notes`` from them
(``rebuild_notes``): 40 notes per creator and snapshot, every creator posting every other day, so
consecutive snapshots share notes and ``read_gain`` has something to join. Then ``rebuild_metrics(conn, keys of the last date)`` is timed, ``repeats`` times
on a fresh connection each, the histories interleaved. The time should not grow with H. Also reported:
the rows each table scan reads (DuckDB's profiler), which do not depend on the machine's load.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import load_pages, spread

NOTES_PER_SNAPSHOT = 40
PAGE_SIZE = 8
LAST_DATE = date(2026, 11, 26)
# The stored tables behind the views metrics.sql reads, for rows scanned per view: a note's rows (one
# per note-day in raw.page_items, its typed text) count for analytics.notes, a page's for raw.note_pages.
VIEW_OF_STORED = {
    "raw.page_items": "analytics.notes",
    "analytics.note_details": "analytics.notes",
    "analytics.irregular_note_counts": "analytics.notes",
    "raw.pages": "raw.note_pages",
    "raw.item_texts": "raw.note_pages",
}

PAGES_SQL = """
WITH items AS (
    SELECT
        cr.creator_id,
        n.j,
        json_object(
            'noteId', substr(md5(cr.creator_id || ':' || n.k), 1, 24),
            'title', '笔记 ' || n.k,
            'date', strftime($origin::DATE + (2 * n.k)::INTEGER, '%Y-%m-%d'),
            'isVideo', n.k % 2 = 0,
            'isAdvertise', n.k % 5 = 0,
            'brandName', CASE WHEN n.k % 5 = 0 THEN '花西子' END,
            'readNum', reads,
            'likeNum', reads // 40,
            'collectNum', reads // 150,
            'thirdReadUserNum', 0,
            'imgUrl', 'http://ci.xiaohongshu.com/' || md5(cr.creator_id || n.k)
        ) AS item
    FROM (SELECT substr(md5('metrics:' || c), 1, 24) AS creator_id, c FROM range($creators) AS t(c)) AS cr,
         (SELECT j, (($day::DATE - $origin::DATE) // 2) - j AS k FROM range($notes) AS q(j)) AS n,
         LATERAL (SELECT (1000 + (hash(cr.c, n.k) % 50000) * least(1.0, ($day::DATE - ($origin::DATE + (2 * n.k)::INTEGER)) / 6.0))::BIGINT
                  AS reads) AS r
)
SELECT
    creator_id,
    $day::DATE AS snapshot_date,
    (j // $page_size + 1)::INTEGER AS page_number,
    '{}'::JSON AS request_params,
    $day::TIMESTAMP AS fetched_at,
    1 AS attempts,
    0 AS code,
    $notes AS total,
    count(*)::INTEGER AS item_count,
    json_object('code', 0, 'data', json_object('list', to_json(list(item ORDER BY j)), 'total', $notes)) AS body,
    'full' AS scan,
    NULL::DATE AS scan_window_from
FROM items
GROUP BY creator_id, j // $page_size
ORDER BY creator_id, page_number
"""


def build(db_path: Path, creators: int, history: int) -> dict[str, Any]:
    import duckdb

    from pgy_pipeline.warehouse.storage import ensure_schema, rebuild_notes

    origin = LAST_DATE - timedelta(days=400)
    t0 = time.perf_counter()
    with duckdb.connect(str(db_path)) as conn:
        conn.execute("SET enable_progress_bar = false")
        ensure_schema(conn)
        for back in range(history, -1, -1):  # oldest first, one day at a time
            day = LAST_DATE - timedelta(days=back)
            values = {
                "$day": f"'{day.isoformat()}'",
                "$origin": f"'{origin.isoformat()}'",
                "$creators": str(creators),
                "$notes": str(NOTES_PER_SNAPSHOT),
                "$page_size": str(PAGE_SIZE),
            }
            sql = PAGES_SQL
            for name, value in values.items():
                sql = sql.replace(name, value)
            assert not rebuild_notes(conn, load_pages(conn, sql))
        conn.execute("CHECKPOINT")
        notes = conn.execute("SELECT count(*) FROM analytics.notes").fetchone()[0]
        page_rows = conn.execute("SELECT count(*) FROM raw.note_pages").fetchone()[0]
    return {
        "notes_rows": notes,
        "page_rows": page_rows,
        "seconds": time.perf_counter() - t0,
        "file_mb": db_path.stat().st_size / 1e6,
    }


def measure_once(db_path: Path) -> dict[str, Any]:
    """One timed ``rebuild_metrics`` for the last date's keys, on a fresh connection (as a run opens one)."""
    from pgy_pipeline.orchestration.resources import PgyDuckDBResource
    from pgy_pipeline.warehouse.storage import rebuild_metrics

    with PgyDuckDBResource(database=str(db_path)).get_connection() as conn:
        keys = [
            (c, LAST_DATE)
            for (c,) in conn.execute(
                "SELECT DISTINCT creator_id FROM raw.note_pages WHERE snapshot_date = ?", [LAST_DATE]
            ).fetchall()
        ]
        wall0, cpu0 = time.perf_counter(), time.process_time()
        missing = rebuild_metrics(conn, keys)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        assert not missing
        rows, with_previous = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE previous_snapshot_date IS NOT NULL AND read_gain IS NOT NULL) "
            "FROM analytics.creator_engagement_metrics WHERE snapshot_date = ?",
            [LAST_DATE],
        ).fetchone()
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "metric_rows": rows,
        "rows_with_previous": with_previous,
        "keys": len(keys),
    }


def rows_scanned(db_path: Path) -> dict[str, int]:
    """Rows each table scan of ``metrics.sql`` reads, from DuckDB's profiler (its SELECT, not the insert),
    per stored table and, summed by ``VIEW_OF_STORED``, per view it reads (analytics.notes, raw.note_pages)."""
    import duckdb
    import pyarrow as pa

    from pgy_pipeline.warehouse.sql_files import sql_file

    # the statement's query: everything from its WITH on (before it, the CREATE names the temp table)
    select = "WITH\n" + sql_file("metrics.sql").split("\nWITH\n", 1)[1]
    with tempfile.TemporaryDirectory() as tmp, duckdb.connect(str(db_path), read_only=True) as conn:
        creators = [
            c
            for (c,) in conn.execute(
                "SELECT DISTINCT creator_id FROM raw.note_pages WHERE snapshot_date = ?", [LAST_DATE]
            ).fetchall()
        ]
        keys = pa.table(
            {
                "creator_id": pa.array(creators, pa.string()),
                "snapshot_date": pa.array([LAST_DATE] * len(creators), pa.date32()),
            }
        )
        conn.register("_keys_arrow", keys)
        conn.execute("CREATE TEMP TABLE _keys AS SELECT * FROM _keys_arrow")
        profile = Path(tmp) / "profile.json"
        conn.execute("SET enable_profiling = 'json'")
        conn.execute(f"SET profiling_output = '{profile}'")
        conn.execute(select).fetchall()
        conn.execute("SET enable_profiling = 'no_output'")
        tree = json.loads(profile.read_text())
    scanned: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        table = (node.get("extra_info") or {}).get("Table")
        if node.get("type") == "TABLE_SCAN" and table and "_keys" not in table:
            name = table.split(".", 1)[1] if table.count(".") >= 2 else table
            scanned[name] = scanned.get(name, 0) + int(node.get("rows_scanned") or 0)
        for child in node.get("children", []):
            walk(child)

    for op in tree.get("operator", []):
        walk(op)
    for stored, rows in list(scanned.items()):
        if stored in VIEW_OF_STORED:
            view = VIEW_OF_STORED[stored]
            scanned[view] = scanned.get(view, 0) + rows
    return scanned


def run(
    *, creators: int = 1000, histories: tuple[int, ...] = (10, 30, 90), repeats: int = 9, log=print
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "setup": {
            "creators": creators,
            "notes_per_snapshot": NOTES_PER_SNAPSHOT,
            "histories": list(histories),
            "repeats": repeats,
            "date": LAST_DATE.isoformat(),
        },
        "by_history": {},
    }
    with tempfile.TemporaryDirectory(prefix="pgy-bench-metrics-") as tmp:
        dbs = {h: Path(tmp) / f"history{h}.duckdb" for h in histories}
        built = {h: build(db, creators, h) for h, db in dbs.items()}
        runs: dict[int, list[dict[str, Any]]] = {h: [] for h in histories}
        for _ in range(repeats):
            for h in histories:  # interleaved, so drift on a shared machine hits every history alike
                runs[h].append(measure_once(dbs[h]))
        for h in histories:
            rs = runs[h]
            res = {
                "seconds": spread(r["seconds"] for r in rs),
                "cpu_seconds": spread(r["cpu_seconds"] for r in rs),
                "metric_rows": rs[-1]["metric_rows"],
                "rows_with_previous": rs[-1]["rows_with_previous"],
                "keys": rs[-1]["keys"],
                "rows_scanned": rows_scanned(dbs[h]),
                "build": built[h],
            }
            out["by_history"][str(h)] = res
            log(
                f"  metrics/history {h} days ({built[h]['notes_rows']:,} note rows, {built[h]['file_mb']:.0f} MB): "
                f"median {res['seconds']['median']:.3f} s ({res['seconds']['min']:.3f}-{res['seconds']['max']:.3f}), "
                f"rows scanned {res['rows_scanned']}"
            )
    first, last = out["by_history"][str(histories[0])], out["by_history"][str(histories[-1])]
    out["ratio_longest_over_shortest"] = last["seconds"]["median"] / first["seconds"]["median"]
    out["cpu_ratio_longest_over_shortest"] = last["cpu_seconds"]["median"] / first["cpu_seconds"]["median"]
    out["notes_rows_scanned_ratio"] = last["rows_scanned"].get("analytics.notes", 0) / max(
        1, first["rows_scanned"].get("analytics.notes", 0)
    )
    out["pages_rows_scanned_ratio"] = last["rows_scanned"].get("raw.note_pages", 0) / max(
        1, first["rows_scanned"].get("raw.note_pages", 0)
    )
    return out
