"""The read replica: two files behind one name, the spare brought up to date by the days changed and
renamed into place; an open reader keeps the file it opened; a publication killed anywhere is redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from benchmarks.replica import AnalystProcess
from benchmarks.replica_history import create, daily_run
from pgy_pipeline.warehouse.replica import (
    begin_write,
    end_write,
    first_snapshot_day,
    journal_path,
    load_journal,
    publish_replica,
    replica_files,
    replica_path,
)

OPEN_AND_COUNT = (
    "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
    "print(c.execute('SELECT count(*) FROM t').fetchall()[0][0])"
)
DAY = date(2026, 1, 1)


def _write(db: str, value: int) -> None:
    with duckdb.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (?)", [value])


def _rows(path: Path | str, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _same(db: str, table: str) -> None:
    sql = f"FROM {table} ORDER BY ALL"
    assert _rows(replica_path(db), sql) == _rows(db, sql), table


def test_a_reader_keeps_its_copy_and_the_next_open_sees_the_new_one(tmp_path: Path) -> None:
    db = str(tmp_path / "pgy.duckdb")
    _write(db, 1)
    first = publish_replica(db)
    assert first is not None and first.path == tmp_path / "pgy.read.duckdb" and first.bytes > 0
    reader = duckdb.connect(str(first.path), read_only=True)
    try:
        _write(db, 2)  # the writer never touches the published file, so the open reader cannot block it
        publish_replica(db)
        assert reader.execute("SELECT count(*) FROM t").fetchall() == [(1,)]  # still its copy
        # another process (an analyst's) opening now gets the new file; within one process DuckDB
        # would hand back the database instance already open under that path
        fresh = subprocess.run(
            [sys.executable, "-c", OPEN_AND_COUNT, str(first.path)], capture_output=True, text=True, check=True
        )
        assert fresh.stdout.strip() == "2"
    finally:
        reader.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        ".pgy.read.duckdb.0",
        ".pgy.read.duckdb.1",
        ".pgy.read.duckdb.journal.json",
        "pgy.duckdb",
        "pgy.read.duckdb",
    ]
    # the published name is one of the two files (a hard link), not a third copy
    assert os.stat(first.path).st_ino in {os.stat(p).st_ino for p in replica_files(db)}


def test_publication_writes_the_changed_days_not_the_history(tmp_path: Path) -> None:
    """The mechanism behind "publish time does not grow with history": bytes written by a publication
    follow the days changed. The same one-day change is published over 5 and then 40 days of history
    (8x); what it writes stays about the same and far below the file, where a whole copy grows 8x."""
    db_path = tmp_path / "pgy.duckdb"
    db = str(db_path)
    create(db_path, creators=60)
    day = DAY
    written: dict[int, list[int]] = {}
    for history in (5, 40):
        while (day - DAY).days < history:
            daily_run(db_path, day, creators=60)
            day += timedelta(days=1)
        publish_replica(db)  # bring both files level (the first publications are whole copies)
        publish_replica(db)
        written[history] = []
        for _ in range(2):
            daily_run(db_path, day, creators=60)
            copy = publish_replica(db)
            assert copy is not None and copy.mode == "changed days", copy
            assert copy.written is not None
            written[history].append(copy.written)
            for table in ("analytics.notes", "raw.note_pages", "meta.api_calls", "analytics.creators"):
                _same(db, table)
            day += timedelta(days=1)
        if history == 40:
            assert max(written[history]) < db_path.stat().st_size / 2  # a whole copy writes it all
    assert max(written[40]) < 1.5 * max(written[5]), written
    # the rows rewritten are those of the days changed since that file's last publication (two runs)
    assert copy.days == (day - timedelta(days=2), day - timedelta(days=1))


_HOLDER = r"""
import sys
import duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)  # a BI tool's session, left open
before = conn.execute("SELECT count(*) FROM analytics.notes").fetchall()[0][0]
print("open", flush=True)
sys.stdin.readline()
print(before, conn.execute("SELECT count(*) FROM analytics.notes").fetchall()[0][0], flush=True)
"""


def test_a_reader_holding_the_spare_gets_a_whole_copy_beside_it(tmp_path: Path) -> None:
    db_path = tmp_path / "pgy.duckdb"
    db = str(db_path)
    create(db_path, creators=5)
    daily_run(db_path, DAY, creators=5)
    publish_replica(db)
    daily_run(db_path, DAY + timedelta(days=1), creators=5)
    publish_replica(db)
    # a session opened on the file published first keeps it open: that file is the next spare
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(replica_files(db)[0])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        daily_run(db_path, DAY + timedelta(days=2), creators=5)
        copy = publish_replica(db)
        assert copy is not None and copy.mode == "whole copy" and "reader" in copy.reason, copy
        _same(db, "analytics.notes")
        out, _ = holder.communicate("done\n", timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
    before, after = out.split()
    assert before == after  # the session kept reading the file it opened, unharmed
    assert holder.returncode == 0


def test_analysts_never_fail_while_publications_run(tmp_path: Path) -> None:
    """Real reader processes poll the published name every 20 ms through 12 daily publications."""
    db_path = tmp_path / "pgy.duckdb"
    db = str(db_path)
    create(db_path, creators=30)
    daily_run(db_path, DAY, creators=30)
    publish_replica(db)
    analysts = [AnalystProcess(replica_path(db), 0.02) for _ in range(2)]
    modes = []
    try:
        for i in range(1, 13):
            daily_run(db_path, DAY + timedelta(days=i), creators=30)
            copy = publish_replica(db)
            assert copy is not None
            modes.append(copy.mode)
            time.sleep(0.05)
    finally:
        figures = [a.stop() for a in analysts]
    assert all(f["errors"] == 0 for f in figures), figures
    assert all(f["queries"] > 10 and f["versions"] >= 2 for f in figures), figures
    assert modes.count("changed days") >= 10, modes
    _same(db, "analytics.notes")


_KILLED_MID_PUBLISH = r"""
import os, signal, sys
import duckdb
from pgy_pipeline.warehouse import replica
stage = sys.argv[2]
if stage == "refresh":
    real = replica._refresh_in_place
    def killed(database, spare, days):
        conn = duckdb.connect(str(spare))
        conn.execute("BEGIN TRANSACTION")
        conn.execute("DELETE FROM raw.page_items")  # half of a refresh, never committed
        os.kill(os.getpid(), signal.SIGKILL)
    replica._refresh_in_place = killed
else:
    real_copy = replica.shutil.copyfile
    def killed(src, dst):
        with open(src, "rb") as f, open(dst, "wb") as out:
            out.write(f.read(100_000))  # a third of a copy
        os.kill(os.getpid(), signal.SIGKILL)
    replica.shutil.copyfile = killed
replica.publish_replica(sys.argv[1])
"""


@pytest.mark.parametrize("stage", ["refresh", "copy"])
def test_a_publication_killed_midway_leaves_the_replica_whole_and_the_next_one_recovers(
    tmp_path: Path, stage: str
) -> None:
    db_path = tmp_path / "pgy.duckdb"
    db = str(db_path)
    create(db_path, creators=8)
    for i in range(2):
        daily_run(db_path, DAY + timedelta(days=i), creators=8)
        publish_replica(db)
    before = _rows(replica_path(db), "SELECT count(*), max(snapshot_date) FROM analytics.notes")
    daily_run(db_path, DAY + timedelta(days=2), creators=8)
    if stage == "copy":  # what changed is unknown: the next publication copies the whole file
        begin_write(db)
        end_write(db, None)
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_MID_PUBLISH, db, stage],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    # analysts still read the previous publication, whole, in the newest and in the CLI's format
    assert _rows(replica_path(db), "SELECT count(*), max(snapshot_date) FROM analytics.notes") == before
    leftovers = list(tmp_path.glob(".*.tmp"))
    assert (stage == "copy") == bool(leftovers), leftovers
    # the next publication clears what the killed one left and publishes the change
    copy = publish_replica(db)
    assert copy is not None
    assert not list(tmp_path.glob(".*.tmp"))
    assert _rows(replica_path(db), "SELECT max(snapshot_date) FROM analytics.notes") == [(DAY + timedelta(days=2),)]
    for table in ("analytics.notes", "raw.note_pages", "meta.api_calls"):
        _same(db, table)
    assert load_journal(db).files[str(_published(db))] == load_journal(db).generation


def _published(db: str) -> int:
    inode = os.stat(replica_path(db)).st_ino
    return next(i for i, p in enumerate(replica_files(db)) if os.stat(p).st_ino == inode)


def test_a_write_that_was_not_journaled_or_never_ended_makes_a_whole_copy(tmp_path: Path) -> None:
    db_path = tmp_path / "pgy.duckdb"
    db = str(db_path)
    create(db_path, creators=4)
    for i in range(2):
        daily_run(db_path, DAY + timedelta(days=i), creators=4)
        publish_replica(db)
    # a write from another tool, outside the pipeline's writer
    with duckdb.connect(db) as conn:
        conn.execute("DELETE FROM raw.page_items WHERE snapshot_date = ?", [DAY])
    daily_run(db_path, DAY + timedelta(days=2), creators=4)  # begin_write sees the file changed
    copy = publish_replica(db)
    assert copy is not None and copy.mode == "whole copy" and "unknown" in copy.reason
    _same(db, "analytics.notes")
    # a writer killed between begin and end: its days are unknown
    begin_write(db)
    with duckdb.connect(db) as conn:
        conn.execute("DELETE FROM raw.page_items WHERE snapshot_date = ?", [DAY + timedelta(days=1)])
    begin_write(db)  # the next writer
    end_write(db, [])
    assert publish_replica(db).mode == "whole copy"  # type: ignore[union-attr]
    _same(db, "analytics.notes")
    # an unreadable journal knows nothing either
    journal_path(db).write_text("{half")
    assert publish_replica(db).mode == "whole copy"  # type: ignore[union-attr]


def test_the_replica_has_the_same_relations_columns_and_comments_without_key_indexes(tmp_path: Path) -> None:
    db_path = tmp_path / "pgy.duckdb"
    db = str(db_path)
    create(db_path, creators=3)
    daily_run(db_path, DAY, creators=3)
    publish_replica(db)
    layout = (
        "SELECT schema_name, table_name, column_name, column_index, data_type, is_nullable, comment "
        "FROM duckdb_columns() WHERE database_name = current_database() ORDER BY ALL"
    )
    assert _rows(replica_path(db), layout) == _rows(db, layout)
    keys = (
        "SELECT schema_name, table_name FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND constraint_type = 'PRIMARY KEY' ORDER BY ALL"
    )
    assert ("meta", "api_calls") in _rows(db, keys) and ("meta", "api_calls") not in _rows(replica_path(db), keys)
    assert ("analytics", "creators") in _rows(replica_path(db), keys)  # undated: copied whole anyway
    assert first_snapshot_day(db) == DAY  # read from the replica


def test_no_file_means_no_replica(tmp_path: Path) -> None:
    assert replica_path("x/other.db") == Path("x/other.db.read.duckdb")
    assert publish_replica(":memory:") is None and publish_replica("md:pgy") is None
    assert publish_replica(str(tmp_path / "absent.duckdb")) is None
    db = str(tmp_path / "pgy.duckdb")
    _write(db, 1)
    conn = duckdb.connect(db)
    try:
        conn.execute("INSERT INTO t VALUES (3)")
        if Path(db + ".wal").exists():
            with pytest.raises(RuntimeError, match="write-ahead log"):
                publish_replica(db)
    finally:
        conn.close()
