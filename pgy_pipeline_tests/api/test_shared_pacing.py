"""Pacing shared across processes through PostgreSQL (PGY_PACING_URL): two processes, one token, one
row whose releases are spaced as the pacer's rule says, whichever process takes them.

The mechanism is checked where it lives: a trigger in the test database logs every release the
pacing row records (its time, by PostgreSQL's clock, and the backend, i.e. the process, that took
it), and consecutive releases must lie at least the pacer's interval apart. How many 302s two
processes earn with and without shared pacing is a benchmark figure (benchmark 8 in
docs/benchmarks.md), not a test: it depends on how loaded the machine is.

Needs ``PGY_TEST_POSTGRES_URL`` (scripts/test.sh starts a throwaway server when PostgreSQL's
binaries are installed); each test gets its own database. Without a server the tests skip (under CI
they fail).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from pgy_pipeline.api.client import PgyClient
from pgy_pipeline.api.shared_pacing import TABLE, PostgresPacer, token_key
from pgy_pipeline.errors import SharedPacingError
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.conftest import TEST_TOKEN, creator_ids
from pgy_pipeline_tests.suite_checks import postgres_url

RATE = 8.0
PAGES_PER_PROCESS = 16
# PostgreSQL stamps in microseconds and sleeps are timed on another clock than its own: the slack
# allowed below the interval, far under what a missed or doubled slot would show (about the interval).
CLOCK_SLACK_S = 0.001

# One run process: page 1 of several creators, through a client paced at RATE (shared or not).
WORKER = """
import sys
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

# Every release the pacing row records, with the backend (one connection per process) that took it.
RELEASE_LOG = f"""
CREATE TABLE pacing_releases (token_key TEXT, released_at TIMESTAMPTZ, backend INT);
CREATE FUNCTION log_pacing_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pacing_releases VALUES (NEW.token_key, NEW.last_release, pg_backend_pid());
    RETURN NEW;
END $$;
CREATE TRIGGER log_pacing_release AFTER UPDATE OF last_release ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION log_pacing_release();
"""


def _libpq(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql", path=f"/{database}"))


@pytest.fixture
def pacing_url() -> Iterator[str]:
    server_url = postgres_url("the shared pacing test")
    import psycopg2

    name = f"pgy_pacing_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(_libpq(server_url, urlsplit(server_url).path.lstrip("/") or "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _libpq(server_url, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _two_processes(sim: Simulator, pacing_url: str) -> None:
    """Run two worker processes at once, each fetching PAGES_PER_PROCESS pages."""
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
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out


def _recorded_releases(pacing_url: str) -> list[tuple[str, float, int]]:
    """(token key, release time in epoch seconds, backend) of every logged release, oldest first."""
    import psycopg2

    conn = psycopg2.connect(pacing_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT token_key, extract(epoch FROM released_at)::float8, backend FROM pacing_releases "
                "ORDER BY released_at"
            )
            return [(str(k), float(t), int(b)) for k, t, b in cur.fetchall()]
    finally:
        conn.close()


def test_two_processes_take_one_tokens_releases_an_interval_apart(
    simulator: Simulator, pacing_url: str
) -> None:
    import psycopg2

    # The pacing table and this token's row, as a pacer creates them; then the log of its releases.
    with PostgresPacer(pacing_url, TEST_TOKEN, RATE, 1) as first:
        interval = first.interval
    first.close()
    conn = psycopg2.connect(pacing_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(RELEASE_LOG)
    finally:
        conn.close()

    _two_processes(simulator, pacing_url)

    answered = [c for c in simulator.calls if c.outcome == 0]
    assert len(answered) == 2 * PAGES_PER_PROCESS
    releases = _recorded_releases(pacing_url)
    # a release for every request that arrived (a retry after a dropped connection takes one more),
    # all on the one row of this token, taken by both processes
    assert len(releases) >= len(simulator.calls)
    assert {k for k, _, _ in releases} == {token_key(TEST_TOKEN)}
    assert len({b for _, _, b in releases}) == 2, "expected releases from both processes"
    # each release at least one interval after the one before it, whichever process took either:
    # the rate is the token's, not each process's
    gaps = [(b[1] - a[1], a[2], b[2]) for a, b in zip(releases, releases[1:], strict=False)]
    short = [(round(g, 4), a, b) for g, a, b in gaps if g < interval - CLOCK_SLACK_S]
    assert not short, (
        f"releases closer than the interval {interval:.4f} s (gap, backend before, backend after): {short}"
    )
    # and the interval keeps the shared rate under the token's limit
    assert interval > 1 / RATE


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
