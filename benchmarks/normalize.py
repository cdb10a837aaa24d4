"""Benchmark 3: load and normalize stored raw pages into ``analytics.notes``.

The benchmark generates synthetic raw pages with DuckDB SQL (bodies shaped like the endpoint's:
``{"code": 0, "data": {"list": [8 notes], "total": n}}``, with Chinese titles, long image URLs, nulls),
one snapshot date, 200 notes per creator, and stores them as the pipeline does (``_load_pages`` and
``store_loaded_pages``: ``raw.pages``, ``raw.item_texts``, ``raw.page_items``). For the plain SQL, a
second file holds the same pages as one table ``raw.note_pages`` of whole bodies (as pages were stored
before the split). Then, each in a fresh process on its own copy of its file (so each has its own
peak RSS):

* **pipeline**: ``pgy_pipeline.warehouse.storage.rebuild_notes(conn, every key)``: typed notes, list positions,
  deduplication, rejects and quality issues, in one transaction;
* **plain SQL**: what DuckDB does with one ``CREATE TABLE AS SELECT`` over the same pages (whole JSON
  bodies in one table), the same typed columns, no checks: ``unnest`` of ``data.list`` and ``->>`` per
  field.
* **plain SQL (json_transform)**: the same through ``json_transform`` into structs, for reference.

Time covers the statement(s) and a ``CHECKPOINT`` (the data on disk), not process start or connect.
Peak RSS is ``ru_maxrss`` of the worker process, imports included.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import load_pages, run_worker, spread

NOTES_PER_CREATOR = 200
PAGE_SIZE = 8
SNAPSHOT = "2026-11-26"

TITLES = [
    "被儿子的女神节礼物整破防了😭",
    "你家娃也是一关灯就要喝水吗😂",
    "对孩子最好的爱的教育就是爸爸爱妈妈",
    "情绪这块把控的刚刚好😂",
    "姐姐:我要验牌! 团团:我只关心吃",
    "所以说男孩子一定要多跟爸爸接触!",
    "父母恩爱才是对孩子最好的教育!",
    "凭实力把自己养活😂",
    "通勤穿搭｜附清单",
    "平价好物分享一下✨",
]

GENERATE_SQL = """
WITH items AS (
    SELECT
        substr(md5('creator:' || c), 1, 24) AS creator_id,
        p,
        i,
        json_object(
            'readNum', (hash(c, p, i) % 200000)::BIGINT,
            'likeNum', (hash(c, p, i, 1) % 5000)::BIGINT,
            'collectNum', (hash(c, p, i, 2) % 1000)::BIGINT,
            'isAdvertise', hash(c, p, i, 3) % 5 = 0,
            'isVideo', hash(c, p, i, 4) % 2 = 0,
            'noteId', substr(md5(c || ':' || p || ':' || i), 1, 24),
            'imgUrl', 'http://ci.xiaohongshu.com/1040g2sg' || md5(p || ':' || c || ':' || i)
                      || '?imageView2/2/w/540/format/jpg/q/75',
            'title', $titles[1 + (hash(c, p, i, 5) % $n_titles)::INTEGER],
            'brandName', CASE WHEN hash(c, p, i, 3) % 5 = 0 THEN '花西子' END,
            'date', strftime(DATE $snapshot - ((p * 8 + i) * 2)::INTEGER, '%Y-%m-%d'),
            'thirdReadUserNum', (hash(c, p, i, 6) % 50)::BIGINT
        ) AS item
    FROM range($creators) AS t(c), range($pages) AS q(p), range(8) AS r(i)
)
SELECT
    creator_id,
    DATE $snapshot AS snapshot_date,
    (p + 1)::INTEGER AS page_number,
    json_object('advertiseSwitch', 'ALL', 'isThirdPlatform', 'NO', 'noteType', 'ALL', 'orderType', 'LATEST',
                'pageNumber', (p + 1)::VARCHAR, 'userId', creator_id) AS request_params,
    TIMESTAMP '2026-11-26 02:00:00' AS fetched_at,
    1 AS attempts,
    0 AS code,
    $total AS total,
    8 AS item_count,
    json_object('code', 0, 'message', 'success',
                'data', json_object('list', to_json(list(item ORDER BY i)), 'total', $total)) AS body,
    'full' AS scan,
    NULL::DATE AS scan_window_from
