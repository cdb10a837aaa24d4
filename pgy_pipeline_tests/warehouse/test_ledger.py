"""The billing ledger meta.api_calls against what the simulator saw, and its journals in the spool."""

from __future__ import annotations

import json
import os
from collections import Counter

import duckdb

from pgy_pipeline import clock
from pgy_pipeline.api.ledger import ApiCall, code_in_body, is_billed
from pgy_pipeline.warehouse.keys import today_shanghai
from pgy_pipeline.warehouse.ledger import CallJournal, pending_journals, write_pending
from pgy_pipeline.warehouse.schema import ensure_schema
from pgy_pipeline_tests.conftest import TEST_TOKEN, creator_ids, run_pipeline, step_summary

TODAY = today_shanghai()


def ledger(db: str) -> list[tuple]:
    with duckdb.connect(db, read_only=True) as conn:
        return conn.execute(
            "SELECT creator_id, page_number, attempt, http_status, code, billed, run_id, snapshot_date "
            "FROM meta.api_calls ORDER BY called_at"
        ).fetchall()


def test_one_ledger_row_per_call_the_simulator_saw_with_the_vendors_billing(
    instance, simulator, api, duckdb_resource, db_path
):
    ok, missing = creator_ids(2, prefix="ledger")
    instance.add_dynamic_partitions("creators", [ok, missing])
    simulator.set_note_count(ok, 20)  # 3 pages
    for kind, params in [
        ("code", {"code": 301}),
        ("code", {"code": 302}),
        ("truncated", {}),  # billed: the service decided code 0 before the body was cut
        ("drop", {}),  # no HTTP answer at all
    ]:
        simulator.add_fault(kind, user_id=ok, page=2, **params)
    simulator.add_fault("code", user_id=missing, code=201)  # billed, and the creator fails
    result = run_pipeline(instance, api, duckdb_resource, [ok, missing])
    assert not result.success  # the 201 creator failed; its call is in the ledger all the same

    rows = ledger(db_path)
    seen = simulator.calls
    assert len(rows) == len(seen) == 3 + 4 + 1
    key = lambda c, p, status, code, billed: (c, p, status, code, billed)  # noqa: E731
    assert Counter(key(*r[:2], *r[3:6]) for r in rows) == Counter(
        key(s.user_id, s.page, s.http_status, s.code, s.billed) for s in seen
    )
    assert sum(r[5] for r in rows) == sum(s.billed for s in seen) == 3 + 1 + 1
    # page 2 of `ok` took five attempts, numbered 1..5
    assert [r[2] for r in rows if r[0] == ok and r[1] == 2] == [1, 2, 3, 4, 5]
    assert any(r[3] is None for r in rows)  # the dropped connection: no HTTP status
    assert {r[6] for r in rows} == {result.run_id} and {r[7] for r in rows} == {TODAY}

    with duckdb.connect(db_path, read_only=True) as conn:
        daily = conn.execute(
            "SELECT creator_id, calls, billed_calls, rate_limited_calls FROM meta.api_calls_daily ORDER BY 1"
        ).fetchall()
        text = conn.execute("SELECT string_agg(t::VARCHAR, '') FROM meta.api_calls AS t").fetchall()[0][0]
        snap = conn.execute("SELECT billed_calls, calls FROM analytics.creator_snapshots").fetchall()
    assert sorted(daily) == sorted([(ok, 7, 4, 1), (missing, 1, 1, 0)])
    assert TEST_TOKEN not in text
    assert snap == []  # the step failed: notes and snapshots wait for the follow-up rebuild
    raw_mat = next(
        e for e in result.all_events if e.is_step_failure and e.step_key == "raw__note_pages"
    ).step_failure_data.user_failure_data
    assert raw_mat.metadata["run_total/billed_calls"].value == 5
    assert raw_mat.metadata["run_total/api_calls"].value == 8


def test_snapshot_billed_calls_come_from_the_ledger(instance, simulator, api, duckdb_resource, db_path):
    [creator] = creator_ids(1, prefix="billedsnap")
    instance.add_dynamic_partitions("creators", [creator])
    simulator.set_note_count(creator, 12)  # 2 pages
    simulator.add_fault("code", user_id=creator, page=1, code=302)
    result = run_pipeline(instance, api, duckdb_resource, [creator])
    assert result.success
    with duckdb.connect(db_path, read_only=True) as conn:
        assert conn.execute(
            "SELECT pages, calls, billed_calls FROM analytics.creator_snapshots"
        ).fetchall() == [(2, 3, 2)]
    mat = result.asset_materializations_for_node("raw__note_pages")[0]
    assert mat.metadata["scan"].value == "full"
    summary = step_summary(result, "raw__note_pages")  # the step's totals, once per step
    assert summary["run_total/billed_calls"].value == 2
    assert summary["run_total/api_calls"].value == 3
    assert "run_total/api_calls" not in mat.metadata


def _journal_line(creator: str, page: int, billed: bool, **extra) -> str:
    call = ApiCall(
        creator_id=creator,
        page_number=page,
        attempt=1,
        called_at=clock.now(),
        latency_ms=12.0,
        http_status=200,
        code=0 if billed else 302,
        outcome="0" if billed else "302",
        bytes=100,
        billed=billed,
    )
    return json.dumps({**call.to_json(), "run_id": "killed-run", "snapshot_date": TODAY.isoformat(), **extra})


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_calls_of_a_killed_run_are_written_by_the_next_run_once(
    instance, simulator, api, duckdb_resource, db_path
):
    [creator] = creator_ids(1, prefix="killed")
    instance.add_dynamic_partitions("creators", [creator])
    simulator.set_note_count(creator, 5)
    folder = duckdb_resource.spool_path / "calls"
    folder.mkdir(parents=True)
    # A run killed mid-fetch: its journal is still "open", its process gone, its last line cut short.
    killed = folder / f"killed-run.{_dead_pid()}.1.open.jsonl"
    killed.write_text(
        _journal_line(creator, 1, True) + "\n" + _journal_line(creator, 2, False) + "\n" + '{"call_id": "cut',
        encoding="utf-8",
    )
    # A live run's journal (this process) is left alone.
    live = CallJournal(duckdb_resource.spool_path, "live-run", TODAY)
    live.append(ApiCall.from_json(json.loads(_journal_line(creator, 9, True))))
    assert pending_journals(duckdb_resource.spool_path) == [killed]

    assert run_pipeline(instance, api, duckdb_resource, [creator]).success
    rows = ledger(db_path)
    assert [r[6] for r in rows].count("killed-run") == 2
    assert len(rows) == 2 + simulator.call_count()
    assert not killed.exists() and live.path.exists()

    # A journal already committed (a crash between commit and delete) adds nothing the second time.
    again = folder / "again.jsonl"
    with duckdb.connect(db_path, read_only=True) as conn:
        first_id = conn.execute("SELECT call_id FROM meta.api_calls LIMIT 1").fetchall()[0][0]
    again.write_text(_journal_line(creator, 1, True, call_id=first_id) + "\n", encoding="utf-8")
    with duckdb.connect(db_path) as conn:
        ensure_schema(conn)
        assert write_pending(conn, duckdb_resource.spool_path) == 0
    assert len(ledger(db_path)) == len(rows) and not again.exists()
    live.close()


def test_billing_rule_and_code_of_a_cut_body():
    assert [is_billed(c) for c in (0, 201, 301, 302, 303, None)] == [True, True, False, False, False, False]
    assert code_in_body(b'{"code":0,"message":"success","data":{"li') == 0
    assert code_in_body(b'{"code": 201, "data": null}') == 201
    assert code_in_body(b"<html>502</html>") is None
