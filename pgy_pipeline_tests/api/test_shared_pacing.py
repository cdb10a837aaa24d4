"""Pacing shared across processes through PostgreSQL (PGY_PACING_URL), against the simulator's
per-token rate limit: two processes, one token, one budget.

Needs ``PGY_TEST_POSTGRES_URL`` (scripts/test.sh starts a throwaway server when PostgreSQL's
binaries are installed); each test gets its own database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from pgy_pipeline.api.client import PgyClient
from pgy_pipeline.api.shared_pacing import TABLE, PostgresPacer, token_key
from pgy_pipeline.errors import SharedPacingError
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.conftest import TEST_TOKEN, creator_ids

SERVER_URL = os.getenv("PGY_TEST_POSTGRES_URL", "")
RATE = 8.0
PAGES_PER_PROCESS = 16

# One run process: page 1 of several creators, through a client paced at RATE (shared or not).
WORKER = """
import sys, time
from pgy_pipeline.api.client import PgyClient
base_url, token, pacing_url, n, rate = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4]), float(sys.argv[5])
creators = sys.argv[6].split(",")
client = PgyClient(token, base_url=base_url, max_rps=rate, max_concurrency=2, pacing_url=pacing_url,
                   rate_limit_backoff_s=0.05, backoff_initial_s=0.05, max_attempts=20, timeout_s=10)
print("ready", flush=True)
sys.stdin.readline()  # both processes start together
for i in range(n):
    client.fetch_page(creators[i % len(creators)], 1)
client.close()
print("done", client.stats.calls, flush=True)
"""


def _libpq(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{database}"))


@pytest.fixture
def pacing_url() -> Iterator[str]:
    if not SERVER_URL:
        pytest.skip("PGY_TEST_POSTGRES_URL is not set: no PostgreSQL server for the shared pacing test")
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"pgy_pacing_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(_libpq(SERVER_URL, urlsplit(SERVER_URL).path.lstrip("/") or "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _libpq(SERVER_URL, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _two_processes(sim: Simulator, pacing_url: str) -> float:
    """Run two worker processes at once; returns the wall time from their common start."""
    creators = creator_ids(8, prefix="pace")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                sim.base_url,
                TEST_TOKEN,
                pacing_url,
                str(PAGES_PER_PROCESS),
                str(RATE),
                ",".join(creators[i::2]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    started = time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
    return time.monotonic() - started


def _outcomes(sim: Simulator) -> tuple[int, int, float]:
    """(accepted calls, 302 answers, accepted requests per second from first to last)."""
    ok = [c for c in sim.calls if c.outcome == 0]
    limited = sum(1 for c in sim.calls if c.outcome == 302)
    times = sorted(c.at for c in ok)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return len(ok), limited, (len(ok) - 1) / span if span else 0.0


def test_two_processes_share_one_tokens_rate(simulator: Simulator, pacing_url: str) -> None:
    simulator.configure(rate_limit_rps=RATE)
    _two_processes(simulator, pacing_url)
    accepted, limited, rate = _outcomes(simulator)
    assert accepted == 2 * PAGES_PER_PROCESS
    assert limited == 0, f"{limited} requests answered 302 with shared pacing"
    # Near the limit, never over it: the shared pacer keeps about a 10% margin.
    assert 0.75 * RATE <= rate <= RATE, rate


def test_without_shared_pacing_two_processes_overrun_the_limit(simulator: Simulator) -> None:
    """The control: each process alone paces at the full rate, so together they earn 302s."""
    simulator.configure(rate_limit_rps=RATE)
    _two_processes(simulator, "")
    _, limited, _ = _outcomes(simulator)
    assert limited > 0


def test_row_is_keyed_by_a_digest_never_the_token(simulator: Simulator, pacing_url: str) -> None:
    import psycopg2

    with PgyClient(TEST_TOKEN, base_url=simulator.base_url, max_rps=50, pacing_url=pacing_url) as client:
        client.fetch_page(creator_ids(1)[0], 1)
    conn = psycopg2.connect(pacing_url)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT token_key, last_release FROM {TABLE}")
            rows = cur.fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == [token_key(TEST_TOKEN)]
    assert TEST_TOKEN not in repr(rows)


def test_unreachable_pacing_database_fails_before_any_call(simulator: Simulator) -> None:
    url = "postgresql://pgy:s3cret-pw@127.0.0.1:1/nowhere"
    pacer = PostgresPacer(url, TEST_TOKEN, 5.0, 1, connect_timeout_s=2)
    with pytest.raises(SharedPacingError) as info:
        with pacer:
            pass
    assert "s3cret-pw" not in str(info.value) and "PGY_PACING_URL" in str(info.value)
    client = PgyClient(TEST_TOKEN, base_url=simulator.base_url, max_rps=5, pacing_url=url)
    with pytest.raises(SharedPacingError):
        client.fetch_page(creator_ids(1)[0], 1)
    client.close()
    assert simulator.call_count() == 0
