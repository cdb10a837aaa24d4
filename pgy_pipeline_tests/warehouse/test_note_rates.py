"""Pugongying's recorded Note Performance answers typed in a real DuckDB file."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pgy_pipeline.api.notes_rate import Business, DateType, NoteRateAnswer, NotesRateQuery
from pgy_pipeline.warehouse.note_rates import rebuild_note_rates, replace_note_rates
from pgy_pipeline.warehouse.schema import ensure_schema
from pgy_pipeline.warehouse.storage import connect

FIXTURES = Path(__file__).parent.parent / "fixtures"
CREATOR = "5d21ab6b000000001201567d"
DAY = date(2025, 12, 8)


def answer(name: str, business: Business, date_type: DateType) -> NoteRateAnswer:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return NoteRateAnswer(
        CREATOR, NotesRateQuery(business, date_type=date_type), datetime(2025, 12, 8, 10, tzinfo=UTC), 1, None, text
    )


@pytest.fixture
def conn(tmp_path):
    with connect(str(tmp_path / "rates.duckdb")) as c:
        ensure_schema(c)
        replace_note_rates(
            c,
            {
                (CREATOR, DAY): [
                    answer("notes_rate_recorded.json", Business.DAILY_NOTE, DateType.DAY_30),
                    answer("notes_rate_recorded_empty.json", Business.COOPERATE_NOTE, DateType.DAY_30),
                ]
            },
        )
        rebuild_note_rates(c, [(CREATOR, DAY)])
        yield c


def typed(conn, segment: str) -> dict:
    cur = conn.execute(
        "SELECT * FROM analytics.pugongying_note_rates WHERE segment = ? AND \"window\" = '30d'", [segment]
    )
    names = [d[0] for d in cur.description]
    [row] = cur.fetchall()
    return dict(zip(names, row, strict=True))


def test_a_recorded_answer_is_typed_with_percent_strings_as_fractions(conn):
    row = typed(conn, "organic")
    assert (row["note_count"], row["read_median"], row["like_median"], row["collect_median"]) == (3, 1471, 53, 18)
    assert (row["comment_median"], row["share_median"], row["interaction_median"]) == (4, 4, 75)
    assert row["interaction_median"] == row["like_median"] + row["collect_median"] + row["comment_median"]
    assert row["interaction_per_note_median"] == 91
    assert row["interaction_rate"] == pytest.approx(0.034)
    assert row["read_median_beyond"] == pytest.approx(0.958)
    assert row["note_type"] == "PHOTO_TEXT_AND_VIDEO"


def test_zero_sentinel_medians_are_null_and_beyond_rates_stay(conn):
    row = typed(conn, "cooperation")
    assert row["note_count"] == 0
    assert [row[c] for c in ("read_median", "like_median", "collect_median", "interaction_median")] == [None] * 4
    assert row["interaction_rate"] is None
    assert row["read_median_beyond"] == pytest.approx(0.729)


def test_the_typed_rows_rebuild_from_raw_with_zero_calls(conn):
    before = conn.execute("SELECT * FROM analytics.pugongying_note_rates ORDER BY ALL").fetchall()
    conn.execute("DELETE FROM analytics.pugongying_note_rates")
    rebuild_note_rates(conn, [(CREATOR, DAY)])
    assert conn.execute("SELECT * FROM analytics.pugongying_note_rates ORDER BY ALL").fetchall() == before
    [(raw,)] = conn.execute("SELECT count(*) FROM raw.pugongying_note_rates").fetchall()
    assert raw == 2
