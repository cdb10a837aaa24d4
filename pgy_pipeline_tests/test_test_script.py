"""scripts/test.sh's verdict on a suite: scripts/run_suite.py, run here as test.sh runs it, on real
pytest runs of tiny generated test files. A run passes only if every test it collected reported,
none failed and none erred; these are the runs that must not pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pgy_pipeline_tests.suite_checks import NEEDS_POSTGRES, missing

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_SUITE = REPO_ROOT / "scripts" / "run_suite.py"
LAKE_PYTHON = REPO_ROOT / ".venv-lake" / "bin" / "python"


def run_suite(
    tmp_path: Path,
    source: str,
    *,
    label: str = "main",
    allow_abort: bool = False,
    ci: bool = False,
    python: Path | str = sys.executable,
    extra_args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """scripts/run_suite.py on one generated test file, with the options scripts/test.sh gives it."""
    test_file = tmp_path / "test_generated.py"
    test_file.write_text(textwrap.dedent(source), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGY_") and k != "CI"}
    if ci:
        env["CI"] = "true"
    command = [sys.executable, str(RUN_SUITE), label, "--python", str(python)]
    if allow_abort:
        command.append("--allow-abort-at-exit")
    command += ["--", "-q", "-p", "no:cacheprovider", *extra_args, str(test_file)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def verdict(result: subprocess.CompletedProcess[str]) -> str:
    """run_suite.py's verdict line."""
    lines = [line for line in result.stdout.splitlines() if re.match(r"\w+ suite (passed|FAILED)", line)]
    assert len(lines) == 1, output(result)
    return lines[0]


THREE_PASSING = """
    import os

    def test_one():
        # a pytest the suite starts must not write the outer run's count
        assert "PGY_COLLECTED_FILE" not in os.environ

    def test_two():
        pass

    def test_three():
        pass
"""


def test_a_complete_run_passes_with_pytests_closing_line(tmp_path: Path) -> None:
    result = run_suite(tmp_path, THREE_PASSING)
    assert result.returncode == 0, output(result)
    assert "3 passed" in result.stdout  # pytest's own closing line, which CI reads
    assert verdict(result) == (
        "main suite passed [3 collected, 3 reported: 3 passed, 0 skipped, 0 failed, 0 error(s)]"
    )


def test_a_run_aborted_mid_run_fails_with_134(tmp_path: Path) -> None:
    # the lake suite's options: an abort is forgiven only once every test has reported
    result = run_suite(
        tmp_path,
        """
        import os

        def test_one():
            pass

        def test_two():
            os.abort()

        def test_three():
            pass
        """,
        label="lake",
        allow_abort=True,
    )
    assert result.returncode == 134, output(result)
    assert verdict(result).startswith("lake suite FAILED: no JUnit report"), output(result)


def test_a_run_stopped_after_one_of_three_fails_though_its_report_shows_no_failure(tmp_path: Path) -> None:
    result = run_suite(
        tmp_path,
        """
        import pytest

        def test_one():
            pass

        def test_two():
            pytest.exit("stopped", returncode=134)

        def test_three():
            pass
        """,
        label="lake",
        allow_abort=True,
    )
    assert result.returncode == 134, output(result)
    line = verdict(result)
    assert "1 test(s) reported of 3 collected" in line and "0 failed, 0 error(s)" in line, line


def test_an_abort_at_exit_after_every_test_reported_passes_only_where_allowed(tmp_path: Path) -> None:
    at_exit = """
        import atexit
        import os

        atexit.register(os.abort)  # as DuckDB 1.4.4 now and then does, after pytest has finished

        def test_one():
            pass

        def test_two():
            pass
    """
    lake = run_suite(tmp_path, at_exit, label="lake", allow_abort=True)
    assert lake.returncode == 0, output(lake)
    assert verdict(lake).startswith("lake suite passed [2 collected, 2 reported"), output(lake)
    assert "aborted at exit after all its tests reported" in lake.stdout
    main = run_suite(tmp_path, at_exit)
    assert main.returncode == 134, output(main)
    assert "pytest exited with status 134 (aborted)" in verdict(main)


@pytest.mark.parametrize(
    "source, extra_args",
    [
        ("def helper():\n    pass\n", ()),  # no test in the file
        (THREE_PASSING, ("-k", "no_such_test")),  # every test deselected
    ],
    ids=["empty-file", "all-deselected"],
)
def test_a_run_that_collected_nothing_fails(tmp_path: Path, source: str, extra_args: tuple[str, ...]) -> None:
    result = run_suite(tmp_path, source, extra_args=extra_args)
    assert result.returncode != 0, output(result)
    assert "no tests were collected" in verdict(result), output(result)


def test_a_module_skipped_while_collecting_counts_as_its_one_reported_test(tmp_path: Path) -> None:
    (tmp_path / "test_skipped_module.py").write_text(
        'import pytest\n\npytest.skip("not here", allow_module_level=True)\n', encoding="utf-8"
    )
    result = run_suite(tmp_path, THREE_PASSING, extra_args=(str(tmp_path / "test_skipped_module.py"),))
    assert result.returncode == 0, output(result)
    assert verdict(result) == (
        "main suite passed [3 collected (+1 skipped while collecting), 4 reported: 3 passed, 1 skipped, "
        "0 failed, 0 error(s)]"
    )


