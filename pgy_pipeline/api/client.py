"""The Pugongying "User Published Notes (V1)" endpoint, and :class:`PgyClient`, the client of every endpoint.

It knows nothing of Dagster: :mod:`pgy_pipeline.orchestration.resources` builds it from configuration.
The shared transport (:mod:`.transport`: retries by the code table, pacing, breaker, billing hooks,
the whole-body deadline, redaction) sends every request; this module declares the notes endpoint
(:data:`NOTES`) and reads it:

* **Input first.** Creator ids and query values are checked before any call
  (:class:`~pgy_pipeline.errors.InvalidInputError`).
* **Fewest calls.** :meth:`PgyClient.iter_pages` is the endpoint's paginator: it pages until the
  notes collected reach ``total`` or a page comes back empty, under a hard page cap, and never
  assumes a page size. Notes are deduplicated by ``noteId``, and list drift while paging (``total``
  changing, a note seen twice) is reported. A :class:`ScanWindow` bounds a newest-first scan to the
  notes the metrics windows need.

Pugongying's own note figures: :mod:`.notes_rate`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pgy_pipeline import clock
from pgy_pipeline.api.endpoint import Endpoint, Where, check_enum_fields, shown, validate_creator_id
from pgy_pipeline.api.transport import DEFAULT_BASE_URL, Transport
from pgy_pipeline.errors import InvalidParameterError, UnexpectedResponseError

__all__ = [
    "DEFAULT_BASE_URL",
    "NOTES",
    "NotesQuery",
    "Page",
    "PgyClient",
    "Scan",
    "ScanWindow",
    "validate_creator_id",
]

log = logging.getLogger(__name__)

NOTES_PATH = "/api/xiaohongshu-pgy/api/solar/kol/dataV2/notesDetail/v1"

#: The notes list: pages of a creator's published notes with their counters.
NOTES = Endpoint(name="notes", path=NOTES_PATH, summary="User Published Notes (V1)")


class AdvertiseSwitch(StrEnum):
    ALL = "ALL"
    ORGANIC_ONLY = "ORGANIC_ONLY"


class OrderType(StrEnum):
    LATEST = "LATEST"
    MOST_READ = "MOST_READ"
    MOST_INTERACT = "MOST_INTERACT"


class NoteType(StrEnum):
    ALL = "ALL"
    COOPERATION = "COOPERATION"
    PHOTO_TEXT = "PHOTO_TEXT"
    VIDEO = "VIDEO"


class IsThirdPlatform(StrEnum):
    NO = "NO"
    YES = "YES"


@dataclass(frozen=True)
class NotesQuery:
    """The endpoint's optional parameters, with its documented defaults."""

    advertise_switch: AdvertiseSwitch | str = AdvertiseSwitch.ALL
    order_type: OrderType | str = OrderType.LATEST
    note_type: NoteType | str = NoteType.ALL
    is_third_platform: IsThirdPlatform | str = IsThirdPlatform.NO

    def __post_init__(self) -> None:
        check_enum_fields(
            self,
            {
                "advertise_switch": (AdvertiseSwitch, "advertiseSwitch"),
                "order_type": (OrderType, "orderType"),
                "note_type": (NoteType, "noteType"),
                "is_third_platform": (IsThirdPlatform, "isThirdPlatform"),
            },
        )

    @property
    def newest_first(self) -> bool:
        """LATEST order with the default filters: the only query a window may bound (see ScanWindow)."""
        return self == NotesQuery()

    def params(self, creator_id: str, page_number: int) -> dict[str, str]:
        """The query parameters of one request, without the token."""
        return {
            "userId": creator_id,
            "advertiseSwitch": str(self.advertise_switch),
            "orderType": str(self.order_type),
            "noteType": str(self.note_type),
            "isThirdPlatform": str(self.is_third_platform),
            "pageNumber": str(page_number),
        }


@dataclass(frozen=True)
class Page:
    """One successful response page, as received."""

    creator_id: str
    page_number: int
    params: dict[str, str]  # the request's query, never the token
    fetched_at: datetime  # UTC
    attempts: int
    code: int
    total: int | None
    items: list[Any]
    body_text: str  # the response body verbatim
    scan: str = "full"  # how the creator's scan was asked for: 'full' or 'window'
    scan_window_from: date | None = None  # a window scan's ScanWindow.since


