"""The replica's publication as history grows: a DuckDB file of the pipeline's schema filled with
generated days (raw pages, notes, metrics, ledger rows for a roster of creators), grown to 1 GB and
then 10 GB; at each size, daily runs that add one new day are journaled and published, and each
publication is timed, with the bytes it wrote. For comparison at each size: the previous release's
publication (copy the whole file, fsync, rename).

``candidates`` also measures, at the first size only, immutable per-day Parquet files with a small
DuckDB file of views over them (the write of one day's files, and what an analyst's open-and-query
costs against it), the other design considered.
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from benchmarks.common import spread

#: Notes per creator per day, pages per creator per day (the simulator's 8 notes a page, rounded).
NOTES_PER_DAY = 40
PAGES_PER_DAY = 5
ANALYST_QUERY = "SELECT count(*), max(snapshot_date) FROM analytics.creator_leaderboard"


def _fill_days(conn: duckdb.DuckDBPyConnection, first: date, days: int, creators: int) -> None:
    """``days`` days from ``first`` for ``creators`` creators, inserted in day order (as daily runs do)."""
    params = [first, days, creators]
    spine = """
        WITH d AS (SELECT ?::DATE + range::INTEGER AS day FROM range(?)),
             c AS (SELECT 'bench' || lpad(range::VARCHAR, 5, '0') AS creator FROM range(?))
    """
    _fill_notes(conn, spine, params)
    conn.execute(
        spine
        + """
        INSERT INTO analytics.creator_engagement_metrics (creator_id, snapshot_date, "window", segment,
            note_count, video_note_count, read_median, read_mean, interaction_median, like_median,
            collect_median, engagement_rate, hundred_like_rate, thousand_like_rate, notes_per_week)
        SELECT creator, day, w, s, 40, 10, 1000 + hash(creator, day) % 900, 1100.0, 120.0, 80.0, 20.0,
               0.05, 0.4, 0.1, 3.5
        FROM d, c, (VALUES ('30d'), ('90d'), ('all')) w(w), (VALUES ('all'), ('organic'), ('cooperation')) s(s)
        ORDER BY day, creator
        """,
        params,
    )
    conn.execute(
        spine
        + """
        INSERT INTO analytics.creator_snapshots (creator_id, snapshot_date, scan_status, total_reported,
            notes_loaded, pages, calls, billed_calls, fetched_at)
        SELECT creator, day, 'complete', 40, 40, 5, 5, 5, day::TIMESTAMP FROM d, c ORDER BY day, creator
        """,
        params,
    )
    conn.execute(
        spine
        + f"""
        INSERT INTO meta.api_calls (call_id, called_at, run_id, creator_id, snapshot_date, page_number,
            attempt, http_status, code, outcome, billed, latency_ms, bytes, endpoint)
        SELECT md5(creator || day || p), day::TIMESTAMP, 'run', creator, day, p, 1, 200, 0, 'ok', true,
               200.0, 2500, 'notes'
        FROM d, c, range(1, {PAGES_PER_DAY + 1}) t(p) ORDER BY day, creator, p
        """,
        params,
    )


def _fill_notes(conn: duckdb.DuckDBPyConnection, spine: str, params: list[object]) -> None:
    """The days' raw pages, as the pipeline stores them (a note's text once, its counts per day), and
    the notes' typed texts, so that ``analytics.notes`` reads them."""
    from pgy_pipeline.warehouse.storage import store_loaded_pages, transaction

    conn.execute(
        "CREATE OR REPLACE TEMP TABLE _load_pages AS "
        + spine
        + f"""
        , items AS (
            SELECT creator, day, p, n,
                   json_object('noteId', md5(creator || n), 'title', md5(n || creator),
                               'date', (DATE '2026-01-01' + n::INTEGER)::VARCHAR, 'isVideo', n % 3 = 0,
                               'isAdvertise', n % 7 = 0, 'brandName', NULL, 'imgUrl', 'https://img/' || md5(creator || n),
                               'readNum', hash(creator, day, n) % 100000, 'likeNum', hash(day, n) % 5000,
                               'collectNum', hash(n, day) % 900, 'thirdReadUserNum', 0) AS item
            FROM d, c, range({PAGES_PER_DAY}) t(p), range(8) u(k), LATERAL (SELECT p * 8 + k AS n)
        )
        SELECT creator AS creator_id, day AS snapshot_date, (p + 1)::INTEGER AS page_number,
               '{{}}'::JSON AS request_params, day::TIMESTAMP AS fetched_at, 1 AS attempts, 0 AS code,
               {NOTES_PER_DAY} AS total, 8 AS item_count,
               json_object('code', 0, 'data', json_object('list', to_json(list(item ORDER BY n)))) AS body,
               'full' AS scan, NULL::DATE AS scan_window_from
        FROM items GROUP BY creator, day, p ORDER BY day, creator, p
        """,
        params,
    )
    with transaction(conn):
        store_loaded_pages(conn)
        conn.execute(
            """
            INSERT INTO analytics.note_details (item_key, creator_id, note_id, title, published_date, is_video,
                is_advertise, brand_name, img_url, segment, static_issues)
            SELECT item_key, creator_id, note_id, static ->> '$.title', (static ->> '$.date')::DATE,
                   (static ->> '$.isVideo')::BOOLEAN, (static ->> '$.isAdvertise')::BOOLEAN, NULL,
                   static ->> '$.imgUrl',
                   CASE WHEN (static ->> '$.isAdvertise')::BOOLEAN THEN 'cooperation' ELSE 'organic' END,
                   []::VARCHAR[]
            FROM raw.item_texts
            WHERE item_key NOT IN (SELECT item_key FROM analytics.note_details)
            """
        )


