"""Fixtures of the simulator tests: a settable clock, a running simulator and a client for it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pgy_pipeline.simulator import Simulator

from .support import NOW, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sim(clock: Clock) -> Iterator[Simulator]:
    with Simulator(now=clock) as s:
        yield s


@pytest.fixture
def client(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=5.0) as c:
        yield c
