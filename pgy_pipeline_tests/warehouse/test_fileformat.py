"""The DuckDB file's storage format: new files open in DuckDB 1.x; files in DuckDB 2.0's own format
are converted on upgrade with every row, the schema version and the migrations kept."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from pgy_pipeline.api.notes_rate import NoteRateAnswer, NotesRateQuery
from pgy_pipeline.errors import StorageFormatError
from pgy_pipeline.warehouse import fileformat
from pgy_pipeline.warehouse.analyst import rebuild_anomalies, rebuild_peer_percentiles
from pgy_pipeline.warehouse.fileformat import file_storage_version, needs_conversion
from pgy_pipeline.warehouse.note_rates import rebuild_note_rates, replace_note_rates
from pgy_pipeline.warehouse.schema import LATEST_VERSION, file_version, migrate
from pgy_pipeline.warehouse.storage import claim_data_source, connect
from pgy_pipeline_tests.analyst_support import fixture_roster, write_creators, write_snapshots
from pgy_pipeline_tests.duckdb_readers import LAKE_PYTHON, PROJECT_ROOT, counts_in_duckdb_1_4, relations
from pgy_pipeline_tests.warehouse.test_schema import TABLES_0_1_0, _as_json, release_0_1_0_file

needs_duckdb_2 = pytest.mark.skipif(
    int(duckdb.__version__.split(".")[0]) < 2, reason="only DuckDB 2.0 writes the v2.0.0 format"
)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def every_row(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table and view, plus the catalog's comments, in a stable order."""
    with duckdb.connect(str(path), read_only=True) as conn:
        names = relations(path)
        out = {n: conn.execute(f"SELECT * FROM {n} ORDER BY ALL").fetchall() for n in names}
        out["comments"] = conn.execute(
            "SELECT schema_name, table_name, column_name, comment FROM duckdb_columns() "
            "WHERE database_name = current_database() ORDER BY ALL"
        ).fetchall()
    return out


def storage_of(path: Path) -> str | None:
    with duckdb.connect(str(path), read_only=True) as conn:
        return file_storage_version(conn)


