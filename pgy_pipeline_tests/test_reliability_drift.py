"""Reliability, scenario 2: the list moves while the pipeline pages through it.

Notes added or removed between two page requests, a note served on two pages, a ``total`` that
disagrees with what arrives. Promise: no duplicate in ``analytics.notes``, every list item received is
either a note or a reject (nothing dropped between raw and notes), and whenever the stored snapshot
differs from the creator's list the run says so twice: ``list_drift`` in the raw asset's metadata and
a failed (warning) ``notes_reconcile_with_total`` check.
"""

from __future__ import annotations

from datetime import datetime
from datetime import time as dtime

import pytest

from pgy_pipeline.orchestration.partitions import SHANGHAI, today_shanghai
from pgy_pipeline_tests.conftest import (
    creator_ids,
    fast_api,
    run_pipeline,
    step_failure_messages,
    step_summary,
)
from pgy_pipeline_tests.reliability_support import query, record

TODAY = today_shanghai()
NOTES = 24  # three full pages of 8


@pytest.fixture(autouse=True)
def frozen_clock(simulator):
    moment = datetime.combine(TODAY, dtime(10), tzinfo=SHANGHAI)
    simulator.clock = lambda: moment


def run_with_drift(instance, simulator, duckdb_resource, prefix, faults):
    """One range run over one creator per fault (plus a clean control); returns what was observed."""
    ids = creator_ids(len(faults) + 1, prefix=prefix)
    for c in ids:
        simulator.set_note_count(c, NOTES)
    instance.add_dynamic_partitions("creators", ids)
    before = {c: {n["noteId"] for n in simulator.notes_for(c)} for c in ids}
    for creator, (_, kind, page, times, params) in zip(ids, faults, strict=False):
        simulator.add_fault(kind, user_id=creator, page=page, times=times, **params)
    result = run_pipeline(instance, fast_api(simulator), duckdb_resource, ids)
    assert result.success, step_failure_messages(result)  # drift is reported, it does not fail the run
    meta = step_summary(result, "raw__note_pages")
    drift = meta["list_drift"].value if "list_drift" in meta else {}
    (check,) = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "notes_reconcile_with_total"
    ]
    mismatched = {m["partition"].split("|")[0]: m for m in check.metadata["mismatches"].value}
    unique = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "note_ids_unique_and_present"
    ]
    assert unique and unique[0].passed
    return ids, before, drift, check, mismatched


def observe(db_path, simulator, creator, before):
    stored = [
        r[0]
        for r in query(
            db_path,
            "SELECT note_id FROM analytics.notes WHERE creator_id = ? AND snapshot_date = ?",
            [creator, TODAY],
        )
    ]
    rejects = query(db_path, "SELECT reason FROM analytics.note_rejects WHERE creator_id = ?", [creator])
    items, total = query(
        db_path,
        "SELECT sum(item_count), arg_max(total, page_number) FROM raw.note_pages WHERE creator_id = ?",
        [creator],
    )[0]
    now = {n["noteId"] for n in simulator.notes_for(creator)}
    return {
        "calls": simulator.call_count(creator),
        "notes": len(stored),
        "distinct": len(set(stored)),
        "rejects": len(rejects),
        "items": int(items),
        "total": total,
        "missing": len(now - set(stored)),  # in the creator's list now, not in the snapshot
        "stale": len(set(stored) - now),  # in the snapshot, no longer in the list
        "before": len(before),
    }


DRIFT = [
    ("3 notes published while paging (before page 2)", "insert_notes", 2, 1, {"n": 3}),
    ("page 2 repeats the last note of page 1", "duplicate_across_pages", 2, 1, {}),
    ("total reported 2 too high on every page", "total_delta", None, None, {"delta": 2}),
    ("total reported 3 too low on every page", "total_delta", None, None, {"delta": -3}),
]


