"""The simulator in a process of its own, as the real service is: no shared GIL with the client.

``SimProcess`` starts ``python -m benchmarks.simproc`` with the latency, rate limit and note counts,
and talks to it over stdin/stdout in JSON lines: the base URL on start, then ``calls`` (every request
with its arrival time on the machine-wide monotonic clock, comparable with ``time.monotonic()`` in the
benchmark's process) and ``expected`` (each creator's note ids as served), then ``quit``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from benchmarks.common import PROJECT_ROOT

# The simulator's note timelines move with its clock; a frozen clock keeps every creator's list, and so
# the expected notes, fixed for the whole benchmark.
FROZEN_NOW = "2026-11-26T04:00:00+00:00"


class SimProcess:
    """A simulator running in a child process (loopback only)."""

    def __init__(
        self,
        *,
        token: str,
        note_counts: dict[str, int],
        latency_s: float = 0.0,
        rate_limit_rps: float | None = None,
        page_size: int = 8,
        now: str = FROZEN_NOW,
    ) -> None:
        self.token = token
        self.latency_s = latency_s
        self.rate_limit_rps = rate_limit_rps
        self.page_size = page_size
        self.note_counts = dict(note_counts)
        args = [
            sys.executable,
            "-m",
            "benchmarks.simproc",
            "--latency-s",
            str(latency_s),
            "--rate-limit-rps",
            str(rate_limit_rps or 0),
            "--page-size",
            str(page_size),
            "--now",
            now,
        ]
        env = {**os.environ, "PGY_SIM_TOKEN": token}
        self._proc = subprocess.Popen(
            args, cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.base_url = self._ask({"cmd": "counts", "counts": self.note_counts})["base_url"]

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(message) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulator process exited ({self._proc.poll()})")
        return json.loads(line)

    def calls(self) -> list[dict[str, Any]]:
        """Every request received: ``{"at", "user_id", "page", "outcome"}`` in arrival order."""
        return self._ask({"cmd": "calls"})["calls"]

    def expected(self, creators: list[str]) -> dict[str, list[str]]:
        """Each creator's note ids as the endpoint serves them (default query)."""
        return self._ask({"cmd": "expected", "creators": creators})["notes"]

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._ask({"cmd": "quit"})
            except (RuntimeError, OSError, ValueError):
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    from pgy_pipeline.simulator import Simulator

    parser = argparse.ArgumentParser(prog="python -m benchmarks.simproc")
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--rate-limit-rps", type=float, default=0.0)
    parser.add_argument("--page-size", type=int, default=8)
    parser.add_argument("--now", default=FROZEN_NOW)
    args = parser.parse_args(argv)
    frozen = datetime.fromisoformat(args.now).astimezone(UTC)
    sim = Simulator(
        token=os.environ["PGY_SIM_TOKEN"],
        page_size=args.page_size,
        latency_s=args.latency_s,
        rate_limit_rps=args.rate_limit_rps or None,
        now=lambda: frozen,
    )
    base_url = sim.start("127.0.0.1", 0)

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        for line in sys.stdin:
            msg = json.loads(line)
            cmd = msg.get("cmd")
            if cmd == "counts":
                for creator, n in msg["counts"].items():
                    sim.set_note_count(creator, int(n))
                for creator in msg["counts"]:  # generate (and cache) the data before any timing
                    sim.notes_for(creator)
                reply({"base_url": base_url})
            elif cmd == "calls":
                with sim._lock:
                    calls = list(sim.calls)
                reply(
                    {
                        "calls": [
                            {"at": c.at, "user_id": c.user_id, "page": c.page, "outcome": c.outcome}
                            for c in calls
                        ]
                    }
                )
            elif cmd == "expected":
                reply({"notes": {c: [n["noteId"] for n in sim.notes_for(c)] for c in msg["creators"]}})
            elif cmd == "quit":
                reply({"ok": True})
                break
            else:
                reply({"error": f"unknown command {cmd!r}"})
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
