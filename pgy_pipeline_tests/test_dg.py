"""``dg`` (dagster-dg-cli) on this project: ``dg list defs`` shows the graph and ``dg check defs`` passes.

Both run from the project root in a subprocess, as a data engineer would run them, configured by
``[tool.dg]`` in pyproject.toml (the definitions of ``pgy_pipeline.definitions``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pgy_pipeline.definitions import defs

REPO_ROOT = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).parent / "dg"
ASSETS = {
    "raw/note_pages",
    "analytics/notes",
    "analytics/creator_engagement_metrics",
    "analytics/creators",
    "analytics/creator_peer_percentiles",
    "analytics/anomalies",
    "reports/creator_report",
    "raw/pugongying_note_rates",
    "analytics/pugongying_note_rates",
}
JOBS = {"snapshot_job", "analytics_rebuild_job", "creator_registry_job", "api_guard_reset_job", "analyst_job"}


def dg(*args: str) -> subprocess.CompletedProcess[str]:
    # This checkout's package (not whatever the environment's editable install points at), and the
    # environment marked active, as `source .venv/bin/activate` does, so dg uses it without a warning.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "VIRTUAL_ENV": sys.prefix}
    assert DG.exists(), f"{DG} is missing: pip install -e '.[test]' (dagster-dg-cli)"
    return subprocess.run(
        [str(DG), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_dg_list_defs_shows_every_asset_and_job():
    done = dg("list", "defs", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    keys = {a["asset_key"] for a in listed["assets"]}
    assert keys == ASSETS
    assert keys == {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {j["name"] for j in listed["jobs"]} == JOBS
    assert {s["name"] for s in listed["schedules"]} == {"daily_snapshot_schedule"}


def test_dg_check_defs_passes():
    done = dg("check", "defs")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr
