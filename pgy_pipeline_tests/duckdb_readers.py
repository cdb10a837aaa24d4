"""The analysts' DuckDBs, for tests that open the pipeline's files with them: the ``duckdb`` command
line of the ``duckdb-cli`` package (a test dependency: the newest on PyPI is 1.5.x), and DuckDB 1.4
LTS through the lake profile's environment (``.venv-lake``, DuckDB 1.4.4), each in its own process.

Each reader counts the rows of every table and view of a file, selecting every column (``SELECT *``),
so a view whose SQL an older engine cannot parse or bind fails here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CLI_ENV = "PGY_DUCKDB_CLI"  # a duckdb binary to use instead of the environment's
LAKE_PYTHON = PROJECT_ROOT / ".venv-lake" / "bin" / "python"


def relations(path: Path | str) -> list[str]:
    """Every table and view of the file, as ``schema.name``, read with this environment's DuckDB."""
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute(
            "SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "UNION ALL SELECT schema_name || '.' || view_name FROM duckdb_views() "
            "WHERE database_name = current_database() AND NOT internal ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def counts_here(path: Path | str, names: list[str]) -> dict[str, int]:
    """Rows of each relation, as this environment's DuckDB reads them."""
    with duckdb.connect(str(path), read_only=True) as conn:
        return {
            n: int(conn.execute(f"SELECT count(*) FROM (SELECT * FROM {n})").fetchall()[0][0]) for n in names
        }


def duckdb_cli() -> str:
    """The ``duckdb`` binary of the ``duckdb-cli`` package (or ``$PGY_DUCKDB_CLI``).

    Missing, the test is skipped on a developer's machine and fails in CI, where the test extra
    installs it.
    """
    candidates = [
        os.environ.get(CLI_ENV, ""),
        str(Path(sys.executable).parent / "duckdb"),
        shutil.which("duckdb"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    reason = (
        "no duckdb command line found: `pip install -e '.[test]'` installs the duckdb-cli package "
        f"(or set {CLI_ENV} to a duckdb binary)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def run_cli(cli: str, path: Path | str, sql: str) -> subprocess.CompletedProcess[str]:
    """``duckdb -readonly <path> <sql>`` as an analyst types it, with CSV output and no ~/.duckdbrc."""
    with tempfile.TemporaryDirectory() as home:
        return subprocess.run(
            [cli, "-readonly", "-csv", "-noheader", str(path), sql],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": home},
        )


def cli_rows(cli: str, path: Path | str, sql: str) -> list[list[str]]:
    """The rows ``sql`` returns in the command line; fails with its error text."""
    done = run_cli(cli, path, sql)
    assert done.returncode == 0 and not done.stderr.strip(), f"duckdb CLI: {done.stderr or done.stdout}"
    return list(csv.reader(io.StringIO(done.stdout)))


def cli_version(cli: str) -> str:
    return subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()


def counts_in_cli(cli: str, path: Path | str, names: list[str]) -> dict[str, int]:
    """Rows of each relation, read by the command line in one session."""
    sql = " UNION ALL ".join(f"SELECT '{n}', count(*) FROM (SELECT * FROM {n})" for n in names)
    return {name: int(n) for name, n in cli_rows(cli, path, sql)}


_COUNT_SCRIPT = """
import json, sys
import duckdb
path, names = sys.argv[1], json.loads(sys.argv[2])
conn = duckdb.connect(path, read_only=True)
counts = {n: conn.execute(f"SELECT count(*) FROM (SELECT * FROM {n})").fetchall()[0][0] for n in names}
conn.close()
print(json.dumps({"version": duckdb.__version__, "counts": counts}))
"""


def lake_python() -> Path:
    """The lake profile's interpreter (DuckDB 1.4.4); skips, saying why, where it was not made."""
    if not LAKE_PYTHON.exists():
        pytest.skip(
            f"{LAKE_PYTHON} does not exist, so DuckDB 1.4 is not at hand: `PGY_SETUP_LAKE=1 bash "
            "scripts/setup.sh` makes it (scripts/test.sh does)"
        )
    return LAKE_PYTHON


def in_duckdb_1_4(script: str, *args: str, cwd: Path) -> dict[str, Any]:
    """Run ``script`` in the lake environment's Python (DuckDB 1.4.4); its last line of output, JSON."""
    done = subprocess.run(
        [str(lake_python()), "-c", script, *args], capture_output=True, text=True, timeout=180, cwd=cwd
    )
    assert done.returncode == 0, f"DuckDB 1.4: {done.stderr[-2000:]}"
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def counts_in_duckdb_1_4(path: Path | str, names: list[str]) -> tuple[str, dict[str, int]]:
    """(DuckDB version, rows of each relation) as the lake environment's DuckDB reads the file."""
    # run beside the file: the script imports only duckdb, never this checkout
    answer = in_duckdb_1_4(_COUNT_SCRIPT, str(path), json.dumps(names), cwd=Path(path).parent)
    return answer["version"], answer["counts"]
