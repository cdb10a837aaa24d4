"""The wire protocol's rules (pgy_pipeline.simulator.protocol): billing and page parsing."""

from __future__ import annotations

import pytest

from pgy_pipeline.simulator import BILLED_CODES, VENDOR_CODES, is_billed
from pgy_pipeline.simulator.protocol import error_body, parse_page


def test_only_codes_0_and_201_are_billed() -> None:
    assert BILLED_CODES == {0, 201}
    assert is_billed(0) and is_billed(201)
    assert [c for c in VENDOR_CODES if is_billed(c)] == [201]
    assert not is_billed(None)  # no JSON body: an HTTP error, an HTML page, a dropped connection


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 1), ("", 1), ("1", 1), ("17", 17), ("0", None), ("-1", None), ("1.5", None), ("٣", None)],
)
def test_parse_page(raw: str | None, expected: int | None) -> None:
    page, error = parse_page(raw)
    assert page == expected and (error is None) == (expected is not None)


def test_error_body_uses_the_documented_message_unless_given() -> None:
    assert error_body(302) == {"code": 302, "message": "Rate Limit Exceeded", "data": None}
    assert error_body(302, "slow down") == {"code": 302, "message": "slow down", "data": None}
    assert error_body(404)["message"] == "Error"