def create(db: Path, creators: int) -> None:
    """The pipeline's schema and its roster of creators."""
    from pgy_pipeline.warehouse.storage import connect, ensure_schema

    with connect(str(db)) as conn:
        ensure_schema(conn)
        conn.execute(
            "INSERT INTO analytics.creators (creator_id, display_name, tags, active, updated_at) "
            "SELECT 'bench' || lpad(range::VARCHAR, 5, '0'), 'creator ' || range, ['beauty'], true, "
            "now()::TIMESTAMP FROM range(?)",
            [creators],
        )


def grow(db: Path, target_bytes: int, first: date, creators: int, block_days: int = 10) -> date:
    """Append days to ``db`` until it holds ``target_bytes``; returns the day after the last one.
    Journaled as unknown changes (the next publication copies whole), as any bulk load would be."""
    from pgy_pipeline.warehouse.replica import begin_write, end_write
    from pgy_pipeline.warehouse.storage import connect

    day = first
    while db.stat().st_size < target_bytes:
        begin_write(str(db))
        with connect(str(db)) as conn:
            _fill_days(conn, day, block_days, creators)
            conn.execute("CHECKPOINT")
        end_write(str(db), None)
        day += timedelta(days=block_days)
    return day


def daily_run(db: Path, day: date, creators: int) -> None:
    """One day's write, as a snapshot run makes it, journaled with its day."""
    from pgy_pipeline.warehouse.replica import begin_write, end_write
    from pgy_pipeline.warehouse.storage import connect

    begin_write(str(db))
    with connect(str(db)) as conn:
        _fill_days(conn, day, 1, creators)
        conn.execute("CHECKPOINT")
    end_write(str(db), [day])


