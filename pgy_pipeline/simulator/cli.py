"""Command line: ``python -m pgy_pipeline.simulator --port 8765`` runs a simulator until interrupted.

Kept apart so the server module carries no process concerns (arguments, signals, the main loop), and
so that other processes (benchmarks, a Dagster webserver in demo mode) can share one long-lived server.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from .server import Simulator

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until interrupted; prints the base URL on one line."""
    parser = argparse.ArgumentParser(
        prog="python -m pgy_pipeline.simulator",
        description="Local simulator of the Just One API Pugongying User Published Notes (V1) endpoint.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="sim-token")
    parser.add_argument("--page-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every request")
    parser.add_argument(
        "--rate-limit-rps", type=float, default=0.0, help="answer 302 above this rate; 0 = off"
    )
    parser.add_argument(
        "--now", default=None, help="freeze the clock at this ISO-8601 instant (default: real time)"
    )
    parser.add_argument("--log-requests", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    now: Callable[[], datetime] | None = None
    if args.now:
        frozen = datetime.fromisoformat(args.now)
        if frozen.tzinfo is None:
            frozen = frozen.replace(tzinfo=UTC)

        def now() -> datetime:
            return frozen

    sim = Simulator(
        token=args.token,
        page_size=args.page_size,
        seed=args.seed,
        latency_s=args.latency_ms / 1000.0,
        rate_limit_rps=args.rate_limit_rps or None,
        now=now,
    )
    sim.log_requests = args.log_requests
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(sim.start(args.host, args.port), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the shutdown
        sim.stop()
    return 0
