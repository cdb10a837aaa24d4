"""Reliability, scenario 6: bad input from people, refused with a clear error before any API call.

Malformed creator ids (in partitions and in the registry file), a registry file that cannot be used,
invalid values in run config, a snapshot date the API cannot serve, and a bad number in the
environment. Each must be refused naming the problem, before any call (counted on the simulator)
and before anything is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError, build_sensor_context, materialize

from pgy_pipeline.orchestration.assets import creators as creators_asset
from pgy_pipeline.orchestration.automation import creator_registry_sensor
from pgy_pipeline.orchestration.partitions import today_shanghai
from pgy_pipeline.orchestration.registry import CreatorRegistryResource
from pgy_pipeline_tests.conftest import ALL_ASSETS, creator_ids, fast_api, run_pipeline, step_failure_messages
from pgy_pipeline_tests.reliability_support import REPO_ROOT, counts, dump, query, record

TODAY = today_shanghai()
BAD_IDS = {
    "pipe": "5ff0e6410000000001008400|x",
    "comma": "5ff0e64100000000,1008400",
    "spaces": " 5ff0e6410000000001008400 ",
    "sql": "x'); DROP TABLE raw.note_pages; --",
    "10k": "a" * 10_000,
    "non-ascii": "５ｆｆ０ｅ６４１００００００００１００８４００",  # full-width digits: 24 characters
    "emoji": "🎉" * 24,
}


def test_malformed_creator_ids_are_refused_by_name_before_any_call(
    instance, simulator, db_path, duckdb_resource
):
    good = creator_ids(2, prefix="goodinput")
    instance.add_dynamic_partitions("creators", [good[0], *BAD_IDS.values(), good[1]])
    result = run_pipeline(instance, fast_api(simulator), duckdb_resource, good)  # a range over all of them
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert f"{len(BAD_IDS)} partition key(s) rejected before any API call" in message
    shown = {
        "pipe": "'5ff0e6410000000001008400|x'",
        "comma": "'5ff0e64100000000,1008400'",
        "spaces": "' 5ff0e6410000000001008400 '",
        "sql": "DROP TABLE raw.note_pages",
        "10k": "(10000 characters)",
        "non-ascii": "'５ｆｆ０ｅ６４",
        "emoji": "🎉",
    }
    for name, words in shown.items():
        assert words in message, (name, message[:2000])
    assert "24 lowercase hexadecimal" in message
    assert len(message) < 20_000  # the 10,000-character id is shortened, not pasted
    assert simulator.call_count() == 0
    assert not Path(db_path).exists()  # refused before DuckDB was even opened: the good ones are not fetched

    # the same ids in the registry file: each bad row named and skipped, the good ones registered
    registry = Path(db_path).parent / "creators.yaml"
    rows = "".join(
        f"  - id: {value!r}\n" if "'" not in value else f'  - id: "{value}"\n' for value in BAD_IDS.values()
    )
    registry.write_text(f"creators:\n  - id: {good[0]}\n{rows}  - id: {good[1]}\n", encoding="utf-8")
    resource = CreatorRegistryResource(path=str(registry))
    tick = creator_registry_sensor.evaluate_tick(
        build_sensor_context(instance=instance, resources={"creator_registry": resource})
    )
    requests = tick.dynamic_partitions_requests or []
    added = [k for r in requests for k in getattr(r, "partition_keys", [])]
    assert not set(added) & set(BAD_IDS.values())
    assert simulator.call_count() == 0
    parsed = resource.load()
    assert [c.creator_id for c in parsed.creators] == good
    assert len(parsed.problems) == len(BAD_IDS)
    assert all("invalid creator id" in p for p in parsed.problems)
    record(
        "6-creator-ids",
        bad_ids=len(BAD_IDS),
        calls=0,
        duckdb_opened=False,
        registry_rows_skipped=len(parsed.problems),
        registry_rows_kept=len(parsed.creators),
    )


REGISTRY_TEXTS = {
    "not YAML": ("creators: [unclosed", "is not valid YAML"),
    "no creators key": ("- just\n- a list\n", "must have a top-level 'creators:' list"),
    "creators not a list": ("creators: 5\n", "must have a top-level 'creators:' list"),
    "not UTF-8": (b"\xff\xfe\x00creators", "could not be read"),
}


def test_a_registry_file_that_cannot_be_used_changes_nothing_and_says_why(
    instance, simulator, duckdb_resource, db_path, tmp_path
):
    registry = tmp_path / "creators.yaml"
    good = creator_ids(2, prefix="registry")
    registry.write_text(f"creators:\n  - id: {good[0]}\n    name: 甲\n  - id: {good[1]}\n", encoding="utf-8")
    resource = CreatorRegistryResource(path=str(registry))
    resources = {"creator_registry": resource, "duckdb": duckdb_resource}
    assert materialize([creators_asset], instance=instance, resources=resources).success
    before = query(db_path, "SELECT * FROM analytics.creators ORDER BY ALL")
    seen = {}
    for name, (text, words) in REGISTRY_TEXTS.items():
        if isinstance(text, bytes):
            registry.write_bytes(text)
        else:
            registry.write_text(text, encoding="utf-8")
        tick = creator_registry_sensor.evaluate_tick(
            build_sensor_context(instance=instance, resources={"creator_registry": resource})
        )
        assert not tick.run_requests and not tick.dynamic_partitions_requests, name
        assert words in tick.skip_message and "Nothing was changed" in tick.skip_message, (
            name,
            tick.skip_message,
        )
        result = materialize([creators_asset], instance=instance, raise_on_error=False, resources=resources)
        assert not result.success, name
        message = "\n".join(step_failure_messages(result))
        assert "RegistryFileError" in message and str(registry) in message and words in message, name
        assert query(db_path, "SELECT * FROM analytics.creators ORDER BY ALL") == before, name
        seen[name] = words
    assert simulator.call_count() == 0
    assert instance.get_dynamic_partitions("creators") == []
    record("6-registry", files=len(REGISTRY_TEXTS), calls=0, rows_changed=0, messages=seen)


ENUMS = {
    "advertise_switch": ("organic", "invalid advertiseSwitch 'organic': must be one of ALL | ORGANIC_ONLY"),
    "order_type": (
        "HOTTEST",
        "invalid orderType 'HOTTEST': must be one of LATEST | MOST_READ | MOST_INTERACT",
    ),
    "note_type": ("", "invalid noteType '': must be one of ALL | COOPERATION | PHOTO_TEXT | VIDEO"),
    "is_third_platform": ("no", "invalid isThirdPlatform 'no': must be one of NO | YES"),
}


def test_invalid_run_config_is_refused_before_any_call(instance, simulator, duckdb_resource, db_path):
    ids = creator_ids(1, prefix="enum")
    instance.add_dynamic_partitions("creators", ids)
    for field, (value, words) in ENUMS.items():
        result = run_pipeline(
            instance,
            fast_api(simulator),
            duckdb_resource,
            ids,
            run_config={"ops": {"raw__note_pages": {"config": {field: value}}}},
        )
        assert not result.success, field
        message = "\n".join(step_failure_messages(result))
        assert "InvalidParameterError" in message and words in message and "No API call was made" in message
    # values of the wrong type, and misspelt keys, are refused by Dagster before the run starts
    for config, words in [
        ({"refresh": "sometimes"}, "refresh"),
        ({"advertise_swich": "ALL"}, "advertise_swich"),
    ]:
        with pytest.raises(DagsterInvalidConfigError) as info:
            run_pipeline(
                instance,
                fast_api(simulator),
                duckdb_resource,
                ids,
                run_config={"ops": {"raw__note_pages": {"config": config}}},
            )
        assert words in str(info.value)
    assert simulator.call_count() == 0
    assert not Path(db_path).exists()
    record("6-run-config", invalid_values=len(ENUMS), wrong_shapes=2, calls=0, duckdb_opened=False)


def test_a_past_snapshot_date_is_refused_before_any_call(instance, simulator, duckdb_resource, db_path):
    ids = creator_ids(2, prefix="past")
    instance.add_dynamic_partitions("creators", ids)
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    # a range from yesterday to today: the whole run is refused, today's partitions included
    tags = {
        "dagster/asset_partition_range_start": f"{ids[0]}|{yesterday}",
        "dagster/asset_partition_range_end": f"{ids[1]}|{TODAY.isoformat()}",
    }
    result = materialize(
        ALL_ASSETS,
        instance=instance,
        tags=tags,
        raise_on_error=False,
        resources={"pgy_api": fast_api(simulator), "duckdb": duckdb_resource},
    )
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert "PastSnapshotDateError" in message
    assert f"{ids[0]}|{yesterday}" in message and f"{ids[1]}|{yesterday}" in message
    assert "only serves the present" in message and "No API call was made" in message
    assert simulator.call_count() == 0
    assert dump(db_path)["raw.note_pages"] == [] and counts(db_path, "raw.note_pages") == {}

    # tomorrow: refused the same way, naming the keys
    tomorrow = (TODAY + timedelta(days=1)).isoformat()
    ahead = run_pipeline(instance, fast_api(simulator), duckdb_resource, ids, day=tomorrow)
    assert not ahead.success
    ahead_message = "\n".join(step_failure_messages(ahead))
    assert f"{ids[0]}|{tomorrow}" in ahead_message and "No API call was made" in ahead_message
    assert simulator.call_count() == 0
    assert counts(db_path, "raw.note_pages") == {}
    record(
        "6-past-date",
        calls=0,
        partitions_written=0,
        refused="the range yesterday..today (2 past keys named, today's 2 not fetched either), and tomorrow's 2 keys",
    )


def test_a_bad_number_in_the_environment_is_named_at_load(tmp_path):
    env = {
        **os.environ,
        "JUSTONEAPI_TIMEOUT_S": "sixty",
        "PYTHONPATH": str(REPO_ROOT),
        "PGY_DUCKDB_PATH": str(tmp_path / "x.duckdb"),
    }
    env.pop("JUSTONEAPI_TOKEN", None)
    proc = subprocess.run(
        [sys.executable, "-c", "import pgy_pipeline.definitions"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "environment variable JUSTONEAPI_TIMEOUT_S='sixty' is not a valid float" in proc.stderr
    record(
        "6-environment",
        exit_code=proc.returncode,
        message="JUSTONEAPI_TIMEOUT_S='sixty' is not a valid float",
    )