def whole_copy(db: Path) -> dict[str, float]:
    """The previous release's publication: copy, fsync, rename (onto a scratch name, then removed)."""
    scratch = db.with_name(db.name + ".wholecopy")
    temporary = db.with_name(db.name + ".wholecopy.tmp")
    started = time.monotonic()
    shutil.copyfile(db, temporary)
    with open(temporary, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(temporary, scratch)
    seconds = time.monotonic() - started
    written = scratch.stat().st_size
    scratch.unlink()
    return {"seconds": seconds, "written": written}


def publications(db: Path, day: date, creators: int, repeats: int) -> tuple[dict[str, Any], date]:
    """``repeats`` daily runs, each published; the first two (whole copies onto the two replica files,
    after a bulk load) are made beforehand and not counted."""
    from pgy_pipeline.warehouse.replica import publish_replica

    for _ in range(2):
        publish_replica(str(db))
    seconds, written, rows, modes = [], [], [], []
    for _ in range(repeats):
        daily_run(db, day, creators)
        day += timedelta(days=1)
        copy = publish_replica(str(db))
        assert copy is not None
        seconds.append(copy.seconds)
        written.append(float(copy.written or 0))
        rows.append(float(copy.rows))
        modes.append(copy.mode)
    return {
        "seconds": spread(seconds),
        "written_bytes": spread(written),
        "rows": spread(rows),
        "modes": sorted(set(modes)),
    }, day


def _analyst_query_s(path: Path, repeats: int = 15) -> dict[str, float]:
    """An analyst's open, query, close, in this process (a new database instance each time)."""
    times = []
    for _ in range(repeats):
        started = time.monotonic()
        conn = duckdb.connect(str(path), read_only=True)
        try:
            conn.execute(ANALYST_QUERY).fetchall()
        finally:
            conn.close()
        times.append(time.monotonic() - started)
    return spread(times)


def parquet_candidate(db: Path, workdir: Path, new_day: date, creators: int) -> dict[str, Any]:
    """Immutable per-day Parquet files plus a small DuckDB file of views: the history exported once
    (not timed), then one new day's files written and the views file rebuilt (timed), and the
    analyst's query against it."""
    from pgy_pipeline.warehouse.replica import begin_write, end_write
    from pgy_pipeline.warehouse.storage import connect

    begin_write(str(db))
    with connect(str(db)) as conn:
        _fill_days(conn, new_day, 1, creators)
    end_write(str(db), [new_day])
    out = workdir / "parquet"
    out.mkdir()
    with duckdb.connect(str(db), read_only=True) as conn:
        dated = conn.execute(
            "SELECT DISTINCT schema_name, table_name FROM duckdb_columns() WHERE database_name = "
            "current_database() AND column_name = 'snapshot_date' AND table_name IN (SELECT table_name FROM "
            "duckdb_tables() WHERE database_name = current_database()) ORDER BY ALL"
        ).fetchall()
        tables = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        views = conn.execute(
            "SELECT sql FROM duckdb_views() WHERE database_name = current_database() AND NOT internal "
            "ORDER BY view_oid"
        ).fetchall()
        days = [
            r[0]
            for r in conn.execute("SELECT DISTINCT snapshot_date FROM analytics.notes ORDER BY 1").fetchall()
        ]
        history = [d for d in days if d != new_day]
        for schema, table in dated:  # the history, once, not timed
            conn.execute(
                f"COPY (SELECT * FROM {schema}.{table} WHERE snapshot_date < ?) TO "
                f"'{out}/{schema}.{table}' (FORMAT parquet, PARTITION_BY (snapshot_date))",
                [new_day],
            )
        started = time.monotonic()
        written = 0
        for schema, table in dated:
            target = out / f"{schema}.{table}" / f"snapshot_date={new_day.isoformat()}"
            target.mkdir(parents=True, exist_ok=True)
            conn.execute(
                f"COPY (SELECT * EXCLUDE (snapshot_date) FROM {schema}.{table} WHERE snapshot_date = ?) "
                f"TO '{target}/data_0.parquet' (FORMAT parquet)",
                [new_day],
            )
            written += (target / "data_0.parquet").stat().st_size
    views_db = workdir / "views.duckdb"
    temporary = workdir / "views.duckdb.tmp"
    with duckdb.connect(str(temporary)) as conn:
        conn.execute(f"ATTACH '{db}' AS src (READ_ONLY)")
        for schema in {s for s, _ in tables}:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for schema, table in tables:
            if (schema, table) in dated:
                conn.execute(
                    f"CREATE VIEW {schema}.{table} AS SELECT * FROM read_parquet('{out}/{schema}.{table}/*/*.parquet', "
                    "hive_partitioning = true)"
                )
            else:
                conn.execute(f"CREATE TABLE {schema}.{table} AS FROM src.{schema}.{table}")
        conn.execute("DETACH src")
        remaining = [sql for (sql,) in views]
        while remaining:  # in dependency order: retry those that name a view not made yet
            failed = []
            for sql in remaining:
                try:
                    conn.execute(sql)
                except duckdb.CatalogException:
                    failed.append(sql)
            if len(failed) == len(remaining):
                raise RuntimeError(f"views that cannot be created: {failed[:1]}")
            remaining = failed
    os.replace(temporary, views_db)
    publish_s = time.monotonic() - started
    return {
        "days": len(history) + 1,
        "publish_s": publish_s,
        "written_bytes": written + views_db.stat().st_size,
        "analyst_query_views_s": _analyst_query_s(views_db),
        "parquet_files": sum(1 for _ in out.rglob("*.parquet")),
    }


def run(
    *,
    sizes_gb: tuple[float, ...] = (1.0, 10.0),
    creators: int = 1000,
    repeats: int = 3,
    candidates: bool = True,
    workdir: Path,
    log: Any = print,
) -> dict[str, Any]:
    """Publication time and bytes at each history size; the whole copy for comparison; at the first
    size, the Parquet candidate and the analyst's query on the replica."""
    from pgy_pipeline.warehouse.replica import replica_path

    db = workdir / "history.duckdb"
    create(db, creators)
    day = date(2024, 1, 1)
    results: dict[str, Any] = {"creators": creators, "notes_per_creator_day": NOTES_PER_DAY, "sizes": []}
    for i, size in enumerate(sizes_gb):
        started = time.monotonic()
        day = grow(db, int(size * 1e9), day, creators)
        log(f"  replica/history: {db.stat().st_size / 1e9:.2f} GB in {time.monotonic() - started:.0f} s")
        copies = [whole_copy(db) for _ in range(repeats if size <= 2 else 1)]
        published, day = publications(db, day, creators, repeats)
        entry: dict[str, Any] = {
            "gb": size,
            "database_bytes": db.stat().st_size,
            "days": (day - date(2024, 1, 1)).days,
            "publish": published,
            "whole_copy_s": spread([c["seconds"] for c in copies]),
            "whole_copy_bytes": copies[0]["written"],
        }
        log(
            f"  replica/publish at {size:g} GB: {published['seconds']['median']:.2f} s, "
            f"{published['written_bytes']['median'] / 1e6:.1f} MB written ({published['modes']}); "
            f"whole copy {entry['whole_copy_s']['median']:.2f} s"
        )
        if i == 0:
            entry["analyst_query_replica_s"] = _analyst_query_s(replica_path(str(db)))
            if candidates:
                scratch = workdir / "candidate"
                scratch.mkdir()
                entry["parquet_candidate"] = parquet_candidate(db, scratch, day, creators)
                day += timedelta(days=1)
                shutil.rmtree(scratch)
                log(f"  replica/parquet candidate: {entry['parquet_candidate']}")
        results["sizes"].append(entry)
    first, last = results["sizes"][0], results["sizes"][-1]
    results["publish_growth"] = last["publish"]["seconds"]["median"] / first["publish"]["seconds"]["median"]
    return results
