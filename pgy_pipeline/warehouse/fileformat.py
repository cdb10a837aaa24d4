"""The DuckDB file's storage format: one that every DuckDB from 1.1 on opens, whichever DuckDB writes it.

DuckDB 2.0 creates a file in its own storage format (``v2.0.0``) unless told otherwise, and no
DuckDB 1.x opens that: the ``duckdb-cli`` 1.5 on PyPI, DuckDB 1.4 LTS (the lake profile's release)
and BI tools that bundle a 1.x engine refuse it ("Trying to read a database file with version
number 69, but we can only read versions between 64 and 68"). A file's format is chosen when it is
created and kept for its whole life, whatever DuckDB opens it later. So:

* every file the pipeline creates is created in :data:`STORAGE_VERSION` (``storage.connect`` passes
  :func:`storage_config`); DuckDB records it in the file and keeps writing that format into it;
* a file created in a newer format (by an earlier release of the pipeline on DuckDB 2.0) is converted
  the first time the pipeline opens it for writing (:func:`convert_in_place`), under the DuckDB file
  lock: copied whole with ``COPY FROM DATABASE`` into a new file of the compatible format, checked
  table by table (layout, comments, constraints, row counts), and renamed into place atomically. The
  old file stays beside it as ``<name>.storage-<old format>.bak``. Schema migrations are rows and
  tables like any other, so the schema version is carried over as it was. The read replica's files
  are whole copies of the file whenever its format changed (``replica.py`` compares them), so they
  are in the compatible format from the next publication on.

``v1.1.0`` gives storage version 64 (DuckDB names it ``v1.0.0+``), the format DuckDB 1.x itself
writes by default. Measured here on files the pipeline wrote with DuckDB 2.0.1: they open, and every
table and view answers, in DuckDB 1.1.3, 1.2.2, 1.3.2, 1.4.4, 1.5.5 and the ``duckdb`` 1.5.6 command
line (1.0.0 cannot read the column comments); a typical write, the replica's copy and a query take
the same time as in the v2.0.0 format, and the file is about 2% larger (docs/architecture.md, *The
DuckDB file's format*).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pgy_pipeline.errors import StorageFormatError
from pgy_pipeline.warehouse.replica import fsync_path

#: The ``storage_compatibility_version`` every file is created with: the oldest DuckDB that opens it.
STORAGE_VERSION = "v1.1.0"
#: In words, for messages and docs.
READABLE_BY = "DuckDB 1.1 and later (1.4 LTS, 1.5, 2.0)"
#: How DuckDB names a file's format when it cannot read it (``IO Error: Trying to read a database
#: file with version number 69, but we can only read versions between 64 and 68``).
UNREADABLE_FORMAT = "Trying to read a database file with version number"

_ALIAS = "pgy_storage_conversion"
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)\+?")


def storage_config() -> dict[str, str]:
    """The connection setting that creates a new file in :data:`STORAGE_VERSION` (an existing file
    keeps the format it was created with)."""
    return {"storage_compatibility_version": STORAGE_VERSION}


def _version_tuple(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _tags(value: Any) -> Mapping[str, Any]:
    """DuckDB hands a MAP back as a dict; some releases as ``{'key': [...], 'value': [...]}``."""
    if not isinstance(value, dict):
        return {}
    if set(value) == {"key", "value"} and isinstance(value["key"], list):
        return dict(zip(value["key"], value["value"], strict=False))
    return value


def file_storage_version(conn: duckdb.DuckDBPyConnection, database_name: str | None = None) -> str | None:
    """The storage format of an attached database as DuckDB names it (``v1.0.0+``, ``v2.0.0+``);
    the connection's current database by default. None where DuckDB does not say (in memory)."""
    rows = conn.execute(
        "SELECT tags FROM duckdb_databases() WHERE database_name = coalesce(?, current_database())",
        [database_name],
    ).fetchall()
    version = _tags(rows[0][0]).get("storage_version") if rows else None
    return str(version) if version else None


def needs_conversion(version: str | None) -> bool:
    """True for a format newer than :data:`STORAGE_VERSION`, which older DuckDBs cannot open."""
    parsed = _version_tuple(version) if version else None
    target = _version_tuple(STORAGE_VERSION)
    return parsed is not None and target is not None and parsed > target


@dataclass(frozen=True)
class Conversion:
    """One file converted to the compatible format."""

    database: str
    old_version: str
    new_version: str
    backup: Path
    tables: int
    rows: int
    seconds: float

    def message(self) -> str:
        return (
            f"converted the DuckDB file {self.database} from storage format {self.old_version.rstrip('+')} "
            f"(which only DuckDB 2.0 opens) to {self.new_version.rstrip('+')}, which {READABLE_BY} open: "
            f"{self.tables} tables "
            f"and {self.rows} rows, every one kept, in {self.seconds:.1f} s. The file as it was is kept "
            f"as {self.backup}; delete it once you no longer need it."
        )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _catalog(conn: duckdb.DuckDBPyConnection, db: str) -> dict[str, list[tuple[Any, ...]]]:
    """What a copy must keep of database ``db``: relations, columns, comments, constraints."""
    queries = {
        "tables": "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = ?",
        "views": "SELECT schema_name, view_name, comment FROM duckdb_views() "
        "WHERE database_name = ? AND NOT internal",
        "columns": "SELECT schema_name, table_name, column_name, data_type, is_nullable, column_default, "
        "comment FROM duckdb_columns() WHERE database_name = ?",
        "constraints": "SELECT schema_name, table_name, constraint_type, constraint_text "
        "FROM duckdb_constraints() WHERE database_name = ?",
        "sequences": "SELECT schema_name, sequence_name FROM duckdb_sequences() WHERE database_name = ?",
        "macros": "SELECT DISTINCT schema_name, function_name FROM duckdb_functions() "
        "WHERE database_name = ? AND NOT internal",
    }
    return {what: sorted(conn.execute(sql, [db]).fetchall(), key=repr) for what, sql in queries.items()}