#: Days beyond the deepest metrics window that a window scan still reads. The metrics use notes published
#: within 90 days of the snapshot (whether the window ends on the snapshot day or the day before), so
#: the scan must see every note from ``snapshot - 90`` on. Stopping only after a whole page older than
#: ``snapshot - 97`` keeps that true even when the list's order is off by up to a week (a note listed
#: after one up to 7 days older than itself); larger disorder is reported, see Scan.order_breaks.
WINDOW_MARGIN_DAYS = 7
#: The deepest window the metrics read, in days before the snapshot.
DEEPEST_WINDOW_DAYS = 90


@dataclass(frozen=True)
class ScanWindow:
    """Bound a LATEST-order scan: notes published before ``since`` are not needed.

    Paging stops after the first page whose every item has a readable date before
    ``since - margin_days``, in newest-first order and no newer than the item before the page, or at
    ``total``, whichever comes first. A page with a missing or unreadable date, or with dates out of
    order (a pinned note, say), never ends the scan.
    """

    since: date
    margin_days: int = WINDOW_MARGIN_DAYS

    @classmethod
    def for_snapshot(cls, snapshot_date: date, days: int = DEEPEST_WINDOW_DAYS) -> ScanWindow:
        return cls(since=snapshot_date - timedelta(days=days))

    @property
    def cutoff(self) -> date:
        """A page entirely older than this day ends the scan."""
        return self.since - timedelta(days=self.margin_days)


def _item_date(item: object) -> date | None:
    if not isinstance(item, dict):
        return None
    try:
        return date.fromisoformat(str(item.get("date"))[:10])
    except ValueError:
        return None


@dataclass
class Scan:
    """Every page of one creator's notes for one query, with what happened while paging."""

    creator_id: str
    query: NotesQuery
    pages: list[Page] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)  # deduplicated by noteId, in list order
    totals_seen: list[int] = field(default_factory=list)
    duplicate_note_ids: list[str] = field(default_factory=list)
    items_without_id: int = 0
    stop_reason: str = ""
    window: ScanWindow | None = None  # set for a window-bounded scan
    # places where a note is listed after one older than itself by more than the window margin
    order_breaks: list[str] = field(default_factory=list)

    @property
    def total(self) -> int | None:
        return self.totals_seen[-1] if self.totals_seen else None

    @property
    def calls(self) -> int:
        return sum(p.attempts for p in self.pages)

    @property
    def drift(self) -> list[str]:
        """Plain-language notes on list movement while paging; empty when the scan was clean."""
        found = []
        if len(set(self.totals_seen)) > 1:
            found.append(f"total changed while paging: {' -> '.join(map(str, _runs(self.totals_seen)))}")
        if self.duplicate_note_ids:
            found.append(
                f"{len(self.duplicate_note_ids)} note(s) appeared on more than one page "
                f"(kept once): {', '.join(self.duplicate_note_ids[:5])}"
            )
        if (
            self.total is not None
            and self.stop_reason not in ("page_cap", "window")
            and len(self.notes) != self.total
        ):
            found.append(
                f"collected {len(self.notes)} distinct notes but the service reports total {self.total}"
            )
        if self.stop_reason == "page_cap":
            found.append(
                f"stopped at the page cap ({len(self.pages)} pages) before reaching total {self.total}"
            )
        return found


def _runs(values: list[int]) -> list[int]:
    out: list[int] = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


# --------------------------------------------------------------------------------------------
# The client
# --------------------------------------------------------------------------------------------


