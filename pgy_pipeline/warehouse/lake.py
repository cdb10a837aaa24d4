"""The DuckLake warehouse profile: the same tables, with the catalog in PostgreSQL and the data
files in a directory or an S3-compatible bucket, so several hosts write and read at once.

Selected by configuration alone: ``PGY_DUCKDB_PATH=ducklake:postgres:<libpq conninfo>`` plus
``PGY_LAKE_DATA_PATH=<directory or s3://bucket/prefix>`` (see README). :func:`open_lake` opens an
in-memory DuckDB, loads the extensions from the ``duckdb-ext-*`` wheels, ATTACHes the lake and
``USE``\\ s it, so every SQL file of the warehouse runs unqualified, exactly as on a DuckDB file.

What differs from one DuckDB file, and why the code is the same anyway:

* writers are not serialized: DuckLake commits optimistically, and a commit that conflicts with
  another writer's (both deleted rows of one data file, or one altered a table the other inserted
  into) fails whole. :func:`retry_on_conflict` reruns such a transaction a bounded number of times;
* readers never block writers: a reader sees the last committed snapshot;
* PRIMARY KEY / UNIQUE constraints do not exist on a lake (the migrations runner drops them there);
* small files and old snapshots accumulate: :func:`run_maintenance` merges and expires them.

The extension wheels exist only for DuckDB 1.4.4, so the lake runs in its own environment
(``pip install -e '.[lake]'``; scripts/setup.sh makes ``.venv-lake``). Nothing here is needed, or
imported beyond this module, on the embedded default.
"""

from __future__ import annotations

import importlib.util
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from pgy_pipeline.errors import LakeConflictError, LakeUnavailableError

log = logging.getLogger(__name__)

LAKE_PREFIX = "ducklake:"
LAKE_ALIAS = "lake"
T = TypeVar("T")


def is_lake(database: str) -> bool:
    """True when ``database`` (PGY_DUCKDB_PATH) names a DuckLake rather than a DuckDB file."""
    return database.startswith(LAKE_PREFIX)


_PASSWORD_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_PASSWORD_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def display_name(database: str) -> str:
    """``database`` safe to show: any password in the conninfo or URL replaced by ``***``."""
    return _PASSWORD_URL.sub(r"\1***@", _PASSWORD_KV.sub(r"\1***", database))


@dataclass(frozen=True)
class LakeSettings:
    """Where a lake's data files live and how to reach an S3-compatible store.

    Empty S3 fields mean DuckDB's defaults (AWS, virtual-host URLs, TLS). Credentials come from the
    environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) through the resource.
    """

    data_path: str = ""
    s3_endpoint: str = ""
    s3_region: str = ""
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_session_token: str = ""
    s3_url_style: str = ""
    s3_use_ssl: bool = True

    @property
    def uses_s3(self) -> bool:
        return self.data_path.startswith(("s3://", "s3a://", "gs://", "r2://")) or bool(
            self.s3_endpoint or self.s3_access_key_id
        )

    def __repr__(self) -> str:
        return (
            f"LakeSettings(data_path={self.data_path!r}, s3_endpoint={self.s3_endpoint!r}, credentials=***)"
        )


