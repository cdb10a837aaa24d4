"""Fetch many creators' scans concurrently, handing each one over as soon as it is complete.

Plain Python (no Dagster), so the asset stays a thin layer and benchmarks can call it directly.
Creators are scanned in parallel up to the client's concurrency limit; the client's pacer keeps the
request rate. One creator's failure does not stop the others, except an account-level failure,
after which the client's circuit breaker refuses every remaining call without reaching the service.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

from pgy_pipeline.api.client import NotesQuery, PgyClient, Scan
from pgy_pipeline.errors import PgyError


@dataclass
class FetchOutcome:
    scans: dict[str, Scan] = field(default_factory=dict)
    failures: dict[str, PgyError] = field(default_factory=dict)
    seconds: float = 0.0


def fetch_creators(
    client: PgyClient,
    creator_ids: list[str],
    *,
    query: NotesQuery | None = None,
    on_scan: Callable[[Scan], None] | None = None,
    progress: Callable[[int, int, FetchOutcome], None] | None = None,
) -> FetchOutcome:
    """Scan each creator; hand every completed scan to ``on_scan`` (the caller spools it, so pages paid
    for survive a failed write); collect failures by creator."""
    query = query or NotesQuery()
    outcome = FetchOutcome()
    started = time.monotonic()

    def one(creator_id: str) -> Scan:
        scan = client.scan_notes(creator_id, query)
        if on_scan is not None:
            on_scan(scan)
        return scan

    workers = max(1, min(client.pacer.max_concurrency, len(creator_ids)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgy-fetch") as pool:
        futures = {pool.submit(one, c): c for c in creator_ids}
        for done, future in enumerate(as_completed(futures), start=1):
            creator_id = futures[future]
            try:
                outcome.scans[creator_id] = future.result()
            except PgyError as exc:
                outcome.failures[creator_id] = exc
            if progress is not None:
                progress(done, len(creator_ids), outcome)
    outcome.seconds = time.monotonic() - started
    return outcome
