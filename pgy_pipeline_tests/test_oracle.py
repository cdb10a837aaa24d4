"""An oracle for the incremental (money-saving) path: window-bounded scans, the daily call budget and the
billing ledger, checked against a truth model through many simulated days.

A Hypothesis ``RuleBasedStateMachine`` drives the real pipeline (Dagster ``materialize`` of
raw/note_pages, analytics/notes and analytics/creator_engagement_metrics on a temporary Dagster
instance and DuckDB file, one each per example) against the simulator over loopback HTTP. Time moves
through the one clock seam (:func:`pgy_pipeline.clock.use_clock`), a simulated day at a time, never by
sleeping; days start 50 days before the real date, so Dagster's daily partitions hold them.

The oracle keeps its own truth (each creator's notes, pushed to the simulator with ``set_notes``) and
its own reading of the rules (README, docs/tables.md; helpers in ``oracle_support.py``): which scan
each creator gets, which pages it pays, what it stores, which metrics follow. The rules (steps):
next day and its daily snapshot; the same with a budget cut, or killed mid-fetch (SIGKILL of the
run's process) and rerun; a same-day refresh or rerun (``scan: auto`` or ``full``); a run for
yesterday; notes published, grown, deleted; the list shifting by one note between two page requests.
A failed run is followed by what ``raw_pages_followup_sensor`` launches (evaluated for real). After
every step:

1. the 30d and 90d rows of analytics.creator_engagement_metrics equal the metrics computed in Python
   from the truth (on a day whose list moved while paging: from the notes the scan read, within the
   notes that moved of the truth);
2. window 'all' equals the truth on a full-scan day; on a window-scan (or drifted) day each column that
   needs the whole list is NULL (the declaration's flag if ``Column`` has one, else the list in
   sql/metrics_window_scans.sql) and every other column equals the truth;
3. analytics.notes holds exactly the notes the scan read, once each: on a full-scan day the truth's;
   the scan (full or window), its pages and scan_status are those the rules call for;
4. meta.api_calls has one row per call the simulator answered;
5. no page (creator, day, page) is paid twice in a day, except by an explicit refresh or after a kill
   cut that creator's scan; a budget cut never throws a paid page away.

CI runs a bounded, derandomized budget (about 3 minutes on a loaded 2-core machine). More:
``PGY_ORACLE_EXAMPLES=300 PGY_ORACLE_STEPS=25 pytest pgy_pipeline_tests/test_oracle.py`` (random
seeds, failures kept in ``.hypothesis/`` and replayed first next time); pytest's ``--hypothesis-seed=N``
fixes the seed of such a run, and ``PGY_ORACLE_TRACE=1`` prints each run's plan and paid pages.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import tempfile
import threading
import time as systime
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from dagster import DagsterInstance, build_sensor_context, instance_for_test, materialize
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from pgy_pipeline.api.transport import reset_circuit_breakers
from pgy_pipeline.clock import SHANGHAI, today_shanghai, use_clock
from pgy_pipeline.orchestration.assets import creator_engagement_metrics, notes
from pgy_pipeline.orchestration.automation import NOTE_PAGES_OP, raw_pages_followup_sensor
from pgy_pipeline.orchestration.resources import PgyApiResource, PgyDuckDBResource
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.conftest import (
    TEST_TOKEN,
    creator_ids,
    fast_api,
    run_pipeline,
    step_failure_messages,
)
from pgy_pipeline_tests.oracle_support import (
    FULL_ON_RECORD,
    METRIC_COLUMNS,
    SEGMENTS,
    WINDOW_STATUSES,
    WINDOWS,
    Change,
    Note,
    ScanResult,
    Warehouse,
    draw_note,
    draw_notes,
    expected_cell,
    latest_first,
    read_warehouse,
    same_value,
    simulate_scan,
    spooled,
    whole_list_columns,
)

TRACE = bool(os.environ.get("PGY_ORACLE_TRACE"))  # print each run's plan and calls
FIRST_DAY = today_shanghai() - timedelta(days=50)
LAST_DAY = today_shanghai() - timedelta(days=1)  # days must stay in the past of the real clock
WHOLE_LIST, WHOLE_LIST_SOURCE = whole_list_columns()
KEY_COLUMNS = {"creator_id", "snapshot_date", "window", "segment"}
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

_deep = os.environ.get("PGY_ORACLE_EXAMPLES")
ORACLE_SETTINGS = settings(
    max_examples=int(_deep) if _deep else 12,
    stateful_step_count=int(os.environ.get("PGY_ORACLE_STEPS", "25" if _deep else "10")),
    deadline=None,
    # CI: the same examples every time, nothing read or written between runs; a deep run explores
    # new seeds and keeps what fails in .hypothesis/ so the next run replays it first.
    derandomize=not _deep,
    database=settings.default.database if _deep else None,
    phases=list(Phase),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=bool(_deep),
)


@dataclass
class Stored:
    """A partition the pipeline must hold: the scan that wrote it, and why the rules chose that scan."""

    scan: ScanResult
    why: str


@dataclass
class Plan:
    """What a run must do for one creator: 'skip' (stored), 'spool' (paid, not yet written) or 'fetch'."""

    action: str
    scan: ScanResult | None = None
    why: str = ""


@dataclass
class RunRecord:
    """The simulator's calls of one run (``sim.calls[start:end]``), for the ledger and paid-once checks."""

    label: str
    day: date
    start: int
    end: int = 0
    exempt: set[str] = field(default_factory=set)  # creators this run may pay again (refresh, killed scan)
    unanswered: set[int] = field(default_factory=set)  # calls in flight when the run's process died


