"""Reliability, scenario 3: odd data inside successful responses.

Nulls in every nullable field, missing fields, unknown fields, numbers sent as strings, negative and
huge counts, empty and 10,000-character titles, emoji, quotes, backslashes, newlines, NUL, text that
looks like SQL, items that are not objects or have no id. Promise: ``raw.note_pages`` gives back each
body as the same JSON, every key and value as served (storage per note-day keeps an item's counts apart
from its text, so the four counts come last in each item and the spacing is DuckDB's); ``analytics.notes`` types each value or sets it NULL and names it in
``quality_issues``; items that cannot be notes are in ``analytics.note_rejects`` with a reason.
Nothing is dropped or altered silently.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from datetime import time as dtime

import pytest

from pgy_pipeline import simulator as simulator_module
from pgy_pipeline.orchestration.partitions import SHANGHAI, today_shanghai
from pgy_pipeline.simulator import MESSAGES
from pgy_pipeline_tests.conftest import creator_ids, fast_api, run_pipeline, step_failure_messages
from pgy_pipeline_tests.reliability_support import counts, query, record, spooled

TODAY = today_shanghai()
COUNTS = ["readNum", "likeNum", "collectNum", "thirdReadUserNum"]
BIGINT_MAX = 2**63 - 1


@pytest.fixture(autouse=True)
def frozen_clock(simulator):
    moment = datetime.combine(TODAY, dtime(10), tzinfo=SHANGHAI)
    simulator.clock = lambda: moment


def note(n: int, **fields) -> dict:
    base = {
        "noteId": f"{0x6A000000 + n:08x}{n:016x}",
        "title": f"普通笔记 {n}",
        "date": "2026-03-01",
        "isVideo": False,
        "isAdvertise": False,
        "brandName": None,
        "readNum": 1000 + n,
        "likeNum": 10 + n,
        "collectNum": n,
        "thirdReadUserNum": 0,
        "imgUrl": f"http://ci.xiaohongshu.com/{n}.jpg",
    }
    base.update(fields)
    return base


LONG_TITLE = ('长标题🎉 with ASCII, "quotes" and \\ backslash\n' * 300)[:10_000]
ODD_NOTES = [
    {
        "noteId": note(1)["noteId"],
        **{k: None for k in note(1) if k != "noteId"},
    },  # null in every nullable field
    {"noteId": note(2)["noteId"]},  # every other field missing
    note(3, unknownField={"nested": [1, "二", None]}, 另一个字段=True, readNumV2=5),  # unknown fields
    note(4, readNum="1234", likeNum="56", collectNum="007", thirdReadUserNum="0"),  # numbers as text
    note(5, readNum="abc", likeNum="1.2万", collectNum="", thirdReadUserNum="NaN"),  # text that is no number
    note(6, readNum=-1, likeNum=-(2**63)),  # negative counts
    note(7, readNum=10**20, likeNum=BIGINT_MAX, collectNum=2**63, thirdReadUserNum=10**40),  # huge counts
    note(8, title=""),
    note(9, title=LONG_TITLE),
    note(10, title="🎉👩‍👩‍👧‍👦🇨🇳 emoji ❤️ 表情"),
    note(11, title="He said \"hi\" & 'bye' ‘curly’ “双引号” `tick`"),
    note(12, title="C:\\Users\\note\\n is not a newline \\u0041 \\\\ end\\"),
    note(13, title="line1\nline2\r\nline3\ttab\u2028sep\u0085"),
    note(14, title="'); DROP TABLE analytics.notes; -- \" OR 1=1; SELECT * FROM raw.note_pages"),
    note(15, title="nul\u0000inside"),
    note(16, isVideo="yes", isAdvertise=1, brandName=123, imgUrl=["a", "b"]),
    note(17, date="2026-02-30"),  # not a date
    note(18, date="yesterday", title=42),
    note(19, readNum=3.0),  # an integral number written as a float
]
REJECTS = [
    ({"title": "no id at all"}, "noteId missing"),
    ({"noteId": "", "title": "empty id"}, "noteId missing"),
    ({"noteId": None, "title": "null id"}, "noteId missing"),
    ("just a string", "not a JSON object"),
    (42, "not a JSON object"),
    (None, ""),  # a JSON null item: rejected, with whichever of the two reasons
    ([1, 2], "not a JSON object"),
    (note(3, title="the same noteId again"), "repeat of noteId"),
]


def expected_count(item: dict, field: str) -> tuple[int | None, tuple[str, ...] | str | None]:
    """What analytics.notes must hold for a count: (value, words of the quality issue, or None)."""
    if field not in item:
        return None, f"{field} missing"
    v = item[field]
    if v is None:
        return None, None
    if isinstance(v, str):
        if re.fullmatch(r"[0-9]+", v):
            return int(v), f"{field} was sent as text"
        return None, f"{field} is not a whole number"
    if isinstance(v, float) and v != int(v):
        return None, f"{field} is not a whole number"
    v = int(v)
    if v < 0:
        return None, f"{field} is negative"
    if v > 2**127 - 1:  # beyond DuckDB's HUGEINT: flagged either way
        return None, (f"{field} is out of range", f"{field} is not a whole number")
    if v > BIGINT_MAX:
        return None, f"{field} is out of range"
    return v, None


def expected_body(items: list, total: int) -> str:
    return simulator_module._json_bytes(
        {"code": 0, "message": MESSAGES[0], "data": {"list": items, "total": total}}
    ).decode("utf-8")


def stored_notes(db_path: str, creator: str) -> dict[str, dict]:
    cols = [
        "note_id",
        "title",
        "published_date",
        "is_video",
        "is_advertise",
        "brand_name",
        "read_num",
        "like_num",
        "collect_num",
        "interaction_num",
        "third_read_user_num",
        "img_url",
        "quality_issues",
    ]
    rows = query(db_path, f"SELECT {', '.join(cols)} FROM analytics.notes WHERE creator_id = ?", [creator])
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def test_odd_values_are_stored_as_served_in_raw_and_typed_or_flagged_in_notes(
    instance, simulator, duckdb_resource, db_path
):
    odd, clean = creator_ids(2, prefix="odd")
    items = ODD_NOTES + [item for item, _ in REJECTS]
    simulator.set_notes(odd, items)
    simulator.set_note_count(clean, 12)
    instance.add_dynamic_partitions("creators", [odd, clean])
    result = run_pipeline(instance, fast_api(simulator), duckdb_resource, [odd, clean])
    assert result.success, step_failure_messages(result)

    # raw: every body the same JSON as served, unknown fields, odd values and the order of items included
    size = simulator.page_size
    pages = query(
        db_path,
        "SELECT page_number, body::VARCHAR, item_count, total FROM raw.note_pages "
        "WHERE creator_id = ? ORDER BY page_number",
        [odd],
    )
    served = [items[i : i + size] for i in range(0, len(items), size)] + [[]]  # then the empty page
    assert len(pages) == len(served)
    for (page, body, item_count, total), chunk in zip(pages, served, strict=True):
        assert json.loads(body) == json.loads(expected_body(chunk, len(items))), page
        assert item_count == len(chunk) and total == len(items)
    raw_items = [it for _, body, _, _ in pages for it in json.loads(body)["data"]["list"]]
    assert raw_items == items

    # notes: each item exactly once, in notes or in rejects
    notes = stored_notes(db_path, odd)
    rejects = query(
        db_path,
        "SELECT list_position, reason, item::VARCHAR FROM analytics.note_rejects "
        "WHERE creator_id = ? ORDER BY list_position",
        [odd],
    )
    assert len(notes) + len(rejects) == len(items)
    assert [r[0] for r in rejects] == list(range(len(ODD_NOTES) + 1, len(items) + 1))
    for (_, reason, item_text), (item, why) in zip(rejects, REJECTS, strict=True):
        assert why in reason, (item, reason)
        assert (json.loads(item_text) if item_text is not None else None) == item  # the item verbatim

    flagged = 0
    for item in ODD_NOTES:
        row = notes[item["noteId"]]
        issues = row["quality_issues"]
        for field, column in zip(
            COUNTS, ["read_num", "like_num", "collect_num", "third_read_user_num"], strict=True
        ):
            value, issue = expected_count(item, field)
            assert row[column] == value, (item["noteId"], field, item.get(field), row[column])
            if issue:
                wanted = (issue,) if isinstance(issue, str) else issue
                assert any(w in i for w in wanted for i in issues), (item["noteId"], field, issue, issues)
            else:
                assert not any(i.startswith(field + " ") for i in issues), (item["noteId"], field, issues)
        if "title" not in item:
            assert row["title"] is None and "title missing" in issues
        elif isinstance(item["title"], str) or item["title"] is None:
            assert row["title"] == item["title"]  # emoji, quotes, backslashes, newlines, NUL, SQL: as sent
        else:
            assert row["title"] == json.dumps(item["title"])
        raw_date = item.get("date")
        if raw_date is None:
            assert row["published_date"] is None
            assert ("date missing" in issues) == ("date" not in item)
        elif raw_date == "2026-03-01":
            assert row["published_date"] == date(2026, 3, 1)
        else:
            assert row["published_date"] is None and any(
                i.startswith("date could not be read") for i in issues
            )
        flagged += bool(issues)
    null_row = notes[ODD_NOTES[0]["noteId"]]
    assert null_row["quality_issues"] == []  # nulls stay nulls, and are not issues
    assert all(null_row[c] is None for c in null_row if c not in ("note_id", "quality_issues"))
    assert len(notes[ODD_NOTES[8]["noteId"]]["title"]) == 10_000

    # the odd creator does not disturb the other one in the same run
    assert counts(db_path, "analytics.notes")[clean] == 12
    assert not spooled(db_path)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["note_ids_unique_and_present"] and checks["metric_rates_within_bounds"]
    record(
        "3-odd-data",
        items=len(items),
        pages=len(pages),
        raw_bodies_verbatim=len(pages),
        notes=len(notes),
        notes_with_quality_issues=flagged,
        rejects=len(rejects),
        dropped=len(items) - len(notes) - len(rejects),
        calls=simulator.call_count(odd),
    )


def test_fractional_count_is_not_rounded_silently(instance, simulator, duckdb_resource, db_path):
    (creator,) = creator_ids(1, prefix="fraction")
    simulator.set_notes(creator, [note(1, readNum=12.5, likeNum=0.4)])
    instance.add_dynamic_partitions("creators", [creator])
    assert run_pipeline(instance, fast_api(simulator), duckdb_resource, [creator]).success
    row = next(iter(stored_notes(db_path, creator).values()))
    record("3-fractional", read_num=row["read_num"], like_num=row["like_num"], issues=row["quality_issues"])
    for column, field in [("read_num", "readNum"), ("like_num", "likeNum")]:
        assert row[column] is None and any(i.startswith(field) for i in row["quality_issues"]), row


def test_broken_unicode_in_one_body_does_not_block_the_others(
    instance, simulator, duckdb_resource, db_path, monkeypatch
):
    """A title cut in the middle of an emoji (a lone UTF-16 surrogate, ``\\ud83d``) is valid for
    Python's JSON parser but not for DuckDB's. One such body must not stop the rest of the run, and the
    creator concerned must fail with a message that names it (or be stored), not poison every rerun."""
    bad, good = creator_ids(2, prefix="surrogate")
    # The simulator writes non-ASCII as UTF-8; escape it instead, as many JSON writers do, so that the
    # lone surrogate travels as the six characters \ud83d.
    monkeypatch.setattr(
        simulator_module.server,
        "_json_bytes",
        lambda obj: json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii"),
    )
    simulator.set_notes(bad, [note(1, title="emoji cut in half \ud83d"), note(2)])
    simulator.set_note_count(good, 12)
    instance.add_dynamic_partitions("creators", [bad, good])
    result = run_pipeline(instance, fast_api(simulator), duckdb_resource, [bad, good])
    message = "\n".join(step_failure_messages(result))
    stored = counts(db_path, "raw.note_pages")
    simulator.reset_stats()
    rerun = run_pipeline(instance, fast_api(simulator), duckdb_resource, [bad, good])
    record(
        "3-surrogate",
        first_run_success=result.success,
        good_creator_raw_pages=stored.get(good, 0),
        message=next(
            (line for line in message.splitlines()[1:] if line.strip() and "Stack Trace" not in line), ""
        )[:160],
        rerun_success=rerun.success,
        rerun_calls=simulator.call_count(),
        spooled_after_rerun=len(spooled(db_path)),
    )
    assert stored.get(good, 0) == 2  # the healthy creator is written
    if bad in stored:  # stored, with only the half emoji replaced by U+FFFD (DuckDB cannot hold it)
        body = query(
            db_path,
            "SELECT body::VARCHAR FROM raw.note_pages WHERE creator_id = ? AND page_number = 1",
            [bad],
        )[0][0]
        title = json.loads(body)["data"]["list"][0]["title"]
        assert title == "emoji cut in half \ufffd"  # the half emoji alone replaced by U+FFFD
        titles = query(db_path, "SELECT title FROM analytics.notes WHERE creator_id = ?", [bad])
        assert ("emoji cut in half \ufffd",) in titles
    else:  # refused: a message that names the creator and the problem, and a rerun that is not stuck
        assert bad in message, message
    assert rerun.success or bad in "\n".join(step_failure_messages(rerun))
    assert counts(db_path, "raw.note_pages").get(good, 0) == 2
