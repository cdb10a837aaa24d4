"""The docs are part of the contract: they must match the code and the DuckDB schema."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from pgy_pipeline.storage import ensure_schema
from pgy_pipeline.tables import COLUMNS

ROOT = Path(__file__).resolve().parent.parent


def doc_columns() -> dict[str, list[tuple[str, str]]]:
    """(column, type) rows of each '## schema.table' section of docs/tables.md."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (ROOT / "docs" / "tables.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        elif current and line.startswith("| ") and not line.startswith("| column"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            sections[current].append((cells[0], cells[1]))
    return sections


def test_docs_list_every_column_of_every_table_with_its_type(tmp_path):
    docs = doc_columns()
    conn = duckdb.connect(str(tmp_path / "schema.duckdb"))
    ensure_schema(conn)
    for table, columns in COLUMNS.items():
        described = [(r[0], r[1]) for r in conn.execute(f"DESCRIBE {table}").fetchall()]
        assert described == [(n, t) for n, t, _ in columns], table
        assert docs[table] == [(n, t) for n, t, _ in columns], table


def test_readme_names_every_environment_variable_the_code_reads():
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "pgy_pipeline").glob("*.py"))
    names = set(re.findall(r'(?:getenv|EnvVar|_env_or|_env_number)\(\s*"([A-Z_]+)"', code))
    assert {"JUSTONEAPI_TOKEN", "JUSTONEAPI_BASE_URL", "PGY_DUCKDB_PATH", "JUSTONEAPI_MAX_RPS"} <= names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(n for n in names if n not in readme)
    assert not missing, f"README does not mention {missing}"