def _row_counts(conn: duckdb.DuckDBPyConnection, db: str, tables: list[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for schema, table in tables:
        rows = conn.execute(f"SELECT count(*) FROM {_ident(db)}.{_ident(schema)}.{_ident(table)}").fetchall()
        counts[f"{schema}.{table}"] = int(rows[0][0])
    return counts


def _check_copy(conn: duckdb.DuckDBPyConnection, source: str, copy: str) -> tuple[int, int]:
    """Compare the copy with the source; returns (tables, rows) or raises naming the first difference."""
    before, after = _catalog(conn, source), _catalog(conn, copy)
    for what, rows in before.items():
        missing = [r for r in rows if r not in after[what]]
        extra = [r for r in after[what] if r not in rows]
        if missing or extra:
            raise StorageFormatError(
                f"the copy's {what} differ from the file's: missing {missing[:3]}, unexpected {extra[:3]}"
            )
    tables = [(r[0], r[1]) for r in before["tables"]]
    counts, copied = _row_counts(conn, source, tables), _row_counts(conn, copy, tables)
    for table, n in counts.items():
        if copied[table] != n:
            raise StorageFormatError(f"the copy of {table} has {copied[table]} rows, the file {n}")
    return len(tables), sum(counts.values())


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(str(path) + ".wal").unlink(missing_ok=True)


def backup_path(database: str, old_version: str) -> Path:
    """``data/pgy.duckdb`` -> ``data/pgy.duckdb.storage-v2.0.0.bak`` (numbered if that exists)."""
    path = Path(database)
    label = old_version.rstrip("+")
    candidate = path.with_name(f"{path.name}.storage-{label}.bak")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.storage-{label}.{n}.bak")
    return candidate


def convert_in_place(conn: duckdb.DuckDBPyConnection, database: str) -> Conversion:
    """Rewrite the file ``database``, open read-write on ``conn``, in :data:`STORAGE_VERSION`.

    ``conn`` holds DuckDB's lock on the file throughout, so no other process writes it meanwhile.
    The copy is made beside the file, checked, fsynced; then the file is hard-linked to its backup
    name and the copy renamed onto it, so the name always points at a whole database: a process that
    opens it meanwhile finds the old one locked and waits, and after the rename opens the new one.
    The caller closes ``conn`` (it still reads the old file, now the backup) and opens the file
    again. Any failure before the rename removes the copy and leaves the file exactly as it was.
    Needs free disk for one more copy of the file.
    """
    started = time.monotonic()
    path = Path(database)
    source = str(conn.execute("SELECT current_database()").fetchall()[0][0])
    old_version = file_storage_version(conn) or "unknown"
    temporary = path.with_name(f".{path.name}.storage-conversion.tmp")
    _remove(temporary)  # left by a process killed mid-conversion
    try:
        conn.execute("CHECKPOINT")
        wal = Path(database + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StorageFormatError(f"{wal} is still there after a checkpoint")
        target = f"(STORAGE_VERSION {_literal(STORAGE_VERSION)})"
        conn.execute(f"ATTACH {_literal(str(temporary))} AS {_ALIAS} {target}")
        try:
            conn.execute(f"COPY FROM DATABASE {_ident(source)} TO {_ALIAS}")
            tables, rows = _check_copy(conn, source, _ALIAS)
            conn.execute(f"CHECKPOINT {_ALIAS}")
            new_version = file_storage_version(conn, _ALIAS) or STORAGE_VERSION
        finally:
            conn.execute(f"DETACH {_ALIAS}")
        if needs_conversion(new_version):
            raise StorageFormatError(f"the copy came out in format {new_version}, not {STORAGE_VERSION}")
        fsync_path(temporary)
    except (duckdb.Error, OSError, StorageFormatError) as exc:
        _remove(temporary)
        raise StorageFormatError(
            f"could not convert the DuckDB file {database} from storage format {old_version} to "
            f"{STORAGE_VERSION} (which {READABLE_BY} open): {exc}. The file was not changed and the "
            "pipeline still uses it; only DuckDB 2.0 opens it until it is converted. Converting needs "
            "free disk for one more copy of the file; the next write tries again."
        ) from exc
    except BaseException:
        _remove(temporary)
        raise
    backup = backup_path(database, old_version)
    try:
        try:
            os.link(path, backup)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(path, backup)
            fsync_path(backup)
    except OSError as exc:
        _remove(temporary)
        backup.unlink(missing_ok=True)
        raise StorageFormatError(
            f"could not keep a backup of the DuckDB file {database} as {backup} before converting it: "
            f"{exc}. The file was not changed; the next write tries again."
        ) from exc
    os.replace(temporary, path)
    fsync_path(path.parent)
    return Conversion(
        database=database,
        old_version=old_version,
        new_version=new_version,
        backup=backup,
        tables=tables,
        rows=rows,
        seconds=time.monotonic() - started,
    )
