"""One run process against a lake, for the concurrency and kill tests (``python -m`` this module).

``snapshot``: a real snapshot run (all three assets, one range run) of the given creators on an
ephemeral Dagster instance, as one pod would do it (``refresh`` and ``scan`` as in the run config). ``kill``: the raw-pages write of a real
``replace_raw_pages`` that stops inside its transaction, after its data files are written and before
its commit, prints ``IN_TRANSACTION`` and waits to be killed.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from dagster import DagsterInstance, materialize

from pgy_pipeline.api.client import PgyClient
from pgy_pipeline.orchestration.resources import PgyApiResource
from pgy_pipeline.warehouse import storage
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.lake import LakeSettings
from pgy_pipeline_tests.conftest import ALL_ASSETS, range_tags
from pgy_pipeline_tests.lake.conftest import lake_resource


def snapshot(args: dict[str, Any]) -> None:
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("creators", args["creators"])
    api = PgyApiResource(token=args["token"], base_url=args["base_url"], max_rps=1000.0, timeout_s=10.0)
    result = materialize(
        ALL_ASSETS,
        instance=instance,
        resources={"pgy_api": api, "duckdb": lake_resource(args["database"], LakeSettings(**args["lake"]))},
        tags=range_tags(args["creators"]),
        run_config={
            "ops": {
                "raw__note_pages": {
                    "config": {"refresh": bool(args.get("refresh")), "scan": args.get("scan", "auto")}
                }
            }
        },
        raise_on_error=False,
    )
    print(json.dumps({"success": result.success}), flush=True)
    sys.exit(0 if result.success else 1)


def kill_mid_write(args: dict[str, Any]) -> None:
    client = PgyClient(args["token"], base_url=args["base_url"], max_rps=None)
    day = today_shanghai()
    pages = {(c, day): client.scan_notes(c).pages for c in args["creators"]}
    client.close()
    real_store = storage.store_loaded_pages

    def store_then_stall(conn: Any) -> None:
        real_store(conn)
        conn.execute("SELECT count(*) FROM raw.note_pages").fetchall()  # the write is flushed to files
        print("IN_TRANSACTION", flush=True)
        time.sleep(600)

    storage.store_loaded_pages = store_then_stall  # type: ignore[assignment]
    with storage.connect(args["database"], lake=LakeSettings(**args["lake"])) as conn:
        storage.replace_raw_pages(conn, pages)


if __name__ == "__main__":
    arguments = json.loads(sys.argv[2])
    {"snapshot": snapshot, "kill": kill_mid_write}[sys.argv[1]](arguments)
