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

On the lake profile (:mod:`pgy_pipeline.warehouse.lake`) the same migrations run with two
differences: PRIMARY KEY constraints, which DuckLake does not have, are dropped from their SQL; and
several hosts may migrate at once without a file lock, so the transaction first writes a comment on
``meta.schema_migrations``: of two concurrent upgrades one commit conflicts, is rerun, and then
finds the work done. Derived objects are rewritten on a lake only when they differ from the
declarations, because every rewrite is a schema change that would make concurrent writers' commits
conflict.

Migration 1 is the layout of release 0.1.0 (which had no migration table), written with
``IF NOT EXISTS`` so that a 0.1.0 file is adopted as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources

import duckdb

from pgy_pipeline import clock
from pgy_pipeline.errors import MigrationError, SchemaVersionError
from pgy_pipeline.warehouse.lake import display_name, is_lake_connection, retry_on_conflict
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
    return display_name(str(rows[0][0])) if rows else ""


_PRIMARY_KEY_CLAUSE = re.compile(r",\s*PRIMARY\s+KEY\s*\([^)]*\)", re.IGNORECASE)
_PRIMARY_KEY_COLUMN = re.compile(r"\s+PRIMARY\s+KEY\b", re.IGNORECASE)
# DuckLake adds columns with a DEFAULT but without constraints ("Adding columns with constraints not
# yet supported"): the lake's added columns may hold NULL where a file's may not.
_ADDED_NOT_NULL = re.compile(r"(ADD\s+COLUMN\s[^;]*?)\s+NOT\s+NULL\b", re.IGNORECASE)
# DuckLake 0.3 (DuckDB 1.4.4) records a column twice after ALTER COLUMN ... DROP DEFAULT, and the
# lake then fails to attach ("Column with name ... already exists"): the lake keeps the default.
_DROP_DEFAULT = re.compile(r"ALTER\s+TABLE\s[^;]*?ALTER\s+COLUMN\s[^;]*?DROP\s+DEFAULT\s*;", re.IGNORECASE)


def lake_sql(sql: str) -> str:
    """``sql`` without what DuckLake does not support: PRIMARY KEY constraints, NOT NULL on an added
    column, and dropping a column's default."""
    sql = _PRIMARY_KEY_COLUMN.sub("", _PRIMARY_KEY_CLAUSE.sub("", sql))
    return _DROP_DEFAULT.sub("", _ADDED_NOT_NULL.sub(r"\1", sql))


_DROP_NOT_NULL = re.compile(
    r'ALTER\s+TABLE\s+(\w+)\.(\w+)\s+ALTER\s+COLUMN\s+"?(\w+)"?\s+DROP\s+NOT\s+NULL\s*;', re.IGNORECASE
)


def _lake_drop_not_null(conn: duckdb.DuckDBPyConnection, sql: str) -> str:
    """``sql`` without the DROP NOT NULL of columns that are nullable already: on the lake a column
    added later never got its NOT NULL (see ``_ADDED_NOT_NULL``), and DuckLake refuses to drop what
    is not there."""

    def keep(match: re.Match[str]) -> str:
        rows = conn.execute(
            "SELECT is_nullable FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ? AND column_name = ?",
            [match.group(1), match.group(2), match.group(3)],
        ).fetchall()
        return "" if rows and rows[0][0] else match.group(0)

    return _DROP_NOT_NULL.sub(keep, sql)


def migrate(conn: duckdb.DuckDBPyConnection, migrations: list[Migration] | None = None) -> list[int]:
    """Bring the open file up to the code's layout; returns the versions applied (often none).

    Everything happens in one transaction: a failure leaves the file exactly as it was.
    """
    steps = MIGRATIONS if migrations is None else migrations
    if not is_lake_connection(conn):
        return _migrate(conn, steps, lake=False)
    # On a lake each migration commits on its own: DuckLake (0.3, DuckDB 1.4.4) drops other tables
    # too when a transaction drops a table created in that same transaction, as migration 9 does to a
    # new lake's raw.note_pages. A failed step rolls back itself alone; the lake stays at the version
    # before it, as a file would stay at its own.
    applied: list[int] = []
    for n in range(1, len(steps) + 1):
        applied += _migrate_lake_upto(conn, steps[:n], derive=n == len(steps), known=steps[-1].version)
    return applied


def _migrate_lake_upto(
    conn: duckdb.DuckDBPyConnection, steps: list[Migration], *, derive: bool, known: int
) -> list[int]:
    return retry_on_conflict(
        conn, lambda: _migrate(conn, steps, lake=True, derive=derive, known=known), what="schema migration"
    )


def _as_is(sql: str) -> str:
    return sql


