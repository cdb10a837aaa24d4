"""``python -m pgy_pipeline snapshot CREATOR_ID``: snapshot one creator now, from a shell; and
``python -m pgy_pipeline demo-history --days N``: the demo's simulated past (``PGY_DEMO_HISTORY_DAYS``).

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

from pgy_pipeline.definitions import Settings, build_defs

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    from pgy_pipeline.orchestration.partitions import cohort_of, cohort_partition_key, partition_key
    from pgy_pipeline.orchestration.raw_pages import UNCHANGED
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


def demo_history(days: int) -> int:
    """Simulated snapshots of the registry's creators for the last ``days`` days and today, as the
    daily schedule would have taken them: for each day the pipeline's clock is set to 10:00 Asia/Shanghai
    and ``snapshot_job`` runs over every creator. Simulated data only (refused with a token set); the
    analyst assets follow through ``analyst_refresh_sensor`` (one run for the whole block of days)."""
    from dataclasses import replace
    from datetime import datetime, time, timedelta

    from dagster import DagsterInstance

    from pgy_pipeline import clock
    from pgy_pipeline.errors import InvalidInputError
    from pgy_pipeline.orchestration.automation import range_tags

    if os.environ.get("JUSTONEAPI_TOKEN"):
        raise InvalidInputError(
            "a demo history is simulated data: unset JUSTONEAPI_TOKEN (real snapshots can only be taken today)"
        )
    if not 1 <= days <= 365:
        raise InvalidInputError(f"PGY_DEMO_HISTORY_DAYS={days}: must be between 1 and 365 days")
    _dagster_home()
    today = clock.today_shanghai()
    settings = Settings.from_env()
    if settings.partitioning != "creator":
        raise InvalidInputError("a demo history is built in the creator layout: unset PGY_PARTITIONING")
    first = today - timedelta(days=days)
    defs = build_defs(
        replace(settings, first_snapshot_date=min(first.isoformat(), settings.first_snapshot_date))
    )
    ids = settings.creator_registry.load().active_ids
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(
            "creators", [c for c in ids if not instance.has_dynamic_partition("creators", c)]
        )
        order = [c for c in instance.get_dynamic_partitions("creators") if c in set(ids)]
        defs.resolve_job_def("creator_registry_job").execute_in_process(instance=instance, run_config=quiet)
        for k in range(days, -1, -1):
            day = today - timedelta(days=k)
            at_ten = datetime.combine(day, time(10), tzinfo=clock.SHANGHAI)
            with clock.use_clock(lambda at=at_ten: at):  # type: ignore[misc]
                result = defs.resolve_job_def("snapshot_job").execute_in_process(
                    instance=instance,
                    tags=range_tags(order[0], order[-1], day),
                    run_config=quiet,
                    raise_on_error=False,
                )
            print(f"{day.isoformat()}: {len(order)} creator(s), {'done' if result.success else 'failed'}")
            if not result.success:
                return 1
    print(f"simulated history from {first.isoformat()} to {today.isoformat()} (SIMULATED DATA)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgy_pipeline", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    snap = commands.add_parser("snapshot", help="snapshot one creator now (today's partition)")
    snap.add_argument("creator_id", help="Xiaohongshu user id: 24 lowercase hex characters")
    snap.add_argument("--refresh", action="store_true", help="fetch again if stored today (costs calls)")
    history = commands.add_parser("demo-history", help="simulated snapshots of the past days (demo only)")
    history.add_argument("--days", type=int, required=True, help="days before today, 1-365")
    args = parser.parse_args(argv)
    from pgy_pipeline.errors import PgyError

    try:
        if args.command == "demo-history":
            return demo_history(args.days)
        return snapshot(args.creator_id, refresh=args.refresh)
    except PgyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
