"""Storage per note-day: a page's items are stored apart from the page, a note's text once and its
counts per day, and nothing is lost.

* A file written by the previous release (``fixtures/release_9b320e1.duckdb.gz``, made by
  ``fixtures/make_release_9b320e1.py`` with that release's code: three simulated creators over three
  days, and a creator-day of irregular items) upgrades in place with every row kept, and every body
  is the same JSON as the verbatim one.
* Rebuilding every stored day from the raw pages, with no call, gives the tables it had.
* Unchanged note texts are stored once however many days see them.
"""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb

from pgy_pipeline import clock
from pgy_pipeline.api.client import Page
from pgy_pipeline.warehouse.storage import (
    connect,
    ensure_schema,
    rebuild_metrics,
    rebuild_notes,
    replace_raw_pages,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release_9b320e1.duckdb.gz"
# every table the previous release's analysts could query, and this release still has as a relation
COMPARED = (
    "analytics.notes",
    "analytics.note_rejects",
    "analytics.creator_engagement_metrics",
    "analytics.creator_snapshots",
    "meta.api_calls",
)


def release_file(path: Path) -> Path:
    with gzip.open(FIXTURE, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def differing_rows(conn: duckdb.DuckDBPyConnection, relation: str, other: str) -> tuple[int, int]:
    """Rows of ``relation`` missing from ``other.relation`` and the other way round (as multisets)."""
    ours, theirs = f"SELECT * FROM {relation}", f"SELECT * FROM {other}.{relation}"
    missing = conn.execute(f"SELECT count(*) FROM (({theirs}) EXCEPT ALL ({ours}))").fetchone()
    extra = conn.execute(f"SELECT count(*) FROM (({ours}) EXCEPT ALL ({theirs}))").fetchone()
    assert missing is not None and extra is not None
    return int(missing[0]), int(extra[0])


def test_a_file_of_the_previous_release_upgrades_with_every_row_and_body_kept(tmp_path):
    old = release_file(tmp_path / "old.duckdb")
    new = shutil.copyfile(old, tmp_path / "pgy.duckdb")
    with connect(str(new)) as conn:
        ensure_schema(conn)  # the upgrade a writing step makes
        assert conn.execute("SELECT max(version) FROM meta.schema_migrations").fetchone() == (9,)
    with duckdb.connect(str(new), read_only=True) as conn:
        conn.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
        for relation in COMPARED:
            assert (
                conn.execute(f"SELECT count(*) FROM {relation}").fetchone()[0] > 0
                or relation == "meta.api_calls"
            )
            assert differing_rows(conn, relation, "old") == (0, 0), relation
        # the irregular items are all there: kept whole, typed as before, rejects as sent
        assert conn.execute("SELECT count(*) FROM raw.page_items WHERE item IS NOT NULL").fetchone()[0] >= 10
        pages = conn.execute(
            "SELECT n.request_params, n.body, json(o.request_params), json(o.body), "
            "(n.fetched_at, n.attempts, n.code, n.total, n.item_count, n.scan, n.scan_window_from) "
            "= (o.fetched_at, o.attempts, o.code, o.total, o.item_count, o.scan, o.scan_window_from) "
            "FROM raw.note_pages AS n JOIN old.raw.note_pages AS o USING (creator_id, snapshot_date, page_number)"
        ).fetchall()
        stored = conn.execute("SELECT count(*) FROM old.raw.note_pages").fetchone()[0]
    assert len(pages) == stored > 20
    for params, body, old_params, old_body, same_columns in pages:
        assert same_columns
        assert json.loads(params) == json.loads(old_params)
        # the verbatim body as DuckDB's JSON reads it: what the normalization ever saw of it
        assert json.loads(body) == json.loads(old_body)


def test_every_stored_day_rebuilt_from_raw_with_no_call_gives_the_same_tables(tmp_path):
    old = release_file(tmp_path / "old.duckdb")
    new = shutil.copyfile(old, tmp_path / "pgy.duckdb")
    with connect(str(new)) as conn:
        ensure_schema(conn)
        keys = [
            (c, d)
            for c, d in conn.execute("SELECT DISTINCT creator_id, snapshot_date FROM raw.pages").fetchall()
        ]
        assert len(keys) == 3 * 3 + 1
        assert rebuild_notes(conn, keys) == set()
        assert rebuild_metrics(conn, keys) == set()
    with duckdb.connect(str(new), read_only=True) as conn:
        conn.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
        for relation in COMPARED:
            assert differing_rows(conn, relation, "old") == (0, 0), relation


CREATOR = "5ff0e6410000000001008400"


def day_page(day: int, *, title: str = "t", user_id: str = CREATOR) -> Page:
    items = [
        {
            "noteId": f"n{i}",
            "title": f"{title} {i}",
            "date": "2026-11-01",
            "readNum": 10 * day + i,
            "likeNum": i,
            "collectNum": 0,
            "thirdReadUserNum": 0,
            "isVideo": False,
            "isAdvertise": False,
            "brandName": None,
        }
        for i in range(4)
    ]
    body = json.dumps({"code": 0, "data": {"total": 4, "list": items}}, ensure_ascii=False)
    params = {"userId": user_id, "pageNumber": "1"}
    return Page(CREATOR, 1, params, clock.now(), 1, 0, 4, items, body)


def test_a_note_text_is_stored_once_however_many_days_see_it(tmp_path):
    first = date(2026, 11, 1)
    with connect(str(tmp_path / "w.duckdb")) as conn:
        ensure_schema(conn)
        for d in range(5):
            key = (CREATOR, first + timedelta(days=d))
            replace_raw_pages(conn, {key: [day_page(d)]})
            replace_raw_pages(conn, {key: [day_page(d)]})  # fetched again the same day
            rebuild_notes(conn, [key])
        assert conn.execute("SELECT count(*) FROM raw.item_texts").fetchall() == [(4,)]
        assert conn.execute("SELECT count(*) FROM analytics.note_details").fetchall() == [(4,)]
        assert conn.execute("SELECT count(*) FROM raw.page_items").fetchall() == [(20,)]
        # the counts are the day's own
        assert conn.execute(
            "SELECT list(read_num ORDER BY snapshot_date) FROM analytics.notes WHERE note_id = 'n1'"
        ).fetchall() == [([1, 11, 21, 31, 41],)]
        # a changed title is a new text; the day's notes read it
        key = (CREATOR, first + timedelta(days=5))
        replace_raw_pages(conn, {key: [day_page(5, title="new")]})
        rebuild_notes(conn, [key])
        assert conn.execute("SELECT count(*) FROM raw.item_texts").fetchall() == [(8,)]
        assert conn.execute(
            "SELECT DISTINCT title FROM analytics.notes WHERE snapshot_date = ? ORDER BY 1", [key[1]]
        ).fetchall() == [("new 0",), ("new 1",), ("new 2",), ("new 3",)]


def test_request_params_that_do_not_name_the_page_are_stored_whole(tmp_path):
    with connect(str(tmp_path / "w.duckdb")) as conn:
        ensure_schema(conn)
        key = (CREATOR, date(2026, 11, 1))
        replace_raw_pages(conn, {key: [day_page(0, user_id="someone else")]})
        assert conn.execute("SELECT params_trimmed FROM raw.pages").fetchall() == [(False,)]
        replace_raw_pages(conn, {key: [day_page(0)]})
        assert conn.execute("SELECT params_trimmed, request_params FROM raw.pages").fetchall() == [
            (True, "{}")
        ]
        params = conn.execute("SELECT request_params FROM raw.note_pages").fetchall()[0][0]
        assert json.loads(params) == {"userId": CREATOR, "pageNumber": "1"}
