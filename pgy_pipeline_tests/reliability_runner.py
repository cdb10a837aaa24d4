"""Run the pipeline in a separate process, for the crash and concurrency tests of the reliability suite.

    python -m pgy_pipeline_tests.reliability_runner --home DAGSTER_HOME --db FILE --base-url URL \
        --creators ID,ID,... [--day YYYY-MM-DD] [--refresh] [--assets raw|all] [--lock-wait S] \
        [--pause-before-commit replace_raw_pages|rebuild_notes|rebuild_metrics]

The token comes from ``JUSTONEAPI_TOKEN`` (never from the command line, which ``ps`` shows). The run is
one range run (``materialize`` with the range tags) on the persistent instance in ``--home``, so the
test process sees the same runs, partitions and storage.

It prints one JSON object per line on stdout, flushed at once, so a test can act on them:

* ``{"event": "ready", "pid": ...}`` once imports are done;
* ``{"event": "write_begin", "fn": ...}`` / ``{"event": "write_end", "fn": ...}`` around each DuckDB
  partition write (``replace_raw_pages``, ``rebuild_notes``, ``rebuild_metrics``);
* ``{"event": "paused_before_commit", "fn": ...}`` when ``--pause-before-commit`` names that write: the
  transaction has deleted the old rows and inserted the new ones, and the process then sleeps before
  ``COMMIT`` until it is killed (the most damaging moment to die);
* ``{"event": "lock_wait", "name": ..., "message": ...}`` each time a step reports that it waits for a
  step lock, and ``{"event": "lock_held", "name": ...}`` once it holds one;
* ``{"event": "result", "success": ..., "failures": [...], "run_id": ...}`` at the end.

The hooks wrap package functions from outside (monkeypatching in this process only); the package has
no test hook.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from contextlib import contextmanager

warnings.filterwarnings("ignore")

_state = threading.local()
_print_lock = threading.Lock()


def emit(event: str, **fields) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()


def install_hooks(pause_fn: str | None) -> None:
    import pgy_pipeline.orchestration.assets as assets
    import pgy_pipeline.orchestration.raw_pages as raw_pages
    import pgy_pipeline.warehouse.storage as storage

    def wrap(name: str):
        original = getattr(storage, name)

        def wrapper(*args, **kwargs):
            _state.fn = name
            emit("write_begin", fn=name, t=time.time())
            try:
                result = original(*args, **kwargs)
            finally:
                _state.fn = None
            emit("write_end", fn=name, t=time.time())
            return result

        setattr(storage, name, wrapper)
        for module in (assets, raw_pages):  # the steps that call it, by the name they imported
            if hasattr(module, name):
                setattr(module, name, wrapper)

    for name in ("replace_raw_pages", "rebuild_notes", "rebuild_metrics"):
        wrap(name)

    import pgy_pipeline.orchestration.resources as resources

    holding = resources.hold

    @contextmanager
    def hold(locks, name, *, log, **kwargs):  # locks.hold, telling the test about waits and holds
        def reporting(message: str) -> None:
            if message.startswith("waiting for the lock"):
                emit("lock_wait", name=name, message=message, t=time.time())
            log(message)

        with holding(locks, name, log=reporting, **kwargs):
            emit("lock_held", name=name, t=time.time())
            yield

    resources.hold = hold

    if pause_fn:
        committing = storage.transaction

        @contextmanager
        def transaction(conn):  # storage.transaction, with a pause inside it, just before COMMIT
            with committing(conn):
                yield
                if getattr(_state, "fn", None) == pause_fn:
                    emit("paused_before_commit", fn=pause_fn, t=time.time())
                    time.sleep(3600)

        storage.transaction = transaction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgy_pipeline_tests.reliability_runner")
    parser.add_argument("--home", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--creators", required=True, help="comma-separated, contiguous in registration order")
    parser.add_argument("--day", default=None)
    parser.add_argument("--refresh", action="store_true")
    parser.add_argument("--assets", choices=["raw", "all"], default="all")
    parser.add_argument("--lock-wait", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--pause-before-commit", default=None)
    args = parser.parse_args(argv)

    install_hooks(args.pause_before_commit)

    from dagster import DagsterInstance, materialize

    from pgy_pipeline.orchestration.assets import creator_engagement_metrics, note_pages, notes
    from pgy_pipeline.orchestration.partitions import today_shanghai
    from pgy_pipeline.orchestration.resources import PgyApiResource, PgyDuckDBResource
    from pgy_pipeline_tests.conftest import range_tags, step_failure_messages

    emit("ready", pid=os.getpid())
    creators = args.creators.split(",")
    day = args.day or today_shanghai().isoformat()
    api = PgyApiResource(
        token=os.environ["JUSTONEAPI_TOKEN"],
        base_url=args.base_url,
        timeout_s=args.timeout,
        max_rps=1000.0,
        max_concurrency=args.max_concurrency,
        backoff_initial_s=0.01,
        rate_limit_backoff_s=0.01,
    )
    duckdb = PgyDuckDBResource(database=args.db, lock_wait_s=args.lock_wait)
    selected = [note_pages] if args.assets == "raw" else [note_pages, notes, creator_engagement_metrics]
    # Full scans: the crash tests count every page of every creator, whatever the snapshot history.
    config: dict[str, object] = {"scan": "full", **({"refresh": True} if args.refresh else {})}
    run_config = {"ops": {"raw__note_pages": {"config": config}}}
    with DagsterInstance.local_temp(args.home) as instance:
        result = materialize(
            selected,
            instance=instance,
            resources={"pgy_api": api, "duckdb": duckdb},
            tags=range_tags(creators, day),
            run_config=run_config,
            raise_on_error=False,
        )
        failures = step_failure_messages(result)
        emit("result", success=result.success, failures=failures, run_id=result.run_id)
    return 0 if result.success else 1


if __name__ == "__main__":
    raise SystemExit(main())
