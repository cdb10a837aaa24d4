"""Reliability, scenario 7: the token's bytes are nowhere after a full run.

A real ``dagster asset materialize`` (the CLI, multiprocess executor, compute logs captured) runs the
whole snapshot in a subprocess with a recognisable token full of URL-special characters, against the
simulator. The service is made to echo the token back in its error messages, a page is retried and a
creator fails, so the error paths run too. Then every file the run could have written is searched for
the token in every encoding it travels in: the DuckDB file (bytes and, because DuckDB compresses
strings, every row as text), its spool, Dagster's storage folder (SQLite event logs, run storage,
compute logs), the CLI's stdout and stderr, run config and tags, and every event's text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from datetime import time as dtime
from pathlib import Path
from urllib.parse import quote, quote_plus

import duckdb
import httpx
import pytest

from pgy_pipeline.orchestration.partitions import SHANGHAI, today_shanghai
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.conftest import creator_ids
from pgy_pipeline_tests.reliability_support import (
    REPO_ROOT,
    iter_files,
    open_instance,
    persistent_home,
    record,
)

pytestmark = pytest.mark.timeout(240)

TODAY = today_shanghai()
TOKEN = "tok-PGY+SEC/RET=7f3e&9a1c%5b~Zq"
CORE = "PGY+SEC/RET=7f3e"  # a distinctive part, in case a token were cut or wrapped


def encodings(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        str(httpx.QueryParams({"t": secret}))[2:],  # as httpx puts it in the URL
        json.dumps(secret)[1:-1],
        secret.encode("unicode_escape").decode(),
    }


NEEDLES = sorted(encodings(TOKEN) | encodings(CORE), key=len)


def leaks(text: str) -> list[str]:
    return [n for n in NEEDLES if n in text]


@pytest.fixture
def sim():
    simulator = Simulator(token=TOKEN)
    simulator.start()
    moment = datetime.combine(TODAY, dtime(10), tzinfo=SHANGHAI)
    simulator.clock = lambda: moment
    try:
        yield simulator
    finally:
        simulator.stop()


def test_the_token_is_found_nowhere_after_a_full_run(tmp_path, sim):
    home = persistent_home(tmp_path)
    db_path = str(tmp_path / "data" / "pgy.duckdb")
    ids = creator_ids(4, prefix="secret")
    for c, n in zip(ids, [20, 9, 0, 12], strict=True):
        sim.set_note_count(c, n)
    # the service echoes the token in its messages: retried once, dropped once, and refused for good
    sim.add_fault(
        "code", user_id=ids[0], page=2, times=1, code=301, message=f"collect failed for token={TOKEN}"
    )
    sim.add_fault("drop", user_id=ids[1], page=1, times=1)
    sim.add_fault(
        "code",
        user_id=ids[3],
        page=1,
        times=None,
        code=400,
        message=f"Invalid Parameters: token {TOKEN} may not read {ids[3]}",
    )
    registry = tmp_path / "creators.yaml"
    registry.write_text("creators:\n" + "".join(f"  - id: {c}\n" for c in ids), encoding="utf-8")
    instance = open_instance(home)
    instance.add_dynamic_partitions("creators", ids)
    instance.dispose()

    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "JUSTONEAPI_TOKEN": TOKEN,
        "JUSTONEAPI_BASE_URL": sim.base_url,
        "JUSTONEAPI_TIMEOUT_S": "5",
        "PGY_DUCKDB_PATH": db_path,
        "PGY_CREATORS_FILE": str(registry),
        "PYTHONPATH": str(REPO_ROOT),
    }
    day = TODAY.isoformat()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "asset",
            "materialize",
            "-m",
            "pgy_pipeline.definitions",
            "--select",
            "raw/note_pages,analytics/notes,analytics/creator_engagement_metrics",
            "--partition-range",
            f"{ids[0]}|{day}...{ids[-1]}|{day}",
        ],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    out, err = proc.stdout, proc.stderr
    # the run happened: pages fetched with the token, one creator failed, the others were written
    assert sim.stats()["by_outcome"].get("0", 0) >= 5, (sim.stats(), err[-3000:])
    assert all(c.token_ok for c in sim.calls)
    assert proc.returncode != 0
    assert "1 of 4 creator(s) failed" in out + err and "Invalid Parameters: token ***" in out + err

    found: dict[str, list[str]] = {}

    def search(where: str, text: str) -> None:
        hits = leaks(text)
        if hits:
            found[where] = hits

    search("stdout", out)
    search("stderr", err)
    searched_files = 0
    for root in [home, Path(db_path).parent]:
        for path in iter_files(root):
            searched_files += 1
            search(str(path), path.read_bytes().decode("latin-1"))
            search(str(path) + " (utf-8)", path.read_bytes().decode("utf-8", errors="replace"))
    # DuckDB compresses strings on disk, so the bytes alone prove little: read every row as text
    rows = 0
    with duckdb.connect(db_path, read_only=True) as conn:
        tables = conn.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        for schema, table in tables:
            for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
                rows += 1
                search(f"{schema}.{table}", repr(row))
    # Dagster's storage through its API: run config, tags, every event (errors and metadata included)
    instance = open_instance(home)
    events = 0
    try:
        for run in instance.get_runs():
            search(f"run {run.run_id} config", json.dumps(run.run_config, default=str))
            search(f"run {run.run_id} tags", json.dumps(run.tags, default=str))
            for entry in instance.all_logs(run.run_id):
                events += 1
                search(f"event {entry.dagster_event_type}", repr(entry))
        failure_texts = [
            repr(e)
            for run in instance.get_runs()
            for e in instance.all_logs(run.run_id)
            if e.dagster_event_type and "FAILURE" in str(e.dagster_event_type)
        ]
    finally:
        instance.dispose()
    assert failure_texts and any("***" in t for t in failure_texts)  # the echoed token was redacted there
    assert searched_files > 5 and rows > 0 and events > 10
    record(
        "7-secrets",
        files_searched=searched_files,
        duckdb_rows_searched=rows,
        events_searched=events,
        encodings_searched=len(NEEDLES),
        token_found=len(found),
        calls=sim.call_count(),
        failed_creators=1,
        echoed_by_service=2,
    )
    assert not found, found
