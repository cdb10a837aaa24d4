"""Render ``docs/reliability.md`` from the figures the reliability suite observed.

    python -m pgy_pipeline_tests.reliability_report --run      # run the suite, then write the doc
    python -m pgy_pipeline_tests.reliability_report --json F   # write the doc from an earlier run's figures

With ``--run`` it runs ``pytest pgy_pipeline_tests/test_reliability_*.py`` with
``PGY_RELIABILITY_REPORT`` set (each test then records what it saw: calls, rows, retries...) and a JUnit
report (to know which tests passed and which are expected failures marking a known defect), and
writes the table. Every figure in the document comes from that run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"


@dataclass(frozen=True)
class Scenario:
    key: str  # the id the test records under
    group: int
    title: str
    promise: str
    observed: str  # a template over the recorded figures
    test: str  # module::function


S = Scenario
SCENARIOS = [
    S(
        "1-transient",
        1,
        "Transient faults, once each on page k: 301, 500 (twice), 302, HTTP 429, HTTP 502, "
        "HTTP 503 (twice), HTML body, truncated body, body trickling past the 1.5 s timeout, no answer within "
        "the timeout, dropped connection",
        "Retried within bounds (5 attempts, backoff); every note stored exactly once; the run succeeds.",
        "{creators} creators, {pages} pages: {calls} calls = {pages} + {retries} retries (one per injected "
        "failure); {notes}/{expected_notes} notes, {duplicates} duplicates; run {seconds} s.",
        "test_reliability_faults::test_transient_faults_are_retried_within_bounds_and_every_note_lands_once",
    ),
    S(
        "1-terminal",
        1,
        "Faults that never stop (301, 500, 302, HTTP 429/502/504, HTML, truncated, dropped) "
        "and terminal codes 400 and an unknown 777, on page 2 of a refresh over stored partitions",
        "Retries stop at the bound (3 attempts here); 400 and unknown codes cost one call; the error names "
        "creator, page, code and the service's message; no partial partition; other partitions untouched.",
        "calls on the failing page: {calls_on_failing_page}; {failed}/{creators} creators failed, each named "
        "with its reason; partitions changed: {partitions_changed}; the healthy creator was refreshed.",
        "test_reliability_faults::test_faults_that_persist_and_terminal_codes_cost_bounded_calls_and_leave_old_rows",
    ),
    *[
        S(
            f"1-account-{code}",
            1,
            f"Account code {code} on page 2 of a refresh",
            "No retry, no further call (circuit breaker), the guard stops later runs; specific message; stored "
            "partitions unchanged.",
            "{calls} calls in the run ({error}), {calls_while_guarded} calls in the next run (guard: {guard}); "
            "partitions changed: {partitions_changed}.",
            "test_reliability_faults::test_account_codes_stop_every_call_keep_old_rows_and_set_the_guard",
        )
        for code in (100, 303, 600, 601)
    ],
    S(
        "2-drift",
        2,
        "Drift while paging: 3 notes published before page 2; page 2 repeating a note of page "
        "1; total 2 too high; total 3 too low",
        "No duplicate; every item received is a note or a reject; the discrepancy is reported (list_drift "
        "metadata and the reconciliation check).",
        "{_drift}",
        "test_reliability_drift::test_drift_is_reported_and_nothing_is_duplicated_or_dropped",
    ),
    S(
        "2-removed",
        2,
        "Drift: the 2 newest notes deleted before page 2",
        "The reconciliation check warns when the list changed while paging.",
        "{calls} calls; {notes} notes stored = total {total}, but {missing} live notes never seen and "
        "{stale} deleted ones kept; list_drift: {list_drift}; reconciliation check passed: {check_passed}.",
        "test_reliability_drift::test_notes_removed_while_paging_are_flagged_by_the_reconciliation_check",
    ),
    S(
        "3-odd-data",
        3,
        "Odd data: nulls in every nullable field, missing and unknown fields, counts as "
        "text, negative, huge, empty and 10,000-character titles, emoji, quotes, backslashes, newlines, NUL, "
        "SQL-looking text, items that are not objects or have no id, a repeated id",
        "Raw bodies byte for byte; each value typed, or NULL and named in quality_issues; other items in "
        "note_rejects with a reason; nothing dropped.",
        "{items} items over {pages} pages: {raw_bodies_verbatim} bodies stored byte for byte; {notes} notes "
        "({notes_with_quality_issues} with quality issues), {rejects} rejects, {dropped} dropped.",
        "test_reliability_odd_data::test_odd_values_are_stored_verbatim_in_raw_and_typed_or_flagged_in_notes",
    ),
    S(
        "3-fractional",
        3,
        "A count sent as 12.5 (and 0.4)",
        "Not a whole number: NULL and named in quality_issues, never altered silently.",
        "read_num = {read_num}, like_num = {like_num}, quality_issues = {issues}.",
        "test_reliability_odd_data::test_fractional_count_is_not_rounded_silently",
    ),
    S(
        "3-surrogate",
        3,
        "A title cut inside an emoji (lone UTF-16 surrogate \\ud83d) in one creator's body",
        "The other creators of the run are written; the odd body is stored or refused by name; reruns are "
        "not stuck.",
        "first run succeeded: {first_run_success}; pages of the healthy creator written: "
        "{good_creator_raw_pages}; error: {message}; rerun succeeded: {rerun_success} ({rerun_calls} calls, "
        "{spooled_after_rerun} creators still spooled).",
        "test_reliability_odd_data::test_broken_unicode_in_one_body_does_not_block_the_others",
    ),
    S(
        "4-kill-paging",
        4,
        "SIGKILL while a page request is in flight (creator 2 of 3, page 3 of 5)",
        "Nothing of the run in DuckDB; complete scans kept in the spool; the rerun pays only for the cut scan.",
        "{calls_before_kill} calls before the kill; partitions in DuckDB after it: {partitions_after_kill}; "
        "spooled: {spooled_after_kill}; rerun: {rerun_calls} calls, {rerun_from_spool} partitions from the "
        "spool; {rows_raw} raw rows, {notes} notes in the end; the rerun, started at once with no cleanup, "
        "done {next_run_done_after_kill_s} s after the kill.",
        "test_reliability_crash::test_kill_while_paging_leaves_nothing_partial_and_the_rerun_pays_only_what_is_missing",
    ),
    S(
        "4-kill-commit-replace_raw_pages",
        4,
        "SIGKILL inside the raw write transaction (after DELETE and "
        "INSERT, before COMMIT), refreshing stored partitions",
        "Previous rows intact in every table; pages kept in the spool; a rerun completes.",
        "{calls_before_kill} calls before the kill; tables changed by the kill: {tables_changed_by_kill}; "
        "rerun (refresh): {rerun_calls} calls for the {rerun_pages} pages already in the spool, done "
        "{next_run_done_after_kill_s} s after the kill.",
        "test_reliability_crash::test_kill_inside_the_write_transaction_keeps_the_previous_rows",
    ),
    S(
        "4-kill-commit-rebuild_notes",
        4,
        "SIGKILL inside the notes transaction, before COMMIT",
        "Raw committed, notes and metrics keep their previous rows; the rebuild needs no call.",
        "{calls_before_kill} calls before the kill; tables changed by the kill: {tables_changed_by_kill} (raw "
        "only); rebuild: {rerun_calls} calls, done {next_run_done_after_kill_s} s after the kill.",
        "test_reliability_crash::test_kill_inside_the_write_transaction_keeps_the_previous_rows",
    ),
    S(
        "4-kill-random",
        4,
        "SIGKILL at random moments of the raw, notes and metrics writes, restarting "
        "after each kill until a run completes (24 creators)",
        "After every kill each partition is whole or absent in every table; each page paid for once.",
        "{kills} kills ({kills_inside_a_transaction} inside a transaction): {moments}; {calls} calls for "
        "{pages} pages; {rows_raw} raw rows, {notes} notes in the end.",
        "test_reliability_crash::test_kills_at_random_moments_of_the_writes_never_leave_a_partial_partition",
    ),
    S(
        "4-kill-cli",
        4,
        "SIGKILL of a `dagster asset materialize` run (its process group: run and step processes) while it "
        "pages, then the same command again at once, with no daemon and nothing cleaned up",
        "The new run is not blocked (the step lock died with its holder) and completes within 60 s of the "
        "kill; nothing lost; whole scans come from the spool.",
        "lock holder named in the lock file: {lock_holder_named}; {calls_before_kill} calls before the kill; "
        "new run: {rerun_calls} calls (the cut scan again: {pages_paid_twice} of its pages paid twice), done "
        "{next_run_done_after_kill_s} s after the kill; {pages_total} pages stored.",
        "test_reliability_crash::test_cli_run_killed_mid_fetch_then_a_new_cli_run_at_once_completes_within_60_s",
    ),
    S(
        "4-kill-waiting",
        4,
        "SIGKILL of a run while it waits for the fetch lock another run holds; a third run started at once",
        "The waiter logs who holds the lock (run id, PID, host) and for how long; its death blocks nobody; "
        "each page paid for once.",
        'waiter\'s log: "{waiter_log}..."; {calls} calls for {pages} pages; third run done '
        "{next_run_done_after_kill_s} s after the kill.",
        "test_reliability_crash::test_a_run_killed_while_it_waits_for_the_lock_blocks_nobody",
    ),
    S(
        "4-kill-dagster-dev",
        4,
        "Under `dagster dev` (webserver and daemon): SIGKILL of a UI backfill's step process while it pages, "
        "then a run of the same partitions launched at once",
        "The new run completes within 60 s of the kill; the killed run is failed and tagged with its cause "
        "by `api_failure_sensor`; whole scans come from the spool.",
        "new run done {next_run_done_after_kill_s} s after the kill, {rerun_calls} calls (only the cut "
        "scan); killed run's tag pgy/failure: {failure_tag}.",
        "test_webserver::test_dagster_dev_loads_registers_and_backfills",
    ),
    S(
        "4-analyst-replica",
        4,
        "An analyst process opening the read replica read-only, querying and closing every 20 ms through a "
        "run of 12 creators",
        "No failed query; the analyst sees the new data once the run writes it.",
        "{queries} queries, {failed} failed; {versions_seen} versions of the data seen; slowest "
        "open-query-close {slowest_query_ms} ms.",
        "test_reliability_crash::test_analysts_polling_the_replica_through_a_run_never_fail",
    ),
    *[
        S(
            f"5-holder-{mode}",
            5,
            f"A {label} DuckDB session opened in another process while the pages arrive (lock wait 1 s)",
            "The write fails after the wait, naming the holder; pages stay in the spool; the rerun writes them "
            "with no call.",
            "{calls} calls for {pages} pages; holder's PID named: {holder_pid_named}; spooled: {spooled}; "
            "rerun: {rerun_calls} calls, {rerun_from_spool} partitions from the spool, {notes} notes.",
            "test_reliability_concurrency::test_a_session_opened_during_the_fetch_fails_the_write_by_name_and_the_rerun_pays_nothing",
        )
        for mode, label in (("ro", "read-only"), ("rw", "read-write"))
    ],
    S(
        "5-holder-before",
        5,
        "A read-only session already open when the run starts",
        "Fails before any call, naming the holder.",
        "{calls} calls; holder's PID named: {holder_pid_named}.",
        "test_reliability_concurrency::test_a_session_open_before_the_run_fails_it_before_any_call",
    ),
    S(
        "5-lock-pid",
        5,
        "The lock error's text",
        "Names the process that holds the file (its PID).",
        "holder PID {holder_pid}; the error says: \u201c...{shown}\u201d.",
        "test_reliability_concurrency::test_the_lock_error_names_the_process_that_holds_the_file",
    ),
    S(
        "5-holder-brief",
        5,
        "A read-only session that closes within the wait",
        "The run waits and succeeds.",
        "held {hold_s} s, wait bound {lock_wait_s} s: run succeeded in {run_seconds} s; {calls} calls for "
        "{pages} pages.",
        "test_reliability_concurrency::test_a_session_that_closes_within_the_wait_only_delays_the_run",
    ),
    S(
        "5-refresh-spool",
        5,
        "A refresh run whose write failed (lock), rerun with refresh",
        "Pages already paid for are written from the spool, not fetched again.",
        "first run: {first_calls} calls, {spooled} creators spooled; rerun: {rerun_calls} calls.",
        "test_reliability_concurrency::test_refresh_rerun_writes_the_pages_spooled_by_a_failed_write",
    ),
    S(
        "5-several-runs",
        5,
        "Three runs at once in three processes: a backfill of two blocks and a run over "
        "both (overlapping), one instance with the project's dagster.yaml and step locks, one DuckDB file",
        "All complete; no lock failure; each page paid for once.",
        "{runs} runs succeeded; {calls} calls for {pages} pages; {notes} notes; {seconds} s.",
        "test_reliability_concurrency::test_several_runs_at_once_overlapping_or_not_all_complete_and_pay_each_page_once",
    ),
    S(
        "6-creator-ids",
        6,
        "Creator ids with a pipe, comma, spaces, SQL, 10,000 characters, full-width digits, "
        "emoji (as partitions and in the registry file)",
        "Refused by name before any call or SQL.",
        "{bad_ids} ids refused in one message, {calls} calls, DuckDB opened: {duckdb_opened}; registry: "
        "{registry_rows_skipped} rows skipped by name, {registry_rows_kept} kept.",
        "test_reliability_bad_input::test_malformed_creator_ids_are_refused_by_name_before_any_call",
    ),
    S(
        "6-registry",
        6,
        "A registry file that is not YAML, has no creators list, a non-list, or is not UTF-8",
        "Nothing changes; the sensor tick and the asset say why.",
        "{files} files: {calls} calls, {rows_changed} rows changed; messages: {messages}.",
        "test_reliability_bad_input::test_a_registry_file_that_cannot_be_used_changes_nothing_and_says_why",
    ),
    S(
        "6-run-config",
        6,
        "Invalid enum values in run config (4 fields), a wrong type, a misspelt key",
        "Refused naming the field and the allowed values, before any call.",
        "{invalid_values} invalid values and {wrong_shapes} wrong shapes refused; {calls} calls; DuckDB "
        "opened: {duckdb_opened}.",
        "test_reliability_bad_input::test_invalid_run_config_is_refused_before_any_call",
    ),
    S(
        "6-past-date",
        6,
        "A range from yesterday to today, and tomorrow",
        "Refused before any call, naming the keys and what to do instead.",
        "{calls} calls, {partitions_written} partitions written; refused: {refused}.",
        "test_reliability_bad_input::test_a_past_snapshot_date_is_refused_before_any_call",
    ),
    S(
        "6-environment",
        6,
        "JUSTONEAPI_TIMEOUT_S=sixty",
        "The definitions refuse to load, naming the variable.",
        "exit code {exit_code}: \u201c{message}\u201d.",
        "test_reliability_bad_input::test_a_bad_number_in_the_environment_is_named_at_load",
    ),
    S(
        "7-secrets",
        7,
        "A full CLI run (dagster asset materialize) with a token full of URL-special "
        "characters, echoed back by the service in two error messages, a retry and a failing creator",
        "The token's bytes are nowhere: DuckDB, spool, Dagster storage, compute logs, stdout, stderr, "
        "exception texts, run config.",
        "{calls} calls; searched {files_searched} files, {duckdb_rows_searched} DuckDB rows, "
        "{events_searched} events, in {encodings_searched} encodings: found {token_found} times.",
        "test_reliability_secrets::test_the_token_is_found_nowhere_after_a_full_run",
    ),
    S(
        "8-soak",
        8,
        "Soak: {creators} creators in one range run, random faults at a low rate (seeded), 4 creators "
        "failing for good",
        "Every partition complete and correct or failed with a reason; totals reconcile; a rerun pays only "
        "for the failures; bounded in time.",
        "{pages} pages, {notes} notes: {calls} calls, {retries} retries (faults hit: {faults_hit}); "
        "{complete} complete, {failed_with_reason} failed with a reason ({calls_on_failures} calls spent on "
        "them); rerun: {rerun_calls} calls; first run {fetch_run_seconds} s, all {total_seconds} s.",
        "test_reliability_soak::test_soak_every_partition_complete_or_failed_with_a_reason",
    ),
]
GROUPS = {
    1: "Faults",
    2: "Drift",
    3: "Odd data",
    4: "Crash",
    5: "Concurrency",
    6: "Bad input from people",
    7: "Secrets",
    8: "Soak",
}


class _Figures(dict):
    def __missing__(self, key: str) -> str:
        return f"?{key}"


def _fmt(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_fmt(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _drift(figures: dict) -> str:
    parts = []
    for label, f in figures.items():
        if isinstance(f, dict):
            parts.append(
                f"*{label}*: {f['calls']} calls, {f['notes']} notes (total said {f['total']}), "
                f"{f['rejects']} rejects, {f['missing']} not seen, reported"
            )
    return "; ".join(parts) + f"; clean control: {figures.get('clean_control')} notes, nothing reported."


def observed(scenario: Scenario, figures: dict | None) -> str:
    if figures is None:
        return "(not recorded)"
    shown = _Figures({k: _fmt(v) for k, v in figures.items()})
    if "{_drift}" in scenario.observed:
        shown["_drift"] = _drift(figures)
    return scenario.observed.format_map(shown).replace("|", "\\|").replace("\n", " ")


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """module::function -> (passed | xfailed | failed | skipped, message)."""
    out: dict[str, tuple[str, str]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        name = case.get("name", "").split("[")[0]
        key = f"{module}::{name}"
        status, message = "passed", ""
        for child in case:
            if child.tag == "skipped":
                status = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
                message = child.get("message", "")
            elif child.tag in ("failure", "error"):
                status, message = "failed", child.get("message", "")[:300]
        previous = out.get(key)
        rank = {"failed": 3, "xfailed": 2, "skipped": 1, "passed": 0}
        if previous is None or rank[status] > rank[previous[0]]:
            out[key] = (status, message)
    return out


def render(figures: dict, results: dict[str, tuple[str, str]], meta: dict) -> str:
    lines = [
        "# Reliability",
        "",
        "What the pipeline promises when the service, the data, the machine or people misbehave, and what the",
        "reliability suite (`pgy_pipeline_tests/test_reliability_*.py`, part of `bash scripts/test.sh` and",
        "`.ci/run`) observed. Every scenario runs the real pipeline: Dagster materializations on a temporary",
        "instance and DuckDB file, the endpoint simulator over loopback HTTP, other processes where a kill or",
        "a second process is needed. Calls are counted on the simulator's side.",
        "",
        "This file is generated from the figures the tests record: "
        "`.venv/bin/python -m pgy_pipeline_tests.reliability_report --run`.",
        "",
        f"Last run: {meta['when']}, {meta['machine']}; {meta['summary']}; suite wall time {meta['seconds']} s.",
        "",
    ]
    open_defects = []
    for group, name in GROUPS.items():
        lines += [
            f"## {group}. {name}",
            "",
            "| scenario | promised | observed | result |",
            "|---|---|---|---|",
        ]
        for s in (x for x in SCENARIOS if x.group == group):
            status, message = results.get(s.test, ("not run", ""))
            if status == "xfailed":
                result = "**defect** (expected failure, see below)"
                open_defects.append((s, message))
            elif status == "passed":
                result = "pass"
            else:
                result = f"**{status}**"
            title = s.title.format_map(_Figures({k: _fmt(v) for k, v in figures.get(s.key, {}).items()}))
            title = title.replace("|", "\\|")
            lines.append(f"| {title} | {s.promise} | {observed(s, figures.get(s.key))} | {result} |")
        lines.append("")
    lines += ["## Open defects", ""]
    if not open_defects:
        lines.append("None: every scenario passes.")
    else:
        lines += [
            "Scenarios whose test is marked as an expected failure (`xfail(strict=True)`): the suite found a",
            "defect and the test stays in place, failing as expected, until the code is fixed; it then passes",
            "and must lose its mark.",
            "",
        ]
        seen = set()
        for s, message in open_defects:
            if s.test in seen:
                continue
            seen.add(s.test)
            reason = message.removeprefix("reason: ")
            lines.append(f"- `{s.test.split('::')[1]}`: {reason}")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgy_pipeline_tests.reliability_report")
    parser.add_argument("--run", action="store_true", help="run the reliability suite first")
    parser.add_argument("--json", default=None, help="figures recorded by an earlier run")
    parser.add_argument("--junit", default=None, help="JUnit XML of that run")
    parser.add_argument("--out", default=str(DOC))
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="pgy-reliability-"))
    figures_path = Path(args.json) if args.json else work / "figures.json"
    junit_path = Path(args.junit) if args.junit else work / "junit.xml"
    seconds = "?"
    summary = ""
    if args.run:
        tests = sorted(
            str(p.relative_to(ROOT)) for p in (ROOT / "pgy_pipeline_tests").glob("test_reliability_*.py")
        ) + ["pgy_pipeline_tests/test_webserver.py::test_dagster_dev_loads_registers_and_backfills"]
        env = {**os.environ, "PGY_RELIABILITY_REPORT": str(figures_path)}
        started = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={junit_path}",
                *tests,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = f"{time.monotonic() - started:.0f}"
        summary = next(
            (line.strip("= ") for line in reversed(proc.stdout.splitlines()) if " in " in line), ""
        )
        print(proc.stdout[-3000:])
        if proc.returncode != 0:
            print("the reliability suite failed; the document shows it", file=sys.stderr)
    figures = json.loads(figures_path.read_text(encoding="utf-8")) if figures_path.exists() else {}
    results = outcomes(junit_path) if junit_path.exists() else {}
    if not summary:
        counts: dict[str, int] = {}
        for status, _ in results.values():
            counts[status] = counts.get(status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "summary": summary or "no results",
        "seconds": seconds,
    }
    Path(args.out).write_text(render(figures, results, meta), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
