"""The spool keeps paid-for pages whole until their DuckDB write commits."""

from __future__ import annotations

from datetime import UTC, date, datetime

from pgy_pipeline.api.client import Page
from pgy_pipeline.warehouse.spool import Spool

DAY = date(2026, 11, 20)
C = "c" * 24


def test_pages_round_trip_exactly_and_discard_removes_them(tmp_path):
    spool = Spool(tmp_path / "spool")
    body = '{"code":0,"data":{"total":1,"list":[{"noteId":"x","title":"标题 😀"}]}}'
    pages = [
        Page(
            C,
            1,
            {"userId": C, "pageNumber": "1"},
            datetime(2026, 11, 20, 1, tzinfo=UTC),
            2,
            0,
            1,
            [{"noteId": "x", "title": "标题 😀"}],
            body,
        )
    ]
    assert spool.load(C, DAY) is None
    spool.save(C, DAY, pages)
    assert spool.load(C, DAY) == pages
    assert [p.name for p in (tmp_path / "spool" / DAY.isoformat()).iterdir()] == [
        f"{C}.json"
    ]  # no temp file left
    spool.discard(C, DAY)
    assert spool.load(C, DAY) is None
    spool.discard(C, DAY)  # discarding twice is fine