FROM items
GROUP BY creator_id, p
ORDER BY creator_id, p
"""

PLAIN_SQL = """
CREATE TABLE plain_notes AS
SELECT
    p.creator_id,
    p.snapshot_date,
    u.item ->> 'noteId'                                AS note_id,
    u.item ->> 'title'                                 AS title,
    TRY_CAST(u.item ->> 'date' AS DATE)                AS published_date,
    TRY_CAST(u.item ->> 'isVideo' AS BOOLEAN)          AS is_video,
    TRY_CAST(u.item ->> 'isAdvertise' AS BOOLEAN)      AS is_advertise,
    u.item ->> 'brandName'                             AS brand_name,
    TRY_CAST(u.item ->> 'readNum' AS BIGINT)           AS read_num,
    TRY_CAST(u.item ->> 'likeNum' AS BIGINT)           AS like_num,
    TRY_CAST(u.item ->> 'collectNum' AS BIGINT)        AS collect_num,
    TRY_CAST(u.item ->> 'likeNum' AS BIGINT) + TRY_CAST(u.item ->> 'collectNum' AS BIGINT) AS interaction_num,
    TRY_CAST(u.item ->> 'thirdReadUserNum' AS BIGINT)  AS third_read_user_num,
    u.item ->> 'imgUrl'                                AS img_url,
    p.page_number,
    p.fetched_at
FROM raw.note_pages AS p,
    unnest(CAST(json_extract(p.body, '$.data.list') AS JSON[])) AS u(item)
"""

PLAIN_TRANSFORM_SQL = """
CREATE TABLE plain_notes AS
SELECT
    creator_id, snapshot_date,
    n.noteId AS note_id, n.title, TRY_CAST(n.date AS DATE) AS published_date, n.isVideo AS is_video,
    n.isAdvertise AS is_advertise, n.brandName AS brand_name, n.readNum AS read_num, n.likeNum AS like_num,
    n.collectNum AS collect_num, n.likeNum + n.collectNum AS interaction_num,
    n.thirdReadUserNum AS third_read_user_num, n.imgUrl AS img_url, page_number, fetched_at
