"""The read replica: a copy of the DuckDB file that analysts open while the pipeline writes.

DuckDB lets one process hold a file for writing, and a reader blocks the writer (and fails while it
writes). So after each step's write commits, while the step still holds the writer lock, the
pipeline copies the closed, checkpointed file to a temporary name in the same directory, fsyncs it
and renames it onto ``<name>.read.duckdb`` (:func:`replica_path`). A rename is atomic: a reader that
opened the previous copy keeps reading it (it holds that inode), and the next open sees the new one.
The pipeline never opens the replica, so a reader of it can neither fail nor delay a run.

Cost: one full copy of the file per write, and the disk for a second copy (plus a third while the
next one is written); ``benchmarks/replica.py`` measures both.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

REPLICA_SUFFIX = ".read.duckdb"


def file_backed(database: str) -> bool:
    """True for a DuckDB file on disk (not ``:memory:`` or MotherDuck's ``md:``)."""
    return database != ":memory:" and not database.startswith("md:")


def replica_path(database: str) -> Path:
    """``data/pgy.duckdb`` -> ``data/pgy.read.duckdb`` (any other name gets ``.read.duckdb`` added)."""
    path = Path(database)
    stem = path.name[: -len(".duckdb")] if path.name.endswith(".duckdb") else path.name
    return path.with_name(stem + REPLICA_SUFFIX)


@dataclass(frozen=True)
class ReplicaCopy:
    """One publication of the replica."""

    path: Path
    bytes: int
    seconds: float


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries (a rename), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_replica(database: str) -> ReplicaCopy | None:
    """Copy the (closed, checkpointed) ``database`` onto its replica, atomically. The caller holds the
    writer lock and has closed its connection. None when there is no file to copy."""
    if not file_backed(database) or not Path(database).exists():
        return None
    source = Path(database)
    if Path(database + ".wal").exists():
        # A write-ahead log means the file alone is not the database yet (a connection is still open):
        # a copy without it would lose the last commits.
        raise RuntimeError(f"{database} has an unmerged write-ahead log: close its connection first")
    target = replica_path(database)
    started = time.monotonic()
    for stale in target.parent.glob(f".{target.name}.*.tmp"):  # left by a process killed mid-copy
        stale.unlink(missing_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(source, temporary)
        with open(temporary, "rb+") as copied:
            os.fsync(copied.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(target.parent)
    return ReplicaCopy(path=target, bytes=target.stat().st_size, seconds=time.monotonic() - started)


def first_snapshot_day(database: str) -> date | None:
    """The earliest snapshot date stored, read from the replica (which no writer ever waits for); None
    when there is no replica yet or it cannot be read (the caller then starts the partitions today)."""
    if not file_backed(database) or not replica_path(database).exists():
        return None
    try:
        with duckdb.connect(str(replica_path(database)), read_only=True) as conn:
            rows = conn.execute("SELECT min(snapshot_date) FROM raw.note_pages").fetchall()
    except duckdb.Error:
        return None
    day = rows[0][0] if rows else None
    return day if isinstance(day, date) else None
