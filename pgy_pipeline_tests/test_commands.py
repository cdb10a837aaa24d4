"""The one-creator recipe, from a fresh clone with no variable set: ``bash scripts/snapshot.sh ID``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb

from pgy_pipeline_tests.conftest import clean_env

CREATOR = "5ff0e6410000000001008400"


def run(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/snapshot.sh", *args],
        cwd=clone,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_snapshot_one_creator_now_from_a_fresh_clone(fresh_clone: Path):
    first = run(fresh_clone, CREATOR)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "fetched: " in first.stdout and "succeeded" in first.stdout
    assert (fresh_clone / ".dagster_home" / "dagster.yaml").exists()
    with duckdb.connect(str(fresh_clone / "data" / "pgy_demo.duckdb"), read_only=True) as conn:
        [(notes,)] = conn.execute(
            "SELECT count(*) FROM analytics.notes WHERE creator_id = ?", [CREATOR]
        ).fetchall()
    assert notes > 0

    again = run(fresh_clone, CREATOR)
    assert again.returncode == 0 and "unchanged (already stored)" in again.stdout
    assert "add --refresh to fetch again" in again.stdout
    refreshed = run(fresh_clone, CREATOR, "--refresh")
    assert refreshed.returncode == 0 and "fetched: " in refreshed.stdout

    bad = run(fresh_clone, "not-an-id")
    assert bad.returncode == 2 and "invalid creator id 'not-an-id'" in bad.stderr
    assert "No API call was made" in bad.stderr
