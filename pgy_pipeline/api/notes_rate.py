"""Pugongying's own note figures: "Note Performance Metrics" (``dataV3/notesRate/v1``), one object per query.

The notes list carries reads, likes and collects but no comments, shares or impressions, so our
interaction figures cannot equal Pugongying's. This endpoint serves Pugongying's figures for one
creator, one business (daily or cooperation notes), one note type and one window: counts, medians,
rates as percent strings (``"3.4"``), and the share of peers each median beats. Its contract is the
vendor's OpenAPI document and SDK (``XiaohongshuPgyResource.api_solar_kol_data_v3_notes_rate_v1``):
every parameter but ``userId`` is optional, with the defaults below. Recorded answers: when
``noteNumber`` is 0 the medians are 0 (a sentinel, not a figure) while the beyond rates stay filled.

It has no pages: :func:`fetch_note_rate` makes one call (retried by the transport) and returns the
answer verbatim with its query; :mod:`pgy_pipeline.warehouse` types it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pgy_pipeline import clock
from pgy_pipeline.api.endpoint import Endpoint, Where, check_enum_fields, validate_creator_id
from pgy_pipeline.api.transport import Transport
from pgy_pipeline.errors import PgyError, UnexpectedResponseError

NOTES_RATE = Endpoint(
    name="notes_rate",
    path="/api/xiaohongshu-pgy/api/solar/kol/dataV3/notesRate/v1",
    summary="Note Performance Metrics (Pugongying's own figures)",
)


class Business(StrEnum):
    DAILY_NOTE = "DAILY_NOTE"  # 日常笔记: our segment 'organic'
    COOPERATE_NOTE = "COOPERATE_NOTE"  # 合作笔记: our segment 'cooperation'


class RateNoteType(StrEnum):
    PHOTO_TEXT_AND_VIDEO = "PHOTO_TEXT_AND_VIDEO"
    PHOTO_TEXT = "PHOTO_TEXT"
    VIDEO = "VIDEO"


class DateType(StrEnum):
    DAY_30 = "DAY_30"
    DAY_90 = "DAY_90"


class RateAdvertiseSwitch(StrEnum):
    ALL = "ALL"
    ORGANIC_ONLY = "ORGANIC_ONLY"


@dataclass(frozen=True)
class NotesRateQuery:
    """One query of the endpoint, with its documented defaults; values are checked before any call."""

    business: Business | str = Business.DAILY_NOTE
    note_type: RateNoteType | str = RateNoteType.PHOTO_TEXT_AND_VIDEO
    date_type: DateType | str = DateType.DAY_30
    advertise_switch: RateAdvertiseSwitch | str = RateAdvertiseSwitch.ALL

    def __post_init__(self) -> None:
        check_enum_fields(
            self,
            {
                "business": (Business, "business"),
                "note_type": (RateNoteType, "noteType"),
                "date_type": (DateType, "dateType"),
                "advertise_switch": (RateAdvertiseSwitch, "advertiseSwitch"),
            },
        )

    def params(self, creator_id: str) -> dict[str, str]:
        """The query parameters of the request, without the token."""
        return {
            "userId": creator_id,
            "business": str(self.business),
            "noteType": str(self.note_type),
            "dateType": str(self.date_type),
            "advertiseSwitch": str(self.advertise_switch),
        }


#: What a refresh asks for, in this order: 90 days before 30 (a business with no note in 90 days has
#: none in 30 either, so its 30-day call is skipped), daily notes first (a creator with nothing there
#: and no notes in the list is off Pugongying: one call ends it).
REFRESH_QUERIES: tuple[NotesRateQuery, ...] = (
    NotesRateQuery(Business.DAILY_NOTE, date_type=DateType.DAY_90),
    NotesRateQuery(Business.COOPERATE_NOTE, date_type=DateType.DAY_90),
    NotesRateQuery(Business.DAILY_NOTE, date_type=DateType.DAY_30),
    NotesRateQuery(Business.COOPERATE_NOTE, date_type=DateType.DAY_30),
)


@dataclass(frozen=True)
class NoteRateAnswer:
    """One answer, as received: the query, when it came, the attempts it took and the body verbatim."""

    creator_id: str
    query: NotesRateQuery
    fetched_at: datetime  # UTC
    attempts: int
    note_number: int | None  # data.noteNumber, read for the refresh's skip rule
    body_text: str


def fetch_note_rate(
    transport: Transport, creator_id: str, query: NotesRateQuery | None = None
) -> NoteRateAnswer:
    """Ask for one creator's figures; the answer's ``data`` must be an object."""
    validate_creator_id(creator_id)
    query = query or NotesRateQuery()
    where: Where = {"creator_id": creator_id, "page": 1}
    answer = transport.call(NOTES_RATE, query.params(creator_id), where)
    data = answer.body.get("data")
    if not isinstance(data, dict):
        raise UnexpectedResponseError(
            "code 0 but 'data' is not an object: the Note Performance endpoint's format may have changed",
            code=0,
            creator_id=creator_id,
        )
    number = data.get("noteNumber")
    return NoteRateAnswer(
        creator_id=creator_id,
        query=query,
        fetched_at=clock.now(),
        attempts=answer.attempts,
        note_number=number if isinstance(number, int) and not isinstance(number, bool) else None,
        body_text=answer.text,
    )


def refresh_note_rates(transport: Transport, creator_id: str, listed_notes: int) -> list[NoteRateAnswer]:
    """The answers of one creator's refresh: at most 4 calls, 1 for a creator off Pugongying.

    ``listed_notes`` is how many notes the notes list holds for the creator on the same day.
    """
    answers: list[NoteRateAnswer] = []
    empty_over_90_days: set[str] = set()  # businesses whose 30-day call is skipped
    for query in REFRESH_QUERIES:
        if query.date_type == DateType.DAY_30 and str(query.business) in empty_over_90_days:
            continue
        answer = fetch_note_rate(transport, creator_id, query)
        answers.append(answer)
        if answer.note_number == 0 and query.date_type == DateType.DAY_90:
            empty_over_90_days.add(str(query.business))
            if listed_notes == 0 and len(answers) == 1:
                break  # nothing listed and nothing daily on Pugongying: the creator is off it
    return answers


@dataclass
class RefreshOutcome:
    """What refreshing many creators gave: answers by creator, failures, and creators the budget deferred."""

    answers: dict[str, list[NoteRateAnswer]] = field(default_factory=dict)
    failures: dict[str, PgyError] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)


def refresh_creators(transport: Transport, listed: dict[str, int]) -> RefreshOutcome:
    """Refresh every creator of ``listed`` (creator -> notes listed today), a few at once.

    The transport's hooks may decline a creator before its first call (the daily budget: at most 4
    calls each); a creator that fails keeps none of its answers, so a partition is whole or absent.
    After an account error the transport's circuit breaker refuses every later call, so the
    creators not yet started fail at once, without reaching the service.
    """
    outcome = RefreshOutcome()
    hooks = transport.hooks

    def one(creator_id: str) -> None:
        if hooks is not None and not hooks.before_creator(creator_id, len(REFRESH_QUERIES)):
            outcome.deferred.append(creator_id)
            return
        try:
            outcome.answers[creator_id] = refresh_note_rates(transport, creator_id, listed[creator_id])
        except PgyError as error:
            outcome.failures[creator_id] = error
        finally:
            if hooks is not None:
                hooks.after_creator(creator_id)

    with ThreadPoolExecutor(max_workers=max(1, transport.pacer.max_concurrency)) as pool:
        list(pool.map(one, sorted(listed)))
    outcome.deferred.sort()
    return outcome
