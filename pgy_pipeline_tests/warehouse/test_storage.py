"""Partition writes and the lock wait, on real DuckDB files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import date

import duckdb
import pytest

from pgy_pipeline import clock
from pgy_pipeline.api.client import Page
from pgy_pipeline.errors import DataSourceMismatchError, DuckDBLockedError
from pgy_pipeline.warehouse.storage import (
    claim_data_source,
    connect,
    ensure_schema,
    json_for_duckdb,
    partition_keys,
    replace_raw_pages,
    stored_raw_keys,
    transaction,
)

DAY = date(2026, 11, 20)
A, B = "a" * 24, "b" * 24


def page(creator: str, n: int, total: int = 2, items: int = 1) -> Page:
    body = json.dumps(
        {"code": 0, "data": {"total": total, "list": [{"noteId": f"n{i}"} for i in range(items)]}}
    )
    return Page(
        creator,
        n,
        {"userId": creator, "pageNumber": str(n)},
        clock.now(),
        1,
        0,
        total,
        [{}] * items,
        body,
    )


def test_replacing_a_partition_swaps_its_rows_and_leaves_the_others(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        ensure_schema(conn)
        assert replace_raw_pages(conn, {(A, DAY): [page(A, 1), page(A, 2)], (B, DAY): [page(B, 1)]}) == 3
        assert replace_raw_pages(conn, {(A, DAY): [page(A, 1)]}) == 1
        rows = conn.execute(
            "SELECT creator_id, count(*) FROM raw.note_pages GROUP BY 1 ORDER BY 1"
        ).fetchall()
        assert rows == [(A, 1), (B, 1)]
        assert stored_raw_keys(conn, [(A, DAY), (B, date(2026, 11, 21))]) == {(A, DAY)}


def test_a_failure_inside_the_transaction_keeps_the_old_rows(tmp_path):
    with duckdb.connect(str(tmp_path / "t.duckdb")) as conn:
        ensure_schema(conn)
        replace_raw_pages(conn, {(A, DAY): [page(A, 1)]})
        with pytest.raises(RuntimeError), transaction(conn):
            conn.execute("DELETE FROM raw.pages")
            conn.execute("DELETE FROM raw.page_items")
            raise RuntimeError("half way")
        assert conn.execute("SELECT count(*) FROM raw.note_pages").fetchall() == [(1,)]


def test_partition_keys_fill_the_temp_table_for_the_block_only(tmp_path):
    with duckdb.connect(str(tmp_path / "k.duckdb")) as conn:
        with partition_keys(conn, [(B, DAY), (A, DAY), (A, DAY)]):
            assert conn.execute("SELECT * FROM _keys ORDER BY ALL").fetchall() == [(A, DAY), (B, DAY)]
        assert conn.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_keys'").fetchall() == [
            (0,)
        ]


def test_simulated_and_real_data_never_share_a_file(tmp_path):
    with duckdb.connect(str(tmp_path / "s.duckdb")) as conn:
        ensure_schema(conn)
        claim_data_source(conn, "simulator", "s.duckdb")
        claim_data_source(conn, "simulator", "s.duckdb")
        with pytest.raises(DataSourceMismatchError, match="holds simulator data"):
            claim_data_source(conn, "justoneapi", "s.duckdb")


def test_a_lone_surrogate_becomes_a_replacement_character_and_pairs_stay():
    assert json_for_duckdb('"\\ud83d x"') == '"\\ufffd x"'
    assert json_for_duckdb('"\\ud83d\\ude00"') == '"\\ud83d\\ude00"'


def test_the_lock_wait_reports_the_holder_while_waiting_and_then_names_it(tmp_path):
    path = str(tmp_path / "locked.duckdb")
    duckdb.connect(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({path!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        reports: list[tuple[float, str]] = []
        started = time.monotonic()
        with (
            pytest.raises(DuckDBLockedError) as err,
            connect(path, lock_wait_s=4.5, on_wait=lambda s, h: reports.append((s, h)), report_every_s=1.0),
        ):
            pass
        assert time.monotonic() - started >= 4.5
        assert f"(PID {holder.pid})" in str(err.value)
        assert (
            len(reports) >= 2
            and reports[0][0] >= 1
            and reports[1][0] - reports[0][0] >= 1
            and f"PID {holder.pid}" in reports[0][1]
        )
    finally:
        holder.kill()
        holder.wait()
