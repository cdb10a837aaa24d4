"""Step locks that serialize the pipeline across runs and vanish with the process that holds them.

Two locks, each held by at most one step of any run at a time:

* ``pgy_api``: held by ``raw/note_pages`` from its plan to its write, so one step fetches at a time
  and the client's limits (``JUSTONEAPI_MAX_RPS``, ``JUSTONEAPI_MAX_CONCURRENCY``) are the totals of
  the whole deployment;
* ``pgy_duckdb``: held around every DuckDB write (and the read replica's publication after it), so one process
  writes the file at a time.

Nothing here needs a daemon to recover from a crash, because the holder's death releases the lock:

* :class:`FileLock` (one machine): ``fcntl.flock`` on ``<dir>/<name>.lock``. The kernel drops the lock
  when the holder's last file descriptor closes, which every way of dying does (SIGKILL, OOM kill,
  a crash); a reboot starts with no locks at all. The holder writes its run id, PID, host and start
  time into the file, so a waiter can name it.
* :class:`PostgresLock` (team profile, several hosts): a session advisory lock
  (``pg_try_advisory_lock``) on a connection of its own. PostgreSQL drops it when the session ends:
  at once when the holder's process dies (its kernel closes the socket), and after about a minute
  of TCP keepalives when the whole host vanishes. The holder's identity goes into the table
  ``pgy_step_locks``, matched to the live lock through ``pg_locks`` (a row of a dead holder is
  never shown).

:func:`hold` waits for a lock, telling the step's log what it waits for, who holds it and for how
long (at once, then every ``report_every_s``), and gives up with :class:`LockWaitTimeoutError` after
``wait_s``. No Dagster in here: the caller passes its log function.

Why a shared top-level module (beside ``clock.py`` and ``errors.py``), not ``orchestration/``: it
imports the standard library and ``errors`` only, no Dagster and no DuckDB, so it belongs to no layer.
The orchestration layer takes the locks around its steps, and the warehouse's call ledger uses
:func:`pid_alive` to tell an abandoned journal from one a live process still writes; a module in
``orchestration/`` could not serve the warehouse under the layering rules (``test_layers.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from pgy_pipeline.errors import LockWaitTimeoutError

API_LOCK = "pgy_api"
DUCKDB_LOCK = "pgy_duckdb"
PURPOSE = {
    API_LOCK: "one fetching step at a time, so the API limits are totals across runs",
    DUCKDB_LOCK: "one writer of the DuckDB file at a time",
}


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock: enough for a person to find the run, or the process to end."""

    run_id: str
    pid: int
    host: str
    since: str = ""  # ISO 8601, UTC

    def describe(self) -> str:
        held = ""
        if self.since:
            with contextlib.suppress(ValueError):
                started = datetime.fromisoformat(self.since)
                held = f", held since {self.since} ({(datetime.now(UTC) - started).total_seconds():.0f} s)"
        return f"run {self.run_id} (PID {self.pid} on host {self.host}{held})"

    def to_json(self) -> str:
        return json.dumps(
            {"run_id": self.run_id, "pid": self.pid, "host": self.host, "since": self.since}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> LockHolder | None:
        try:
            data = json.loads(text)
            return cls(str(data["run_id"]), int(data["pid"]), str(data["host"]), str(data.get("since", "")))
        except (ValueError, KeyError, TypeError):
            return None


class StepLock(Protocol):
    """One lock, one attempt at a time: the holder's death releases it."""

    name: str

    def try_acquire(self, me: LockHolder) -> bool:
        """Take the lock if it is free; never blocks."""
        ...

    def holder(self) -> LockHolder | None:
        """Who holds the lock now, if known."""
        ...

    def release(self) -> None:
        """Give the lock back (if held) and free what the attempt used."""
        ...


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """``fcntl.flock`` on ``<directory>/<name>.lock``; the kernel drops it when the holder dies."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{name}.lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._held = False

    def try_acquire(self, me: LockHolder) -> bool:
        assert self._fd is not None, "lock attempt already released"
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._held = True
        data = me.to_json().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        return True

    def holder(self) -> LockHolder | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return None
        found = LockHolder.from_json(text)
        # A holder that died leaves its line until the next holder overwrites it: never name it.
        if found is not None and found.host == socket.gethostname() and not pid_alive(found.pid):
            return None
        return found

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if self._held:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
            self._held = False


def libpq_url(url: str) -> str:
    """``url`` without a SQLAlchemy driver suffix (``postgresql+psycopg2://`` -> ``postgresql://``)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+")[0]))


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    digest = hashlib.sha256(f"pgy_pipeline/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_SETUP_KEY = advisory_key("setup")
_HOLDERS_TABLE = (
    "CREATE TABLE IF NOT EXISTS pgy_step_locks (name text PRIMARY KEY, backend_pid integer NOT NULL, "
    "run_id text NOT NULL, pid integer NOT NULL, host text NOT NULL, since text NOT NULL)"
)
# Session settings, each optional (older servers lack some): the server notices a vanished host through
# keepalives, and an idle-session timeout must never end the session of a lock holder.
_SESSION_SETTINGS = (
    "SET tcp_keepalives_idle = 20",
    "SET tcp_keepalives_interval = 10",
    "SET tcp_keepalives_count = 3",
    "SET idle_session_timeout = 0",
    "SET statement_timeout = 0",
)


class PostgresLock:
    """A PostgreSQL session advisory lock on a connection of its own; ends with the session."""

    def __init__(self, url: str, name: str) -> None:
        try:
            import psycopg2
        except ImportError:  # pragma: no cover - the team profile installs it
            raise RuntimeError(
                "PGY_LOCK_URL is set, but psycopg2 is not installed: pip install -e '.[postgres]'"
            ) from None
        self.name = name
        self.key = advisory_key(name)
        self._held = False
        self._conn: Any = psycopg2.connect(
            libpq_url(url),
            application_name=f"pgy_pipeline lock {name}",
            keepalives=1,
            keepalives_idle=20,
            keepalives_interval=10,
            keepalives_count=3,
            connect_timeout=10,
        )
        self._conn.autocommit = True
        with self._conn.cursor() as cur:
            for statement in _SESSION_SETTINGS:
                try:
                    cur.execute(statement)
                except psycopg2.Error:
                    pass
        # Two first users must not both create the holders table: serialize on a setup lock.
        self._conn.autocommit = False
        with self._conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_SETUP_KEY])
            cur.execute(_HOLDERS_TABLE)
        self._conn.commit()
        self._conn.autocommit = True

    def try_acquire(self, me: LockHolder) -> bool:
        with self._conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
            if not cur.fetchone()[0]:
                return False
            self._held = True
            cur.execute(
                "INSERT INTO pgy_step_locks (name, backend_pid, run_id, pid, host, since) "
                "VALUES (%s, pg_backend_pid(), %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "backend_pid = EXCLUDED.backend_pid, run_id = EXCLUDED.run_id, pid = EXCLUDED.pid, "
                "host = EXCLUDED.host, since = EXCLUDED.since",
                [self.name, me.run_id, me.pid, me.host, me.since],
            )
        return True

    def holder(self) -> LockHolder | None:
        unsigned = self.key & 0xFFFFFFFFFFFFFFFF
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT h.run_id, h.pid, h.host, h.since FROM pg_locks AS l "
                "JOIN pgy_step_locks AS h ON h.backend_pid = l.pid AND h.name = %s "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid::bigint = %s AND l.objid::bigint = %s",
                [self.name, unsigned >> 32, unsigned & 0xFFFFFFFF],
            )
            row = cur.fetchone()
        return LockHolder(str(row[0]), int(row[1]), str(row[2]), str(row[3])) if row else None

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            if self._held:
                with self._conn.cursor() as cur:
                    cur.execute(
                        "DELETE FROM pgy_step_locks WHERE name = %s AND backend_pid = pg_backend_pid()",
                        [self.name],
                    )
                    cur.execute("SELECT pg_advisory_unlock(%s)", [self.key])
        except Exception:  # the session is closed below either way, and that releases the lock
            pass
        finally:
            self._conn.close()
            self._conn = None
            self._held = False


