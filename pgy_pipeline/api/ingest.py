"""Fetch many creators' scans concurrently, handing each one over as soon as it is complete.

Plain Python (no Dagster), so the asset stays a thin layer and benchmarks can call it directly.
Creators are scanned in parallel up to the client's concurrency limit; the client's pacer keeps the
request rate. One creator's failure does not stop the others, except an account-level failure,
after which the client's circuit breaker refuses every remaining call without reaching the service.

Creators start in the order given (the caller puts the neediest first). A creator with a window is
scanned only as deep as its :class:`~pgy_pipeline.api.client.ScanWindow` needs. When the client has
hooks, each creator is offered to them first with an estimate of its calls; a creator they decline
(the day's budget cannot afford it) is not started and is listed in ``deferred``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace

from pgy_pipeline.api.client import NotesQuery, PgyClient, Scan, ScanWindow
from pgy_pipeline.errors import PgyError


@dataclass
class FetchOutcome:
    scans: dict[str, Scan] = field(default_factory=dict)
    failures: dict[str, PgyError] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)  # declined by the hooks before any call
    seconds: float = 0.0


def fetch_creators(
    client: PgyClient,
    creator_ids: list[str],
    *,
    query: NotesQuery | None = None,
    on_scan: Callable[[Scan], None] | None = None,
    progress: Callable[[int, int, FetchOutcome], None] | None = None,
    windows: Mapping[str, ScanWindow] | None = None,
    estimates: Mapping[str, int | None] | None = None,
) -> FetchOutcome:
    """Scan each creator (window-bounded where ``windows`` says); hand every completed scan to
    ``on_scan`` (the caller spools it, so pages paid for survive a failed write); collect failures by
    creator. ``estimates`` are the expected calls per creator (absent or None: unknown), for the hooks."""
    query = query or NotesQuery()
    outcome = FetchOutcome()
    started = time.monotonic()
    windows = windows or {}
    hooks = client.hooks

    def one(creator_id: str) -> Scan | None:
        if hooks is not None and not hooks.before_creator(creator_id, (estimates or {}).get(creator_id)):
            return None
        try:
            window = windows.get(creator_id)
            scan = client.scan_notes(creator_id, query, window)
        finally:
            if hooks is not None:
                hooks.after_creator(creator_id)
        mode = "window" if window is not None else "full"
        since = window.since if window is not None else None
        scan.pages = [replace(p, scan=mode, scan_window_from=since) for p in scan.pages]
        if on_scan is not None:
            on_scan(scan)
        return scan

    workers = max(1, min(client.pacer.max_concurrency, len(creator_ids)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgy-fetch") as pool:
        futures = {pool.submit(one, c): c for c in creator_ids}
        for done, future in enumerate(as_completed(futures), start=1):
            creator_id = futures[future]
            try:
                scan = future.result()
                if scan is None:
                    outcome.deferred.append(creator_id)
                else:
                    outcome.scans[creator_id] = scan
            except PgyError as exc:
                outcome.failures[creator_id] = exc
            if progress is not None:
                progress(done, len(creator_ids), outcome)
    order = {c: i for i, c in enumerate(creator_ids)}
    outcome.deferred.sort(key=order.__getitem__)
    outcome.seconds = time.monotonic() - started
    return outcome
