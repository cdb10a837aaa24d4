"""Dagster UI benchmark: the asset page, a backfill launch and the schedule tick over a long history.

For one partition layout and one Dagster storage, in a fresh process and a temporary DAGSTER_HOME
(SQLite) or database (a throwaway PostgreSQL server on loopback):

1. **Synthetic history.** D days x N creators (``creator`` layout) or D days x 64 cohorts (``cohort``)
   of materialized partitions of ``raw/note_pages``, ``analytics/notes`` and
   ``analytics/creator_engagement_metrics``: one successful run per day, and per partition and asset
   one real ``ASSET_MATERIALIZATION`` event (serialized from an event a real run produced, with small
   metadata), its ``asset_event_tags`` rows (the partition dimensions and data version) and the
   asset's record, bulk-inserted into the event log tables the way ``store_event`` writes them.
   No asset status cache is written: the first partition-health query builds it, as Dagster does
   after a history it has not seen (and after any partitions definition change). The date dimension
   starts D days back (``benchmarks.ui_defs``: the project's definitions with an earlier
   ``SNAPSHOT_START_DATE``), so every date partition has history.
2. **The UI, with ``dagster-webserver`` on 127.0.0.1.** (a) The asset page's ``PartitionHealthQuery``
   (the query text of the UI bundle) over HTTP: cold (no status cache yet) and warm; the answer is
   checked to count every partition as materialized. (b) Headless Chromium (the project's CDP client)
   opening ``raw/note_pages``' partitions tab until its legend counts every partition as materialized
   ("Materialized (N)", "Missing (0)"), cold and reloaded. (c) Peak RSS of the webserver
   and its code server (all descendants), sampled every 0.2 s.
3. **Under ``dagster-daemon``** (runs are created but never launched: ``max_concurrent_runs: 0``;
   the project's sensors are stopped so they do not compete). (d) ``launchPartitionBackfill`` over
   every partition of one day: the mutation's time (the backfill is created), then until the backfill
   daemon has created its run(s). (e) ``daily_snapshot_schedule`` ticking every minute: the tick's
   duration from the daemon's tick record (evaluation, run creation with its planned events,
   submission), at each roster size (1,000 / 5,000 / 10,000 registered creators).

    python -m benchmarks.dagster_ui --layout creator --creators 1000 --days 365 --storage sqlite
    python -m benchmarks.dagster_ui --layout cohort --days 730 --storage sqlite,postgres --write
    python -m benchmarks.dagster_ui --smoke                     # 20 creators x 5 days, about 2 minutes

Results append as JSON lines to ``--results`` (default ``/tmp/pgy-dagster-ui-results.jsonl``);
``--write`` renders every line there into the ``dagster-ui-section`` of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import INSTANCE_OVERRIDES, PROJECT_ROOT, QUIET_RUN_CONFIG, creator_ids

SECTION_START = "<!-- dagster-ui-section -->"
SECTION_END = "<!-- /dagster-ui-section -->"
ASSETS = [["raw", "note_pages"], ["analytics", "notes"], ["analytics", "creator_engagement_metrics"]]
COHORTS = [f"c{i:02d}" for i in range(64)]
SUBSET_FLAG = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"
BIN = Path(sys.executable).parent
DEFAULT_RESULTS = "/tmp/pgy-dagster-ui-results.jsonl"

# The asset page's partition-health query, as the UI bundle of dagster-webserver 1.13 sends it.
PARTITION_HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
        ... on MultiPartitionStatuses {
          primaryDimensionName
          ranges {
            primaryDimStartKey primaryDimEndKey primaryDimStartTime primaryDimEndTime
            secondaryDim {
              ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
              ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
            }
          }
        }
      }
    }
  }
}
"""


# --------------------------------------------------------------------------------------------------
# Processes: everything started here is stopped on exit, even on error or SIGTERM.

# Each with its grace period between SIGTERM and SIGKILL.
_STARTED: list[tuple[subprocess.Popen[bytes], float]] = []


def _killpg(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)


