"""Which scan each creator gets today, decided from its snapshot history (DuckDB, no Dagster).

A window scan (:class:`~pgy_pipeline.api.client.ScanWindow`) reads only the notes the 30d and 90d
metrics need; a full scan reads the whole list. A creator is scanned in full:

* on its first snapshot (no full scan on record);
* when its last full scan (``analytics.creator_snapshots.scan_status`` 'full' or 'empty') is
  ``full_every_days`` days old or more (``PGY_FULL_SCAN_EVERY_DAYS``, default 7);
* when the run asks for it (run config ``scan: full``);
* for any query but LATEST order with the default filters (only a newest-first list can be cut);
* on a refresh of a day whose stored snapshot is anything but a window scan: a refresh never leaves
  a day less complete than it was.

The history is that of the days before ``today``: a refresh replaces today's partition, so today's
own snapshot is never taken for "the last full scan" (it would turn a first snapshot's refresh into a
window scan and throw the day's complete list away). A scan whose list moved while paging
('full_drifted', 'window_drifted') is not a full scan on record, so the next snapshot is full.

The same history orders the work by need (never snapshotted first, then the stalest) and estimates
each creator's calls for the daily budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import duckdb

from pgy_pipeline.api.client import NotesQuery, ScanWindow
from pgy_pipeline.warehouse.storage import partition_keys

# scan_status values (see analytics.creator_snapshots): a full scan on record, and window-bounded scans.
FULL_STATUSES = ("full", "empty")
WINDOW_STATUSES = ("window", "window_drifted")


@dataclass(frozen=True)
class CreatorHistory:
    """What the warehouse knows of a creator's snapshots before ``today``, and of today's own (which a
    refresh replaces)."""

    last_snapshot: date | None = None
    last_full_scan: date | None = None
    last_full_pages: int | None = None
    last_window_pages: int | None = None
    today_status: str | None = None  # scan_status of today's stored snapshot, if any
    today_pages: int | None = None


@dataclass
class ScanPlan:
    """The scan of each creator to fetch, in the order to fetch them."""

    order: list[str]
    windows: dict[str, ScanWindow] = field(default_factory=dict)  # creators absent: full scan
    estimates: dict[str, int | None] = field(default_factory=dict)  # expected calls; None: unknown
    reasons: dict[str, str] = field(default_factory=dict)  # why each full scan is full

    def counts(self) -> dict[str, int]:
        return {"full": len(self.order) - len(self.windows), "window": len(self.windows)}


_HISTORY_SQL = """
WITH s AS (
    SELECT s.* FROM analytics.creator_snapshots AS s
    WHERE s.creator_id IN (SELECT creator_id FROM _keys) AND s.snapshot_date < ?
),
today AS (
    SELECT t.creator_id, t.scan_status, t.pages FROM analytics.creator_snapshots AS t
    WHERE t.creator_id IN (SELECT creator_id FROM _keys) AND t.snapshot_date = ?
)
SELECT k.creator_id,
       (SELECT max(snapshot_date) FROM s WHERE s.creator_id = k.creator_id),
       (SELECT max(snapshot_date) FROM s WHERE s.creator_id = k.creator_id
            AND s.scan_status IN ('full', 'empty')),
       (SELECT arg_max(pages, snapshot_date) FROM s WHERE s.creator_id = k.creator_id
            AND s.scan_status IN ('full', 'empty')),
       (SELECT arg_max(pages, snapshot_date) FROM s WHERE s.creator_id = k.creator_id
            AND s.scan_status IN ('window', 'window_drifted')),
       t.scan_status,
       t.pages
FROM (SELECT DISTINCT creator_id FROM _keys) AS k
LEFT JOIN today AS t USING (creator_id)
"""


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def scan_history(
    conn: duckdb.DuckDBPyConnection, creator_ids: Iterable[str], today: date
) -> dict[str, CreatorHistory]:
    """Each creator's snapshots before ``today`` and today's own (creators never snapshotted are absent)."""
    ids = sorted(set(creator_ids))
    if not ids:
        return {}
    with partition_keys(conn, [(c, today) for c in ids]):
        rows = conn.execute(_HISTORY_SQL, [today, today]).fetchall()
    return {
        r[0]: CreatorHistory(r[1], r[2], _int(r[3]), _int(r[4]), r[5], _int(r[6]))
        for r in rows
        if r[1] is not None or r[5] is not None
    }


def plan_scans(
    creator_ids: list[str],
    history: dict[str, CreatorHistory],
    today: date,
    *,
    query: NotesQuery,
    full_every_days: int = 7,
    force_full: bool = False,
) -> ScanPlan:
    """Decide full or window per creator, order them by need, and estimate their calls."""
    registered = {c: i for i, c in enumerate(creator_ids)}

    def need(c: str) -> tuple[int, date, int]:
        h = history.get(c)
        if h is None or h.last_snapshot is None:
            return (0, date.min, registered[c])
        return (1, h.last_snapshot, registered[c])

    plan = ScanPlan(order=sorted(creator_ids, key=need))
    for c in plan.order:
        h = history.get(c) or CreatorHistory()
        if force_full:
            reason = "asked for by the run config (scan: full)"
        elif not query.newest_first:
            reason = "the query is not LATEST order with the default filters"
        elif h.today_status is not None and h.today_status not in WINDOW_STATUSES:
            reason = f"refresh of today's {h.today_status} snapshot (never less complete than it was)"
        elif h.last_snapshot is None:
            reason = "first snapshot (no full scan on record)"
        elif h.last_full_scan is None:
            reason = (
                "no full scan on record (earlier scans were window-bounded or their list moved while paging)"
            )
        elif (today - h.last_full_scan).days >= full_every_days:
            reason = f"last full scan {h.last_full_scan.isoformat()} is {full_every_days}+ days old"
        else:
            reason = ""
        if reason:
            plan.reasons[c] = reason
            pages = h.today_pages if h.today_status in FULL_STATUSES else h.last_full_pages
            plan.estimates[c] = pages + 1 if pages else None  # lists grow; None: sized by page 1
        else:
            plan.windows[c] = ScanWindow.for_snapshot(today)
            # lists grow: one page more than last time, so the budget is rarely passed
            plan.estimates[c] = (h.last_window_pages or h.last_full_pages or 0) + 1
    return plan