def _migrate(
    conn: duckdb.DuckDBPyConnection,
    steps: list[Migration],
    *,
    lake: bool,
    derive: bool = True,
    known: int | None = None,
) -> list[int]:
    """Apply ``steps`` in one transaction; ``known``: the newest version this code knows, when ``steps``
    stops short of it (a lake's step-by-step upgrade)."""
    latest = known if known is not None else (steps[-1].version if steps else 0)
    database = _database_path(conn)
    dialect: Callable[[str], str] = lake_sql if lake else _as_is
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(dialect(_BOOTSTRAP))
        row = conn.execute("SELECT max(version) FROM meta.schema_migrations").fetchall()[0][0]
        version = int(row) if row is not None else 0
        if version > latest:
            raise SchemaVersionError(
                f"the DuckDB file {database} has schema version {version}, written by a newer release of "
                f"pgy_pipeline; this code knows versions up to {latest}. Upgrade pgy_pipeline (or point "
                "PGY_DUCKDB_PATH at another file); the file was not changed."
            )
        applied: list[int] = []
        if lake and steps and version < steps[-1].version:
            # The claim: a concurrent upgrade writes the same table's comment, so one commit conflicts.
            conn.execute(f"COMMENT ON TABLE meta.schema_migrations IS 'upgrading to version {latest}'")
        for step in steps:
            if step.version <= version:
                continue
            try:
                conn.execute(_lake_drop_not_null(conn, dialect(step.sql)) if lake else step.sql)
            except duckdb.Error as exc:
                raise MigrationError(
                    f"migration {step.version} ({step.description}) failed: {exc}. The upgrade was rolled "
                    f"back; the file {database} stays at schema version {version}."
                ) from exc
            conn.execute(
                "INSERT INTO meta.schema_migrations (version, description, applied_at, package_version) "
                "VALUES (?, ?, ?, ?)",
                [step.version, step.description, clock.now().replace(tzinfo=None), _package_version()],
            )
            applied.append(step.version)
        if derive and (applied or (database not in _derived_done and not (lake and derived_current(conn)))):
            apply_derived(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    # Outside the except: a failed COMMIT has ended the transaction already (on a lake, a conflict
    # that the caller reruns).
    conn.execute("COMMIT")
    if derive:
        _derived_done.add(database)
    return applied


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Make the open file current: migrations, views and column comments (see :func:`migrate`)."""
    migrate(conn)


def apply_derived(conn: duckdb.DuckDBPyConnection, relations: tuple[Relation, ...] = RELATIONS) -> None:
    """Recreate every view and every table, view and column comment from the declarations."""
    lake = is_lake_connection(conn)
    for rel in relations:
        if rel.kind == "view":
            conn.execute(sql_file("views", rel.view_sql))
    for rel in relations:
        conn.execute(
            f"COMMENT ON {'VIEW' if rel.kind == 'view' else 'TABLE'} {rel.name} IS {_literal(rel.description)}"
        )
        if rel.kind == "view" and lake:
            continue  # DuckLake keeps no column comments on views (docs/tables.md has them)
        for col in rel.columns:
            text = col.description + (f" Unit: {col.unit}." if col.unit else "")
            conn.execute(f"COMMENT ON COLUMN {rel.name}.{quote_ident(col.name)} IS {_literal(text)}")


def _view_body(create_sql: str) -> str:
    """The query of a ``CREATE VIEW name AS query`` as DuckDB prints it back."""
    return create_sql.split(" AS ", 1)[1].strip().rstrip(";") if " AS " in create_sql else create_sql


def derived_current(conn: duckdb.DuckDBPyConnection, relations: tuple[Relation, ...] = RELATIONS) -> bool:
    """True when every view and comment in the current database already matches the declarations.

    A view's stored query is compared with the same file's query as DuckDB prints it, got by
    creating it as a temporary view (which touches nothing shared).
    """
    stored_views = dict(
        conn.execute(
            "SELECT schema_name || '.' || view_name, sql FROM duckdb_views() "
            "WHERE database_name = current_database()"
        ).fetchall()
    )
    comments = {
        (r[0], r[1]): r[2]
        for r in conn.execute(
            "SELECT schema_name || '.' || table_name, NULL, comment FROM duckdb_tables() "
            "WHERE database_name = current_database() UNION ALL "
            "SELECT schema_name || '.' || view_name, NULL, comment FROM duckdb_views() "
            "WHERE database_name = current_database() UNION ALL "
            "SELECT schema_name || '.' || table_name, column_name, comment FROM duckdb_columns() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }
    for rel in relations:
        if comments.get((rel.name, None)) != rel.description:
            return False
        for col in rel.columns if rel.kind == "table" else ():
            text = col.description + (f" Unit: {col.unit}." if col.unit else "")
            if comments.get((rel.name, col.name)) != text:
                return False
        if rel.kind == "view":
            if rel.name not in stored_views:
                return False
            probe = f"_pgy_view_probe_{rel.name.replace('.', '_')}"
            text = re.sub(
                rf"CREATE\s+OR\s+REPLACE\s+VIEW\s+{re.escape(rel.name)}\b",
                f"CREATE OR REPLACE TEMP VIEW {probe}",
                sql_file("views", rel.view_sql),
                count=1,
                flags=re.IGNORECASE,
            )
            conn.execute(text)
            try:
                expected = conn.execute(
                    "SELECT sql FROM duckdb_views() WHERE database_name = 'temp' AND view_name = ?", [probe]
                ).fetchall()
            finally:
                conn.execute(f"DROP VIEW IF EXISTS temp.main.{probe}")
            if not expected or _view_body(expected[0][0]) != _view_body(stored_views[rel.name]):
                return False
    return True


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
