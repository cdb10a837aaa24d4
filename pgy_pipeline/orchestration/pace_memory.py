"""The learned request pace, remembered across runs in the Dagster instance's own storage.

A fetch step starts its adaptive pacer (:mod:`pgy_pipeline.api.pacing`) at the pace the previous step
ended at, so a run does not rediscover the service's limit from scratch, and leaves its own pace for
the next: as it moves (at most once a second), and once more when the client closes, so a run that
dies mid-fetch keeps what it learned. Wherever the instance's storage goes (another process, host or
pod on the same storage), the pace goes too; only a first run on a new storage climbs from
``JUSTONEAPI_START_RPS``. Keyed by the service's base URL (hashed), so the demo simulator and the real
service never share a pace; SQLite or PostgreSQL alike, as the quota guard.
"""

from __future__ import annotations

import hashlib
import json

from dagster import DagsterInstance

from pgy_pipeline.api.pacing import PaceState
from pgy_pipeline.orchestration.dagster_internals import read_value, write_value

PACE_KEY_PREFIX = "pgy_pipeline/api_pace/"


def pace_key(base_url: str) -> str:
    return PACE_KEY_PREFIX + hashlib.sha256(base_url.rstrip("/").encode()).hexdigest()[:16]


def read_pace(instance: DagsterInstance, base_url: str) -> PaceState | None:
    """The pace the last fetch step against ``base_url`` ended at, or None."""
    raw = read_value(instance, pace_key(base_url))
    if not raw:
        return None
    try:
        return PaceState.from_json(json.loads(raw))
    except ValueError:
        return None


def write_pace(instance: DagsterInstance, base_url: str, state: PaceState) -> None:
    write_value(instance, pace_key(base_url), json.dumps(state.to_json()))