def test_drift_is_reported_and_nothing_is_duplicated_or_dropped(
    instance, simulator, duckdb_resource, db_path
):
    ids, before, drift, check, mismatched = run_with_drift(
        instance, simulator, duckdb_resource, "drift", DRIFT
    )
    assert not check.passed  # the reconciliation check warns
    figures = {}
    for creator, (label, *_rest) in zip(ids, DRIFT, strict=False):
        seen = observe(db_path, simulator, creator, before[creator])
        assert seen["notes"] == seen["distinct"], label  # no duplicates
        assert seen["items"] == seen["notes"] + seen["rejects"], (
            label
        )  # every item received is kept somewhere
        assert creator in drift and drift[creator], label  # list_drift says what happened
        assert creator in mismatched, label  # and the reconciliation check names the partition
        assert mismatched[creator]["notes"] == seen["notes"] and mismatched[creator]["total"] == seen["total"]
        figures[label] = seen
    clean = observe(db_path, simulator, ids[-1], before[ids[-1]])
    assert ids[-1] not in drift and ids[-1] not in mismatched
    assert clean["missing"] == clean["stale"] == clean["rejects"] == 0 and clean["notes"] == NOTES

    inserted, repeated, high, low = (figures[d[0]] for d in DRIFT)
    # notes published at the top while paging shift the list: page 2 repeats 3 notes (rejected as
    # repeats) and the 3 new ones are not in this snapshot; reported as 24 distinct notes vs total 27
    assert inserted["rejects"] == 3 and inserted["missing"] == 3 and inserted["total"] == NOTES + 3
    assert any("total changed while paging" in d for d in drift[ids[0]])
    # a repeated note is kept once; the note it pushed off page 2 is missing and reported
    assert repeated["rejects"] == 1 and repeated["missing"] == 1 and repeated["notes"] == NOTES - 1
    # a total that is too high: paging goes on to an empty page (one extra call), then reports
    assert high["calls"] == 4 and high["notes"] == NOTES and high["missing"] == 0
    # a total that is too low: paging stops at the total... but only on a full page boundary
    assert low["notes"] == NOTES and low["missing"] == 0 and low["calls"] == 3
    record(
        "2-drift",
        **{label: {k: v for k, v in f.items() if k != "before"} for label, f in figures.items()},
        clean_control=clean["notes"],
    )


def test_notes_removed_while_paging_are_flagged_by_the_reconciliation_check(
    instance, simulator, duckdb_resource, db_path
):
    faults = [("2 newest notes deleted while paging (before page 2)", "remove_notes", 2, 1, {"n": 2})]
    ids, before, drift, check, mismatched = run_with_drift(
        instance, simulator, duckdb_resource, "removed", faults
    )
    seen = observe(db_path, simulator, ids[0], before[ids[0]])
    record("2-removed", **seen, list_drift=drift.get(ids[0], []), check_passed=check.passed)
    assert seen["notes"] == seen["distinct"] and seen["items"] == seen["notes"] + seen["rejects"]
    # Deleting the 2 newest notes shifts every later note up by two: the 2 notes that move from
    # page 2 to page 1 (already read) are never seen although they still exist, and the 2 deleted
    # ones are in the snapshot. total (22) then equals the notes stored (22).
    assert seen["missing"] == 2 and seen["stale"] == 2 and seen["notes"] == seen["total"] == NOTES - 2
    assert any("total changed while paging: 24 -> 22" in d for d in drift[ids[0]])
    # README: "when total changes ... while paging, ... the reconciliation check warns".
    assert ids[0] in mismatched and not check.passed


def test_a_scan_whose_list_moved_is_stored_as_drifted_and_the_next_snapshot_is_full(
    instance, simulator, duckdb_resource, db_path
):
    from datetime import timedelta

    import duckdb

    from pgy_pipeline.api.client import NotesQuery
    from pgy_pipeline.warehouse.scans import plan_scans, scan_history

    faults = [("2 newest notes deleted while paging (before page 2)", "remove_notes", 2, 1, {"n": 2})]
    ids, *_ = run_with_drift(instance, simulator, duckdb_resource, "drifted", faults)
    drifted, clean = ids
    statuses = dict(query(db_path, "SELECT creator_id, scan_status FROM analytics.creator_snapshots"))
    assert statuses == {drifted: "full_drifted", clean: "full"}
    # window 'all' of the drifted day is not the creator's whole list: its whole-list figures stay NULL
    [(count, median, total)] = query(
        db_path,
        "SELECT note_count, read_median, notes_total_reported FROM analytics.creator_engagement_metrics "
        "WHERE creator_id = ? AND \"window\" = 'all' AND segment = 'all'",
        [drifted],
    )
    assert count is None and median is None and total == NOTES - 2
    # and it is not the full scan on record: tomorrow's plan scans the drifted creator in full
    tomorrow = TODAY + timedelta(days=1)
    with duckdb.connect(db_path, read_only=True) as conn:
        plan = plan_scans(ids, scan_history(conn, ids, tomorrow), tomorrow, query=NotesQuery())
    assert drifted not in plan.windows and clean in plan.windows
    assert "no full scan on record" in plan.reasons[drifted]
