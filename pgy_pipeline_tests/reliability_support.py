"""Helpers shared by the reliability suite (``test_reliability_*.py``).

* :func:`record` stores the figures a test observed (calls, rows, retries...) in the JSON file named
  by ``PGY_RELIABILITY_REPORT``, for ``python -m pgy_pipeline_tests.reliability_report`` to render
  ``docs/reliability.md``. Without the variable it does nothing.
* :class:`RunnerProcess` runs :mod:`pgy_pipeline_tests.reliability_runner` in another process and
  follows the JSON events it prints, so a test can kill it at a chosen moment.
* Small DuckDB readers: :func:`query`, :func:`dump`, :func:`spooled`.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance

from pgy_pipeline.orchestration.partitions import today_shanghai

REPO_ROOT = Path(__file__).resolve().parent.parent
REPORT_ENV = "PGY_RELIABILITY_REPORT"
TABLES = [
    "raw.note_pages",
    "analytics.notes",
    "analytics.note_rejects",
    "analytics.creator_engagement_metrics",
]


# -- figures for docs/reliability.md ---------------------------------------------------------------


def record(scenario: str, **figures) -> None:
    """Store what a test observed under ``scenario`` (an id listed in reliability_report.SCENARIOS)."""
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
        data[scenario] = figures
        target.write_text(json.dumps(data, indent=1, sort_keys=True, default=str), encoding="utf-8")


# -- DuckDB -----------------------------------------------------------------------------------------


def query(db_path: str, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(db_path, read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def dump(db_path: str, tables: list[str] = TABLES) -> dict[str, list[tuple]]:
    """Every row of the pipeline's partitioned tables, sorted: compare two to prove nothing changed."""
    if not Path(db_path).exists():
        return {t: [] for t in tables}
    with duckdb.connect(db_path, read_only=True) as conn:
        have = {
            f"{s}.{n}"
            for s, n in conn.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() "
                "UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() if t in have else [] for t in tables
        }


