"""The command line (pgy_pipeline.simulator.cli): python -m pgy_pipeline.simulator."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from pgy_pipeline.simulator import API_PATH, Simulator

from .support import NOW, UIDS


def test_command_line_server() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgy_pipeline.simulator",
            "--port",
            "0",
            "--token",
            "cli-token",
            "--page-size",
            "3",
            "--now",
            "2026-11-26T12:00:00+00:00",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        body = httpx.get(url + API_PATH, params={"token": "cli-token", "userId": UIDS[0]}).json()
        assert body["code"] == 0 and len(body["data"]["list"]) == min(3, body["data"]["total"])
        assert body["data"]["list"] == Simulator(now=lambda: NOW).notes_for(UIDS[0])[:3]
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_the_package_imports_only_the_standard_library() -> None:
    """It must run wherever the tests and benchmarks run, and import nothing else from pgy_pipeline but
    the one clock every part reads (``pgy_pipeline.clock``, standard library only, and the error tree)."""
    probe = (
        "import sys; before = set(sys.modules); import pgy_pipeline.simulator; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = [m for m in loaded if m.startswith("pgy_pipeline")]
    assert "pgy_pipeline.simulator.server" in ours
    shared = {"pgy_pipeline", "pgy_pipeline.clock", "pgy_pipeline.errors"}
    assert all(m in shared or m.startswith("pgy_pipeline.simulator") for m in ours), ours
    foreign = [
        m
        for m in loaded
        if not m.startswith("pgy_pipeline")
        and not m.startswith("_sysconfigdata_")  # the standard library's build data (zoneinfo reads it)
        and m.split(".")[0].lstrip("_") not in {n.lstrip("_") for n in sys.stdlib_module_names}
    ]
    assert foreign == []
