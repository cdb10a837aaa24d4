"""The read replica: a whole new file renamed into place; an open reader keeps the copy it opened."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pgy_pipeline.warehouse.replica import publish_replica, replica_path

OPEN_AND_COUNT = (
    "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
    "print(c.execute('SELECT count(*) FROM t').fetchall()[0][0])"
)


def _write(db: str, value: int) -> None:
    with duckdb.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (?)", [value])


def test_a_reader_keeps_its_copy_and_the_next_open_sees_the_new_one(tmp_path: Path) -> None:
    db = str(tmp_path / "pgy.duckdb")
    _write(db, 1)
    first = publish_replica(db)
    assert first is not None and first.path == tmp_path / "pgy.read.duckdb" and first.bytes > 0
    reader = duckdb.connect(str(first.path), read_only=True)
    try:
        _write(db, 2)  # the writer never touches the replica, so the open reader cannot block it
        publish_replica(db)
        assert reader.execute("SELECT count(*) FROM t").fetchall() == [(1,)]  # still its copy
        # another process (an analyst's) opening now gets the new file; within one process DuckDB
        # would hand back the database instance already open under that path
        fresh = subprocess.run(
            [sys.executable, "-c", OPEN_AND_COUNT, str(first.path)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert fresh.stdout.strip() == "2"
    finally:
        reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pgy.duckdb", "pgy.read.duckdb"]


def test_a_copy_left_by_a_killed_process_is_cleared_and_an_open_log_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "pgy.duckdb")
    _write(db, 1)
    stale = tmp_path / ".pgy.read.duckdb.999999.tmp"
    stale.write_bytes(b"half a copy")
    publish_replica(db)
    assert not stale.exists()
    assert replica_path("x/other.db") == Path("x/other.db.read.duckdb")
    assert publish_replica(":memory:") is None and publish_replica("md:pgy") is None
    conn = duckdb.connect(db)
    try:
        conn.execute("INSERT INTO t VALUES (3)")
        if Path(db + ".wal").exists():
            with pytest.raises(RuntimeError, match="write-ahead log"):
                publish_replica(db)
    finally:
        conn.close()
