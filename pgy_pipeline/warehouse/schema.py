"""The warehouse's versioned schema: ordered migrations, then the views and comments derived from
the declarations in :mod:`pgy_pipeline.warehouse.tables`.

Upgrading the package must never break a user's DuckDB file or change it silently, so:

* ``meta.schema_migrations`` records each migration applied (version, description, time);
* the migrations in ``sql/migrations/NNNN_<what>.sql`` are applied in order, all of them in one
  transaction, the first time the pipeline opens a file for writing; a failed migration rolls the
  whole upgrade back and the error names the step, so the file stays at its old version;
* DuckDB lets one process write a file at a time, and the version is read inside the transaction,
  so two processes opening an old file at once apply each migration once;
* a file written by a newer release than the code is refused, naming both versions;
* views and ``COMMENT ON`` descriptions are derived objects: they are recreated from the
  declarations whenever a migration ran, and once per process per file otherwise.

Migration 1 is the layout of release 0.1.0 (which had no migration table), written with
``IF NOT EXISTS`` so that a 0.1.0 file is adopted as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata, resources

import duckdb

from pgy_pipeline.errors import MigrationError, SchemaVersionError
from pgy_pipeline.warehouse.sql_files import sql_file
from pgy_pipeline.warehouse.tables import RELATIONS, Relation, quote_ident

_MIGRATION_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.schema_migrations (
    "version" INTEGER NOT NULL,
    "description" VARCHAR NOT NULL,
    "applied_at" TIMESTAMP NOT NULL,
    "package_version" VARCHAR NOT NULL,
    PRIMARY KEY ("version")
);
"""


@dataclass(frozen=True)
class Migration:
    """One step of the schema's history."""

    version: int
    description: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    folder = resources.files("pgy_pipeline.warehouse").joinpath("sql", "migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match is None:
            continue
        text = entry.read_text(encoding="utf-8")
        first = text.splitlines()[0] if text else ""
        description = first.removeprefix("--").strip() or match.group(2).replace("_", " ")
        found.append(Migration(int(match.group(1)), description, text))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration files must be numbered 1..n without gaps, found {versions}")
    return found


MIGRATIONS: list[Migration] = load_migrations()
LATEST_VERSION: int = MIGRATIONS[-1].version


def _package_version() -> str:
    try:
        return metadata.version("pgy_pipeline")
    except metadata.PackageNotFoundError:
        return "unknown"


def file_version(conn: duckdb.DuckDBPyConnection) -> int | None:
    """The layout version of the open file: None for an empty file, 0 for a 0.1.0 file."""
    has_table = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' AND table_name = 'schema_migrations'"
        " AND database_name = current_database()"
    ).fetchall()[0][0]
    if has_table:
        row = conn.execute("SELECT max(version) FROM meta.schema_migrations").fetchall()[0][0]
        return int(row) if row is not None else 0
    legacy = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'raw' AND table_name = 'note_pages'"
        " AND database_name = current_database()"
    ).fetchall()[0][0]
    return 0 if legacy else None


_derived_done: set[str] = set()


def _database_path(conn: duckdb.DuckDBPyConnection) -> str:
    rows = conn.execute(
        "SELECT coalesce(path, database_name) FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    return str(rows[0][0]) if rows else ""


def migrate(conn: duckdb.DuckDBPyConnection, migrations: list[Migration] | None = None) -> list[int]:
    """Bring the open file up to the code's layout; returns the versions applied (often none).

    Everything happens in one transaction: a failure leaves the file exactly as it was.
    """
    steps = MIGRATIONS if migrations is None else migrations
    latest = steps[-1].version if steps else 0
    database = _database_path(conn)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(_BOOTSTRAP)
        row = conn.execute("SELECT max(version) FROM meta.schema_migrations").fetchall()[0][0]
        version = int(row) if row is not None else 0
        if version > latest:
            raise SchemaVersionError(
                f"the DuckDB file {database} has schema version {version}, written by a newer release of "
                f"pgy_pipeline; this code knows versions up to {latest}. Upgrade pgy_pipeline (or point "
                "PGY_DUCKDB_PATH at another file); the file was not changed."
            )
        applied: list[int] = []
        for step in steps:
            if step.version <= version:
                continue
            try:
                conn.execute(step.sql)
            except duckdb.Error as exc:
                raise MigrationError(
                    f"migration {step.version} ({step.description}) failed: {exc}. The upgrade was rolled "
                    f"back; the file {database} stays at schema version {version}."
                ) from exc
            conn.execute(
                "INSERT INTO meta.schema_migrations (version, description, applied_at, package_version) "
                "VALUES (?, ?, ?, ?)",
                [step.version, step.description, datetime.now(UTC).replace(tzinfo=None), _package_version()],
            )
            applied.append(step.version)
        if applied or database not in _derived_done:
            apply_derived(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    _derived_done.add(database)
    return applied


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Make the open file current: migrations, views and column comments (see :func:`migrate`)."""
    migrate(conn)


def apply_derived(conn: duckdb.DuckDBPyConnection, relations: tuple[Relation, ...] = RELATIONS) -> None:
    """Recreate every view and every table, view and column comment from the declarations."""
    for rel in relations:
        if rel.kind == "view":
            conn.execute(sql_file("views", rel.view_sql))
    for rel in relations:
        conn.execute(
            f"COMMENT ON {'VIEW' if rel.kind == 'view' else 'TABLE'} {rel.name} IS {_literal(rel.description)}"
        )
        for col in rel.columns:
            text = col.description + (f" Unit: {col.unit}." if col.unit else "")
            conn.execute(f"COMMENT ON COLUMN {rel.name}.{quote_ident(col.name)} IS {_literal(text)}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
