"""Step locks: held by one process at a time, named while held, released by the holder's death.

Each backend is tested with a real holder in another process, killed with SIGKILL: lock files with
``fcntl.flock`` on a temporary directory, and PostgreSQL advisory locks on the server of
``PGY_TEST_POSTGRES_URL`` (scripts/test.sh starts one).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pgy_pipeline.errors import LockWaitTimeoutError, PgyError
from pgy_pipeline.locks import API_LOCK, DUCKDB_LOCK, StepLocks, hold
from pgy_pipeline_tests.suite_checks import postgres_url

REPO_ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import sys, time
from pgy_pipeline.locks import StepLocks, hold
from pathlib import Path
locks = StepLocks(directory=Path(sys.argv[1]), url=sys.argv[2])
with hold(locks, sys.argv[3], run_id=sys.argv[4], wait_s=30, log=print):
    print("held", flush=True)
    time.sleep(3600)
"""


class Holder:
    """Another process holding one lock until it is killed."""

    def __init__(self, locks: StepLocks, name: str, run_id: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(locks.directory), locks.url, name, run_id],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "held", line

    def kill(self) -> float:
        """SIGKILL; returns the moment it died."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        return time.monotonic()


@pytest.fixture(params=["files", "postgres"])
def locks(request, tmp_path: Path) -> StepLocks:
    if request.param == "files":
        return StepLocks(directory=tmp_path / "pgy.duckdb.locks")
    return StepLocks(directory=tmp_path / "unused", url=postgres_url("the step locks on PostgreSQL"))


def test_a_waiter_names_the_holder_and_gets_the_lock_the_moment_the_holder_is_killed(locks):
    run_id = f"run-{os.getpid()}-{time.monotonic_ns()}"
    holder = Holder(locks, API_LOCK, run_id)
    lines: list[str] = []
    got: list[float] = []

    def wait() -> None:
        with hold(locks, API_LOCK, run_id="waiter", wait_s=30, log=lines.append, report_every_s=0.3):
            got.append(time.monotonic())

    waiter = threading.Thread(target=wait)
    waiter.start()
    try:
        deadline = time.monotonic() + 10
        while len(lines) < 2:  # reported at once, then again after report_every_s
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        assert not got
        first = lines[0]
        assert f"run {run_id} (PID {holder.proc.pid} on host {socket.gethostname()}" in first, first
        assert "lock pgy_api" in first and "PGY_LOCK_WAIT_S" in first and "held since" in first
    finally:
        died = holder.kill()
        waiter.join(timeout=15)
    assert got, lines
    assert got[0] - died < 2.0  # released by the death itself: no daemon, no timeout
    assert lines[-1].startswith("got the lock pgy_api after waiting")
    # and the next holder is not told about the dead one
    with hold(locks, API_LOCK, run_id="again", wait_s=1, log=lines.append):
        pass


def test_the_two_locks_are_independent_and_each_admits_one_holder(locks):
    with hold(locks, API_LOCK, run_id="a", wait_s=1, log=print):
        with hold(locks, DUCKDB_LOCK, run_id="a", wait_s=1, log=print):
            other = locks.open(DUCKDB_LOCK)
            try:
                from pgy_pipeline.locks import LockHolder

                assert not other.try_acquire(LockHolder("b", os.getpid(), "h"))
                held = other.holder()
                assert held is not None and held.run_id == "a" and held.pid == os.getpid()
            finally:
                other.release()


def test_a_wait_past_the_bound_fails_with_what_to_do(locks):
    holder = Holder(locks, DUCKDB_LOCK, "stuck-run")
    try:
        lines: list[str] = []
        started = time.monotonic()
        with pytest.raises(LockWaitTimeoutError) as caught:
            with hold(locks, DUCKDB_LOCK, run_id="late", wait_s=0.8, log=lines.append):
                pytest.fail("got a lock that another process holds")
        assert 0.7 <= time.monotonic() - started < 5
    finally:
        holder.kill()
    message = str(caught.value)
    assert isinstance(caught.value, PgyError)
    assert "stuck-run" in message and f"PID {holder.proc.pid}" in message
    assert "terminate it in the Dagster UI" in message and "PGY_LOCK_WAIT_S" in message
    assert lines and "lock pgy_duckdb" in lines[0]
