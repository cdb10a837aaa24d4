"""Pacing shared by every process that uses one token: the rate is a budget for the deployment.

The service limits a token, not a pod. With runs in several processes or hosts, each in-process
:class:`~pgy_pipeline.api.pacing.Pacer` would allow the full rate on its own, and together they
would earn 302s. :class:`PostgresPacer` keeps the in-process pacer's rule (request starts at least
``1.03 / max_rps`` apart, each timed from the previous actual release, no bursts) across processes:

* one row per token in ``pgy_api_pacing`` holds the time of the last release, by PostgreSQL's
  clock (so hosts with skewed clocks agree);
* the margin is wider than in-process (about 10% under the limit by default, ``arrival_jitter_s``),
  because requests of different processes reach the service with more jitter than threads' do;
* a release locks that row (``SELECT ... FOR UPDATE``), sleeps until ``last + interval``, stamps
  the row with the actual release time and commits: the next process's lock waits for that commit;
* the row is keyed by a SHA-256 of the token, never the token; a process that dies mid-wait loses
  its connection and PostgreSQL frees the lock.

Selected by ``PGY_PACING_URL``. psycopg2 is imported only when used (it comes with the project's
``postgres`` extra); nothing here knows Dagster or DuckDB.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any

from pgy_pipeline.api.pacing import Pacer
from pgy_pipeline.errors import SharedPacingError

TABLE = "pgy_api_pacing"
_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    token_key    TEXT PRIMARY KEY,
    last_release TIMESTAMPTZ NOT NULL
)
"""


def token_key(token: str) -> str:
    """The row key for ``token``: a one-way digest, so the table never holds the token."""
    return hashlib.sha256(b"pgy_pipeline pacing\0" + token.encode()).hexdigest()


def _redact(url: str) -> str:
    """``url`` with any password (URL userinfo or ``password=`` in a conninfo) replaced by ``***``."""
    url = re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", url, flags=re.IGNORECASE)


class PostgresPacer(Pacer):
    """A :class:`Pacer` whose spacing holds across every process pacing the same token at ``url``.

    ``max_concurrency`` still caps requests in flight per process (that bounds local sockets);
    the rate is the shared part.
    """

    def __init__(
        self,
        url: str,
        token: str,
        max_rps: float | None,
        max_concurrency: int,
        *,
        arrival_jitter_s: float = 0.07,
        connect_timeout_s: int = 10,
    ) -> None:
        super().__init__(max_rps, max_concurrency)
        if max_rps is not None:
            # A wider margin than in-process: the service counts arrivals, and a request of another
            # process (its first one opening a connection, or one descheduled on a busy host) may
            # arrive this much after its release. rps + 1 arrivals then still span over one second.
            self.interval = (1.03 + arrival_jitter_s) / max_rps
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._key = token_key(token)
        self._conn: Any = None
        self._conn_lock = threading.Lock()

    def _connect(self) -> Any:
        try:
            import psycopg2
        except ImportError as exc:  # pragma: no cover - the postgres extra brings it
            raise SharedPacingError(
                "PGY_PACING_URL is set but psycopg2 is not installed: pip install -e '.[postgres]'"
            ) from exc
        try:
            conn = psycopg2.connect(self.url, connect_timeout=self.connect_timeout_s)
            with conn, conn.cursor() as cur:
                # Two processes creating the table at once would race inside PostgreSQL's catalog.
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [TABLE])
                cur.execute(_CREATE)
                cur.execute(
                    f"INSERT INTO {TABLE} (token_key, last_release) VALUES (%s, 'epoch') "
                    "ON CONFLICT (token_key) DO NOTHING",
                    [self._key],
                )
        except psycopg2.Error as exc:
            raise SharedPacingError(
                f"the shared pacing database (PGY_PACING_URL={_redact(self.url)}) cannot be used: "
                f"{str(exc).strip()}. No API call was made; fix the URL or unset PGY_PACING_URL "
                "(then each process paces on its own, which is only safe with one process per token)."
            ) from None
        return conn

    def _release_shared(self) -> None:
        """Wait for this token's next slot across processes, then take it."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        conn = self._conn
        try:
            with conn, conn.cursor() as cur:
                cur.execute(
                    f"SELECT extract(epoch FROM last_release + make_interval(secs => %s) - clock_timestamp()) "
                    f"FROM {TABLE} WHERE token_key = %s FOR UPDATE",
                    [self.interval, self._key],
                )
                row = cur.fetchone()
                wait = float(row[0]) if row and row[0] is not None else 0.0
                if wait > 0:
                    time.sleep(wait)
                cur.execute(
                    f"UPDATE {TABLE} SET last_release = clock_timestamp() WHERE token_key = %s", [self._key]
                )
        except Exception as exc:
            import psycopg2

            if isinstance(exc, psycopg2.Error):
                conn.close()
                raise SharedPacingError(
                    f"shared pacing failed ({type(exc).__name__}: {str(exc).strip()}); the request was "
                    "not sent"
                ) from None
            raise

    def __enter__(self) -> PostgresPacer:
        self._slots.acquire()
        try:
            # The local gate keeps this process's threads to one shared release at a time, on one
            # connection; the row lock orders the processes.
            with self._gate:
                if self.interval > 0:
                    self._release_shared()
                self._last_release = time.monotonic()
        except BaseException:
            self._slots.release()
            raise
        return self

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
            self._conn = None
