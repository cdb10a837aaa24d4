"""A pytest plugin that keeps a run of the suite honest; scripts/run_suite.py loads it (``-p``) and
the suite's conftest does too.

* With ``PGY_COLLECTED_FILE`` set, the number of tests collected (and of modules or classes skipped
  while collecting, which the JUnit report lists as tests too) is written to that file when
  collection ends, so a run can be checked against it afterwards: a run that stopped halfway, or
  collected nothing, cannot pass (scripts/run_suite.py reads it beside the JUnit report). The variable
  is taken out of the environment at once, so pytest processes the tests start do not overwrite it.
* :func:`postgres_url` is how a test gets the test PostgreSQL server (``PGY_TEST_POSTGRES_URL``):
  without one the test is skipped, or fails under CI, where the server must be there.
* At the end of a run, the tests skipped for lack of PostgreSQL are listed in a section of their own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import pytest

COLLECTED_VAR = "PGY_COLLECTED_FILE"
POSTGRES_URL_VAR = "PGY_TEST_POSTGRES_URL"
# Every skip for lack of PostgreSQL says this; scripts/run_suite.py finds such skips in a report by it.
NEEDS_POSTGRES = "needs PostgreSQL"


def under_ci() -> bool:
    """Whether this is a CI run (``CI`` set and not 0/false): what is missing there fails, not skips."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """Skip the current test because something it needs is missing; under CI, fail it instead."""
    if under_ci():
        pytest.fail(f"{reason}. Under CI this fails instead of skipping.", pytrace=False)
    pytest.skip(reason)


def postgres_url(purpose: str) -> str:
    """The test PostgreSQL server's URL (``PGY_TEST_POSTGRES_URL``), with psycopg2 importable.

    Without them the test is skipped (under CI: fails), the reason naming ``purpose``."""
    url = os.environ.get(POSTGRES_URL_VAR, "")
    if not url:
        missing(
            f"{purpose} {NEEDS_POSTGRES}: {POSTGRES_URL_VAR} is not set (scripts/test.sh starts a "
            "throwaway server when PostgreSQL's server binaries are installed: apt-get install postgresql)"
        )
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        missing(f"{purpose} {NEEDS_POSTGRES}: psycopg2 is not installed (pip install -e '.[postgres]')")
    return url


class _CollectionCount:
    """Writes ``collected skipped-at-collection`` to ``path`` once collection ends."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.skipped = 0

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # e.g. pytest.skip(..., allow_module_level=True): one test in the report
            self.skipped += 1

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        Path(self.path).write_text(f"{len(session.items)} {self.skipped}\n", encoding="utf-8")


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.pop(COLLECTED_VAR, "")
    if path:
        config.pluginmanager.register(_CollectionCount(path), "pgy-collection-count")


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NEEDS_POSTGRES in _skip_reason(r)]
    if not skipped:
        return
    terminalreporter.section(
        f"NO POSTGRESQL: {len(skipped)} test(s) skipped, not run", sep="!", yellow=True, bold=True
    )
    for report in skipped:
        terminalreporter.line(f"  {report.nodeid}")
    terminalreporter.line(
        "Install PostgreSQL's server (apt-get install postgresql): scripts/test.sh then starts a "
        f"throwaway one; or set {POSTGRES_URL_VAR}. Under CI=true these tests fail instead."
    )
