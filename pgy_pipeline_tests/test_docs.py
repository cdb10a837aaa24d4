"""The docs are part of the contract: they must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from pgy_pipeline.warehouse import docs

ROOT = Path(__file__).resolve().parent.parent


def test_tables_doc_is_generated_from_the_declarations_and_current():
    assert (ROOT / "docs" / "tables.md").read_text(encoding="utf-8") == docs.render(), (
        "docs/tables.md is out of date: run python -m pgy_pipeline.warehouse.docs"
    )


def test_readme_names_every_environment_variable_the_code_reads():
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "pgy_pipeline").rglob("*.py"))
    names = set(
        re.findall(
            r'(?:getenv|EnvVar|_env_or|_env_float|_env_int|env\.get)\(\s*(?:env,\s*)?"([A-Z_]+)"', code
        )
    )
    assert {"JUSTONEAPI_TOKEN", "JUSTONEAPI_BASE_URL", "PGY_DUCKDB_PATH", "JUSTONEAPI_MAX_RPS"} <= names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(n for n in names if n not in readme)
    assert not missing, f"README does not mention {missing}"
