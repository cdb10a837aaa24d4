"""Simulator of the Just One API Pugongying "User Published Notes (V1)" endpoint.

Serves ``GET /api/xiaohongshu-pgy/api/solar/kol/dataV2/notesDetail/v1`` over real loopback HTTP, so
clients can be exercised end to end (keep-alive, timeouts, retries, paging) without the network.
Standard library only, and nothing from the rest of ``pgy_pipeline``, so it can run anywhere the
pipeline's tests and benchmarks run.

Modules, split by concern:

* :mod:`.protocol`: path, parameters, business codes, envelopes, the vendor's billing rule.
* :mod:`.data`: generated creators, notes and their publish timeline; raw items at chosen ages.
* :mod:`.roster`: realistic creator rosters (note counts, posting rates) for benchmarks.
* :mod:`.faults`: fault kinds and which pending faults hit a request.
* :mod:`.server`: :class:`Simulator` (state, request planning, admin endpoints) and the HTTP server.
* :mod:`.cli`: ``python -m pgy_pipeline.simulator`` (see :mod:`.__main__`).

This package re-exports the public API; import from here, not from the modules.
"""

from __future__ import annotations

from .cli import main
from .data import ORGANIC_BRAND_SHARE, TIMELINE_ANCHOR, UNKNOWN_PREFIX, make_note_items
from .faults import FAULT_KINDS
from .protocol import API_PATH, BILLED_CODES, MESSAGES, VENDOR_CODES, is_billed
from .protocol import json_bytes as _json_bytes  # noqa: F401  (tests build bodies as the server does)
from .roster import RosterCreator, roster
from .server import CallRecord, Simulator

__all__ = [
    "API_PATH",
    "BILLED_CODES",
    "FAULT_KINDS",
    "MESSAGES",
    "ORGANIC_BRAND_SHARE",
    "TIMELINE_ANCHOR",
    "UNKNOWN_PREFIX",
    "VENDOR_CODES",
    "CallRecord",
    "RosterCreator",
    "Simulator",
    "is_billed",
    "main",
    "make_note_items",
    "roster",
]
