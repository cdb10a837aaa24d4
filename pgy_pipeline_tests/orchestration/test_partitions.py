"""Partition keys: creator x Shanghai day, validated before any call."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import MultiPartitionKey

from pgy_pipeline.errors import InvalidCreatorIdError, InvalidInputError
from pgy_pipeline.orchestration.partitions import parse_partition_key, partition_key, today_shanghai

C = "5ff0e6410000000001008400"


def test_keys_round_trip_as_strings_and_as_multi_partition_keys():
    key = partition_key(C, date(2026, 11, 20))
    assert str(key) == f"{C}|2026-11-20"
    assert parse_partition_key(key) == parse_partition_key(f"{C}|2026-11-20") == (C, date(2026, 11, 20))
    assert isinstance(key, MultiPartitionKey)


@pytest.mark.parametrize(
    "key, error, text",
    [
        (f"{C}|2026-13-01", InvalidInputError, "not a YYYY-MM-DD date"),
        ("ABC|2026-11-20", InvalidCreatorIdError, "24 lowercase hexadecimal"),
        (f"{C}|x|2026-11-20", InvalidCreatorIdError, "must not contain '|'"),
    ],
)
def test_a_bad_key_is_named_before_any_call(key, error, text):
    with pytest.raises(error, match=text):
        parse_partition_key(key)


def test_the_snapshot_day_is_the_shanghai_calendar_day():
    late_utc = datetime(2026, 11, 20, 17, 30, tzinfo=ZoneInfo("UTC"))  # 01:30 the next day in Shanghai
    assert today_shanghai(late_utc) == date(2026, 11, 21)
