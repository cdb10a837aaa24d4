"""A newcomer's and an analyst's first hour, from a fresh clone with no variable set but the demo's.

``PGY_DEMO_HISTORY_DAYS=2 bash scripts/dev.sh`` builds a simulated past, then starts the UI; once the
analyst sensor has caught up, the newest ``duckdb`` command line (the ``duckdb-cli`` package) runs
every SQL example of the README against the read replica, and each returns rows. Then a UI backfill
(GraphQL ``launchPartitionBackfill``) of ``analytics/*`` over the last 7 days, most of them days with no
snapshot, finishes with no failed partition.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from pgy_pipeline.orchestration.partitions import today_shanghai
from pgy_pipeline_tests.conftest import REPO_ROOT, clean_env
from pgy_pipeline_tests.test_webserver import (
    BACKFILL_QUERY,
    LAUNCH_BACKFILL,
    UNFINISHED,
    _describe_runs,
    _free_port,
    _runs,
    _wait_for,
)

HISTORY_DAYS = 2
BACKFILL_DAYS = 7
REBUILD_ASSETS = [["analytics", "notes"], ["analytics", "creator_engagement_metrics"]]


def readme_queries() -> list[str]:
    """Every statement of the README's ```sql blocks (comment-only fragments left out)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    statements = []
    for block in re.findall(r"```sql\n(.*?)```", text, re.S):
        for part in block.split(";"):
            lines = [
                line
                for line in part.strip().splitlines()
                if line.strip() and not line.strip().startswith("--")
            ]
            if lines:
                statements.append("\n".join(lines))
    return statements


def duckdb_cli() -> str:
    found = shutil.which("duckdb", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("the duckdb command line (package duckdb-cli, in the test extra) is not installed")
        pytest.skip("the duckdb command line (package duckdb-cli) is not installed")
    return found


class DevScript:
    """``bash scripts/dev.sh`` of a clone, in its own process group, with a GraphQL client."""

    def __init__(self, clone: Path, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.log_path = clone / "dev.log"
        self._log = open(self.log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            ["bash", "scripts/dev.sh"],
            cwd=clone,
            env={**env, "PGY_UI_PORT": str(self.port)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(timeout=30.0)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "--- scripts/dev.sh log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def gql(self, query: str, variables: dict | None = None) -> dict:
        body = self.http.post(self.url, json={"query": query, "variables": variables or {}}).json()
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]

    def is_up(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"scripts/dev.sh exited with code {self.proc.returncode}\n{self.log_tail()}")
        try:
            return self.http.get(f"http://127.0.0.1:{self.port}/server_info", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.http.close()
        try:
            os.killpg(os.getpgid(self.proc.pid), signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(os.getpgid(self.proc.pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._log.close()


def analysts_caught_up(replica: Path) -> bool:
    """Today's peer percentiles and anomalies are in the replica (the analyst sensor's run is done)."""
    if not replica.exists():
        return False
    try:
        with duckdb.connect(str(replica), read_only=True) as conn:
            day = today_shanghai()
            [(peers,)] = conn.execute(
                "SELECT count(*) FROM analytics.creator_peer_percentiles WHERE snapshot_date = ?", [day]
            ).fetchall()
            [(found,)] = conn.execute(
                "SELECT count(*) FROM analytics.anomalies WHERE snapshot_date = ?", [day]
            ).fetchall()
    except duckdb.Error:
        return False  # not written yet, or renamed into place meanwhile
    return peers > 0 and found > 0


@pytest.mark.timeout(900)
def test_a_fresh_demo_answers_every_readme_query_and_backfills_without_failure(fresh_clone: Path):
    cli = duckdb_cli()
    today = today_shanghai()
    first = today - timedelta(days=BACKFILL_DAYS - 1)
    env = clean_env(PGY_DEMO_HISTORY_DAYS=str(HISTORY_DAYS), PGY_FIRST_SNAPSHOT_DATE=first.isoformat())
    dev = DevScript(fresh_clone, env)
    try:
        _wait_for("the demo history, then the UI", dev.is_up, 600, 1.0, dev.log_tail)
        assert "will not be used to configure Dagster" not in dev.log_tail(10_000)  # no misleading warning
        replica = fresh_clone / "data" / "pgy_demo.read.duckdb"
        _wait_for(
            "the analyst sensor's run",
            lambda: analysts_caught_up(replica),
            300,
            2.0,
            lambda: _describe_runs(dev),
        )

        # (a) every README query, in the newest DuckDB command line, against the replica
        empty = []
        for sql in readme_queries():
            out = subprocess.run(
                [cli, "-readonly", "-csv", str(replica), sql], capture_output=True, text=True, timeout=60
            )
            assert out.returncode == 0, f"{sql}\n{out.stderr}"
            rows = list(csv.reader(io.StringIO(out.stdout)))[1:]
            if not rows:
                empty.append(sql)
        assert not empty, "README queries with no rows on the demo:\n\n" + "\n\n".join(empty)

        # (b) a UI backfill of analytics/* over the last 7 days: every partition succeeds
        with duckdb.connect(str(replica), read_only=True) as conn:
            creators = [r[0] for r in conn.execute("SELECT creator_id FROM analytics.creators").fetchall()]
        names = [
            f"{c}|{(first + timedelta(days=d)).isoformat()}" for c in creators for d in range(BACKFILL_DAYS)
        ]
        launched = dev.gql(
            LAUNCH_BACKFILL,
            {"params": {"assetSelection": [{"path": p} for p in REBUILD_ASSETS], "partitionNames": names}},
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched

        def backfill_done() -> dict | None:
            backfill = dev.gql(BACKFILL_QUERY, {"id": launched["backfillId"]})["partitionBackfillOrError"]
            return backfill if backfill["status"] not in {"REQUESTED", "CANCELING", "FAILING"} else None

        backfill = _wait_for("the backfill to finish", backfill_done, 300, 1.0, lambda: _describe_runs(dev))
        assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, f"{backfill}\n{_describe_runs(dev)}"
        assert backfill["numPartitions"] == len(names) and backfill["runs"], backfill
        runs = _wait_for(
            "every run to finish",
            lambda: (r := _runs(dev)) and not any(x["status"] in UNFINISHED for x in r) and r,
            300,
            1.0,
            lambda: _describe_runs(dev),
        )
        failed = [r for r in runs if r["status"] == "FAILURE"]
        assert not failed, _describe_runs(dev)
        assert {r["runId"] for r in backfill["runs"]} <= {r["runId"] for r in runs}
    finally:
        dev.stop()