FROM (
    SELECT creator_id, snapshot_date, page_number, fetched_at,
           unnest(json_transform(body -> '$.data.list',
               '[{"noteId": "VARCHAR", "title": "VARCHAR", "date": "VARCHAR", "isVideo": "BOOLEAN",
                  "isAdvertise": "BOOLEAN", "brandName": "VARCHAR", "readNum": "BIGINT", "likeNum": "BIGINT",
                  "collectNum": "BIGINT", "thirdReadUserNum": "BIGINT", "imgUrl": "VARCHAR"}]')) AS n
    FROM raw.note_pages
)
"""

VARIANTS = ("pipeline", "plain_sql", "plain_sql_json_transform")


def generate(db_path: Path, n_notes: int) -> dict[str, Any]:
    """Raw pages for ``n_notes`` notes (rounded to whole creators of 200) into a new DuckDB file."""
    import duckdb

    from pgy_pipeline.warehouse.storage import ensure_schema

    creators = max(1, round(n_notes / NOTES_PER_CREATOR))
    pages = NOTES_PER_CREATOR // PAGE_SIZE
    t0 = time.perf_counter()
    with duckdb.connect(str(db_path)) as conn:
        conn.execute("SET enable_progress_bar = false")
        ensure_schema(conn)
        sql = GENERATE_SQL
        for name, value in {
            "$titles": "[" + ", ".join("'" + t.replace("'", "''") + "'" for t in TITLES) + "]",
            "$n_titles": str(len(TITLES)),
            "$snapshot": f"'{SNAPSHOT}'",
            "$creators": str(creators),
            "$pages": str(pages),
            "$total": str(NOTES_PER_CREATOR),
        }.items():
            sql = sql.replace(name, value)
        load_pages(conn, sql)
        conn.execute("CHECKPOINT")
        n_pages = conn.execute("SELECT count(*) FROM raw.note_pages").fetchone()[0]
    return {
        "creators": creators,
        "pages": n_pages,
        "notes": n_pages * PAGE_SIZE,
        "seconds": time.perf_counter() - t0,
        "file_mb": db_path.stat().st_size / 1e6,
    }


def plain_copy(db_path: Path, plain_path: Path) -> None:
    """The pages of ``db_path`` as one table ``raw.note_pages`` of whole bodies in a new file: what the
    plain SQL reads (raw.note_pages of the pipeline's file is a view putting the bodies together)."""
    import duckdb

    with duckdb.connect(str(db_path)) as conn:
        conn.execute(f"ATTACH '{plain_path}' AS plain")
        conn.execute("CREATE SCHEMA plain.raw")
        conn.execute(
            "CREATE TABLE plain.raw.note_pages AS "
            "SELECT * FROM raw.note_pages ORDER BY creator_id, snapshot_date, page_number"
        )
        conn.execute("DETACH plain")


def _worker(variant: str, db_path: str) -> dict[str, Any]:
    """In a fresh process: one measurement on one copy of the file."""
    import duckdb

    from benchmarks.common import peak_rss_mb

    if variant == "pipeline":
        from pgy_pipeline.orchestration.resources import PgyDuckDBResource
        from pgy_pipeline.warehouse.storage import rebuild_notes

        with PgyDuckDBResource(database=db_path).get_connection() as conn:
            keys = [
                (c, d)
                for c, d in conn.execute(
                    "SELECT DISTINCT creator_id, snapshot_date FROM raw.note_pages"
                ).fetchall()
            ]
            before = peak_rss_mb()
            t0 = time.perf_counter()
            missing = rebuild_notes(conn, keys)
            conn.execute("CHECKPOINT")
            seconds = time.perf_counter() - t0
            rows = conn.execute("SELECT count(*) FROM analytics.notes").fetchone()[0]
            rejects = conn.execute("SELECT count(*) FROM analytics.note_rejects").fetchone()[0]
            assert not missing
    else:
        with duckdb.connect(db_path) as conn:
            conn.execute("SELECT count(*) FROM raw.note_pages").fetchone()
            before = peak_rss_mb()
            t0 = time.perf_counter()
            conn.execute(PLAIN_SQL if variant == "plain_sql" else PLAIN_TRANSFORM_SQL)
            conn.execute("CHECKPOINT")
            seconds = time.perf_counter() - t0
            rows = conn.execute("SELECT count(*) FROM plain_notes").fetchone()[0]
            rejects = 0
    return {
        "variant": variant,
        "seconds": seconds,
        "rows": rows,
        "rejects": rejects,
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


def run(*, n_notes: int = 1_000_000, repeats: int = 3, log=print) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="pgy-bench-normalize-") as tmp:
        base = Path(tmp) / "pages.duckdb"  # not raw.duckdb: that catalog name would shadow the schema
        gen = generate(base, n_notes)
        plain = Path(tmp) / "plain_pages.duckdb"
        plain_copy(base, plain)
        log(
            f"  normalize: generated {gen['notes']:,} notes in {gen['pages']:,} raw pages "
            f"({gen['creators']:,} creators, {gen['file_mb']:.0f} MB) in {gen['seconds']:.1f} s"
        )
        for i in range(repeats):
            for variant in VARIANTS:  # interleaved, so drift on a shared machine hits all alike
                copy = Path(tmp) / f"copy_{variant}.duckdb"
                shutil.copy(base if variant == "pipeline" else plain, copy)
                res = run_worker("benchmarks.normalize", [variant, str(copy)])
                copy.unlink()
                results[variant].append(res)
                log(
                    f"  normalize/{variant} #{i + 1}: {res['seconds']:.2f} s, {res['rows']:,} rows, "
                    f"peak RSS {res['peak_rss_mb']:.0f} MB"
                )
    summary = {
        v: {
            "seconds": spread(r["seconds"] for r in rs),
            "peak_rss_mb": spread(r["peak_rss_mb"] for r in rs),
            "rss_before_mb": spread(r["rss_before_mb"] for r in rs),
            "rows": rs[0]["rows"],
            "rejects": rs[0]["rejects"],
        }
        for v, rs in results.items()
    }
    pipe = summary["pipeline"]["seconds"]["median"]
    ratios = {
        v: spread(p["seconds"] / b["seconds"] for p, b in zip(results["pipeline"], results[v], strict=True))
        for v in VARIANTS[1:]
    }
    return {
        "setup": {
            "notes": gen["notes"],
            "pages": gen["pages"],
            "creators": gen["creators"],
            "notes_per_creator": NOTES_PER_CREATOR,
            "snapshot_dates": 1,
            "repeats": repeats,
            "raw_file_mb": gen["file_mb"],
            "generate_s": gen["seconds"],
        },
        "variants": summary,
        # per repeat, pipeline over the baseline measured next to it
        "pipeline_over_plain": ratios["plain_sql"],
        "pipeline_over_json_transform": ratios["plain_sql_json_transform"],
        "pipeline_over_plain_of_medians": pipe / summary["plain_sql"]["seconds"]["median"],
        "notes_lost": gen["notes"] - summary["pipeline"]["rows"] - summary["pipeline"]["rejects"],
    }


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1], sys.argv[2])))
