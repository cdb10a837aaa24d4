"""Run one pytest suite and pass it only if every test it collected ran, none failed, none erred.

    .venv/bin/python scripts/run_suite.py LABEL [--python PY] [--allow-abort-at-exit] -- PYTEST_ARGS...

scripts/test.sh runs the main suite and the lake suite through this. pytest runs as
``PY -m pytest -p pgy_pipeline_tests.suite_checks --junitxml=REPORT PYTEST_ARGS`` with its output
shown as is (its closing "N passed ..." line included); the plugin writes how many tests were
collected. The run then passes only if:

* the number collected is known (collection finished) and is not zero;
* the JUnit report exists and holds that many tests, with no failure and no error;
* pytest exited 0 or, with ``--allow-abort-at-exit``, was aborted (SIGABRT, exit 134) after all of
  the above held: DuckDB 1.4.4 (the lake profile) now and then aborts at interpreter exit, after
  every test has reported. An abort in the middle of the run leaves no report, or a short one;
* under CI (``CI`` set), no test was skipped for lack of PostgreSQL.

One line per suite says what was counted; a failing check says why. Exit status: 0 when the suite
passes, else pytest's (as the shell would show it) or 1.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgy_pipeline_tests.suite_checks import COLLECTED_VAR, NEEDS_POSTGRES, under_ci  # noqa: E402

PLUGIN = "pgy_pipeline_tests.suite_checks"
ABORTED = (128 + signal.SIGABRT, -signal.SIGABRT)  # as the shell shows it, as subprocess does


@dataclass
class Report:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    skipped_for_postgres: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


def read_report(path: Path) -> Report | None:
    """The totals of a JUnit XML report; None if it is missing, empty or not a report."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if not suites:
        return None
    report = Report()
    for suite in suites:
        report.tests += int(suite.get("tests", 0))
        report.failures += int(suite.get("failures", 0))
        report.errors += int(suite.get("errors", 0))
        report.skipped += int(suite.get("skipped", 0))
        for case in suite.iter("testcase"):
            for skip in case.findall("skipped"):
                if NEEDS_POSTGRES in (skip.get("message") or "") + (skip.text or ""):
                    report.skipped_for_postgres.append(f"{case.get('classname')}::{case.get('name')}")
    return report


def read_collected(path: Path) -> tuple[int, int] | None:
    """(tests collected, modules or classes skipped while collecting), as the plugin wrote them."""
    try:
        collected, skipped = path.read_text(encoding="utf-8").split()
        return int(collected), int(skipped)
    except (OSError, ValueError):
        return None


def shell_status(returncode: int) -> int:
    """A subprocess return code as the shell shows it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def check(
    label: str,
    returncode: int,
    report_path: Path,
    collected_path: Path,
    *,
    allow_abort_at_exit: bool = False,
    ci: bool = False,
) -> tuple[bool, list[str]]:
    """Whether the run passes, and the lines that say so (or why not)."""
    counts = read_collected(collected_path)
    collected, skipped_at_collection = counts if counts else (None, 0)
    report = read_report(report_path)
    status = shell_status(returncode)
    problems: list[str] = []
    if collected is None:
        problems.append("collection did not finish (no count of collected tests)")
    elif collected == 0:
        problems.append("no tests were collected")
    if report is None:
        problems.append("no JUnit report: the run did not reach its end")
    else:
        # a module skipped while collecting is one more test in the report
        if collected is not None and report.tests != collected + skipped_at_collection:
            problems.append(f"{report.tests} test(s) reported of {collected} collected")
        if report.failures or report.errors:
            problems.append(f"{report.failures} failed, {report.errors} error(s)")
        if ci and report.skipped_for_postgres:
            problems.append(
                f"{len(report.skipped_for_postgres)} test(s) skipped for lack of PostgreSQL under CI"
            )
    aborted = status in ABORTED
    if status != 0 and not (aborted and allow_abort_at_exit):
        problems.append(f"pytest exited with status {status}" + (" (aborted)" if aborted else ""))
    counted = f"{'?' if collected is None else collected} collected"
    if skipped_at_collection:
        counted += f" (+{skipped_at_collection} skipped while collecting)"
    if report is not None:
        counted += (
            f", {report.tests} reported: {report.passed} passed, {report.skipped} skipped, "
            f"{report.failures} failed, {report.errors} error(s)"
        )
    lines = []
    if problems:
        lines.append(f"{label} suite FAILED: {'; '.join(problems)} [{counted}]")
    else:
        lines.append(f"{label} suite passed [{counted}]")
        if aborted:
            lines.append(f"note: the {label} test process aborted at exit after all its tests reported")
    if report is not None and report.skipped_for_postgres and not ci:
        lines.append(
            f"WARNING: {len(report.skipped_for_postgres)} {label} test(s) skipped for lack of PostgreSQL "
            "(listed above): apt-get install postgresql, then rerun scripts/test.sh"
        )
    return not problems, lines


def run(label: str, python: str, pytest_args: list[str], *, allow_abort_at_exit: bool) -> int:
    with tempfile.TemporaryDirectory(prefix=f"pgy-{label}-") as tmp:
        report_path = Path(tmp) / "report.xml"
        collected_path = Path(tmp) / "collected"
        command = [python, "-m", "pytest", "-p", PLUGIN, f"--junitxml={report_path}", *pytest_args]
        env = {**os.environ, COLLECTED_VAR: str(collected_path)}
        # Ctrl-C reaches pytest (same process group), which stops and reports; judge what it left. A
        # handler, not SIG_IGN: an ignored signal is inherited through exec, and Dagster maps SIGTERM to
        # SIGINT's disposition, so pytest's runs would start children (compute-log tails) that ignore
        # SIGTERM, and each run would wait 2 x 30 s for them to end.
        previous = signal.signal(signal.SIGINT, lambda *_: None)
        try:
            returncode = subprocess.run(command, env=env, cwd=ROOT).returncode
        finally:
            signal.signal(signal.SIGINT, previous)
        sys.stdout.flush()
        ok, lines = check(
            label,
            returncode,
            report_path,
            collected_path,
            allow_abort_at_exit=allow_abort_at_exit,
            ci=under_ci(),
        )
    if returncode < 0:
        print()  # killed by a signal: its output may have stopped mid-line
    for line in lines:
        print(line, flush=True)
    if ok:
        return 0
    return shell_status(returncode) or 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ours, pytest_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], usage="%(prog)s LABEL [options] -- PYTEST_ARGS..."
    )
    parser.add_argument("label", help="the suite's name in the verdict line (main, lake)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs pytest")
    parser.add_argument(
        "--allow-abort-at-exit",
        action="store_true",
        help="pass a run aborted (exit 134) after every collected test reported",
    )
    args = parser.parse_args(ours)
    return run(args.label, args.python, pytest_args, allow_abort_at_exit=args.allow_abort_at_exit)


if __name__ == "__main__":
    raise SystemExit(main())
