"""The package's layers import downward only: api, then warehouse, then orchestration."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pgy_pipeline"

# layer -> what its modules must never import (top-level package names or pgy_pipeline subpackages)
FORBIDDEN = {
    "api": {"dagster", "dagster_duckdb", "duckdb", "pgy_pipeline.warehouse", "pgy_pipeline.orchestration"},
    "warehouse": {"dagster", "dagster_duckdb", "pgy_pipeline.orchestration"},
    "simulator": {
        "dagster",
        "duckdb",
        "httpx",
        "pgy_pipeline.api",
        "pgy_pipeline.warehouse",
        "pgy_pipeline.orchestration",
    },
}


# The shared modules at the package's top level, which every layer may import: they import no layer.
SHARED = ("errors.py", "clock.py", "locks.py")
SHARED_FORBIDDEN = {
    "dagster",
    "dagster_duckdb",
    "duckdb",
    "httpx",
    "pgy_pipeline.api",
    "pgy_pipeline.warehouse",
    "pgy_pipeline.orchestration",
}


def imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violates(name: str, forbidden: set[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def test_each_layer_imports_only_the_layers_below_it():
    problems = []
    for layer, forbidden in FORBIDDEN.items():
        files = sorted((PACKAGE / layer).rglob("*.py"))
        assert files, layer
        for path in files:
            for name in imported_names(path):
                if violates(name, forbidden):
                    problems.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not problems, problems


def test_the_shared_modules_import_no_layer():
    problems = [
        f"{name} imports {imported}"
        for name in SHARED
        for imported in imported_names(PACKAGE / name)
        if violates(imported, SHARED_FORBIDDEN)
    ]
    assert not problems, problems


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import duckdb\nfrom dagster import asset\n", encoding="utf-8")
    assert {n for n in imported_names(bad) if violates(n, FORBIDDEN["api"])} == {"duckdb", "dagster"}


def test_non_public_dagster_apis_appear_only_in_their_one_module():
    hits = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "dagster_internals.py":
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("dagster._", "run_storage", "add_run_tags"):
            if needle in text:
                hits.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert not hits, hits


# Environment variables named DAGSTER_* that are public: Dagster's documented home, and this project's
# own URL of the team profile's storage (deploy/dagster.postgres.yaml). Any other DAGSTER_* name is a
# switch of Dagster's internals, so reading or setting it belongs in dagster_internals.py.
PUBLIC_DAGSTER_VARIABLES = {"DAGSTER_HOME", "DAGSTER_PG_URL"}


def internal_dagster_variables(text: str) -> set[str]:
    return set(re.findall(r"\bDAGSTER_[A-Z0-9_]+", text)) - PUBLIC_DAGSTER_VARIABLES


def test_internal_dagster_variables_appear_only_in_the_internals_module():
    hits = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "dagster_internals.py"
        for name in sorted(internal_dagster_variables(path.read_text(encoding="utf-8")))
    ]
    assert not hits, hits


def test_the_variable_checker_sees_an_internal_switch():
    text = 'os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")\nos.environ["DAGSTER_HOME"]'
    assert internal_dagster_variables(text) == {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"}


# Modules of orchestration/ that must not import Dagster, even indirectly: the raw step's phases and
# what they use, so that they run and are tested as plain Python.
DAGSTER_FREE = [
    "pgy_pipeline.orchestration.raw_pages",
    "pgy_pipeline.orchestration.call_books",
    "pgy_pipeline.orchestration.labels",
]


def dagster_modules_loaded_by(module: str) -> list[str]:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    )
    loaded: list[str] = ast.literal_eval(out.stdout.strip())
    return loaded


@pytest.mark.parametrize("module", DAGSTER_FREE)
def test_the_raw_steps_phases_import_no_dagster(module):
    assert dagster_modules_loaded_by(module) == []


def test_the_dagster_check_sees_dagster():
    assert "dagster" in dagster_modules_loaded_by("pgy_pipeline.orchestration.budget")
