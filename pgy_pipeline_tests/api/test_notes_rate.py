"""The Note Performance endpoint's declaration against the simulator over loopback HTTP."""

from __future__ import annotations

import json

import pytest

from pgy_pipeline.api.client import PgyClient
from pgy_pipeline.api.notes_rate import NOTES_RATE, NotesRateQuery, fetch_note_rate, refresh_note_rates
from pgy_pipeline.errors import InvalidCreatorIdError, InvalidParameterError, InvalidRequestError
from pgy_pipeline_tests.conftest import TEST_TOKEN, creator_ids


@pytest.fixture
def client(simulator):
    with PgyClient(TEST_TOKEN, base_url=simulator.base_url, max_rps=None, backoff_initial_s=0.01) as c:
        yield c


@pytest.mark.parametrize(
    ("query", "named"),
    [
        (dict(business="DAILY"), "business"),
        (dict(note_type="ALL"), "noteType"),
        (dict(date_type="DAY_7"), "dateType"),
        (dict(advertise_switch="NONE"), "advertiseSwitch"),
    ],
)
def test_a_bad_query_value_is_refused_before_any_call(simulator, query, named):
    with pytest.raises(InvalidParameterError, match=named):
        NotesRateQuery(**query)
    assert simulator.call_count() == 0


def test_a_bad_creator_id_is_refused_before_any_call(simulator, client):
    with pytest.raises(InvalidCreatorIdError):
        fetch_note_rate(client, "not-an-id")
    assert simulator.call_count() == 0


def test_one_call_gives_the_figures_verbatim_and_names_its_endpoint_in_the_call_records(simulator, client):
    [creator] = creator_ids(1, prefix="rate")
    simulator.set_note_count(creator, 40)
    answer = fetch_note_rate(client, creator, NotesRateQuery(date_type="DAY_90"))
    body = json.loads(answer.body_text)
    assert body["data"]["noteNumber"] == answer.note_number
    assert answer.attempts == 1 and answer.query.date_type == "DAY_90"
    [call] = simulator.calls
    assert call.endpoint == NOTES_RATE.name and call.params["dateType"] == "DAY_90"
    assert "token" not in call.params


def test_a_refresh_asks_at_most_four_questions_and_one_for_a_creator_off_pugongying(simulator, client):
    on, off = creator_ids(2, prefix="refresh")
    simulator.set_note_count(on, 60)
    simulator.set_note_count(off, 0)
    assert len(refresh_note_rates(client, on, 60)) <= 4
    assert [a.note_number for a in refresh_note_rates(client, off, 0)] == [0]
    assert sum(1 for c in simulator.calls if c.user_id == off) == 1


def test_the_services_400_on_this_endpoint_is_a_request_error(simulator, client):
    [creator] = creator_ids(1, prefix="r400")
    simulator.add_fault("code", user_id=creator, code=400)
    with pytest.raises(InvalidRequestError):
        fetch_note_rate(client, creator)