def test_a_failing_test_fails_the_run(tmp_path: Path) -> None:
    result = run_suite(tmp_path, "def test_one():\n    assert 1 == 2\n")
    assert result.returncode == 1, output(result)
    assert "1 failed, 0 error(s)" in verdict(result)


NEEDS_A_SERVER = """
    import pytest

    from pgy_pipeline_tests.suite_checks import postgres_url

    @pytest.fixture
    def server():
        return postgres_url("the generated test")

    def test_with_a_server(server):
        pass

    def test_without_one():
        pass
"""


def test_without_postgresql_a_run_fails_under_ci_and_lists_the_skips_otherwise(tmp_path: Path) -> None:
    under_ci = run_suite(tmp_path, NEEDS_A_SERVER, ci=True)
    assert under_ci.returncode != 0, output(under_ci)
    assert "0 failed, 1 error(s)" in verdict(under_ci)
    assert f"the generated test {NEEDS_POSTGRES}" in under_ci.stdout

    local = run_suite(tmp_path, NEEDS_A_SERVER)
    assert local.returncode == 0, output(local)
    assert "1 passed, 1 skipped" in local.stdout
    # loud, at the end: pytest's own section naming the test, and run_suite.py's warning
    section = local.stdout[local.stdout.index("NO POSTGRESQL: 1 test(s) skipped") :]
    assert "test_generated.py::test_with_a_server" in section
    assert "test_without_one" not in section
    assert "WARNING: 1 main test(s) skipped for lack of PostgreSQL" in local.stdout


def test_a_postgresql_skip_that_bypasses_the_helper_still_fails_under_ci(tmp_path: Path) -> None:
    source = f"""
        import pytest

        def test_one():
            pytest.skip("this test {NEEDS_POSTGRES}: no server")
    """
    result = run_suite(tmp_path, source, ci=True)
    assert result.returncode != 0, output(result)
    assert "1 test(s) skipped for lack of PostgreSQL under CI" in verdict(result)
    assert run_suite(tmp_path, source).returncode == 0


def test_the_lake_suite_without_postgresql_fails_under_ci(tmp_path: Path) -> None:
    """The lake suite's own fixtures, in .venv-lake as scripts/test.sh runs them, with no server."""
    if os.environ.get("PGY_SKIP_LAKE") == "1":
        pytest.skip("PGY_SKIP_LAKE=1: the lake suite is not run")
    if not LAKE_PYTHON.exists():
        missing(".venv-lake is not set up (PGY_SETUP_LAKE=1 bash scripts/setup.sh; scripts/test.sh does)")
    source = """
        from pgy_pipeline_tests.lake.conftest import catalog, lake_available  # noqa: F401

        def test_a_catalog(catalog):
            pass
    """
    result = run_suite(tmp_path, source, label="lake", allow_abort=True, ci=True, python=LAKE_PYTHON)
    assert result.returncode != 0, output(result)
    assert verdict(result).startswith("lake suite FAILED: 0 failed, 1 error(s)"), output(result)
    assert f"the lake catalog {NEEDS_POSTGRES}" in result.stdout


def test_test_sh_judges_both_suites_by_run_suite() -> None:
    """scripts/test.sh starts pytest only through scripts/run_suite.py, the lake run with its options."""
    script = (REPO_ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert "-m pytest" not in script
    runs = re.findall(r"scripts/run_suite\.py (\w+) --python (\S+)([^\n]*\n[^\n]*)", script)
    assert [(label, python) for label, python, _ in runs] == [
        ("main", ".venv/bin/python"),
        ("lake", ".venv-lake/bin/python"),
    ]
    assert "--allow-abort-at-exit" in runs[1][2] and "--allow-abort-at-exit" not in runs[0][2]


URL_READ = re.compile(r"[\"']PGY_TEST_POSTGRES_URL[\"']")


def test_no_test_reads_the_postgresql_url_but_through_the_helper() -> None:
    """Every test that needs PostgreSQL gets it from suite_checks.postgres_url, so none skips under CI."""
    readers = [
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "pgy_pipeline_tests").rglob("*.py")
        if path.name != "suite_checks.py" and URL_READ.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []


def test_the_suite_runs_with_no_signal_ignored(tmp_path: Path) -> None:
    # An ignored SIGINT would be inherited by pytest, and Dagster maps SIGTERM to it: every child of a
    # run (compute-log tails) would then ignore SIGTERM, and each run would wait 60 s for them to end.
    result = run_suite(
        tmp_path,
        """
        import signal, subprocess

        def test_no_signal_is_ignored():
            assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
            line = subprocess.run(["grep", "SigIgn", "/proc/self/status"], capture_output=True, text=True)
            assert int(line.stdout.split()[1], 16) & ((1 << 1) | (1 << 14)) == 0, line.stdout
        """,
    )
    assert result.returncode == 0, output(result)