class PipelineOracle(RuleBasedStateMachine):
    """Simulated days of the real pipeline against the simulator, checked against a truth model."""

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.creators: list[str] = []
        self.truth: dict[str, list[Note]] = {}
        self.stored: dict[tuple[str, date], Stored] = {}
        self.spool: dict[tuple[str, date], Stored] = {}
        self.runs: list[RunRecord] = []
        self.pending_change: dict[str, tuple[str, int]] = {}
        self.serials: Counter[str] = Counter()
        self.day = FIRST_DAY
        self.days_run: list[date] = []
        self.runs_today = 0
        self.followup_cursor: str | None = None
        self._checked = self._ledger_checked = 0  # runs seen by the last warehouse and ledger checks
        self._base = datetime.combine(FIRST_DAY, time(10), tzinfo=SHANGHAI)
        self._base_mono = systime.monotonic()

    # -- set-up ------------------------------------------------------------------------------------

    @initialize(
        cadence_days=st.integers(1, 14),
        notes_per_creator=st.lists(st.integers(0, 40), min_size=2, max_size=4),
        seed=st.integers(0, 1000),
    )
    def start(self, cadence_days: int, notes_per_creator: list[int], seed: int) -> None:
        """Creators with these many notes (ages and figures drawn from ``seed``), and the full-scan cadence
        (``full_scan_every_days``)."""
        if TRACE:
            print(f"example: cadence {cadence_days}, notes {notes_per_creator}, seed {seed}")
        reset_circuit_breakers()
        self.cadence = cadence_days
        self.rng = random.Random(seed)
        # On a memory file system when there is one: Dagster's SQLite storage commits every event, and
        # on a loaded disk those syncs would cost more than the pipeline.
        self.tmp = tempfile.mkdtemp(prefix="pgy-oracle-", dir=SCRATCH)
        self.stack.callback(shutil.rmtree, self.tmp, True)
        self.stack.enter_context(use_clock(self._clock))
        os.mkdir(os.path.join(self.tmp, "dagster"))
        self.instance = self.stack.enter_context(
            instance_for_test(temp_dir=os.path.join(self.tmp, "dagster"))
        )
        self.sim = Simulator(token=TEST_TOKEN)  # its clock is the seam's
        self.sim.start()
        self.stack.callback(self.sim.stop)
        self.db_path = os.path.join(self.tmp, "pgy.duckdb")
        self.duckdb = PgyDuckDBResource(database=self.db_path, lock_wait_s=10.0)
        self.creators = creator_ids(len(notes_per_creator), prefix=f"oracle{seed}")
        for c, n in zip(self.creators, notes_per_creator, strict=True):
            self.truth[c] = draw_notes(self.rng, c, n, FIRST_DAY, self.serials)
            self._push(c)
        self.instance.add_dynamic_partitions("creators", self.creators)

    def teardown(self) -> None:
        self.stack.close()
        reset_circuit_breakers()

    # -- days and runs -----------------------------------------------------------------------------

    @precondition(lambda self: self.day < LAST_DAY)
    @rule()
    def next_day(self) -> None:
        """Advance the clock one day and run the daily snapshot (scan: auto)."""
        self._new_day()
        self._run("daily snapshot")

    @precondition(lambda self: self.day < LAST_DAY)
    @rule(short_by=st.integers(1, 6))
    def next_day_budget_cut(self, short_by: int) -> None:
        """Advance one day; the daily snapshot runs with a budget ``short_by`` calls below the day's need."""
        self._new_day()
        self._run("daily snapshot under a budget cut", short_by=short_by)

    @precondition(lambda self: self.day < LAST_DAY)
    @rule(after_calls=st.integers(0, 8))
    def next_day_killed(self, after_calls: int) -> None:
        """Advance one day; the daily snapshot's process is killed (SIGKILL) when it asks for call
        ``after_calls + 1``; the next run repairs the day."""
        self._new_day()
        self._run("daily snapshot killed mid-fetch", kill_after=after_calls)
        self._run("rerun after the kill")

    @precondition(lambda self: self.runs_today > 0)
    @rule(scan=st.sampled_from(["auto", "full"]))
    def refresh_today(self, scan: str) -> None:
        """The same day again with run config refresh: true."""
        self._run(f"same-day refresh (scan: {scan})", refresh=True, scan=scan)

    @precondition(lambda self: self.runs_today > 0)
    @rule(scan=st.sampled_from(["auto", "full"]))
    def rerun_today(self, scan: str) -> None:
        """The same day again without refresh and with no budget: fetches only what is missing."""
        self._run(f"same-day rerun (scan: {scan})", scan=scan)

    @precondition(lambda self: any(d < self.day for d in self.days_run))
    @rule(refresh=st.booleans())
    def run_yesterday(self, refresh: bool) -> None:
        """Materialize yesterday's partitions: stored ones stay; anything to fetch is refused before any call."""
        self._run_past(self.day - timedelta(days=1), refresh)

    # -- the truth changes -------------------------------------------------------------------------

    @rule(creator=st.integers(0, 3), count=st.integers(1, 3))
    def publish_notes(self, creator: int, count: int) -> None:
        """The creator (index modulo the creators) publishes ``count`` notes today."""
        c = self._creator(creator)
        new = [self._new_note(c) for _ in range(count)]
        self.truth[c] = latest_first(self.truth[c] + new)
        self._push(c)

    @rule(creator=st.integers(0, 3), newest=st.integers(1, 12), reads=st.integers(1, 20_000))
    def grow_counters(self, creator: int, newest: int, reads: int) -> None:
        """The ``newest`` notes gain ``reads`` reads each (likes and collects in proportion)."""
        c = self._creator(creator)
        self.truth[c] = [n.grown(reads) if i < newest else n for i, n in enumerate(self.truth[c])]
        self._push(c)

    @rule(creator=st.integers(0, 3), which=st.sampled_from(["newest", "oldest"]))
    def delete_note(self, creator: int, which: str) -> None:
        """The creator deletes its newest (recent) or its oldest note."""
        c = self._creator(creator)
        if self.truth[c]:
            self.truth[c] = self.truth[c][1:] if which == "newest" else self.truth[c][:-1]
            self._push(c)

    @rule(creator=st.integers(0, 3), change=st.sampled_from(["insert", "delete"]), page=st.integers(2, 4))
    def shift_mid_paging(self, creator: int, change: str, page: int) -> None:
        """In the next run, just before the creator's page ``page`` is served, a note is published
        (insert) or the newest one deleted (delete): the list shifts by one between two page requests."""
        self.pending_change[self._creator(creator)] = (change, page)

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        """After every step (one line in a printed failure): invariants 1-3 and nothing half-written (every
        table holds exactly the partitions the rules say), 4 (meta.api_calls holds one row per call the
        simulator answered) and 5 (a page is paid once a day, except by an explicit refresh or the rerun
        of a killed scan). Only a run changes the warehouse, the ledger or what they must hold, so 1-4
        are skipped when no run happened since they were last checked."""
        if not self.creators:
            return
        if self._checked != len(self.runs):
            self._check_warehouse(read_warehouse(self.db_path))
        if self._ledger_checked != len(self.runs):
            self._check_ledger()
        self._check_paid_once()

    # -- machinery: the checks ---------------------------------------------------------------------

    def _check_ledger(self) -> None:
        self._ledger_checked = len(self.runs)
        want: Counter[tuple[Any, ...]] = Counter()
        for run in self.runs:
            for i in range(run.start, run.end):
                if i in run.unanswered:
                    continue
                call = self.sim.calls[i]
                want[(run.day, call.user_id, call.page, call.http_status, call.code, call.billed)] += 1
        got = read_warehouse(self.db_path).calls
        missing, extra = want - got, got - want
        assert not missing and not extra, (
            "invariant 4 (ledger): meta.api_calls differs from the calls the simulator answered: "
            f"missing {self._calls_text(missing)}; extra {self._calls_text(extra)}"
        )

    def _check_paid_once(self) -> None:
        paid: Counter[tuple[date, str, int | None]] = Counter()
        for run in self.runs:
            for i in range(run.start, run.end):
                call = self.sim.calls[i]
                if call.billed and call.user_id not in run.exempt:
                    paid[(run.day, call.user_id or "", call.page)] += 1
        twice = sorted((k, n) for k, n in paid.items() if n > 1)
        assert not twice, "invariant 5 (paid once): pages paid more than once in a day: " + ", ".join(
            f"{self._who((c, d))} page {p} x{n}" for (d, c, p), n in twice
        )

    # -- machinery: clock, truth, runs -------------------------------------------------------------

    def _clock(self) -> datetime:
        return self._base + timedelta(seconds=systime.monotonic() - self._base_mono)

    def _set_clock(self, day: date, minute: int) -> None:
        self._base = datetime.combine(day, time(10, min(minute, 59)), tzinfo=SHANGHAI)
        self._base_mono = systime.monotonic()

    def _new_day(self) -> None:
        self.day += timedelta(days=1)
        self.runs_today = 0

    def _creator(self, index: int) -> str:
        return self.creators[index % len(self.creators)]

    def _new_note(self, c: str) -> Note:
        self.serials[c] += 1
        return draw_note(self.rng, c, self.serials[c], self.day, fresh=True)

    def _push(self, c: str) -> None:
        self.sim.set_notes(c, [n.item() for n in self.truth[c]])

    def _who(self, key: tuple[str, date]) -> str:
        c, d = key
        index = self.creators.index(c) if c in self.creators else "?"
        return f"creator {index} on day {(d - FIRST_DAY).days} ({d.isoformat()})"

    def _calls_text(self, calls: Counter[tuple[Any, ...]]) -> str:
        if not calls:
            return "none"
        return ", ".join(
            f"{self._who((c, d))} page {p} (http {h}, code {code}, billed {b}) x{n}"
            for (d, c, p, h, code, b), n in sorted(calls.items(), key=str)[:8]
        )

    def api(self, budget: int = 0) -> PgyApiResource:
        # One request at a time: the order of calls (hence a kill after N calls, a budget cut) is the plan's.
        return fast_api(
            self.sim, max_concurrency=1, full_scan_every_days=self.cadence, daily_call_budget=budget
        )

    def _plan(self, c: str, day: date, *, refresh: bool, scan: str, change: Change | None) -> Plan:
        """What the rules say a run must do for creator ``c`` (the intended rules, README and docs)."""
        key = (c, day)
        stored = self.stored.get(key)
        if stored is not None and not refresh:
            return Plan("skip")
        if key in self.spool:
            return Plan("spool", self.spool[key].scan, self.spool[key].why)
        fulls = [
            d for (cc, d), s in self.stored.items() if cc == c and d < day and s.scan.status in FULL_ON_RECORD
        ]
        if scan == "full":
            mode, why = "full", "run config scan: full"
        elif stored is not None and stored.scan.status not in WINDOW_STATUSES:
            mode, why = "full", f"refresh of a day whose stored scan is {stored.scan.status!r}"
        elif not fulls:
            mode, why = "full", "no full scan on record before today"
        elif (day - max(fulls)).days >= self.cadence:
            mode, why = "full", f"last full scan {(day - max(fulls)).days} days old, cadence {self.cadence}"
        else:
            mode, why = "window", f"full scan {(day - max(fulls)).days} days old, cadence {self.cadence}"
        return Plan("fetch", simulate_scan(self.truth[c], day, mode, change), why)

    def _billed_on(self, day: date) -> int:
        return sum(
            self.sim.calls[i].billed for run in self.runs if run.day == day for i in range(run.start, run.end)
        )

    def _run(
        self,
        label: str,
        *,
        refresh: bool = False,
        scan: str = "auto",
        short_by: int | None = None,
        kill_after: int | None = None,
    ) -> None:
        """One run over every creator for today, its follow-up, and what the rules say it must do."""
        day = self.day
        if day not in self.days_run:
            self.days_run.append(day)
        changes: dict[str, Change] = {}
        for c, (kind, page) in self.pending_change.items():
            changes[c] = Change(kind, page, self._new_note(c) if kind == "insert" else None)
        self.pending_change.clear()
        plans = {
            c: self._plan(c, day, refresh=refresh, scan=scan, change=changes.get(c)) for c in self.creators
        }
        fired: set[str] = set()
        for c, change in changes.items():
            after = [n.item() for n in change.apply(self.truth[c])]

            def shift(user_id: str, page: int | None, c: str = c, after: list = after) -> None:
                fired.add(c)
                self.sim.set_notes(c, after)

            self.sim.add_fault("hook", user_id=c, page=change.page, fn=shift)

        budget = 0
        if short_by is not None:
            need = sum(len(p.scan.pages) for p in plans.values() if p.action == "fetch" and p.scan)
            budget = max(1, self._billed_on(day) + need - short_by)
        config: dict[str, Any] = {"scan": scan, **({"refresh": True} if refresh else {})}
        run_config = {"ops": {NOTE_PAGES_OP: {"config": config}}}
        self._set_clock(day, self.runs_today)
        self.runs_today += 1
        run = RunRecord(label, day, start=len(self.sim.calls))
        self.runs.append(run)
        run.exempt = {c for c in self.creators if refresh and (c, day) in self.stored}
        killed = False
        try:
            if kill_after is None:
                result = run_pipeline(
                    self.instance,
                    self.api(budget),
                    self.duckdb,
                    self.creators,
                    day.isoformat(),
                    run_config=run_config,
                )
                success, failures = result.success, step_failure_messages(result)
            else:
                killed, success, failures = self._run_killed(run, run_config, kill_after)
        finally:
            self.sim.clear_faults()
            run.end = len(self.sim.calls)
        for c in fired:
            self.truth[c] = changes[c].apply(self.truth[c])
        pages: dict[str, list[int | None]] = {c: [] for c in self.creators}  # pages asked for
        answered: dict[str, list[int | None]] = {c: [] for c in self.creators}
        first_call: dict[str, int] = {}  # started creators, and the index of their first call
        for i in range(run.start, run.end):
            call = self.sim.calls[i]
            if call.user_id in pages:
                pages[call.user_id].append(call.page)
                first_call.setdefault(call.user_id, i)
                if i not in run.unanswered:
                    answered[call.user_id].append(call.page)
        deferred: list[str] = []  # no call
        cut: list[str] = []  # started, not finished
        completed: list[str] = []
        for c, plan in plans.items():
            if plan.action != "fetch":
                assert not pages[c], (
                    f"{label}: {self._who((c, day))} needed no call ({plan.action}), "
                    f"yet the pipeline paid pages {pages[c]}"
                )
                if plan.action == "spool":
                    self.stored[(c, day)] = self.spool.pop((c, day))
                continue
            assert plan.scan is not None
            if not pages[c]:
                deferred.append(c)
            elif answered[c] == list(range(1, len(plan.scan.pages) + 1)):
                completed.append(c)
            else:
                cut.append(c)

        if TRACE:
            done = {
                c: f"{p.action} {p.scan.mode} {p.scan.status}" if p.scan else p.action
                for c, p in plans.items()
            }
            print(
                f"  {label} on day {(day - FIRST_DAY).days}: success {success}, killed {killed}, "
                + ", ".join(f"c{i}: {done[c]} paid {pages[c]}" for i, c in enumerate(self.creators))
            )
        wrong_calls: list[str] = []
        if killed:
            self._after_kill(run, label, plans, completed, cut)
        else:  # (a run meant to be killed that ended before its call after_calls + 1 is a normal run)
            if short_by is not None:
                self._check_budget(label, run, budget, plans, first_call, cut, deferred, success, failures)
            else:
                # Whatever the pipeline did, the day must end as the rules say: compare with that.
                wrong_calls, completed = cut + deferred, completed + cut + deferred
            for c in completed:
                plan = plans[c]
                assert plan.scan is not None
                self.stored[(c, day)] = Stored(plan.scan, plan.why)
        self._follow_up()
        # Checked here, before the step's invariants, and before the calls: what was lost comes first.
        self._check_warehouse(read_warehouse(self.db_path))
        for c in wrong_calls:
            plan = plans[c]
            assert plan.scan is not None
            raise AssertionError(
                f"{label}: {self._who((c, day))}: the rules call for a {plan.scan.mode} scan ({plan.why}) "
                f"paying pages 1..{len(plan.scan.pages)}; the pipeline paid pages {pages[c]}"
            )
        assert success or short_by is not None or killed, f"{label}: the run failed: {failures}"
        for c in completed:
            plan = plans[c]
            assert plan.scan is not None
            assert (c in fired) == plan.scan.fired, (
                f"{label}: {self._who((c, day))}: the mid-paging change fired: {c in fired}, expected "
                f"{plan.scan.fired}"
            )

    def _check_budget(
        self,
        label: str,
        run: RunRecord,
        budget: int,
        plans: dict[str, Plan],
        first_call: dict[str, int],
        cut: list[str],
        deferred: list[str],
        success: bool,
        failures: list[str],
    ) -> None:
        """The cut happens between creators: a started creator is finished, none starts once the budget
        is reached, and those left out (0 calls) are named in the run's failure."""
        for c in cut:
            plan = plans[c]
            assert plan.scan is not None
            paid = [
                self.sim.calls[i].page for i in range(run.start, run.end) if self.sim.calls[i].user_id == c
            ]
            raise AssertionError(
                f"invariant 5 (budget): {label} (budget {budget}): {self._who((c, run.day))} was started and "
                f"paid pages {paid}, but not finished (its {plan.scan.mode} scan has {len(plan.scan.pages)} "
                "pages): paid pages thrown away"
            )
        before = self._billed_on(run.day) - sum(self.sim.calls[i].billed for i in range(run.start, run.end))
        for c, index in sorted(first_call.items(), key=lambda kv: kv[1]):
            paid_before = before + sum(self.sim.calls[i].billed for i in range(run.start, index))
            assert paid_before < budget, (
                f"invariant 5 (budget): {label}: {self._who((c, run.day))} was started with "
                f"{paid_before} calls paid today, budget {budget}"
            )
        assert success == (not deferred), (
            f"{label}: success {success} with {len(deferred)} creator(s) left out"
        )
        if deferred:
            assert any("daily call budget" in m for m in failures), failures

    def _run_killed(
        self, run: RunRecord, run_config: dict[str, Any], after_calls: int
    ) -> tuple[bool, bool, list[str]]:
        """Run in a forked process that is killed (SIGKILL) when it asks for call ``after_calls + 1``;
        that request is dropped unanswered. Returns (killed, the run succeeded, its failures)."""
        state: dict[str, Any] = {"count": 0, "pid": None}
        ready, done = threading.Event(), threading.Event()

        def kill(user_id: str, page: int | None) -> str | None:
            state["count"] += 1
            if state["count"] != after_calls + 1:
                return None
            ready.wait(30)
            try:
                os.kill(state["pid"], signal.SIGKILL)
                os.waitpid(state["pid"], 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            run.unanswered.add(len(self.sim.calls))  # this request's record comes next
            done.set()
            return "drop"

        self.sim.add_fault("hook", fn=kill, times=None)
        ref = self.instance.get_ref()
        api, duckdb = self.api(), self.duckdb
        report = os.path.join(self.tmp, f"run-{len(self.runs)}.json")
        pid = os.fork()
        if pid == 0:  # the run's own process
            code = 2
            try:
                with DagsterInstance.from_ref(ref) as instance:
                    result = run_pipeline(
                        instance, api, duckdb, self.creators, run.day.isoformat(), run_config=run_config
                    )
                    with open(report, "w", encoding="utf-8") as f:
                        json.dump({"success": result.success, "failures": step_failure_messages(result)}, f)
                    code = 0 if result.success else 1
            finally:
                os._exit(code)
        state["pid"] = pid
        ready.set()
        deadline = systime.monotonic() + 300
        while not done.is_set():
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped by the hook
                break
            if reaped:
                if os.WIFSIGNALED(status):  # killed by the hook, which may still be finishing
                    break
                outcome = {"success": False, "failures": [f"exit status {status}"]}
                if os.path.exists(report):
                    with open(report, encoding="utf-8") as f:
                        outcome = json.load(f)
                return False, outcome["success"], outcome["failures"]
            assert systime.monotonic() < deadline, "the killed run's process neither finished nor was killed"
            systime.sleep(0.02)
        assert done.wait(30), "the run's process died, but not by the kill"
        while len(self.sim.calls) <= max(run.unanswered):  # the dropped request's record
            systime.sleep(0.01)
        return True, False, []

    def _after_kill(
        self,
        run: RunRecord,
        label: str,
        plans: dict[str, Plan],
        completed: list[str],
        cut: list[str],
    ) -> None:
        """Killed mid-fetch: whole scans wait in the spool, nothing is written, the cut scan is exempt from
        'paid once' (its pages are paid again by the rerun)."""
        assert len(cut) <= 1, f"{label}: one scan at a time, yet {len(cut)} were cut by the kill"
        run.exempt |= set(cut)
        for c in completed:
            plan = plans[c]
            assert plan.scan is not None
            self.spool[(c, run.day)] = Stored(plan.scan, plan.why)
        got = spooled(self.db_path, run.day)
        assert got == set(completed), (
            f"{label}: the spool should hold the scans completed before the kill "
            f"({sorted(self.creators.index(c) for c in completed)}), holds "
            f"{sorted(self.creators.index(c) for c in got if c in self.creators)}"
        )

    def _run_past(self, day: date, refresh: bool) -> None:
        """A run for a day that is no longer today: only stored partitions are left as they are."""
        self._set_clock(self.day, self.runs_today)
        self.runs_today += 1
        run = RunRecord(f"run for yesterday (refresh {refresh})", day, start=len(self.sim.calls))
        self.runs.append(run)
        config: dict[str, Any] = {"refresh": True} if refresh else {}
        try:
            result = run_pipeline(
                self.instance,
                self.api(),
                self.duckdb,
                self.creators,
                day.isoformat(),
                run_config={"ops": {NOTE_PAGES_OP: {"config": config}}},
            )
        finally:
            run.end = len(self.sim.calls)
        assert run.end == run.start, f"{run.label}: {run.end - run.start} call(s) for a past day"
        must_fetch = refresh or any((c, day) not in self.stored for c in self.creators)
        assert result.success is not must_fetch, (
            f"{run.label}: success {result.success}; something to fetch: {must_fetch}; {step_failure_messages(result)}"
        )
        self._follow_up()

    def _follow_up(self) -> None:
        """What raw_pages_followup_sensor launches after a run (notes and metrics where raw pages changed
        without them), evaluated on the instance and run at once."""
        with build_sensor_context(instance=self.instance, cursor=self.followup_cursor) as context:
            data = raw_pages_followup_sensor.evaluate_tick(context)
        self.followup_cursor = data.cursor
        for request in data.run_requests or []:
            result = materialize(
                [notes, creator_engagement_metrics],
                instance=self.instance,
                resources={"duckdb": self.duckdb},
                tags=request.tags,
                raise_on_error=False,
            )
            assert result.success, f"follow-up rebuild failed: {step_failure_messages(result)}"

    # -- the warehouse check -----------------------------------------------------------------------

    def _check_warehouse(self, wh: Warehouse) -> None:
        self._checked = len(self.runs)
        want = set(self.stored)
        for name, have in (
            ("raw.note_pages", set(wh.raw)),
            ("analytics.creator_snapshots", set(wh.snapshots)),
            ("analytics.creator_engagement_metrics", set(wh.metrics)),
        ):
            missing, extra = want - have, have - want
            assert not missing and not extra, (
                f"partitions of {name}: missing {[self._who(k) for k in sorted(missing)]}, "
                f"unexpected {[self._who(k) for k in sorted(extra)]} (half-written, or a scan the rules do not call for)"
            )
        assert set(wh.notes) <= want, (
            f"analytics.notes has partitions {sorted(set(wh.notes) - want)} without raw pages"
        )
        reports = []
        for key in sorted(want, key=lambda k: (self.creators.index(k[0]), k[1])):
            try:
                self._check_partition(key, wh)
            except AssertionError as exc:
                reports.append(str(exc))
        assert not reports, "\n".join(reports)

    def _check_partition(self, key: tuple[str, date], wh: Warehouse) -> None:
        """Every problem of one partition, reported together (lost notes first, then why)."""
        c, day = key
        stored = self.stored[key]
        scan = stored.scan
        problems: list[str] = []
        rows = wh.notes.get(key, [])
        ids = [r[0] for r in rows]
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if repeated:
            problems.append(f"invariant 3 (once each): notes stored more than once: {repeated}")
        served = scan.served()
        invented = [i for i in ids if i not in served]
        if invented:
            problems.append(f"invariant 3: notes the service never listed: {invented}")
        for note_id, published, reads, likes, collects, video, ad, brand in rows:
            n = served.get(note_id)
            if n is not None and (published, reads, likes, collects, video, ad, brand) != (
                n.published,
                n.reads,
                n.likes,
                n.collects,
                n.is_video,
                n.is_ad,
                n.brand,
            ):
                problems.append(f"note {note_id} stored with other values than served")
        got = set(ids)
        members = [served[i] for i in ids if i in served]
        if scan.drifted:
            # The list moved while paging: off by at most the notes that moved, before or after.
            # A window scan is judged on what it must cover: the notes of the last 90 days.
            since = day - timedelta(days=90) if scan.mode == "window" else date.min
            region = {n.note_id for n in members if n.published >= since}
            before = {n.note_id for n in scan.before if n.published >= since}
            after = {n.note_id for n in scan.after if n.published >= since}
            off = min(len(region ^ before), len(region ^ after))
            if off > scan.moved:
                problems.append(f"invariant 3 (drift): {off} notes off the truth, {scan.moved} moved")
        else:
            want = {n.note_id for n in scan.stored}
            if got != want:
                problems.append(
                    (
                        "invariant 3 (a full-scan day holds the truth's notes)"
                        if scan.status in FULL_ON_RECORD
                        else "invariant 3"
                    )
                    + f": analytics.notes lacks {len(want - got)} of the {len(want)} notes the {scan.mode} scan "
                    f"reads {sorted(want - got)[:3]}, has {len(got - want)} extra {sorted(got - want)[:3]}"
                )
        pages, modes = wh.raw[key]
        if modes != {scan.mode}:
            problems.append(
                f"invariant 3 (scan): the rules call for a {scan.mode} scan ({stored.why}); raw.note_pages holds "
                f"a {'/'.join(sorted(modes))} scan of {pages} page(s)"
            )
        elif not scan.drifted and pages != len(scan.pages):
            problems.append(f"{pages} pages stored, the {scan.mode} scan reads {len(scan.pages)}")
        status = wh.snapshots[key]
        if status != scan.status:
            problems.append(
                f"invariant 3 (scan_status): {status!r}, expected {scan.status!r}"
                + (
                    f" (the list moved by {scan.moved} note(s) while paging: totals {scan.totals})"
                    if scan.drifted
                    else ""
                )
            )

        previous = max((d for (cc, d) in self.stored if cc == c and d < day), default=None)
        previous_reads = None
        previous_status = None
        if previous is not None:
            previous_reads = {r[0]: r[2] for r in wh.notes.get((c, previous), [])}
            previous_status = self.stored[(c, previous)].scan.status
        context = {"previous": previous, "previous_reads": previous_reads, "total": scan.total}
        truth = scan.before if not scan.drifted else members
        metrics = wh.metrics[key]
        unknown = sorted(set(next(iter(metrics.values()), {})) - set(METRIC_COLUMNS) - KEY_COLUMNS)
        if unknown:
            problems.append(
                f"metric columns the oracle does not compute: {unknown} (define them in "
                "oracle_support.expected_cell, from their docs/tables.md definition)"
            )
        if len(metrics) != 9:
            problems.append(f"{len(metrics)} metric rows, expected 9")
        partial_all = scan.status in WINDOW_STATUSES or scan.drifted
        for window, days in WINDOWS:
            for segment in SEGMENTS:
                got_row = metrics.get((window, segment), {})
                expected = expected_cell(truth, day, days, segment, **context)
                cell = f"window {window!r} segment {segment!r}"
                if window != "all":
                    if scan.drifted:
                        loose = expected_cell(scan.after, day, days, segment, **context)
                        if abs((got_row.get("note_count") or 0) - loose["note_count"]) > scan.moved:
                            problems.append(
                                f"invariant 1 (drift): {cell}: note_count {got_row.get('note_count')}, truth "
                                f"{loose['note_count']}, {scan.moved} moved"
                            )
                    problems += self._differences(
                        "invariant 1 (30d/90d equal the truth)", cell, expected, got_row
                    )
                    continue
                if previous_status in WINDOW_STATUSES:
                    expected["read_gain"] = None  # documented: NULL after a window-scan day
                if not partial_all:
                    problems += self._differences(
                        f"invariant 2 (window 'all' complete on a {scan.status} day)", cell, expected, got_row
                    )
                    continue
                label = f"invariant 2 (window 'all' on a {scan.status} day)"
                for column in sorted(WHOLE_LIST):
                    if got_row.get(column) is not None:
                        problems.append(
                            f"{label}: {cell}: {column} = {got_row.get(column)!r}, must be NULL (it needs the "
                            f"whole list, per {WHOLE_LIST_SOURCE})"
                        )
                candidates = [expected_cell(scan.before, day, None, segment, **context)]
                if scan.drifted:
                    candidates += [
                        expected_cell(scan.after, day, None, segment, **context),
                        expected_cell(members, day, None, segment, **context),
                    ]
                for column in METRIC_COLUMNS:
                    if column in WHOLE_LIST:
                        continue
                    if not any(same_value(e[column], got_row.get(column)) for e in candidates):
                        problems.append(
                            f"{label}: {cell}: {column} = {got_row.get(column)!r}, the whole list gives "
                            f"{candidates[0][column]!r}: a column not declared as needing the whole list (per "
                            f"{WHOLE_LIST_SOURCE}) must be exact"
                        )
        if problems:
            shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
            raise AssertionError(
                f"{self._who(key)} ({scan.mode} scan, {stored.why}):\n  - " + "\n  - ".join(shown)
            )

    @staticmethod
    def _differences(label: str, cell: str, expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
        bad = [
            f"{c} expected {expected[c]!r}, stored {got.get(c)!r}"
            for c in METRIC_COLUMNS
            if not same_value(expected[c], got.get(c))
        ]
        return [f"{label}: {cell}: " + "; ".join(bad)] if bad else []


PipelineOracle.TestCase.settings = ORACLE_SETTINGS
TestPipelineOracle = pytest.mark.timeout(0 if _deep else 1200)(PipelineOracle.TestCase)
