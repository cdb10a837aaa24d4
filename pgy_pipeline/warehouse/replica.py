"""The read replica: the DuckDB file analysts open while the pipeline writes, refreshed by the days changed.

DuckDB lets one process hold a file for writing, and a reader blocks the writer (and fails while it
writes). So analysts never open the pipeline's file: they open ``<name>.read.duckdb``
(:func:`replica_path`), which the pipeline never writes in place while it is published.

Two files, one name. The published name is a hard link to one of two hidden files beside it,
``.<name>.read.duckdb.0`` and ``.<name>.read.duckdb.1`` (:func:`replica_files`). A publication
(:func:`publish_replica`, under the writer lock, the pipeline's connection closed):

1. brings the *other* file (the spare, published the time before) up to date in place: one DuckDB
   transaction deletes and re-inserts, table by table, the rows of the snapshot days changed since
   that file was last brought up to date, read from the pipeline's file attached read-only; a table
   of note texts (an ``item_key`` and no ``snapshot_date``: raw.item_texts, analytics.note_details)
   only ever gains rows, so the spare takes the keys it lacks (reading the key column alone); other
   tables without a ``snapshot_date`` (creators, the schema's versions, the data source) are small
   and are copied whole. The spare is then checkpointed and closed: a complete DuckDB file, no write-ahead log;
2. links it under a temporary name and renames that onto ``<name>.read.duckdb``. The rename is
   atomic: a reader that opened the previous file keeps reading it (it holds that inode), and the next
   open sees the new one.

What a publication writes is the changed days' rows, not the history, so its time follows the run's
work (``benchmarks/replica.py`` measures it at 1 GB and 10 GB of history). The spare can be written
because nobody opens it by its hidden name: readers open the published name, and the spare was
last published one publication ago. When it cannot be brought up to date in place it is replaced
by a whole copy of the pipeline's file (the previous release's only way), written to a temporary
name, fsynced and renamed onto the spare's name:

* a reader still holds it (a BI tool's connection opened before the last publication): DuckDB's lock
  refuses the write; the rename leaves that reader its inode;
* the tables, views or comments differ (a migration), or the change journal cannot say what changed
  (the first publication, a write outside :func:`begin_write`/:func:`end_write`, a writer killed
  mid-write, an unreadable journal).

The change journal, ``.<name>.read.duckdb.journal.json``, is written by the writer (``PgyDuckDBResource
.writer``) under the writer lock: :func:`begin_write` before it opens the pipeline's file,
:func:`end_write` after it closes it, with the snapshot days the write may have changed (``None``:
it cannot say, so the next publication copies the whole file). It records each write's days under a
generation number, the generation each replica file holds, and the pipeline file's size, mtime and
inode after the last journaled write: a file changed since (by a process that did not journal) is
taken as changed everywhere.

Crashes. Nothing a publication does leaves the published name pointing at an incomplete file: the
spare is written under its hidden name, in one transaction (DuckDB rolls an unfinished one back on the
next open) or by a copy to a temporary name, and only a complete, checkpointed file is renamed onto
the published name. The journal records a file's new generation only after that file is complete, and
re-applying a day is idempotent (the rows are read from the pipeline's file as they are now), so a
publication killed anywhere is simply redone by the next one. Temporaries left by a killed process are
removed by the next publication. The locks involved are released by the death of their holder.

Disk: the pipeline's file and two replica files (the same peak as the previous release's copy, three
copies, but now kept).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

REPLICA_SUFFIX = ".read.duckdb"
#: The column by which tables are refreshed: rows of a changed day are deleted and inserted again.
DAY_COLUMN = "snapshot_date"
#: A table without a day but with this key (a note's text, stored once: raw.item_texts and
#: analytics.note_details) only ever gains rows: the spare takes the keys it lacks.
KEY_COLUMN = "item_key"
_SOURCE = "pgy_replica_source"
_JOURNAL_VERSION = 1


def file_backed(database: str) -> bool:
    """True for a DuckDB file on disk (not ``:memory:`` or MotherDuck's ``md:``)."""
    return database != ":memory:" and not database.startswith("md:")


def replica_path(database: str) -> Path:
    """``data/pgy.duckdb`` -> ``data/pgy.read.duckdb`` (any other name gets ``.read.duckdb`` added)."""
    path = Path(database)
    stem = path.name[: -len(".duckdb")] if path.name.endswith(".duckdb") else path.name
    return path.with_name(stem + REPLICA_SUFFIX)


def replica_files(database: str) -> tuple[Path, Path]:
    """The two hidden files the published name alternates between."""
    target = replica_path(database)
    return target.with_name(f".{target.name}.0"), target.with_name(f".{target.name}.1")


def journal_path(database: str) -> Path:
    target = replica_path(database)
    return target.with_name(f".{target.name}.journal.json")


def _temporary(database: str) -> Path:
    target = replica_path(database)
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries (a rename), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the change journal ------------------------------------------------------------------------------


@dataclass
class Journal:
    """What changed in the pipeline's file, write by write, and what each replica file holds."""

    generation: int = 0
    #: replica file index ("0", "1") -> the generation it holds
    files: dict[str, int] = field(default_factory=dict)
    #: {"generation": g, "days": [iso dates]} or {"generation": g, "all": true}
    changes: list[dict[str, Any]] = field(default_factory=list)
    writing: bool = False
    #: [size, mtime_ns, inode] of the pipeline's file after the last journaled write
    main: list[int] | None = None

    def since(self, generation: int) -> tuple[bool, set[date]]:
        """(everything may have changed, the days changed) after ``generation``."""
        days: set[date] = set()
        for change in self.changes:
            if change["generation"] <= generation:
                continue
            if change.get("all"):
                return True, set()
            days.update(date.fromisoformat(d) for d in change["days"])
        return False, days

    def record(self, days: Iterable[date] | None) -> None:
        self.generation += 1
        if days is None:
            self.changes.append({"generation": self.generation, "all": True})
        else:
            self.changes.append(
                {"generation": self.generation, "days": sorted({d.isoformat() for d in days})}
            )

    def prune(self) -> None:
        """Forget changes every known replica file already holds (an unknown file is copied whole)."""
        if self.files:
            floor = min(self.files.values())
            self.changes = [c for c in self.changes if c["generation"] > floor]


def _stat(database: str) -> list[int] | None:
    try:
        st = os.stat(database)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def load_journal(database: str) -> Journal:
    """The journal; a missing or unreadable one knows nothing (the next publication copies whole)."""
    try:
        raw = json.loads(journal_path(database).read_text(encoding="utf-8"))
        if raw.get("version") != _JOURNAL_VERSION:
            raise ValueError(raw.get("version"))
        return Journal(
            generation=int(raw["generation"]),
            files={str(k): int(v) for k, v in raw["files"].items()},
            changes=list(raw["changes"]),
            writing=bool(raw["writing"]),
            main=raw["main"],
        )
    except FileNotFoundError:
        return Journal()
    except (OSError, ValueError, KeyError, TypeError):
        journal = Journal()
        journal.record(None)
        return journal


def save_journal(database: str, journal: Journal) -> None:
    """Write the journal atomically (a temporary file, fsynced, renamed)."""
    path = journal_path(database)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    data = {
        "version": _JOURNAL_VERSION,
        "generation": journal.generation,
        "files": journal.files,
        "changes": journal.changes,
        "writing": journal.writing,
        "main": journal.main,
    }
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def begin_write(database: str) -> None:
    """Before the writer opens the pipeline's file (under the writer lock): if the file changed since
    the last journaled write, or that write never ended (its process was killed), what changed is
    unknown, and the next publication copies the whole file."""
    if not file_backed(database):
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    journal = load_journal(database)
    current = _stat(database)
    if journal.writing or (current is not None and current != journal.main):
        journal.record(None)
    journal.writing = True
    save_journal(database, journal)


def end_write(database: str, days: Iterable[date] | None) -> None:
    """After the writer closed the pipeline's file: the snapshot days the write may have changed
    (``None``: unknown, everything)."""
    if not file_backed(database):
        return
    journal = load_journal(database)
    journal.record(days)
    journal.writing = False
    journal.main = _stat(database)
    save_journal(database, journal)


# --- publication -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaCopy:
    """One publication of the replica."""

    path: Path
    #: size of the published file
    bytes: int
    seconds: float
    #: "changed days" (the spare brought up to date in place) or "whole copy"
    mode: str = "whole copy"
    days: tuple[date, ...] = ()
    #: rows deleted and inserted again in the spare ("changed days" only)
    rows: int = 0
    #: bytes this process wrote meanwhile (Linux ``/proc/self/io`` wchar), None where unknown
    written: int | None = None
    #: why a whole copy was made
    reason: str = ""


class _CopyWhole(Exception):
    """The spare cannot be brought up to date in place."""


def _wchar() -> int | None:
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _published_index(target: Path, files: tuple[Path, Path]) -> int | None:
    try:
        inode = target.stat().st_ino
    except FileNotFoundError:
        return None
    for i, path in enumerate(files):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_ino == inode:
                return i
    return None


def _clear_temporaries(database: str) -> None:
    """Temporaries left by a process killed mid-publication (only this process's can be in use now:
    the caller holds the writer lock)."""
    target = replica_path(database)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    journal = journal_path(database)
    for stale in journal.parent.glob(f"{journal.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def publish_replica(database: str) -> ReplicaCopy | None:
    """Bring the spare replica file up to date and rename it onto ``<name>.read.duckdb``, atomically.
    The caller holds the writer lock and has closed its connection. None when there is no file."""
    if not file_backed(database) or not Path(database).exists():
        return None
    if Path(database + ".wal").exists():
        # A write-ahead log means the file alone is not the database yet (a connection is still open):
        # the replica would miss the last commits.
        raise RuntimeError(f"{database} has an unmerged write-ahead log: close its connection first")
    started, wrote_before = time.monotonic(), _wchar()
    target, files = replica_path(database), replica_files(database)
    _clear_temporaries(database)
    journal = load_journal(database)
    current = _published_index(target, files)
    spare = 0 if current is None else 1 - current
    spare_path = files[spare]
    held = journal.files.get(str(spare))
    mode, days, rows, reason = "whole copy", set[date](), 0, ""
    if held is None or not spare_path.exists():
        reason = "no earlier copy to bring up to date"
    else:
        everything, days = journal.since(held)
        if everything:
            reason = "what changed is unknown (a write outside the pipeline's writer, or one killed)"
        else:
            try:
                rows = _refresh_in_place(database, spare_path, days)
                mode = "changed days"
            except _CopyWhole as exc:
                reason = str(exc)
    if mode == "whole copy":
        days = set()
        _copy_whole(database, spare_path)
    journal.files[str(spare)] = journal.generation
    journal.prune()
    save_journal(database, journal)
    temporary = _temporary(database)
    try:
        os.link(spare_path, temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(target.parent)
    wrote_after = _wchar()
    return ReplicaCopy(
        path=target,
        bytes=target.stat().st_size,
        seconds=time.monotonic() - started,
        mode=mode,
        days=tuple(sorted(days)),
        rows=rows,
        written=None if wrote_before is None or wrote_after is None else wrote_after - wrote_before,
        reason=reason,
    )


def _copy_whole(database: str, spare: Path) -> None:
    """The whole pipeline file copied onto the spare's name (temporary name, fsync, rename)."""
    temporary = _temporary(database)
    try:
        shutil.copyfile(database, temporary)
        with duckdb.connect(str(temporary)) as conn:
            _drop_keys(conn)
        if Path(str(temporary) + ".wal").exists():
            raise RuntimeError(f"{temporary} kept a write-ahead log after its checkpoint")
        with open(temporary, "rb+") as copied:
            os.fsync(copied.fileno())
        # a log left by a refresh killed mid-way belongs to the file being replaced: never replay it
        # onto the copy (its commits are redone from the journal anyway)
        Path(str(spare) + ".wal").unlink(missing_ok=True)
        os.replace(temporary, spare)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(spare.parent)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _catalog(conn: duckdb.DuckDBPyConnection, db: str) -> list[tuple[Any, ...]]:
    """What an analyst sees of a database's layout: tables and their comments, views and their SQL,
    columns with their types, nullability, defaults and comments (not keys: see :func:`_drop_keys`)."""
    rows = conn.execute(
        f"""
        SELECT 'table', schema_name, table_name, NULL, comment::VARCHAR FROM duckdb_tables()
        WHERE database_name = {_literal(db)}
        UNION ALL
        SELECT 'view', schema_name, view_name, sql, comment::VARCHAR FROM duckdb_views()
        WHERE database_name = {_literal(db)} AND NOT internal
        UNION ALL
        SELECT 'column', schema_name, table_name || '.' || column_name,
               concat_ws(' ', column_index, data_type, is_nullable, column_default), comment::VARCHAR
        FROM duckdb_columns() WHERE database_name = {_literal(db)}
        ORDER BY ALL
        """
    ).fetchall()
    return [tuple(r) for r in rows]


_PRIMARY_KEY_CLAUSE = re.compile(r",\s*(PRIMARY\s+KEY|UNIQUE)\s*\([^)]*\)", re.IGNORECASE)
_PRIMARY_KEY_COLUMN = re.compile(r"\s+(PRIMARY\s+KEY|UNIQUE)\b", re.IGNORECASE)


def _drop_keys(conn: duckdb.DuckDBPyConnection) -> None:
    """Recreate, without their PRIMARY KEY and UNIQUE constraints, the dated tables that have them.

    DuckDB rewrites a table's whole key index at each checkpoint that follows a change to the table,
    so the ledger's key (one entry per API call ever made) would make every publication write in
    proportion to the history. Analysts' queries need no uniqueness check: the pipeline's file
    enforces it, and the replica holds its rows. Same columns, types, NOT NULL, defaults and comments.
    """
    keyed = conn.execute(
        f"""
        SELECT DISTINCT k.schema_name, k.table_name, t.sql, t.comment
        FROM duckdb_constraints() k
        JOIN duckdb_tables() t USING (database_name, schema_name, table_name)
        JOIN duckdb_columns() c USING (database_name, schema_name, table_name)
        WHERE k.database_name = current_database()
          AND k.constraint_type IN ('PRIMARY KEY', 'UNIQUE')
          AND c.column_name = {_literal(DAY_COLUMN)} AND NOT c.is_nullable
        ORDER BY ALL
        """
    ).fetchall()
    for schema, table, sql, comment in keyed:
        name = f"{_ident(schema)}.{_ident(table)}"
        keyless = _PRIMARY_KEY_COLUMN.sub("", _PRIMARY_KEY_CLAUSE.sub("", str(sql)))
        columns = conn.execute(
            "SELECT column_name, comment, is_nullable FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchall()
        conn.execute("BEGIN TRANSACTION")
        conn.execute(f"ALTER TABLE {name} RENAME TO {_ident(table + '__keyed')}")
        conn.execute(keyless)
        conn.execute(f"INSERT INTO {name} SELECT * FROM {_ident(schema)}.{_ident(table + '__keyed')}")
        conn.execute(f"DROP TABLE {_ident(schema)}.{_ident(table + '__keyed')}")
        if comment:
            conn.execute(f"COMMENT ON TABLE {name} IS {_literal(str(comment))}")
        for column, text, nullable in columns:
            if not nullable:  # a key's columns were NOT NULL by being the key: they stay so
                conn.execute(f"ALTER TABLE {name} ALTER COLUMN {_ident(str(column))} SET NOT NULL")
            if text:
                conn.execute(f"COMMENT ON COLUMN {name}.{_ident(str(column))} IS {_literal(str(text))}")
        conn.execute("COMMIT")
    conn.execute("CHECKPOINT")


def _tables(conn: duckdb.DuckDBPyConnection, db: str) -> Iterator[tuple[str, str, bool, bool]]:
    """(schema, table, refreshed by day, appended by key) for each table of ``db``."""
    rows = conn.execute(
        f"""
        SELECT t.schema_name, t.table_name,
               coalesce(bool_or(c.column_name = {_literal(DAY_COLUMN)} AND NOT c.is_nullable), false),
               coalesce(bool_or(c.column_name = {_literal(KEY_COLUMN)} AND NOT c.is_nullable), false)
        FROM duckdb_tables() t
        LEFT JOIN duckdb_columns() c
          ON c.database_name = t.database_name AND c.schema_name = t.schema_name
         AND c.table_name = t.table_name
        WHERE t.database_name = {_literal(db)}
        GROUP BY ALL ORDER BY ALL
        """
    ).fetchall()
    for schema, table, by_day, by_key in rows:
        yield str(schema), str(table), bool(by_day), bool(by_key) and not by_day


def _refresh_in_place(database: str, spare: Path, days: set[date]) -> int:
    """Delete and insert again, in one transaction, the rows of ``days`` in every dated table of the
    spare, and replace its undated tables whole; then checkpoint and close it. Returns the rows
    inserted. Raises :class:`_CopyWhole` when the spare cannot be written or its layout differs."""
    try:
        conn = duckdb.connect(str(spare), read_only=False)
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise _CopyWhole("a reader still holds the earlier copy") from None
        raise _CopyWhole(f"the earlier copy does not open: {str(exc).splitlines()[0]}") from None
    rows = 0
    try:
        own = str(conn.execute("SELECT current_database()").fetchall()[0][0])
        conn.execute(f"ATTACH {_literal(str(Path(database).resolve()))} AS {_SOURCE} (READ_ONLY)")
        from pgy_pipeline.warehouse.fileformat import file_storage_version  # it imports this module

        if file_storage_version(conn, _SOURCE) != file_storage_version(conn, own):
            raise _CopyWhole("the file's storage format changed (a conversion)")
        if _catalog(conn, _SOURCE) != _catalog(conn, own):
            raise _CopyWhole("the tables, views or comments changed (a migration)")
        day_list = ", ".join(f"DATE '{d.isoformat()}'" for d in sorted(days))
        day_filter = (
            f"{_ident(DAY_COLUMN)} BETWEEN DATE '{min(days).isoformat()}' AND DATE '{max(days).isoformat()}' "
            f"AND {_ident(DAY_COLUMN)} IN ({day_list})"
            if days
            else "false"
        )
        conn.execute("BEGIN TRANSACTION")
        for schema, table, by_day, by_key in _tables(conn, own):
            name = f"{_ident(schema)}.{_ident(table)}"
            if by_key:  # append-only: the rows the spare lacks, found by their key alone
                key = _ident(KEY_COLUMN)
                inserted = conn.execute(
                    f"INSERT INTO {_ident(own)}.{name} SELECT * FROM {_SOURCE}.{name} "
                    f"WHERE {key} NOT IN (SELECT {key} FROM {_ident(own)}.{name})"
                ).fetchall()
                rows += int(inserted[0][0]) if inserted else 0
                continue
            where = day_filter if by_day else "true"
            if where == "false":
                continue
            conn.execute(f"DELETE FROM {_ident(own)}.{name} WHERE {where}")
            inserted = conn.execute(
                f"INSERT INTO {_ident(own)}.{name} SELECT * FROM {_SOURCE}.{name} WHERE {where}"
            ).fetchall()
            rows += int(inserted[0][0]) if inserted else 0
        conn.execute("COMMIT")
        conn.execute(f"DETACH {_SOURCE}")
        conn.execute("CHECKPOINT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    if Path(str(spare) + ".wal").exists():
        raise _CopyWhole("the earlier copy kept a write-ahead log after its checkpoint")
    with open(spare, "rb+") as f:
        os.fsync(f.fileno())
    return rows


def _pages_relation(conn: duckdb.DuckDBPyConnection) -> str:
    """raw.pages, or raw.note_pages on a replica published before storage per note-day (its pages
    table); reading raw.pages spares the view's join of every item when the definitions load."""
    found = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw' AND table_name = 'pages'"
    ).fetchall()
    return "raw.pages" if found[0][0] else "raw.note_pages"


def first_snapshot_day(database: str) -> date | None:
    """The earliest snapshot date stored, read from the replica (which no writer ever waits for); None
    when there is no replica yet or it cannot be read (the caller then starts the partitions today)."""
    if not file_backed(database) or not replica_path(database).exists():
        return None
    try:
        with duckdb.connect(str(replica_path(database)), read_only=True) as conn:
            rows = conn.execute(f"SELECT min(snapshot_date) FROM {_pages_relation(conn)}").fetchall()
    except duckdb.Error:
        return None
    day = rows[0][0] if rows else None
    return day if isinstance(day, date) else None
