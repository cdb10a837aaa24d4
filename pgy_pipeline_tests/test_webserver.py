"""End to end under the real ``dagster dev``: webserver, daemon and code server as separate processes.

The test starts ``dagster dev`` on the project's own ``workspace.yaml`` with a throwaway
DAGSTER_HOME (a copy of the project's ``dagster.yaml``: the run queue), a simulator in this
process standing in for Just One API, a temporary DuckDB file and a registry of three creators.
Through GraphQL it checks that the code location loads, that the assets, sensors and schedule are
there, that the registry sensor registers the creators, and that a backfill of today's partitions
completes and lands in DuckDB with every creator fetched exactly once (the registry sensor's own
first-snapshot run and the backfill both ask for the same partitions; the raw asset skips what is
already stored, and the pgy_api step lock lets one fetch run at a time).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
import yaml

from pgy_pipeline.orchestration.partitions import today_shanghai
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.replica import replica_path
from pgy_pipeline_tests.conftest import clean_env, creator_ids
from pgy_pipeline_tests.reliability_support import record

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCATION = "pgy_pipeline"
REPOSITORY = "__repository__"
ASSETS = [
    ["raw", "note_pages"],
    ["analytics", "notes"],
    ["analytics", "creator_engagement_metrics"],
    ["analytics", "creators"],
]
SNAPSHOT_ASSETS = ASSETS[:3]
SENSORS = {"creator_registry_sensor", "raw_pages_followup_sensor", "api_failure_sensor"}
SCHEDULES = {"daily_snapshot_schedule"}
NOTE_COUNTS = [5, 16, 21]  # pinned: 1, 2 and 3 pages of 8 (16 stops when the total is reached)
UNFINISHED = {"QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "CANCELING"}
# How long the registry sensor may take to register the creators: its interval is 30 s, and on a
# loaded machine the daemon's first tick comes late. Nothing else registers them.
SENSOR_WAIT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(
    what: str,
    probe: Callable[[], Any],
    timeout_s: float,
    interval_s: float = 1.0,
    describe: Callable[[], str] = lambda: "",
) -> Any:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}\n{describe()}")
        time.sleep(interval_s)


class DagsterDev:
    """``dagster dev`` in its own process group, with a GraphQL client."""

    def __init__(self, home: Path, env: dict[str, str], log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ],
            cwd=REPO_ROOT,
            env={**env, "DAGSTER_HOME": str(home)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(timeout=30.0)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "--- dagster dev log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    def gql(self, query: str, variables: dict | None = None) -> dict:
        response = self.http.post(self.url, json={"query": query, "variables": variables or {}})
        body = response.json()
        assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
        return body["data"]

    def is_up(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"dagster dev exited with code {self.proc.returncode}\n{self.log_tail()}")
        try:
            return self.http.get(f"http://127.0.0.1:{self.port}/server_info", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the whole process group, then SIGKILL if it is still there after ``timeout_s``."""
        self.http.close()
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None and self.proc.poll() is None:
            os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        if pgid is not None:
            try:  # the group may still hold children (code server, run workers) after dev itself exits
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def dagster_dev(tmp_path: Path, simulator: Simulator) -> Iterator[tuple[DagsterDev, list[str], Path]]:
    creators = creator_ids(3, prefix="webserver")
    for creator_id, n in zip(creators, NOTE_COUNTS, strict=True):
        simulator.set_note_count(creator_id, n)

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    registry = tmp_path / "creators.yaml"
    registry.write_text(
        yaml.safe_dump(
            {
                "creators": [
                    {"id": c, "name": f"web test creator {i}", "tags": ["test"]}
                    for i, c in enumerate(creators)
                ]
            },
            allow_unicode=True,
        )
    )
    db_path = tmp_path / "pgy.duckdb"
    env = {k: v for k, v in clean_env().items() if not k.startswith("MOTHERDUCK_")}
    env.update(
        JUSTONEAPI_TOKEN=simulator.token,
        JUSTONEAPI_BASE_URL=simulator.base_url,
        JUSTONEAPI_MAX_RPS="1000",
        JUSTONEAPI_TIMEOUT_S="10",
        PGY_DUCKDB_PATH=str(db_path),
        PGY_CREATORS_FILE=str(registry),
        PYTHONUNBUFFERED="1",
    )
    dev = DagsterDev(home, env, tmp_path / "dagster_dev.log")
    try:
        yield dev, creators, db_path
    finally:
        dev.stop()