class PgyClient(Transport):
    """Calls any endpoint through the shared transport; reads the notes list page by page."""

    def fetch_page(self, creator_id: str, page_number: int = 1, query: NotesQuery | None = None) -> Page:
        """Fetch one page of the notes list, retrying transient failures; raise a typed error otherwise."""
        validate_creator_id(creator_id)
        if isinstance(page_number, bool) or not isinstance(page_number, int) or page_number < 1:
            raise InvalidParameterError(f"invalid pageNumber {shown(page_number)}: must be an integer >= 1")
        query = query or NotesQuery()
        params = query.params(creator_id, page_number)
        where: Where = {"creator_id": creator_id, "page": page_number}
        answer = self.call(NOTES, params, where)
        data = answer.body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("list", []), list):
            raise UnexpectedResponseError(
                "code 0 but 'data.list' is missing or not a list: the endpoint's format may have changed",
                code=0,
                creator_id=creator_id,
                page=page_number,
            )
        return Page(
            creator_id=creator_id,
            page_number=page_number,
            params=params,
            fetched_at=clock.now(),
            attempts=answer.attempts,
            code=0,
            total=_whole(data.get("total")),
            items=data.get("list") or [],
            body_text=answer.text,
        )

    # -- every page --------------------------------------------------------------------------

    def iter_pages(
        self,
        creator_id: str,
        query: NotesQuery | None = None,
        scan: Scan | None = None,
        window: ScanWindow | None = None,
    ) -> Iterator[Page]:
        """Yield pages from 1 until the distinct notes reach ``total``, a page is empty, or the cap;
        with a ``window``, also after the first page wholly past it (see :class:`ScanWindow`).

        Pass a :class:`Scan` to have it filled in as pages arrive.
        """
        validate_creator_id(creator_id)
        query = query or NotesQuery()
        if window is not None and not query.newest_first:
            raise InvalidParameterError(
                "a window-bounded scan needs orderType LATEST and the default filters (the list must come "
                "newest first); scan this query in full. No API call was made."
            )
        scan = scan if scan is not None else Scan(creator_id, query)
        scan.window = window
        seen: set[str] = {n["noteId"] for n in scan.notes}
        margin = timedelta(days=window.margin_days if window is not None else WINDOW_MARGIN_DAYS)
        previous: date | None = None  # date of the item listed just before
        for page_number in range(1, self.max_pages + 1):
            page = self.fetch_page(creator_id, page_number, query)
            scan.pages.append(page)
            if page.total is not None:
                scan.totals_seen.append(page.total)
                if page_number == 1 and window is None and self.hooks is not None:
                    # The first page sizes a full scan: the books can now keep the budget exactly.
                    per_page = max(1, len(page.items))
                    self.hooks.expect_calls(creator_id, min(self.max_pages, max(1, -(-page.total // per_page))))
            for item in page.items:
                note_id = item.get("noteId") if isinstance(item, dict) else None
                if not isinstance(note_id, str) or not note_id:
                    scan.items_without_id += 1
                    continue
                if note_id in seen:
                    scan.duplicate_note_ids.append(note_id)
                    continue
                seen.add(note_id)
                scan.notes.append(item)
            dates = [_item_date(item) for item in page.items]
            # Past the window: every date readable, older than the cutoff, and in order from the
            # item before this page on. Out-of-order dates (a pinned note) never end a scan.
            in_order = True
            for position, day in enumerate(dates, start=1):
                if day is not None and previous is not None and day > previous:
                    in_order = False
                    if day - previous > margin:
                        scan.order_breaks.append(
                            f"page {page_number} item {position}: {day} listed after {previous}"
                        )
                previous = day if day is not None else previous
            past_window = (
                window is not None
                and in_order
                and bool(dates)
                and all(d is not None and d < window.cutoff for d in dates)
            )
            yield page
            if not page.items:
                scan.stop_reason = "empty_page"
                return
            # Items without a noteId still occupy places in the list: count them toward total.
            if page.total is not None and len(seen) + scan.items_without_id >= page.total:
                scan.stop_reason = "reached_total"
                return
            if past_window:
                scan.stop_reason = "window"
                return
        scan.stop_reason = "page_cap"
        log.warning(
            "creator %s: stopped at the page cap of %d pages before reaching total %s",
            creator_id,
            self.max_pages,
            scan.total,
        )

    def scan_notes(
        self, creator_id: str, query: NotesQuery | None = None, window: ScanWindow | None = None
    ) -> Scan:
        """Fetch every page of a creator's notes (or those a ``window`` needs); see :meth:`iter_pages`."""
        query = query or NotesQuery()
        scan = Scan(creator_id, query)
        for _ in self.iter_pages(creator_id, query, scan, window):
            pass
        return scan


def _whole(value: object) -> int | None:
    """``data.total`` as an int, None when absent or not a number."""
    if not isinstance(value, int | float | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None