@dataclass(frozen=True)
class StepLocks:
    """Where the step locks live: lock files in ``directory``, or PostgreSQL advisory locks at ``url``."""

    directory: Path
    url: str = ""

    def open(self, name: str) -> StepLock:
        return PostgresLock(self.url, name) if self.url else FileLock(self.directory, name)

    def describe(self) -> str:
        return "PostgreSQL advisory locks (PGY_LOCK_URL)" if self.url else f"lock files in {self.directory}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def hold(
    locks: StepLocks,
    name: str,
    *,
    run_id: str,
    wait_s: float,
    log: Callable[[str], None],
    report_every_s: float = 15.0,
    poll_s: float = 0.2,
) -> Iterator[None]:
    """Hold lock ``name`` for the block, waiting at most ``wait_s`` and logging while waiting."""
    lock = locks.open(name)
    me = LockHolder(run_id=run_id, pid=os.getpid(), host=socket.gethostname())
    started = time.monotonic()
    next_report = started
    waited = 0.0
    try:
        while not lock.try_acquire(replace(me, since=_now_iso())):
            now = time.monotonic()
            waited = now - started
            holder = lock.holder()
            who = holder.describe() if holder else "a process that has not said who it is yet"
            if waited >= wait_s:
                raise LockWaitTimeoutError(
                    f"waited {waited:.0f} s for the lock {name} ({PURPOSE.get(name, name)}), held by "
                    f"{who}. Let that run finish; if it is stuck, terminate it in the Dagster UI or end "
                    f"that process: the lock is released the moment it exits, with nothing to clean up. "
                    f"Then rerun this one (stored creators are skipped, pages already paid for are "
                    f"written from the spool). To wait longer, raise PGY_LOCK_WAIT_S (now {wait_s:g} s)."
                )
            if now >= next_report:
                log(
                    f"waiting for the lock {name} ({PURPOSE.get(name, name)}): held by {who}; "
                    f"waited {waited:.0f} s so far, giving up after {wait_s:g} s (PGY_LOCK_WAIT_S); "
                    f"{locks.describe()}"
                )
                next_report = now + report_every_s
            time.sleep(min(poll_s, max(0.0, started + wait_s - now)))
        if waited:
            log(f"got the lock {name} after waiting {time.monotonic() - started:.1f} s")
        yield
    finally:
        lock.release()