WORKSPACE_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } } } }
    ... on PythonError { message } } }
"""
REPOSITORY_QUERY = """
query ($selector: RepositorySelector!) {
  repositoryOrError(repositorySelector: $selector) { __typename
    ... on Repository { name
      assetNodes { assetKey { path } }
      sensors { name sensorState { status } }
      schedules { name scheduleState { status } } }
    ... on PythonError { message } } }
"""
PARTITIONS_QUERY = """
query ($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { __typename
    ... on AssetNode { partitionKeysByDimension { name partitionKeys } } } }
"""
ADD_PARTITION = """
mutation ($selector: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: "creators", partitionKey: $key) {
    __typename ... on Error { message } } }
"""
LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) { __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message } } }
"""
BACKFILL_QUERY = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) { __typename
    ... on PartitionBackfill { id status numPartitions error { message }
      runs { runId status } }
    ... on Error { message } } }
"""
LAUNCH_RUN = """
mutation ($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on Error { message } } }
"""
RUNS_QUERY = """
{ runsOrError { __typename
    ... on Runs { results { runId jobName status tags { key value } } } } }
"""
RUN_FAILURE_EVENTS = """
query ($runId: ID!) {
  logsForRun(runId: $runId) { __typename
    ... on EventConnection { events { __typename
      ... on MessageEvent { message }
      ... on ExecutionStepFailureEvent { error { message } } } } } }
"""


def _runs(dev: DagsterDev) -> list[dict]:
    return dev.gql(RUNS_QUERY)["runsOrError"]["results"]


def _describe_runs(dev: DagsterDev) -> str:
    try:
        runs = _runs(dev)
    except Exception as exc:  # only for a failure message
        return f"(runs unavailable: {exc})\n{dev.log_tail()}"
    lines = [
        f"{r['runId'][:8]} {r['jobName']} {r['status']} "
        + ", ".join(
            f"{t['key']}={t['value']}" for t in r["tags"] if t["key"].startswith(("pgy/", "dagster/"))
        )
        for r in runs
    ]
    return "runs:\n" + "\n".join(lines) + "\n" + dev.log_tail()


SENSOR_TICKS_QUERY = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { __typename
    ... on Sensor { sensorState { status
      ticks(limit: 5) { status timestamp skipReason error { message } } } }
    ... on PythonError { message } } }
"""


def _describe_sensor_ticks(dev: DagsterDev) -> str:
    """The registry sensor's last ticks, for a failure message."""
    selector = {
        "repositoryLocationName": LOCATION,
        "repositoryName": REPOSITORY,
        "sensorName": "creator_registry_sensor",
    }
    try:
        sensor = dev.gql(SENSOR_TICKS_QUERY, {"selector": selector})["sensorOrError"]
    except Exception as exc:  # only for a failure message
        return f"(sensor ticks unavailable: {exc})"
    if sensor["__typename"] != "Sensor":
        return f"creator_registry_sensor: {sensor}"
    state = sensor["sensorState"]
    ticks = [
        f"  {t['status']} at {t['timestamp']:.0f}: {t.get('skipReason') or (t.get('error') or {}).get('message') or ''}"
        for t in state["ticks"]
    ]
    return f"creator_registry_sensor {state['status']}, last ticks:\n" + ("\n".join(ticks) or "  none")


def _failure_text(dev: DagsterDev, run_id: str) -> str:
    events = dev.gql(RUN_FAILURE_EVENTS, {"runId": run_id})["logsForRun"].get("events", [])
    return "\n".join(
        (e.get("error") or {}).get("message") or e.get("message", "")
        for e in events
        if e["__typename"] in {"ExecutionStepFailureEvent", "RunFailureEvent"}
    )