def _stop_all() -> None:
    """SIGTERM every process group started here at once (the daemon takes seconds to stop), wait out
    their grace periods, then SIGKILL what is left."""
    started = list(reversed(_STARTED))
    _STARTED.clear()
    for proc, _ in started:
        _killpg(proc, signal.SIGTERM)
    t0 = time.monotonic()
    for proc, grace in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, grace - (time.monotonic() - t0)))
    for proc, _ in started:
        _killpg(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def _on_signal(signum: int, _frame: object) -> None:
    _stop_all()
    sys.exit(128 + signum)


def _spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    proc = subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    _STARTED.append((proc, 15.0))
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_rss_mb(pid: int) -> float:
    """RSS of ``pid`` and every descendant, in MB (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total_kb, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return total_kb / 1024


class RssSampler:
    """Peak RSS of a process tree, sampled in a thread; ``mark(name)`` records the peak so far."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.pid, self.every_s, self.peak, self.marks = pid, every_s, 0.0, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self._stop.wait(self.every_s)

    def now(self) -> float:
        return tree_rss_mb(self.pid)

    def mark(self, name: str) -> None:
        self.marks[name] = round(max(self.peak, self.now()), 1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback (as in /work/notes-style lake scripts): its URL."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not bins:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    pg_bin = bins[-1]
    tmp = Path(tempfile.mkdtemp(prefix="pgy-uibench-pg-"))
    shutil.chown(tmp, "postgres")
    port = free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(pg_bin / "initdb"), "-D", str(tmp / "data"), "-U", "pgy", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=256MB"
    ctl = [*as_pg, str(pg_bin / "pg_ctl"), "-D", str(tmp / "data")]
    try:
        subprocess.run(
            [*ctl, "-o", opts, "-l", str(tmp / "log"), "-w", "start"], check=True, capture_output=True
        )
        yield f"postgresql://pgy@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# The instance and its synthetic history (runs in the child process).


def instance_yaml(storage: str, pg_url: str | None) -> str:
    """The project's own instance settings, with runs created but never launched."""
    import yaml

    source = PROJECT_ROOT / ("deploy/dagster.postgres.yaml" if storage == "postgres" else "dagster.yaml")
    cfg = yaml.safe_load(source.read_text(encoding="utf-8"))
    if storage == "postgres":
        cfg["storage"] = {"postgres": {"postgres_url": pg_url}}
    # The benchmark measures creating runs (backfill, schedule), not executing them.
    cfg.setdefault("concurrency", {}).setdefault("runs", {})["max_concurrent_runs"] = 0
    cfg["run_monitoring"] = {"enabled": False}
    cfg["telemetry"] = {"enabled": False}
    return str(yaml.safe_dump(cfg))


def template_events(layout: str, tmp: Path) -> dict[str, str]:
    """One real ASSET_MATERIALIZATION per asset, from a real range run, as JSON text with placeholders."""
    from dagster import AssetKey, BackfillPolicy, DagsterEventType, DagsterInstance, MaterializeResult, asset
    from dagster import materialize as dg_materialize
    from dagster._serdes import serialize_value

    from benchmarks.ui_defs import cohort_partitions_def
    from pgy_pipeline.orchestration.partitions import note_partitions, today_shanghai

    pdef = note_partitions if layout == "creator" else cohort_partitions_def()
    firsts = ["aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"] if layout == "creator" else COHORTS[:2]
    # Small metadata, like the pipeline's slimmed per-partition events (counts, no schema or preview).
    meta = {"dagster/row_count": 12, "pages": 2, "calls": 2, "scan": "window"}
    defs = []
    for path in ASSETS:

        @asset(
            key=AssetKey(path), partitions_def=pdef, backfill_policy=BackfillPolicy.single_run(), name=None
        )
        def _a():  # type: ignore[no-untyped-def]  (no annotation: resolved at decoration time)
            return MaterializeResult(metadata=meta)

        defs.append(_a)
    day = today_shanghai().isoformat()
    home = tmp / "template-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    out: dict[str, str] = {}
    with DagsterInstance.local_temp(str(home), overrides=INSTANCE_OVERRIDES) as inst:
        if layout == "creator":
            inst.add_dynamic_partitions("creators", firsts)
        result = dg_materialize(
            defs,
            instance=inst,
            run_config=QUIET_RUN_CONFIG,
            tags={
                "dagster/asset_partition_range_start": f"{firsts[0]}|{day}",
                "dagster/asset_partition_range_end": f"{firsts[1]}|{day}",
            },
            raise_on_error=True,
        )
        for entry in inst.all_logs(result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
            key = entry.dagster_event.asset_key.to_user_string()
            if key in out:
                continue
            text = serialize_value(entry)
            first = entry.dagster_event.partition.split("|")[0]
            text = text.replace(result.run_id, "@@RUN@@").replace(repr(entry.timestamp), "@@TS@@")
            text = text.replace(f'"{first}|{day}"', '"@@KEY@@"').replace(f'"{first}"', '"@@FIRST@@"')
            text = text.replace(f'"{day}"', '"@@DAY@@"').replace("__ephemeral_asset_job__", "snapshot_job")
            for marker in ("@@RUN@@", "@@TS@@", "@@KEY@@", "@@FIRST@@", "@@DAY@@"):
                if marker not in text:
                    raise RuntimeError(f"template for {key}: {marker} not placed")
            out[key] = text
    return out


def _naive_utc(ts: float) -> datetime:
    """A timestamp as the event log stores it: UTC without time zone (``_event_insert_timestamp``)."""
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)


def write_history(
    instance: Any, layout: str, firsts: list[str], days: list[date], tmp: Path
) -> dict[str, Any]:
    """Runs and materializations for every first-dimension key x day x asset, in bulk."""
    import sqlalchemy as db
    from dagster import DagsterRunStatus
    from dagster._core.storage.dagster_run import DagsterRun
    from dagster._core.storage.event_log.schema import AssetEventTagsTable, SqlEventLogStorageTable
    from dagster._serdes import deserialize_value

    from pgy_pipeline.orchestration.partitions import SHANGHAI

    t0 = time.monotonic()
    templates = template_events(layout, tmp)
    dim = "creator" if layout == "creator" else "cohort"
    storage = instance.event_log_storage
    events = tag_rows = 0
    last: dict[str, tuple[str, int]] = {}
    table = SqlEventLogStorageTable
    # About 30,000 events per transaction: few commits, bounded memory.
    per_txn = max(1, 30000 // (len(ASSETS) * len(firsts)))
    for c in range(0, len(days), per_txn):
        with storage.index_transaction() as conn:
            for day in days[c : c + per_txn]:
                run_id = str(uuid.uuid4())
                start = datetime.combine(day, datetime.min.time(), SHANGHAI).replace(hour=8).timestamp()
                instance.run_storage.add_run(
                    DagsterRun(
                        job_name="snapshot_job",
                        run_id=run_id,
                        status=DagsterRunStatus.SUCCESS,
                        tags={
                            "dagster/asset_partition_range_start": f"{firsts[0]}|{day}",
                            "dagster/asset_partition_range_end": f"{firsts[-1]}|{day}",
                            "pgy/trigger": "daily-snapshot",
                        },
                    )
                )
                for a, path in enumerate(ASSETS):
                    key_str = json.dumps(path)  # AssetKey.to_string()
                    tmpl = templates["/".join(path)].replace("@@RUN@@", run_id).replace("@@DAY@@", str(day))
                    rows, stamps = [], []
                    for i, first in enumerate(firsts):
                        ts = start + 60 * a + i * 0.001
                        pkey = f"{first}|{day}"
                        rows.append(
                            {
                                "run_id": run_id,
                                "event": tmpl.replace("@@TS@@", repr(ts))
                                .replace("@@KEY@@", pkey)
                                .replace("@@FIRST@@", first),
                                "dagster_event_type": "ASSET_MATERIALIZATION",
                                "timestamp": _naive_utc(ts),
                                "step_key": "__".join(path),
                                "asset_key": key_str,
                                "partition": pkey,
                            }
                        )
                        stamps.append(rows[-1]["timestamp"])
                    # One writer in one transaction: the new rows' ids, in id order, are the rows in
                    # insertion order (a plain executemany is many times faster than INSERT ... RETURNING).
                    before = conn.execute(db.select(db.func.max(table.c.id))).scalar() or 0
                    conn.execute(table.insert(), rows)
                    ids = [
                        r[0]
                        for r in conn.execute(
                            db.select(table.c.id).where(table.c.id > before).order_by(table.c.id)
                        )
                    ]
                    if len(ids) != len(rows):
                        raise RuntimeError(f"inserted {len(rows)} events, found {len(ids)}: another writer?")
                    tag_values = [
                        {
                            "event_id": event_id,
                            "asset_key": key_str,
                            "key": k,
                            "value": v,
                            "event_timestamp": when,
                        }
                        for event_id, first, when in zip(ids, firsts, stamps, strict=True)
                        for k, v in (
                            (f"dagster/partition/{dim}", first),
                            ("dagster/partition/date", str(day)),
                            ("dagster/data_version", f"{event_id:064x}"),
                        )
                    ]
                    conn.execute(AssetEventTagsTable.insert(), tag_values)
                    events += len(rows)
                    tag_rows += len(tag_values)
                    last[key_str] = (rows[-1]["event"], ids[-1])
    # The asset records (last materialization, its run and time), through Dagster's own code path.
    for event_text, event_id in last.values():
        storage.store_asset_event(deserialize_value(event_text), event_id)
    return {
        "history_write_s": round(time.monotonic() - t0, 1),
        "history_events": events,
        "history_tag_rows": tag_rows,
        "history_runs": len(days),
    }


# --------------------------------------------------------------------------------------------------
# GraphQL and the browser.


def graphql(port: int, query: str, variables: dict[str, Any] | None = None, timeout: float = 900) -> Any:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        payload = json.load(resp)
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {json.dumps(payload['errors'])[:2000]}")
    return payload["data"]


def wait_for_webserver(port: int, proc: subprocess.Popen[bytes], timeout: float = 300) -> float:
    """Seconds until the code location is loaded (its import errors are raised)."""
    t0 = time.monotonic()
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus locationOrLoadError "
        "{ __typename ... on PythonError { message } } } } } }"
    )
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {proc.returncode}")
        try:
            entries = graphql(port, query, timeout=10)["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.3)
            continue
        loaded = [e for e in entries if e["loadStatus"] == "LOADED"]
        if entries and len(loaded) == len(entries):
            for e in entries:
                if e["locationOrLoadError"]["__typename"] == "PythonError":
                    raise RuntimeError(f"code location failed: {e['locationOrLoadError']['message']}")
            return time.monotonic() - t0
        time.sleep(0.3)
    raise TimeoutError("dagster-webserver did not load the code location")


def health(port: int, path: list[str]) -> tuple[float, dict[str, Any]]:
    """One PartitionHealthQuery: seconds and what it says (partitions counted as materialized)."""
    t0 = time.monotonic()
    node = graphql(port, PARTITION_HEALTH_QUERY, {"assetKey": {"path": path}})["assetNodeOrError"]
    elapsed = time.monotonic() - t0
    dims = {d["name"]: d["partitionKeys"] for d in node["partitionKeysByDimension"]}
    statuses = node["assetPartitionStatuses"]
    primary = statuses["primaryDimensionName"]
    keys = dims[primary]
    index = {k: i for i, k in enumerate(keys)}
    materialized = 0
    for r in statuses["ranges"]:
        span = index[r["primaryDimEndKey"]] - index[r["primaryDimStartKey"]] + 1
        secondary = r["secondaryDim"]
        if "ranges" in secondary:
            other = [d for d in dims if d != primary][0]
            oindex = {k: i for i, k in enumerate(dims[other])}
            count = sum(
                oindex[x["endKey"]] - oindex[x["startKey"]] + 1
                for x in secondary["ranges"]
                if x["status"] == "MATERIALIZED"
            )
        else:
            count = len(secondary["materializedPartitions"])
        materialized += span * count
    return elapsed, {
        "dimensions": {k: len(v) for k, v in dims.items()},
        "primary_dimension": primary,
        "ranges": len(statuses["ranges"]),
        "materialized": materialized,
    }


# The partitions tab has drawn its statuses when its legend counts every partition of the history as
# materialized and none as missing ("Materialized (N)" ... "Missing (0)", next to the health bar);
# before the PartitionHealthQuery answers, the legend is absent or counts them missing.
DOM_DONE = r"""
(() => {
  const text = document.body ? document.body.innerText : "";
  const m = text.match(/Materialized \(([\d,]+)\)/);
  const missing = text.match(/Missing \(([\d,]+)\)/);
  const count = m ? parseInt(m[1].replace(/,/g, ""), 10) : 0;
  return count === EXPECTED && missing && missing[1] === "0" ? count : 0;
})()
"""


def browser_load(port: int, path: list[str], expected: int, timeout: float) -> dict[str, Any]:
    """Headless Chromium opens the asset's partitions tab, cold then reloaded: seconds until drawn."""
    from pgy_pipeline_tests.report.cdp import Browser, chromium_binary

    binary = chromium_binary()
    if binary is None:
        return {"error": "no chromium (apt-get install chromium)"}
    url = f"http://127.0.0.1:{port}/assets/{'/'.join(path)}?view=partitions"
    out: dict[str, Any] = {"url": url}
    # The first visit shows a community modal over every page: dismissed for the instance, as its
    # "dismiss" button does.
    graphql(port, "mutation { setNuxSeen }")
    with Browser(binary, width=1600, height=1000) as b:
        for attempt in ("cold", "warm"):
            t0 = time.monotonic()
            b.open(url)
            try:
                count = b.wait_for(DOM_DONE.replace("EXPECTED", str(expected)), timeout=timeout)
                out[f"{attempt}_s"] = round(time.monotonic() - t0, 2)
                out[f"{attempt}_materialized_shown"] = count
            except TimeoutError:
                out[f"{attempt}_s"] = None
                out[f"{attempt}_timeout_s"] = timeout
                break
        out["console_errors"] = len(b.console_errors)
        out["health_query_requests"] = sum("PartitionHealthQuery" in r for r in b.requests)
    return out


# --------------------------------------------------------------------------------------------------
# The daemon: a backfill launch and the schedule tick.

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { invalidOutputName }
    ... on UnauthorizedError { message }
  }
}
"""


def stop_sensors(port: int) -> list[str]:
    """Stop every running sensor of the location, so the daemon does only what is measured."""
    data = graphql(
        port,
        "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } "
        "sensors { name sensorState { id status } } } } } }",
    )
    stopped = []
    for repo in data["repositoriesOrError"]["nodes"]:
        for s in repo["sensors"]:
            if s["sensorState"]["status"] == "RUNNING":
                res = graphql(
                    port,
                    "mutation($id: String!) { stopSensor(id: $id) { __typename } }",
                    {"id": s["sensorState"]["id"]},
                )
                if res["stopSensor"]["__typename"] != "StopSensorMutationResult":
                    raise RuntimeError(f"could not stop {s['name']}: {res}")
                stopped.append(s["name"])
    return stopped


def wait_daemon_healthy(instance: Any, timeout: float = 180) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        beats = instance.get_daemon_heartbeats()
        if {"SCHEDULER", "BACKFILL", "QUEUED_RUN_COORDINATOR"} <= set(beats):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise TimeoutError("dagster-daemon sent no heartbeats")


def backfill_launch(port: int, instance: Any, keys: list[str], timeout: float) -> dict[str, Any]:
    from dagster._core.storage.dagster_run import RunsFilter

    params = {"partitionNames": keys, "assetSelection": [{"path": p} for p in ASSETS], "fromFailure": False}
    t0 = time.monotonic()
    res = graphql(port, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    created_s = time.monotonic() - t0
    if res["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill: {res}")
    backfill_id = res["backfillId"]
    out: dict[str, Any] = {
        "partitions": len(keys),
        "mutation_s": round(created_s, 2),
        "backfill_id": backfill_id,
    }
    while time.monotonic() - t0 < timeout:
        runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
        if runs:
            out["first_run_s"] = round(time.monotonic() - t0, 2)
            time.sleep(2)  # a few more may follow in the same iteration
            runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
            out["runs"] = len(runs)
            out["run_ids"] = [r.run_id for r in runs]
            break
        time.sleep(0.25)
    else:
        out["first_run_s"] = None
        out["timeout_s"] = timeout
    backfill = instance.get_backfill(backfill_id)
    out["backfill_status"] = str(backfill.status.value) if backfill else None
    if backfill and out.get("run_ids"):
        from dagster import DagsterEventType

        record = instance.get_run_record_by_id(out["run_ids"][0])
        # From the stored backfill to the stored run: the daemon's wait for its next iteration included.
        out["run_created_after_backfill_s"] = round(
            record.create_timestamp.timestamp() - backfill.backfill_timestamp, 2
        )
        planned = [
            e.timestamp
            for rid in out["run_ids"]
            for e in instance.all_logs(rid, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        ]
        out["planned_events"] = len(planned)
        out["planned_events_s"] = round(max(planned) - min(planned), 2) if planned else 0.0
    graphql(
        port,
        "mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename } }",
        {"id": backfill_id},
    )
    for run_id in out.get("run_ids", []):
        instance.delete_run(run_id)
    return out


def schedule_ticks(instance: Any, after: float) -> list[Any]:
    from dagster._core.scheduler.instigation import InstigatorType

    ticks = []
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE):
        if state.name != "daily_snapshot_schedule":
            continue
        ticks += [
            t
            for t in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=20)
            if t.timestamp >= after and t.end_timestamp is not None
        ]
    return sorted(ticks, key=lambda t: t.timestamp)


def next_tick(instance: Any, after: float, timeout: float = 150) -> dict[str, Any]:
    """Waits for the schedule's next finished tick after ``after``; its duration and its runs."""
    from dagster import DagsterEventType

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        ticks = schedule_ticks(instance, after)
        if ticks:
            tick = ticks[0]
            out: dict[str, Any] = {
                "status": tick.status.value,
                "tick_s": round(tick.end_timestamp - tick.timestamp, 2),
                "runs": len(tick.run_ids),
                "skip_reason": tick.skip_reason,
                "error": tick.error.message[:500] if tick.error else None,
            }
            if tick.run_ids:
                planned = [
                    e.timestamp
                    for rid in tick.run_ids
                    for e in instance.all_logs(rid, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
                ]
                out["planned_events"] = len(planned)
                out["planned_events_s"] = round(max(planned) - min(planned), 2) if planned else 0.0
                record = instance.get_run_record_by_id(tick.run_ids[0])
                out["run_created_after_tick_start_s"] = round(
                    record.create_timestamp.timestamp() - tick.timestamp, 2
                )
            return out
        time.sleep(1)
    return {"status": None, "timeout_s": timeout}


# --------------------------------------------------------------------------------------------------
# One configuration (child process).


def run_config(cfg: dict[str, Any]) -> dict[str, Any]:
    layout, storage_kind, days_n = cfg["layout"], cfg["storage"], cfg["days"]
    today = _today()
    start = today - timedelta(days=days_n - 1)
    os.environ["PGY_UIBENCH_START"] = start.isoformat()
    from benchmarks.ui_defs import load_partitions_with_start

    load_partitions_with_start(start.isoformat())
    import yaml
    from dagster import DagsterInstance

    days = [start + timedelta(days=i) for i in range(days_n)]
    history_creators = creator_ids(cfg["creators"], prefix="ui")
    rosters = sorted(set(cfg["rosters"]) | ({cfg["creators"]} if layout == "creator" else set()))
    if layout == "creator":
        rosters = [r for r in rosters if r >= cfg["creators"]]
    firsts = history_creators if layout == "creator" else COHORTS
    out: dict[str, Any] = {
        "layout": layout,
        "storage": storage_kind,
        "defs": cfg["defs"],
        "history_keys": len(firsts),
        "days": days_n,
        "partitions_per_asset": len(firsts) * days_n,
        "date_dimension_start": start.isoformat(),
        "subset_planned_events": os.environ.get(SUBSET_FLAG, "") not in ("", "0", "false"),
    }
    tmp = Path(tempfile.mkdtemp(prefix="pgy-uibench-"))
    sampler_web = sampler_daemon = None
    try:
        home = tmp / "home"
        home.mkdir()
        pg_url = None
        if storage_kind == "postgres":
            import sqlalchemy

            dbname = f"uibench_{uuid.uuid4().hex[:8]}"
            engine = sqlalchemy.create_engine(cfg["pg_url"], isolation_level="AUTOCOMMIT")
            with engine.connect() as c:
                c.execute(sqlalchemy.text(f"CREATE DATABASE {dbname}"))
            engine.dispose()
            pg_url = cfg["pg_url"].rsplit("/", 1)[0] + "/" + dbname
        (home / "dagster.yaml").write_text(instance_yaml(storage_kind, pg_url), encoding="utf-8")
        registry = tmp / "creators.yaml"

        def write_registry(ids: list[str]) -> None:
            registry.write_text(yaml.safe_dump({"creators": [{"id": c} for c in ids]}), encoding="utf-8")

        roster0 = rosters[0] if rosters else cfg["creators"]
        roster_ids = creator_ids(max(rosters + [cfg["creators"]]), prefix="ui")
        write_registry(roster_ids[:roster0])
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "PGY_UIBENCH_DEFS": cfg["defs"],
            "PGY_UIBENCH_START": start.isoformat(),
            "PGY_PARTITIONING": layout,
            "PGY_CREATORS_FILE": str(registry),
            "PGY_DUCKDB_PATH": str(tmp / "pgy.duckdb"),
            "PGY_SNAPSHOT_CRON": "* * * * *",
            "PYTHONWARNINGS": "ignore",
        }
        env.pop("JUSTONEAPI_TOKEN", None)
        workspace = tmp / "workspace.yaml"
        workspace.write_text(
            yaml.safe_dump(
                {
                    "load_from": [
                        {
                            "python_module": {
                                "module_name": "benchmarks.ui_location",
                                "working_directory": str(PROJECT_ROOT),
                                "location_name": "pgy_pipeline",
                            }
                        }
                    ]
                }
            ),
            encoding="utf-8",
        )
        os.environ["DAGSTER_HOME"] = str(home)
        with DagsterInstance.get() as instance:
            t0 = time.monotonic()
            if layout == "creator":
                instance.add_dynamic_partitions("creators", roster_ids[:roster0])
            out["register_creators_s"] = round(time.monotonic() - t0, 2)
            out.update(write_history(instance, layout, firsts, days, tmp))
            for sig in (signal.SIGTERM, signal.SIGINT):  # after Dagster's own run, ours again
                signal.signal(sig, _on_signal)
            print(f"[{layout}/{storage_kind}] history written in {out['history_write_s']} s", file=sys.stderr)

            # ---- the webserver
            port = free_port()
            web = _spawn(
                [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
                env,
                tmp / "webserver.log",
            )
            sampler_web = RssSampler(web.pid)
            out["webserver_ready_s"] = round(wait_for_webserver(port, web), 1)
            sampler_web.mark("ready")
            out["sensors_stopped"] = stop_sensors(port)
            probe = ASSETS[
                1
            ]  # analytics/notes: same history as raw/note_pages, whose cache stays cold for the browser
            cold_s, said = health(port, probe)
            warm = [health(port, probe)[0] for _ in range(3)]
            out["health_query"] = {
                "asset": "/".join(probe),
                "cold_s": round(cold_s, 2),
                "warm_s": [round(x, 2) for x in warm],
                **said,
            }
            if said["materialized"] != out["partitions_per_asset"]:
                raise RuntimeError(
                    f"the UI counts {said['materialized']} materialized partitions, "
                    f"the history has {out['partitions_per_asset']}"
                )
            sampler_web.mark("after_health_query")
            print(f"[{layout}/{storage_kind}] health query {out['health_query']}", file=sys.stderr)
            out["browser"] = browser_load(
                port, ASSETS[0], out["partitions_per_asset"], timeout=cfg["browser_timeout"]
            )
            sampler_web.mark("after_browser")
            print(f"[{layout}/{storage_kind}] browser {out['browser']}", file=sys.stderr)

            # ---- the daemon
            daemon = _spawn(
                [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, tmp / "daemon.log"
            )
            sampler_daemon = RssSampler(daemon.pid)
            daemon_started = time.time()
            out["daemon_ready_s"] = round(wait_daemon_healthy(instance), 1)
            day_keys = [f"{f}|{days[-2] if len(days) > 1 else days[-1]}" for f in firsts]
            out["backfill"] = backfill_launch(port, instance, day_keys, timeout=cfg["backfill_timeout"])
            print(f"[{layout}/{storage_kind}] backfill {out['backfill']}", file=sys.stderr)
            sampler_web.mark("after_backfill")

            ticks = []
            after = daemon_started
            for roster in rosters:
                if layout == "creator":
                    have = len(instance.get_dynamic_partitions("creators"))
                    if roster > have:
                        instance.add_dynamic_partitions("creators", roster_ids[have:roster])
                write_registry(roster_ids[:roster])
                # Ticks of the same day share their run keys: delete earlier runs so each tick creates one.
                for r in instance.get_runs():
                    if r.tags.get("dagster/schedule_name") == "daily_snapshot_schedule":
                        instance.delete_run(r.run_id)
                after = max(after, time.time())
                tick = next_tick(instance, after)
                tick["roster"] = roster
                ticks.append(tick)
                after = time.time()
                print(f"[{layout}/{storage_kind}] tick {tick}", file=sys.stderr)
            out["schedule_ticks"] = ticks
            sampler_web.mark("end")
            out["webserver_rss_mb"] = sampler_web.marks
            out["webserver_peak_rss_mb"] = round(sampler_web.peak, 1)
            out["daemon_peak_rss_mb"] = round(sampler_daemon.peak, 1)
            out["storage_size_mb"] = _storage_size_mb(home, storage_kind, instance)
    finally:
        for s in (sampler_web, sampler_daemon):
            if s is not None:
                s.close()
        _stop_all()
        if cfg.get("keep_logs"):
            out["tmp"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _storage_size_mb(home: Path, kind: str, instance: Any) -> float:
    if kind == "sqlite":
        return round(sum(p.stat().st_size for p in home.rglob("*.db") if p.is_file()) / 2**20, 1)
    import sqlalchemy

    with instance.event_log_storage.index_connection() as conn:
        size = conn.execute(sqlalchemy.text("SELECT pg_database_size(current_database())")).scalar()
    return round(int(size) / 2**20, 1)


def _today() -> date:
    """Today in Asia/Shanghai (without importing the package: the partitions module loads later)."""
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo("Asia/Shanghai")).date()


# --------------------------------------------------------------------------------------------------
# The parent: configurations, each in its own process; the report.


def measure(cfg: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.dagster_ui", "--child", json.dumps(cfg)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.setdefault(SUBSET_FLAG, "1")  # what scripts/dev.sh and the Kubernetes values give the daemon
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, start_new_session=True)
    # A SIGTERM here reaches the child, which stops its own servers within their grace periods.
    _STARTED.append((proc, 60.0))
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop_all()  # the child stops its servers on SIGTERM
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"configuration {cfg} failed with exit code {proc.returncode}")
    return dict(json.loads(stdout.decode().strip().splitlines()[-1]))


def _fmt_s(x: float | None) -> str:
    return "–" if x is None else (f"{x:.1f} s" if x >= 1 else f"{x:.2f} s")


def _label(r: dict[str, Any]) -> str:
    keys = "creators" if r["layout"] == "creator" else "cohorts"
    return f"{r['layout']}, {r['storage']}: {r['history_keys']:,} {keys} × {r['days']} days"


def render(results: list[dict[str, Any]]) -> str:
    """The docs section: tables, what they say against the targets, the method, raw figures."""
    results = sorted(results, key=lambda r: (r["layout"] != "creator", r["storage"] != "sqlite"))
    loads = [x for r in results for x in r.get("load_average_before_after", [])]
    lines = [
        SECTION_START,
        "### The Dagster UI, a backfill launch and the schedule tick over a long history",
        "",
        "`python -m benchmarks.dagster_ui` (dagster-webserver and dagster-daemon 1.13.27 on 127.0.0.1, the "
        "project's definitions and instance settings; method below). "
        f"2 cores shared with other work (1-minute load average {min(loads, default=0):.0f} to "
        f"{max(loads, default=0):.0f} at the configurations' starts and ends): order of magnitude.",
        "",
        "| layout, storage: history | partitions per asset | health query cold / warm "
        "| asset page in a browser cold / warm | webserver peak RSS | storage size |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        hq, br = r["health_query"], r["browser"]
        lines.append(
            f"| {_label(r)} | {r['partitions_per_asset']:,} | {_fmt_s(hq['cold_s'])} / {_fmt_s(min(hq['warm_s']))} "
            f"| {_fmt_s(br.get('cold_s'))} / {_fmt_s(br.get('warm_s'))} "
            f"| {r['webserver_peak_rss_mb']:,.0f} MB | {r['storage_size_mb']:,.0f} MB |"
        )
    lines += [
        "",
        "| layout, storage | backfill of one day: partitions | mutation (backfill stored) | until its run exists "
        "| runs | schedule tick by registered creators (runs, planned events) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        bf = r["backfill"]
        ticks = "; ".join(
            f"{t['roster']:,}: {_fmt_s(t.get('tick_s'))}"
            + (
                f" ({t.get('runs', 0)} run, {t.get('planned_events', 0)})"
                if t.get("status") == "SUCCESS"
                else f" ({t.get('status')})"
            )
            for t in r["schedule_ticks"]
        )
        lines.append(
            f"| {r['layout']}, {r['storage']} | {bf['partitions']:,} | {_fmt_s(bf['mutation_s'])} "
            f"| {_fmt_s(bf.get('first_run_s'))} | {bf.get('runs', 0)} | {ticks} |"
        )
    lines += ["", *_findings(results), "", *_method(), "", "Raw figures:", "", "```json"]
    lines += [json.dumps(_slim(r)) for r in results]
    lines += ["```", SECTION_END]
    return "\n".join(lines) + "\n"


def _slim(r: dict[str, Any]) -> dict[str, Any]:
    """Raw figures without ids and temporary paths."""
    out = {k: v for k, v in r.items() if k not in ("tmp",)}
    out["backfill"] = {k: v for k, v in r["backfill"].items() if k not in ("run_ids", "backfill_id")}
    out["browser"] = {k: v for k, v in r["browser"].items() if k != "url"}
    return out


def _findings(results: list[dict[str, Any]]) -> list[str]:
    """The figures against the targets at 10,000 creators x 2 years (page < 5 s, tick < 10 s, < 1 GB)."""
    out = [
        "What the figures say (targets: the asset page shows statuses in under 5 s, the schedule tick "
        "takes under 10 s, the webserver stays under 1 GB):",
        "",
    ]
    for r in results:
        br, hq = r["browser"], r["health_query"]
        page, first = br.get("warm_s"), br.get("cold_s")
        worst_tick = max((t.get("tick_s") or 0 for t in r["schedule_ticks"]), default=0)
        rss = r["webserver_peak_rss_mb"]
        verdict = [
            f"the asset page shows statuses in {_fmt_s(page)} on a visit "
            f"({'met' if page is not None and page < 5 else '**not met**'}; {_fmt_s(first)} on the first "
            "visit, while the status cache is built)",
            f"slowest schedule tick {_fmt_s(worst_tick)} ({'met' if worst_tick < 10 else '**not met**'})",
            f"webserver {rss:,.0f} MB ({'met' if rss < 1024 else '**not met**'})",
        ]
        out.append(
            f"- {_label(r)} ({r['partitions_per_asset']:,} partitions per asset): "
            + "; ".join(verdict)
            + f". The health query takes {_fmt_s(hq['cold_s'])} when it builds the cache, "
            f"{_fmt_s(min(hq['warm_s']))} after."
        )
    out += [
        "- The cohort layout's Dagster side does not depend on the roster (64 cohorts whatever the number "
        "of creators; the roster only enters the schedule tick, measured at 1,000 / 5,000 / 10,000), so its "
        "rows are the figures at 10,000 creators × 2 years. The creator layout's are at 1,000 creators × 1 "
        "year, already at or past the targets; its UI cost grows with creators × days (the issue measured "
        "88 s for the health query and 7.9 GB of webserver at 10,000 × 730).",
        "- Where the page's time goes: the status cache is stored in the instance and updated incrementally, "
        "so the first-visit figure is paid once (after the history is first seen, or the partitions "
        "definition changes); the visit figure is paid every time and grows with partitions per asset, "
        "because the webserver deserializes the whole materialized subset and turns it into ranges. "
        "SQLite and PostgreSQL storage give the same figures within noise, which points at the webserver's "
        "own work rather than the storage's queries (not profiled).",
        "- A backfill's run comes at the backfill daemon's next iteration (about 30 s) in every configuration; "
        "the mutation itself grows with the partitions it names (one per creator in the creator layout, 64 "
        "in the cohort layout). With subset planned events a run's creation writes 3 planned events whatever "
        "the partitions, so the schedule tick stays within a few seconds and grows only with the roster.",
        "- Not measured: the creator layout at 5,000 or 10,000 creators (about 5 KB of SQLite per "
        "materialization: 1,000 × 365 is already 5.4 GB); the sensors' ticks under the daemon (stopped "
        "here); runs executing (see the scale section above); other UI pages (catalog, runs, backfills).",
    ]
    return out


def _method() -> list[str]:
    return [
        "How it is measured:",
        "",
        "- History: one successful run per day and, per partition and asset, one real `ASSET_MATERIALIZATION` "
        "event (serialized from an event a real range run wrote; 4 small metadata entries) with its "
        "`asset_event_tags` rows (both partition dimensions and the data version), bulk-inserted into the event "
        "log tables Dagster reads partition status from (`event_logs.partition`, via `get_materialized_partitions`), "
        "and the asset records through Dagster's own `store_asset_event`. No run-shard copies (SQLite) and no "
        "planned events (with `DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`, a successful run's planned "
        "events carry no partition and do not enter partition status). The status cache starts empty, as after "
        "a partitions definition change: the first query pays for building it.",
        "- Health query: the UI bundle's `PartitionHealthQuery` over HTTP on `analytics/notes`; every answer is "
        "checked to count all partitions as materialized. Browser: headless Chromium (the project's CDP client) "
        "opens `raw/note_pages` (its status cache still cold), tab Partitions, until the legend reads "
        "`Materialized (N)` for every partition and `Missing (0)`; then reloads (warm).",
        "- Webserver RSS: `dagster-webserver` and its code server process, summed, sampled every 0.2 s from "
        "start to the end of the run.",
        "- Daemon: runs are created but never launched (`max_concurrent_runs: 0`), so what is timed is Dagster "
        "creating runs, not executing them; the project's sensors are stopped. The backfill is "
        "`launchPartitionBackfill` over every partition of yesterday for the three assets; its run comes at "
        "the backfill daemon's next iteration (about every 30 s). The schedule ticks every minute "
        "(`PGY_SNAPSHOT_CRON`), the tick's time is its record's end minus start (evaluation, run creation with "
        "its planned events, submission). In the creator layout the roster is the registered dynamic partitions; "
        "in the cohort layout the registry file alone.",
    ]


def write_section(path: Path, section: str) -> None:
    """Replace the section between the markers, or put it at the end of the scale section."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END) + "\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    elif "<!-- /scale-section -->" in text:
        # Right after the scale section's end marker: benchmarks.scale rewrites what lies between its own.
        text = text.replace("<!-- /scale-section -->\n", "<!-- /scale-section -->\n\n" + section, 1)
    else:
        text = text + "\n" + section
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", default="creator", choices=["creator", "cohort"])
    p.add_argument("--creators", type=int, default=1000, help="creators with history (creator layout)")
    p.add_argument("--days", type=int, default=365, help="days of history (the date dimension's length)")
    p.add_argument("--rosters", default="1000,5000,10000", help="registered creators for the schedule ticks")
    p.add_argument("--storage", default="sqlite", help="sqlite, postgres or both (comma-separated)")
    p.add_argument(
        "--defs",
        default="auto",
        choices=["auto", "real", "standin"],
        help="the project's definitions, or a stand-in with the same keys and partitions "
        "(auto: real, unless the layout is not in the package yet)",
    )
    p.add_argument("--browser-timeout", type=float, default=420)
    p.add_argument("--backfill-timeout", type=float, default=300)
    p.add_argument("--timeout", type=float, default=1800, help="per configuration")
    p.add_argument("--smoke", action="store_true", help="20 creators x 5 days, rosters 20,40")
    p.add_argument("--results", default=DEFAULT_RESULTS)
    p.add_argument("--write", action="store_true", help="render --results into docs/benchmarks.md")
    p.add_argument("--render-only", action="store_true", help="no run; with --write, re-render the section")
    p.add_argument("--keep-logs", action="store_true")
    p.add_argument("--output", default=str(PROJECT_ROOT / "docs" / "benchmarks.md"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    # SIGINT too: started in the background by a shell, a process ignores SIGINT, and Dagster's
    # interrupt handling copies SIGINT's handler onto SIGTERM (``materialize``), which would then
    # ignore SIGTERM and leave the servers running.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    atexit.register(_stop_all)
    if args.child:
        print(json.dumps(run_config(json.loads(args.child))), flush=True)
        return

    if not args.render_only:
        if args.smoke:
            args.creators, args.days, args.rosters = 20, 5, "20,40"
            if args.results == DEFAULT_RESULTS:  # smoke figures never mix with real ones
                args.results = DEFAULT_RESULTS.replace("results", "smoke")
        defs = args.defs
        if defs == "auto":
            from pgy_pipeline.orchestration import partitions

            defs = (
                "real"
                if args.layout == "creator" or hasattr(partitions, "cohort_note_partitions")
                else "standin"
            )
        storages = [s.strip() for s in args.storage.split(",")]
        with contextlib.ExitStack() as stack:
            pg_url = stack.enter_context(postgres_server()) if "postgres" in storages else None
            for storage in storages:
                cfg = {
                    "layout": args.layout,
                    "storage": storage,
                    "creators": args.creators,
                    "days": args.days,
                    "rosters": [int(x) for x in args.rosters.split(",") if x],
                    "defs": defs,
                    "pg_url": pg_url,
                    "browser_timeout": args.browser_timeout,
                    "backfill_timeout": args.backfill_timeout,
                    "keep_logs": args.keep_logs,
                }
                t0, load_before = time.monotonic(), os.getloadavg()[0]
                r = measure(cfg, args.timeout)
                r["configuration_wall_s"] = round(time.monotonic() - t0, 1)
                r["load_average_before_after"] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
                r["cores"] = os.cpu_count()
                r["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
                print(json.dumps(r), flush=True)
                with open(args.results, "a", encoding="utf-8") as f:
                    f.write(json.dumps(r) + "\n")
    results = (
        [json.loads(x) for x in Path(args.results).read_text().splitlines() if x.startswith("{")]
        if Path(args.results).exists()
        else []
    )
    section = render(results)
    print(section)
    if args.write:
        write_section(Path(args.output), section)


if __name__ == "__main__":
    main()