def extension_directory() -> Path:
    """The folder DuckDB loads extensions from: the one the ``duckdb-ext-*`` wheels install.

    Raises :class:`LakeUnavailableError`, naming what to install, when this DuckDB has none.
    """
    spec = importlib.util.find_spec("duckdb_ext")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    version = duckdb.__version__
    for root in roots:
        folder = Path(root) / "extensions"
        if (folder / f"v{version}").is_dir():
            return folder
    raise LakeUnavailableError(
        f"PGY_DUCKDB_PATH names a DuckLake, but this environment has DuckDB {version} without the "
        "DuckLake extension (extensions cannot be downloaded here, and the duckdb-ext-* wheels exist "
        "only for DuckDB 1.4.4). Run the lake profile from its own environment: "
        "`PGY_SETUP_LAKE=1 bash scripts/setup.sh` makes .venv-lake, or `pip install -e '.[lake]'` "
        "into a fresh venv."
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _extensions_for(database: str, settings: LakeSettings) -> list[str]:
    names = ["ducklake"]
    catalog = database.removeprefix(LAKE_PREFIX)
    if catalog.startswith("postgres:"):
        names.append("postgres")
    elif catalog.startswith("sqlite:"):
        names.append("sqlite")
    if settings.uses_s3:
        names.append("httpfs")
    return names


def _s3_secret_sql(settings: LakeSettings) -> str:
    """A temporary (in-memory) DuckDB secret for the S3-compatible store; never written anywhere."""
    options = ["TYPE s3"]
    pairs = [
        ("KEY_ID", settings.s3_access_key_id),
        ("SECRET", settings.s3_secret_access_key),
        ("SESSION_TOKEN", settings.s3_session_token),
        ("REGION", settings.s3_region),
        ("ENDPOINT", settings.s3_endpoint),
        ("URL_STYLE", settings.s3_url_style),
    ]
    options += [f"{key} {_literal(value)}" for key, value in pairs if value]
    options.append(f"USE_SSL {'true' if settings.s3_use_ssl else 'false'}")
    return f"CREATE OR REPLACE TEMPORARY SECRET pgy_lake_s3 ({', '.join(options)})"


def open_lake(
    database: str,
    settings: LakeSettings,
    *,
    read_only: bool = False,
    config: dict[str, Any] | None = None,
    attach_attempts: int = 5,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake ``database`` attached as ``lake`` and in use.

    ``read_only`` is the analysts' mode: queries see the last committed snapshot and never block or
    fail a writer. The first ATTACH of a new catalog creates its tables, and two processes doing that
    at once race inside PostgreSQL; the loser simply attaches again.
    """
    if not is_lake(database):
        raise ValueError(f"{display_name(database)} is not a ducklake: path")
    ext_dir = extension_directory()
    conn = duckdb.connect(
        ":memory:",
        config={
            "custom_user_agent": "pgy_pipeline",
            "memory_limit": "1GB",
            "extension_directory": str(ext_dir),
            **(config or {}),
        },
    )
    try:
        for name in _extensions_for(database, settings):
            try:
                conn.execute(f"LOAD {name}")
            except duckdb.Error as exc:
                raise LakeUnavailableError(
                    f"the DuckDB extension {name!r} did not load from {ext_dir}: {exc}. Install the "
                    "project's lake extra (`pip install -e '.[lake]'`)."
                ) from exc
        if settings.uses_s3:
            conn.execute(_s3_secret_sql(settings))
        options = []
        if settings.data_path and not read_only:
            if "://" not in settings.data_path:
                Path(settings.data_path).mkdir(parents=True, exist_ok=True)
            options.append(f"DATA_PATH {_literal(_with_slash(settings.data_path))}")
        if read_only:
            options.append("READ_ONLY")
        attach = f"ATTACH {_literal(database)} AS {LAKE_ALIAS}" + (
            f" ({', '.join(options)})" if options else ""
        )
        for attempt in range(1, attach_attempts + 1):
            try:
                conn.execute(attach)
                break
            except duckdb.Error as exc:
                if attempt == attach_attempts or "Failed to initialize DuckLake" not in str(exc):
                    raise LakeUnavailableError(
                        f"could not attach the lake {display_name(database)}: {display_name(str(exc))}"
                    ) from None
                time.sleep(0.1 * attempt + random.random() * 0.1)
        conn.execute(f"USE {LAKE_ALIAS}")
    except BaseException:
        conn.close()
        raise
    return conn


def _with_slash(path: str) -> str:
    return path if path.endswith("/") else path + "/"


def is_lake_connection(conn: duckdb.DuckDBPyConnection) -> bool:
    """True when the connection's current database is a DuckLake."""
    rows = conn.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    return bool(rows) and rows[0][0] == "ducklake"


def is_conflict(exc: BaseException) -> bool:
    """True for DuckLake's optimistic-concurrency failure, which a rerun of the transaction resolves."""
    return isinstance(exc, duckdb.Error) and "Transaction conflict" in str(exc)


def retry_on_conflict(
    conn: duckdb.DuckDBPyConnection,
    body: Callable[[], T],
    *,
    what: str,
    attempts: int = 8,
    base_delay_s: float = 0.05,
) -> T:
    """Run ``body`` (one whole transaction) and rerun it when DuckLake reports a commit conflict.

    A conflicting commit changes nothing, so rerunning is safe; the bound keeps a pathological
    contention from spinning forever. Other errors pass through at once. On a DuckDB file no such
    conflict arises (one writing process), so this is a plain call there.
    """
    for attempt in range(1, attempts + 1):
        try:
            return body()
        except Exception as exc:
            if not is_conflict(exc):
                raise
            try:
                conn.execute("ROLLBACK")
            except duckdb.Error:
                pass  # a failed COMMIT has already ended the transaction
            if attempt == attempts:
                raise LakeConflictError(
                    f"{what}: the lake commit conflicted with other writers {attempts} times in a row; "
                    "nothing was changed. Rerun the step (pages already fetched wait in the spool)."
                ) from exc
            delay = base_delay_s * 2 ** (attempt - 1) * (1 + random.random())
            log.warning(
                f"{what}: lake commit conflicted with another writer (attempt {attempt}/{attempts}); "
                f"retrying in {delay:.2f} s"
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class MaintenanceFigures:
    """What one maintenance pass did, for run metadata."""

    data_files_before: int
    data_files_after: int
    delete_files_before: int
    delete_files_after: int
    data_bytes_after: int
    snapshots_before: int
    snapshots_after: int
    snapshots_expired: int
    files_cleaned: int
    orphans_deleted: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _file_counts(conn: duckdb.DuckDBPyConnection) -> tuple[int, int, int]:
    row = conn.execute(
        f"SELECT coalesce(sum(file_count), 0), coalesce(sum(delete_file_count), 0), "
        f"coalesce(sum(file_size_bytes), 0) FROM ducklake_table_info({_literal(LAKE_ALIAS)})"
    ).fetchall()[0]
    return int(row[0]), int(row[1]), int(row[2])


def _snapshot_count(conn: duckdb.DuckDBPyConnection) -> int:
    return int(
        conn.execute(f"SELECT count(*) FROM ducklake_snapshots({_literal(LAKE_ALIAS)})").fetchall()[0][0]
    )


def run_maintenance(
    conn: duckdb.DuckDBPyConnection,
    *,
    expire_older_than: timedelta = timedelta(days=7),
    cleanup_older_than: timedelta = timedelta(hours=1),
    orphan_older_than: timedelta = timedelta(days=1),
) -> MaintenanceFigures:
    """Merge small data files, expire old snapshots, delete the files no snapshot needs any more.

    Safe while runs write: each call is its own transaction and is retried on a conflict. Files an
    expired snapshot leaves are deleted ``cleanup_older_than`` after it expired, so a query that
    started on that snapshot just before can finish. Orphaned
    files (written by a run killed before its commit) are deleted only when older than
    ``orphan_older_than``, so a file a live run is about to commit is never taken.
    """
    files_before, deletes_before, _ = _file_counts(conn)
    snaps_before = _snapshot_count(conn)
    alias = _literal(LAKE_ALIAS)
    retry_on_conflict(
        conn,
        lambda: conn.execute(f"CALL ducklake_merge_adjacent_files({alias})").fetchall(),
        what="lake maintenance (merge files)",
    )
    expire_s = int(expire_older_than.total_seconds())
    expired = retry_on_conflict(
        conn,
        lambda: conn.execute(
            f"SELECT count(*) FROM ducklake_expire_snapshots({alias}, "
            f"older_than => now() - INTERVAL {expire_s} SECOND)"
        ).fetchall()[0][0],
        what="lake maintenance (expire snapshots)",
    )
    cleanup_s = int(cleanup_older_than.total_seconds())
    cleaned = conn.execute(
        f"SELECT count(*) FROM ducklake_cleanup_old_files({alias}, "
        f"older_than => now() - INTERVAL {cleanup_s} SECOND)"
    ).fetchall()[0][0]
    orphan_s = int(orphan_older_than.total_seconds())
    orphans = conn.execute(
        f"SELECT count(*) FROM ducklake_delete_orphaned_files({alias}, "
        f"older_than => now() - INTERVAL {orphan_s} SECOND)"
    ).fetchall()[0][0]
    files_after, deletes_after, bytes_after = _file_counts(conn)
    return MaintenanceFigures(
        data_files_before=files_before,
        data_files_after=files_after,
        delete_files_before=deletes_before,
        delete_files_after=deletes_after,
        data_bytes_after=bytes_after,
        snapshots_before=snaps_before,
        snapshots_after=_snapshot_count(conn),
        snapshots_expired=int(expired),
        files_cleaned=int(cleaned),
        orphans_deleted=int(orphans),
    )