@pytest.mark.timeout(600)
def test_dagster_dev_loads_registers_and_backfills(dagster_dev, simulator: Simulator) -> None:
    dev, creators, db_path = dagster_dev
    started = time.monotonic()
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}

    # (a) the webserver answers and the code location loads without a PythonError
    _wait_for("the webserver to answer", dev.is_up, 90, 0.5, dev.log_tail)

    def loaded_entry() -> dict | None:
        data = dev.gql(WORKSPACE_QUERY)["workspaceOrError"]
        assert data["__typename"] == "Workspace", data
        entries = {e["name"]: e for e in data["locationEntries"]}
        assert LOCATION in entries, f"no code location {LOCATION!r}: {sorted(entries)}"
        entry = entries[LOCATION]
        return entry if entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"] else None

    entry = _wait_for("the code location to load", loaded_entry, 120, 0.5, dev.log_tail)
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", (
        f"code location failed to load: {location.get('message')}\n{location.get('stack') and ''.join(location['stack'])}"
    )

    # (b) assets, sensors and the schedule are all there
    repo = dev.gql(REPOSITORY_QUERY, {"selector": selector})["repositoryOrError"]
    assert repo["__typename"] == "Repository", repo
    asset_keys = {tuple(n["assetKey"]["path"]) for n in repo["assetNodes"]}
    assert {tuple(k) for k in ASSETS} <= asset_keys, asset_keys
    assert SENSORS <= {s["name"] for s in repo["sensors"]}, repo["sensors"]
    assert SCHEDULES <= {s["name"] for s in repo["schedules"]}, repo["schedules"]
    assert all(s["sensorState"]["status"] == "RUNNING" for s in repo["sensors"] if s["name"] in SENSORS), (
        repo["sensors"]
    )

    # (c) the registry sensor (running by default under the daemon) registers the three creators
    def registered() -> list[str]:
        node = dev.gql(PARTITIONS_QUERY, {"key": {"path": ASSETS[0]}})["assetNodeOrError"]
        dims = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
        return dims.get("creator", [])

    # Nothing else adds them: a generous wait (the sensor ticks every 30 s; on a loaded machine the
    # daemon's first tick comes late), then a failure naming the sensor.
    _wait_for(
        "creator_registry_sensor to register the registry's creators as partitions: the sensor did not "
        "register them",
        lambda: not set(creators) - set(registered()),
        SENSOR_WAIT_S,
        1.0,
        lambda: f"registered: {registered()}\n{_describe_sensor_ticks(dev)}\n{dev.log_tail()}",
    )
    assert registered() == creators, f"creators registered out of order: {registered()}"
    sensor_registered_s = time.monotonic() - started

    # (d) a backfill of today's three partitions completes
    day = today_shanghai().isoformat()
    launched = dev.gql(
        LAUNCH_BACKFILL,
        {
            "params": {
                "assetSelection": [{"path": p} for p in SNAPSHOT_ASSETS],
                "partitionNames": [f"{c}|{day}" for c in creators],
                "title": "webserver test backfill",
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    def backfill_done() -> dict | None:
        backfill = dev.gql(BACKFILL_QUERY, {"id": backfill_id})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        return backfill if backfill["status"] not in {"REQUESTED", "CANCELING", "FAILING"} else None

    backfill = _wait_for("the backfill to finish", backfill_done, 300, 1.0, lambda: _describe_runs(dev))
    assert backfill["status"] in {"COMPLETED", "COMPLETED_SUCCESS"}, (
        f"backfill ended {backfill['status']}: {backfill.get('error')}\n{_describe_runs(dev)}"
    )
    assert backfill["runs"], "the backfill completed without launching a run"

    # every run (registry job, the sensor's first snapshot, the backfill's) finishes, and none fails
    def all_runs_finished() -> list[dict] | None:
        runs = _runs(dev)
        return runs if runs and not any(r["status"] in UNFINISHED for r in runs) else None

    runs = _wait_for("every run to finish", all_runs_finished, 180, 1.0, lambda: _describe_runs(dev))
    failed = {
        r["runId"]: f"{r['jobName']}: {_failure_text(dev, r['runId'])}"
        for r in runs
        if r["status"] != "SUCCESS"
    }
    assert not failed, f"runs did not succeed: {failed}\n{_describe_runs(dev)}"
    triggers = {t["value"] for r in runs for t in r["tags"] if t["key"] == "pgy/trigger"}
    assert "new-creators" in triggers, (
        f"the registry sensor launched no first snapshot\n{_describe_runs(dev)}"
    )

    # DuckDB holds today's rows for all three creators, matching the simulator
    def open_read_only() -> duckdb.DuckDBPyConnection | None:
        try:
            return duckdb.connect(str(db_path), read_only=True)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                return None
            raise

    conn = _wait_for("a read-only DuckDB connection", open_read_only, 60, 0.5)
    try:

        def per_creator(sql: str) -> dict[str, int]:
            return dict(conn.execute(sql, [day]).fetchall())

        pages = per_creator(
            "SELECT creator_id, count(*) FROM raw.note_pages WHERE snapshot_date = ? GROUP BY 1"
        )
        notes = per_creator(
            "SELECT creator_id, count(*) FROM analytics.notes WHERE snapshot_date = ? GROUP BY 1"
        )
        metrics = per_creator(
            "SELECT creator_id, count(*) FROM analytics.creator_engagement_metrics WHERE snapshot_date = ? GROUP BY 1"
        )
        registry_rows = conn.execute("SELECT count(*) FROM analytics.creators").fetchone()[0]
    finally:
        conn.close()

    page_size = simulator.page_size
    expected_pages = {c: max(1, math.ceil(len(simulator.notes_for(c)) / page_size)) for c in creators}
    expected_notes = {c: len(simulator.notes_for(c)) for c in creators}
    assert expected_notes == dict(zip(creators, NOTE_COUNTS, strict=True))
    assert pages == expected_pages
    assert notes == expected_notes
    assert set(metrics) == set(creators) and all(n > 0 for n in metrics.values()), metrics
    assert registry_rows == len(creators)

    # no creator fetched twice: the sensor's first snapshot and the backfill asked for the same keys
    assert {c: simulator.call_count(c) for c in creators} == expected_pages, simulator.stats()
    assert simulator.call_count() == sum(expected_pages.values())

    print(
        f"\ncreators registered by the registry sensor after {sensor_registered_s:.1f} s; "
        f"backfill and all runs done after {time.monotonic() - started:.1f} s; {len(runs)} run(s)"
    )

    # (e) a UI backfill's step is killed (SIGKILL, as the OOM killer would) while it pages: the next
    # run, launched at once, completes within 60 s of the kill, and the failed run carries its cause
    kill_and_rerun(dev, simulator, db_path, selector, day)


KILL_NOTE_COUNTS = [20, 30]  # 3 and 4 pages


def kill_and_rerun(dev: DagsterDev, simulator: Simulator, db_path: Path, selector: dict, day: str) -> None:
    late = creator_ids(2, prefix="webserver-kill")
    for creator_id, n in zip(late, KILL_NOTE_COUNTS, strict=True):
        simulator.set_note_count(creator_id, n)
        added = dev.gql(ADD_PARTITION, {"selector": selector, "key": creator_id})["addDynamicPartition"]
        assert added["__typename"] == "AddDynamicPartitionSuccess", added
    simulator.add_fault("latency", user_id=late[1], page=3, seconds=120)
    simulator.reset_stats()
    launched = dev.gql(
        LAUNCH_BACKFILL,
        {
            "params": {
                "assetSelection": [{"path": p} for p in SNAPSHOT_ASSETS],
                "partitionNames": [f"{c}|{day}" for c in late],
                "title": "backfill killed mid-fetch",
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    _wait_for(
        "the backfill's step to page",
        lambda: any(c.user_id == late[1] and c.page == 3 for c in simulator.calls),
        120,
        0.2,
        lambda: _describe_runs(dev),
    )
    lock_file = Path(str(db_path) + ".locks") / "pgy_api.lock"
    holder = json.loads(lock_file.read_text())
    os.kill(holder["pid"], signal.SIGKILL)  # the step's own process, which holds the fetch lock
    killed_at = time.monotonic()
    paid_before = simulator.call_count()
    simulator.clear_faults()

    tags = [
        {"key": "dagster/asset_partition_range_start", "value": f"{late[0]}|{day}"},
        {"key": "dagster/asset_partition_range_end", "value": f"{late[-1]}|{day}"},
    ]
    rerun = dev.gql(
        LAUNCH_RUN,
        {
            "params": {
                "selector": {**selector, "jobName": "snapshot_job"},
                "executionMetadata": {"tags": tags},
            }
        },
    )["launchRun"]
    assert rerun["__typename"] == "LaunchRunSuccess", rerun
    rerun_id = rerun["run"]["runId"]

    def rerun_finished() -> dict | None:
        run = next((r for r in _runs(dev) if r["runId"] == rerun_id), None)
        return run if run and run["status"] not in UNFINISHED else None

    finished = _wait_for("the rerun to finish", rerun_finished, 60, 0.5, lambda: _describe_runs(dev))
    next_run_s = time.monotonic() - killed_at
    assert finished["status"] == "SUCCESS", f"{_failure_text(dev, rerun_id)}\n{_describe_runs(dev)}"
    assert next_run_s < 60, next_run_s
    # the creator whose scan was whole waited in the spool: only the cut one was fetched again
    assert simulator.call_count() - paid_before == simulator.call_count(late[1]) - 3 == 4
    with duckdb.connect(str(replica_path(str(db_path))), read_only=True) as conn:  # the analysts' copy
        notes = dict(
            conn.execute(
                "SELECT creator_id, count(*) FROM analytics.notes WHERE snapshot_date = ? GROUP BY 1", [day]
            ).fetchall()
        )
    assert {c: notes.get(c) for c in late} == dict(zip(late, KILL_NOTE_COUNTS, strict=True))

    def killed_run_tagged() -> dict | None:
        runs = [r for r in _runs(dev) if holder["run_id"] == r["runId"]]
        tagged = {t["key"]: t["value"] for t in runs[0]["tags"]} if runs else {}
        return tagged if runs and runs[0]["status"] == "FAILURE" and "pgy/failure" in tagged else None

    tagged = _wait_for(
        "the killed backfill run's pgy/failure tag", killed_run_tagged, 90, 1.0, lambda: _describe_runs(dev)
    )
    assert "dagster/backfill" in tagged  # a UI backfill's run (__ASSET_JOB), tagged by api_failure_sensor
    assert tagged["pgy/failure"] == "run worker died (killed or out of memory)", tagged
    assert tagged["pgy/creators"] == ", ".join(late)  # no names for creators outside the registry
    print(f"rerun done {next_run_s:.1f} s after the kill; killed run tagged {tagged['pgy/failure']!r}")
    record(
        "4-kill-dagster-dev",
        next_run_done_after_kill_s=round(next_run_s, 1),
        rerun_calls=simulator.call_count() - paid_before,
        failure_tag=tagged["pgy/failure"],
    )


LIMIT_RPS = 4.0
LIMIT_CONCURRENCY = 2
LATENCY_S = 0.3


@pytest.mark.timeout(600)
def test_concurrent_runs_share_the_api_limits_and_the_duckdb_file(
    tmp_path: Path, simulator: Simulator
) -> None:
    """Two backfills of two runs each, at once: together they stay within the configured request
    rate and concurrency (the pgy_api step lock lets one fetching step run at a time), and no run fails on
    DuckDB's single-writer lock (the pgy_duckdb step lock and the bounded lock wait)."""
    creators = creator_ids(8, prefix="limits")
    for creator_id in creators:
        simulator.set_note_count(creator_id, 24)  # 3 pages each
    simulator.latency_s = LATENCY_S
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    registry = tmp_path / "creators.yaml"
    registry.write_text("creators: []\n")  # partitions are added below, so no sensor run interferes
    db_path = tmp_path / "pgy.duckdb"
    env = clean_env()
    env.update(
        JUSTONEAPI_TOKEN=simulator.token,
        JUSTONEAPI_BASE_URL=simulator.base_url,
        JUSTONEAPI_MAX_RPS=str(LIMIT_RPS),
        JUSTONEAPI_MAX_CONCURRENCY=str(LIMIT_CONCURRENCY),
        PGY_DUCKDB_PATH=str(db_path),
        PGY_CREATORS_FILE=str(registry),
    )
    dev = DagsterDev(home, env, tmp_path / "dagster_dev.log")
    try:
        _wait_for("the webserver to answer", dev.is_up, 90, 0.5, dev.log_tail)
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}

        def location_loaded() -> bool:
            entries = dev.gql(WORKSPACE_QUERY)["workspaceOrError"].get("locationEntries", [])
            return any(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)

        _wait_for("the code location to load", location_loaded, 120, 0.5, dev.log_tail)
        for creator_id in creators:
            added = dev.gql(ADD_PARTITION, {"selector": selector, "key": creator_id})["addDynamicPartition"]
            assert added["__typename"] == "AddDynamicPartitionSuccess", added
        day = today_shanghai().isoformat()
        backfills = []
        # Each backfill covers two blocks of two neighbours: two runs, each able to fetch at the limit.
        for group in (creators[0:2] + creators[4:6], creators[2:4] + creators[6:8]):
            launched = dev.gql(
                LAUNCH_BACKFILL,
                {
                    "params": {
                        "assetSelection": [{"path": p} for p in SNAPSHOT_ASSETS],
                        "partitionNames": [f"{c}|{day}" for c in group],
                    }
                },
            )["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfills.append(launched["backfillId"])

        def finished() -> list[dict] | None:
            states = [dev.gql(BACKFILL_QUERY, {"id": b})["partitionBackfillOrError"] for b in backfills]
            if any(s["status"] in {"REQUESTED", "CANCELING", "FAILING"} for s in states):
                return None
            runs = _runs(dev)
            return runs if len(runs) >= 4 and not any(r["status"] in UNFINISHED for r in runs) else None

        runs = _wait_for("both backfills' runs to finish", finished, 400, 1.0, lambda: _describe_runs(dev))
        failed = {r["runId"]: _failure_text(dev, r["runId"]) for r in runs if r["status"] != "SUCCESS"}
        assert not failed, f"runs failed: {failed}\n{_describe_runs(dev)}"
        from_backfills = [r for r in runs if any(t["key"] == "dagster/backfill" for t in r["tags"])]
        assert len(from_backfills) == 4  # plus the registry sync run
    finally:
        dev.stop()

    calls = sorted(c.at for c in simulator.calls)
    assert len(calls) == 8 * 3  # every creator fetched once, at the minimum calls
    busiest_second = max(sum(1 for t in calls if start <= t < start + 1.0) for start in calls)
    in_flight = max(sum(1 for t in calls if start - LATENCY_S < t <= start) for start in calls)
    print(f"\n{len(calls)} calls; busiest second {busiest_second}; most in flight {in_flight}")
    # One spare request of tolerance for arrival jitter; without the step lock, four runs each pacing at
    # the limit would reach about four times the rate and the concurrency.
    assert busiest_second <= LIMIT_RPS + 1
    assert in_flight <= LIMIT_CONCURRENCY
    with duckdb.connect(str(db_path), read_only=True) as conn:
        notes = dict(conn.execute("SELECT creator_id, count(*) FROM analytics.notes GROUP BY 1").fetchall())
    assert notes == {c: 24 for c in creators}