def kept(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> bool:
    """True when every row of ``before`` (a :func:`dump`) is still in ``after``."""
    return all({repr(r) for r in rows} <= {repr(r) for r in after[t]} for t, rows in before.items())


def partition_rows(db_path: str, table: str, creator: str, day: date) -> list[tuple]:
    return query(
        db_path,
        f"SELECT * FROM {table} WHERE creator_id = ? AND snapshot_date = ? ORDER BY ALL",
        [creator, day],
    )


def counts(db_path: str, table: str, day: date | None = None) -> dict[str, int]:
    day = day or today_shanghai()
    if not Path(db_path).exists():
        return {}
    try:
        rows = query(
            db_path, f"SELECT creator_id, count(*) FROM {table} WHERE snapshot_date = ? GROUP BY 1", [day]
        )
    except duckdb.CatalogException:  # the schema is not there yet
        return {}
    return dict(rows)


def spooled(db_path: str, day: date | None = None) -> set[str]:
    """Creators whose pages wait in the spool for ``day``."""
    folder = Path(db_path + ".spool") / (day or today_shanghai()).isoformat()
    return {p.stem for p in folder.glob("*.json")} if folder.exists() else set()


def pages_needed(n_notes: int, page_size: int) -> int:
    return max(1, math.ceil(n_notes / page_size))


# -- Dagster ----------------------------------------------------------------------------------------


def persistent_home(tmp_path: Path, with_config: bool = True) -> Path:
    """A DAGSTER_HOME shared by processes; with the project's dagster.yaml (run queue, monitoring)."""
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    if with_config:
        shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def open_instance(home: Path) -> DagsterInstance:
    return DagsterInstance.local_temp(str(home))


def step_failure_texts(instance: DagsterInstance, run_id: str) -> list[str]:
    """Step failure messages of a stored run, cause chains included."""
    from dagster import DagsterEventType

    from pgy_pipeline_tests.conftest import error_chain_text

    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records
    return [error_chain_text(r.event_log_entry.dagster_event.step_failure_data.error) for r in records]


# -- a pipeline run in another process --------------------------------------------------------------


class RunnerProcess:
    """``python -m pgy_pipeline_tests.reliability_runner`` with its JSON events read in a thread."""

    def __init__(
        self, *, home: Path, db: str, base_url: str, creators: list[str], token: str, **options
    ) -> None:
        args = [
            sys.executable,
            "-m",
            "pgy_pipeline_tests.reliability_runner",
            "--home",
            str(home),
            "--db",
            db,
            "--base-url",
            base_url,
            "--creators",
            ",".join(creators),
        ]
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                args.append(flag)
            elif value not in (None, False):
                args += [flag, str(value)]
        env = {**os.environ, "JUSTONEAPI_TOKEN": token, "PYTHONPATH": str(REPO_ROOT)}
        self.events: list[dict] = []
        self._queue: queue.Queue[dict | None] = queue.Queue()
        self.stderr_path = Path(db).with_suffix(f".runner{time.monotonic_ns()}.stderr")
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
            cwd=str(REPO_ROOT),
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self._queue.put(json.loads(line))
                except ValueError:
                    pass
        self._queue.put(None)

    def wait_for(self, event: str, timeout_s: float = 60.0, **match) -> dict:
        """Block until the runner prints ``event`` (with the given fields); fail after ``timeout_s``."""
        for seen in self.events:
            if seen["event"] == event and all(seen.get(k) == v for k, v in match.items()):
                return seen
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                pytest.fail(
                    f"runner never printed {event} {match or ''} within {timeout_s:g} s; "
                    f"events: {self.events}\nstderr tail:\n{self.stderr_tail()}"
                )
            try:
                item = self._queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if item is None:
                self._queue.put(None)
                pytest.fail(
                    f"runner exited ({self.proc.wait()}) before {event}; events: {self.events}\n"
                    f"stderr tail:\n{self.stderr_tail()}"
                )
            self.events.append(item)
            if item["event"] == event and all(item.get(k) == v for k, v in match.items()):
                return item

    def seen(self, event: str, **match) -> bool:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)
                break
            self.events.append(item)
        return any(e["event"] == event and all(e.get(k) == v for k, v in match.items()) for e in self.events)

    def drain(self) -> list[dict]:
        """After the process ended: every event it printed before it died."""
        self._reader.join(timeout=30)
        self.seen("")
        return self.events

    def result(self, timeout_s: float = 120.0) -> dict:
        return self.wait_for("result", timeout_s)

    def kill(self) -> None:
        """SIGKILL, as the OOM killer or a power cut would: no cleanup runs."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._stderr.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        else:
            self.proc.wait()
            self._stderr.close()

    def stderr_tail(self, n: int = 4000) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""


def iter_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path


class Holder:
    """Another process holding the DuckDB file open (read-only or read-write) until released.

    The process starts (Python and DuckDB imported) before it is told to open the file, so that
    ``open()`` takes milliseconds and a test can time it against a run.
    """

    SCRIPT = (
        "import duckdb, sys, time\n"
        "print('started', flush=True)\n"
        "sys.stdin.readline()\n"
        "conn = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'ro')\n"
        "conn.execute('SELECT count(*) FROM duckdb_tables()').fetchall()\n"
        "print('ready', flush=True)\n"
        "hold = float(sys.argv[3])\n"
        "if hold > 0:\n"
        "    time.sleep(hold)\n"
        "else:\n"
        "    sys.stdin.read()\n"
        "conn.close()\n"
        "print('closed', flush=True)\n"
    )

    def __init__(self, db_path: str, mode: str, hold_s: float = 0.0, open_now: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, db_path, mode, str(hold_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid
        self._expect("started")
        if open_now:
            self.open()

    def _expect(self, word: str) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != word:
            err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
            raise RuntimeError(f"holder: expected {word!r}, got {line!r} {err}")

    def open(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("open\n")
        self.proc.stdin.flush()
        self._expect("ready")

    def release(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
        self.proc.wait(timeout=30)

    def wait_closed(self, timeout_s: float = 30.0) -> None:
        self.proc.wait(timeout=timeout_s)