def test_a_new_file_is_created_in_the_format_duckdb_1_x_reads(tmp_path):
    path = tmp_path / "new.duckdb"
    with connect(str(path)) as conn:
        migrate(conn)
    assert storage_of(path) == "v1.0.0+"
    assert not needs_conversion(storage_of(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.duckdb"]  # nothing converted, no backup


def test_formats_are_compared_by_version():
    assert needs_conversion("v2.0.0+") and needs_conversion("v1.2.0+")
    assert not needs_conversion("v1.0.0+") and not needs_conversion("v0.10.2+")
    assert not needs_conversion(None) and not needs_conversion("something else")


@needs_duckdb_2
def test_a_duckdb_2_file_with_rows_in_every_table_is_converted_with_nothing_lost(tmp_path):
    """The previous release wrote DuckDB 2.0's own format (plain ``duckdb.connect``): built here with
    the current code's own writes, every table filled, then opened by the pipeline once."""
    path = tmp_path / "pgy.duckdb"
    roster = fixture_roster(n_creators=6, n_snapshots=4)
    with duckdb.connect(str(path)) as conn:
        migrate(conn)
        claim_data_source(conn, "simulator", str(path))
        write_creators(conn, roster.creators)
        write_snapshots(conn, roster.snapshots)
        rebuild_peer_percentiles(conn, roster.days)
        rebuild_anomalies(conn, roster.days)
        conn.execute(
            "INSERT INTO analytics.note_rejects (creator_id, snapshot_date, page_number, list_position, reason, "
            "item) VALUES (?, ?, 1, 3, 'duplicate', '{}')",
            [roster.creators[0].creator_id, roster.days[0]],
        )
        conn.execute(  # a note whose list item is kept whole (a count sent as text)
            "INSERT INTO analytics.irregular_note_counts (creator_id, snapshot_date, item_key, read_num, "
            "like_num, collect_num, third_read_user_num, list_position, page_number, fetched_at, quality_issues) "
            "SELECT creator_id, ?, item_key, 7, 1, 0, 0, 99, 9, ?, ['readNum was sent as text'] "
            "FROM analytics.note_details ORDER BY item_key LIMIT 1",
            [roster.days[0] - timedelta(days=30), datetime(2026, 3, 10, 1, 0)],
        )
        conn.execute(
            "INSERT INTO meta.api_calls (call_id, called_at, run_id, creator_id, snapshot_date, page_number, "
            "attempt, http_status, code, outcome, billed, latency_ms, bytes) "
            "VALUES ('c1', ?, 'r1', ?, ?, 1, 1, 200, 0, 'ok', true, 12.5, 900)",
            [datetime(2026, 3, 10, 1, 0), roster.creators[0].creator_id, roster.days[-1]],
        )
        recorded = (Path(__file__).parent.parent / "fixtures" / "notes_rate_recorded.json").read_text("utf-8")
        creator, day = roster.creators[0].creator_id, roster.days[-1]
        rate = NoteRateAnswer(creator, NotesRateQuery(), datetime(2026, 3, 10, 2, tzinfo=UTC), 1, 3, recorded)
        replace_note_rates(conn, {(creator, day): [rate]})
        rebuild_note_rates(conn, [(creator, day)])
    assert storage_of(path) == "v2.0.0+"
    before = every_row(path)
    empty = [n for n, rows in before.items() if not rows and not n.startswith("meta.api_calls_daily")]
    assert empty == [], f"the fixture should fill every table: {empty}"
    original = digest(path)

    messages: list[str] = []
    with connect(str(path), on_convert=messages.append) as conn:
        assert file_storage_version(conn) == "v1.0.0+"
        assert file_version(conn) == LATEST_VERSION
        assert migrate(conn) == []  # the schema version and its migrations came along
    backup = tmp_path / "pgy.duckdb.storage-v2.0.0.bak"
    assert len(messages) == 1 and str(backup) in messages[0] and "every one kept" in messages[0]
    assert every_row(path) == before
    assert digest(backup) == original and storage_of(backup) == "v2.0.0+"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pgy.duckdb", backup.name]

    with connect(str(path), on_convert=messages.append):
        pass
    assert len(messages) == 1  # converted once

    if LAKE_PYTHON.exists():
        version, counts = counts_in_duckdb_1_4(path, list(before.keys() - {"comments"}))
        assert version.startswith("1.4") and counts == {
            n: len(rows) for n, rows in before.items() if n != "comments"
        }


@needs_duckdb_2
def test_a_0_1_0_file_in_duckdb_2_format_is_converted_then_migrated(tmp_path):
    path = release_0_1_0_file(tmp_path / "old.duckdb")
    assert storage_of(path) == "v2.0.0+"
    with duckdb.connect(str(path), read_only=True) as conn:
        before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES_0_1_0}
    with connect(str(path), on_convert=lambda _: None) as conn:
        assert file_version(conn) == 0  # converted as it was: a 0.1.0 layout, no version table
        migrate(conn)
        assert file_version(conn) == LATEST_VERSION
        for table, rows in before.items():
            width = len(rows[0]) if rows else 0
            after = sorted(
                _as_json(table, r[:width]) for r in conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            )
            if table != "analytics.creator_engagement_metrics":  # recomputed by migration 3
                assert after == sorted(_as_json(table, r) for r in rows), table
    assert storage_of(path) == "v1.0.0+"


@needs_duckdb_2
def test_a_conversion_that_fails_its_check_leaves_the_file_untouched(tmp_path, monkeypatch):
    path = release_0_1_0_file(tmp_path / "pgy.duckdb")
    original = digest(path)
    real_counts = fileformat._row_counts

    def one_row_short(conn, db, tables):
        counts = real_counts(conn, db, tables)
        return {t: n - 1 for t, n in counts.items()} if db == fileformat._ALIAS else counts

    monkeypatch.setattr(fileformat, "_row_counts", one_row_short)
    with pytest.raises(StorageFormatError) as err:
        with connect(str(path)):
            pass
    message = str(err.value)
    assert "could not convert the DuckDB file" in message and "rows" in message
    assert "The file was not changed" in message
    assert digest(path) == original and storage_of(path) == "v2.0.0+"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pgy.duckdb"]  # no copy left, no backup


@needs_duckdb_2
def test_duckdb_1_4_is_told_what_to_do_with_a_file_in_duckdb_2_format(tmp_path):
    if not LAKE_PYTHON.exists():
        pytest.skip(f"{LAKE_PYTHON} does not exist (DuckDB 1.4): `PGY_SETUP_LAKE=1 bash scripts/setup.sh`")
    path = tmp_path / "pgy.duckdb"
    duckdb.connect(str(path)).close()
    script = (
        "import sys; from pgy_pipeline.warehouse.storage import connect\n"
        "try:\n    connect(sys.argv[1]).__enter__()\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [str(LAKE_PYTHON), "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.stdout.startswith("StorageFormatError"), done.stdout + done.stderr
    assert "cannot read" in done.stdout and "DuckDB 2.0" in done.stdout and str(path) in done.stdout
    assert storage_of(path) == "v2.0.0+"


@needs_duckdb_2
def test_a_copy_left_by_a_killed_conversion_is_removed(tmp_path):
    path = tmp_path / "pgy.duckdb"
    stale = tmp_path / ".pgy.duckdb.storage-conversion.tmp"
    duckdb.connect(str(path)).close()
    stale.write_bytes(b"half a copy")
    with connect(str(path), on_convert=lambda _: None):
        pass
    assert not stale.exists() and storage_of(path) == "v1.0.0+"
    # a second backup of the same format is numbered, never written over the first
    assert fileformat.backup_path(str(path), "v2.0.0+") == tmp_path / "pgy.duckdb.storage-v2.0.0.2.bak"
