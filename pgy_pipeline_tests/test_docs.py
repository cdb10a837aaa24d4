"""The docs are part of the contract: they must match the code."""

from __future__ import annotations

import re
from pathlib import Path

from pgy_pipeline.api.transport import CODE_TABLE
from pgy_pipeline.warehouse import docs
from pgy_pipeline.warehouse.pugongying import FIELD_MAPPINGS
from pgy_pipeline.warehouse.tables import relation

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


def test_the_pugongying_mapping_names_only_declared_columns_and_covers_the_fields():
    named = [rc for m in FIELD_MAPPINGS for rc in m.qualified_columns()]
    assert named
    for relation_name, column in named:
        relation(relation_name).column(column)  # KeyError names a column missing from the schema
    fields = " ".join(m.pugongying for m in FIELD_MAPPINGS)
    for field in [
        "readMedian",
        "interactionMedian",
        "mEngagementNum",
        "interactionRate",
        "hundredLikePercent",
        "thousandLikePercent",
        "noteNumber",
        "videoNoteNumber",
        "daily",
        "cooperation",
    ]:
        assert field in fields, field
    rendered = docs.render()
    assert "## Pugongying's figures and ours" in rendered
    for m in FIELD_MAPPINGS:
        assert m.pugongying in rendered


def test_readme_failure_table_names_every_business_code_and_its_error():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| outcome | error |") : readme.index("The **guard** carries")]
    for code, (cls, _) in CODE_TABLE.items():
        assert re.search(rf"\b{code}\b", table), code
        assert cls.__name__ in table, cls.__name__
