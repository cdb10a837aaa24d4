"""``python -m pgy_pipeline snapshot CREATOR_ID``: snapshot one creator now, from a shell.

The recipe for "fetch this one creator today" without the UI: it validates the id before anything
(no call for a mistyped id), uses the project's Dagster home (``.dagster_home``, as ``scripts/dev.sh``
does) unless ``DAGSTER_HOME`` is set, registers the creator's partition if it is new, and runs
``snapshot_job`` for today's partition in this process. A creator already stored today is left as it
is unless ``--refresh`` asks to fetch again (that costs calls); a refresh never leaves the day less
complete than it was.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def _dagster_home() -> Path:
    """``DAGSTER_HOME``, or the project's ``.dagster_home`` (made with the project's dagster.yaml)."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def snapshot(creator_id: str, *, refresh: bool = False) -> int:
    """Snapshot ``creator_id`` today; returns the process exit code (0: written or already stored)."""
    from dagster import DagsterInstance

    from pgy_pipeline.api.client import validate_creator_id
    from pgy_pipeline.definitions import Settings, build_defs
    from pgy_pipeline.orchestration.assets import UNCHANGED
    from pgy_pipeline.orchestration.partitions import cohort_of, cohort_partition_key, partition_key
    from pgy_pipeline.warehouse.keys import today_shanghai

    validate_creator_id(creator_id)  # a bad id is refused before anything else
    home = _dagster_home()
    settings = Settings.from_env()
    defs = build_defs(settings)
    day = today_shanghai()
    config: dict[str, object] = {"refresh": refresh}
    with DagsterInstance.get() as instance:
        if settings.partitioning == "cohort":
            key = cohort_partition_key(cohort_of(creator_id), day)
            config["creators"] = [creator_id]
        else:
            if not instance.has_dynamic_partition("creators", creator_id):
                instance.add_dynamic_partitions("creators", [creator_id])
            key = partition_key(creator_id, day)
        print(f"snapshot of {creator_id} for {day.isoformat()} (Asia/Shanghai); Dagster home {home}")
        result = defs.resolve_job_def("snapshot_job").execute_in_process(
            instance=instance,
            partition_key=str(key),
            run_config={
                "ops": {"raw__note_pages": {"config": config}},
                "loggers": {"console": {"config": {"log_level": "INFO"}}},
            },
            raise_on_error=False,
        )
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            print(f"failed: {error.message if error else event.message}")
    for materialization in result.asset_materializations_for_node("raw__note_pages"):
        figures = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        print(
            f"{figures.get('status', 'written')}: {figures.get('items', '?')} notes listed, "
            f"{figures.get('api_calls', 0)} API call(s), scan {figures.get('scan', '-')}"
            + ("" if refresh or figures.get("status") != UNCHANGED else "; add --refresh to fetch again")
        )
    print(f"run {result.run_id}: {'succeeded' if result.success else 'failed'}; see it in the Dagster UI")
    return 0 if result.success else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgy_pipeline", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    snap = commands.add_parser("snapshot", help="snapshot one creator now (today's partition)")
    snap.add_argument("creator_id", help="Xiaohongshu user id: 24 lowercase hex characters")
    snap.add_argument("--refresh", action="store_true", help="fetch again if stored today (costs calls)")
    args = parser.parse_args(argv)
    from pgy_pipeline.errors import PgyError

    try:
        return snapshot(args.creator_id, refresh=args.refresh)
    except PgyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
