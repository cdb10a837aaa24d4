"""Asset tests: real temporary Dagster instance, real DuckDB file, the simulator over loopback HTTP."""

from __future__ import annotations

import math
import statistics
from datetime import date, datetime, time, timedelta
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, materialize

from pgy_pipeline.api.client import PgyClient
from pgy_pipeline.orchestration.assets import creator_engagement_metrics, note_pages, notes
from pgy_pipeline.orchestration.empty_streaks import NO_DATA_MESSAGE, read_streaks
from pgy_pipeline.orchestration.partitions import SHANGHAI, partition_key, today_shanghai
from pgy_pipeline.warehouse.storage import ensure_schema, replace_raw_pages
from pgy_pipeline.warehouse.tables import CREATOR_ENGAGEMENT_METRICS
from pgy_pipeline_tests.conftest import (
    TEST_TOKEN,
    creator_ids,
    fast_api,
    run_pipeline,
    step_failure_messages,
    step_summary,
)

TODAY = today_shanghai()


def fixed_clock(day: date, hour: int = 10):
    moment = datetime.combine(day, time(hour), tzinfo=SHANGHAI)
    return lambda: moment


def min_calls(sim, creator: str) -> int:
    return max(1, math.ceil(len(sim.notes_for(creator)) / sim.page_size))


def query(db_path: str, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(db_path, read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def counts_by_creator(db_path: str, table: str, day: date = TODAY) -> dict[str, int]:
    rows = query(
        db_path, f"SELECT creator_id, count(*) FROM {table} WHERE snapshot_date = ? GROUP BY 1", [day]
    )
    return dict(rows)


@pytest.fixture
def creators(instance, simulator) -> list[str]:
    ids = creator_ids(4, prefix="assets")
    for i, c in enumerate(ids):
        simulator.set_note_count(c, [72, 0, 9, 30][i])
    instance.add_dynamic_partitions("creators", ids)
    simulator.clock = fixed_clock(TODAY)
    return ids


def test_single_partition_materializes_all_three_tables(
    instance, simulator, api, duckdb_resource, db_path, creators
):
    creator = creators[0]
    result = materialize(
        [note_pages, notes, creator_engagement_metrics],
        instance=instance,
        resources={"pgy_api": api, "duckdb": duckdb_resource},
        partition_key=partition_key(creator, TODAY),
    )
    assert result.success
    assert simulator.call_count(creator) == 9  # 72 notes, 8 per page
    assert counts_by_creator(db_path, "raw.note_pages") == {creator: 9}
    assert counts_by_creator(db_path, "analytics.notes") == {creator: 72}
    assert counts_by_creator(db_path, "analytics.creator_engagement_metrics") == {creator: 9}

    mats = result.asset_materializations_for_node("raw__note_pages")
    meta = mats[0].metadata
    assert meta["dagster/row_count"].value == 9
    assert meta["api_calls"].value == 9
    columns = note_pages.specs_by_key[AssetKey(["raw", "note_pages"])].metadata["dagster/column_schema"]
    assert [c.name for c in columns.columns][:3] == ["creator_id", "snapshot_date", "page_number"]
    notes_meta = result.asset_materializations_for_node("analytics__notes")[0].metadata
    assert notes_meta["dagster/row_count"].value == 72
    assert "| creator |" in step_summary(result, "analytics__notes")["top_notes_by_reads"].value
    assert "top_notes_by_reads" not in notes_meta  # previews are not copied into each partition
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "note_ids_unique_and_present": True,
        "notes_reconcile_with_total": True,
        "metric_rates_within_bounds": True,
    }


def test_range_run_covers_many_creators_in_one_run_with_minimum_calls(
    instance, simulator, api, duckdb_resource, db_path, creators
):
    result = run_pipeline(instance, api, duckdb_resource, creators)
    assert result.success, step_failure_messages(result)
    assert len(instance.get_runs()) == 1
    assert simulator.call_count() == sum(min_calls(simulator, c) for c in creators)
    expected = {c: len(simulator.notes_for(c)) for c in creators}
    got = counts_by_creator(db_path, "analytics.notes")
    assert {c: got.get(c, 0) for c in creators} == expected
    # every generated note is there, with its values typed
    for c in creators:
        want = {n["noteId"]: n for n in simulator.notes_for(c)}
        rows = query(
            db_path,
            "SELECT note_id, title, published_date, is_video, is_advertise, brand_name, read_num, like_num,"
            " collect_num, interaction_num, third_read_user_num, img_url, list_position"
            " FROM analytics.notes WHERE creator_id = ? AND snapshot_date = ? ORDER BY list_position",
            [c, TODAY],
        )
        assert [r[0] for r in rows] == list(want)  # LATEST order, positions 1..n
        for r in rows:
            n = want[r[0]]
            assert r[1:12] == (
                n["title"],
                date.fromisoformat(n["date"]),
                n["isVideo"],
                n["isAdvertise"],
                n["brandName"],
                n["readNum"],
                n["likeNum"],
                n["collectNum"],
                n["likeNum"] + n["collectNum"],
                n["thirdReadUserNum"],
                n["imgUrl"],
            )
        assert [r[12] for r in rows] == list(range(1, len(rows) + 1))
    # partitions are reported materialized per partition key
    mats = instance.get_materialized_partitions(AssetKey(["analytics", "creator_engagement_metrics"]))
    assert {partition_key(c, TODAY) for c in creators} <= set(mats)
    # and each partition carries its own figures, not the run's totals
    for table, node, key in [
        ("raw.note_pages", "raw__note_pages", "dagster/row_count"),
        ("analytics.notes", "analytics__notes", "dagster/row_count"),
    ]:
        stored = counts_by_creator(db_path, table)
        by_partition = {
            m.partition.split("|")[0]: m.metadata[key].value
            for m in result.asset_materializations_for_node(node)
        }
        assert by_partition == {c: stored.get(c, 0) for c in creators}, table
    pages_meta = {
        m.partition.split("|")[0]: m.metadata
        for m in result.asset_materializations_for_node("raw__note_pages")
    }
    assert {c: m["api_calls"].value for c, m in pages_meta.items()} == {
        c: min_calls(simulator, c) for c in creators
    }
    # the step's totals are logged once, not copied into every partition's event
    assert not any(k.startswith("run_total/") for m in pages_meta.values() for k in m)
    assert step_summary(result, "raw__note_pages")["run_total/api_calls"].value == sum(
        m["api_calls"].value for m in pages_meta.values()
    )


def test_failed_creator_does_not_stop_the_others_and_rerun_fetches_only_it(
    instance, simulator, api, duckdb_resource, db_path, creators
):
    bad = creators[2]
    simulator.add_fault("code", user_id=bad, code=500, times=None)  # 500 forever: retries exhaust
    result = run_pipeline(instance, api, duckdb_resource, creators)
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert bad in message and "gave up after" in message
    assert "1 of 4 creator(s) failed" in message
    good = [c for c in creators if c != bad]
    assert set(counts_by_creator(db_path, "raw.note_pages")) == set(good)
    # the written partitions are recorded as materialized, the failed one is not
    mats = set(instance.get_materialized_partitions(AssetKey(["raw", "note_pages"])))
    assert {partition_key(c, TODAY) for c in good} <= mats
    assert partition_key(bad, TODAY) not in mats

    simulator.clear_faults()
    simulator.reset_stats()
    rerun = run_pipeline(instance, api, duckdb_resource, creators)
    assert rerun.success, step_failure_messages(rerun)
    assert simulator.call_count() == simulator.call_count(bad) == min_calls(simulator, bad)
    assert set(counts_by_creator(db_path, "analytics.notes")) == {
        c for c in creators if simulator.notes_for(c)
    }


def test_refresh_in_run_config_fetches_again(instance, simulator, api, duckdb_resource, creators):
    assert run_pipeline(instance, api, duckdb_resource, creators[:1]).success
    simulator.reset_stats()
    assert run_pipeline(instance, api, duckdb_resource, creators[:1]).success
    assert simulator.call_count() == 0
    refreshed = run_pipeline(
        instance,
        api,
        duckdb_resource,
        creators[:1],
        run_config={"ops": {"raw__note_pages": {"config": {"refresh": True}}}},
    )
    assert refreshed.success
    # Today's stored snapshot read the whole list: a refresh never leaves the day less complete, so it
    # reads the whole list again (9 pages), never just the 90-day window.
    assert simulator.call_count() == 9


def test_rebuild_from_raw_makes_no_call_and_is_idempotent(
    instance, simulator, api, duckdb_resource, db_path, creators
):
    assert run_pipeline(instance, api, duckdb_resource, creators).success
    tables = [
        "raw.note_pages",
        "analytics.notes",
        "analytics.note_rejects",
        "analytics.creator_engagement_metrics",
    ]
    before = {t: query(db_path, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    simulator.reset_stats()
    rebuilt = run_pipeline(
        instance, api, duckdb_resource, creators, assets=[notes, creator_engagement_metrics]
    )
    assert rebuilt.success
    again = run_pipeline(instance, api, duckdb_resource, creators)
    assert again.success
    assert simulator.call_count() == 0
    after = {t: query(db_path, f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    assert after == before
    assert query(db_path, "SELECT count(*) FROM analytics.notes")[0][0] == 72 + 9 + 30


def test_past_date_is_refused_before_any_call(instance, simulator, api, duckdb_resource, db_path, creators):
    past = (TODAY - timedelta(days=3)).isoformat()
    result = run_pipeline(instance, api, duckdb_resource, creators[:2], day=past)
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert "only serves the present" in message
    assert "make no API call" in message  # says what to do instead
    assert simulator.call_count() == 0
    assert query(db_path, "SELECT count(*) FROM raw.note_pages")[0][0] == 0


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-a-creator",
        "5A1B2C3D4E5F60718293A4B5",
        "abc def",
        "x'; DROP TABLE raw.note_pages;--",
        "小红书用户",
        "a" * 300,
    ],
)
def test_malformed_creator_id_is_refused_before_any_call(instance, simulator, api, duckdb_resource, bad_id):
    instance.add_dynamic_partitions("creators", [bad_id])
    result = run_pipeline(instance, api, duckdb_resource, [bad_id])
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert "invalid creator id" in message and "24" in message
    assert simulator.call_count() == 0


METRIC_COLUMNS = [
    c.name
    for c in CREATOR_ENGAGEMENT_METRICS.columns
    if c.name not in ("creator_id", "snapshot_date", "window", "segment", "previous_snapshot_date")
]
EMPTY_CELL_NULLS = [  # every column that is NULL for a window and segment without notes
    "read_median",
    "read_mean",
    "interaction_median",
    "like_median",
    "collect_median",
    "engagement_rate",
    "hundred_like_rate",
    "thousand_like_rate",
    "days_since_last_note",
    "interaction_per_note_median",
]


def has_brand(note: dict) -> bool:
    return bool(note.get("brandName") and note["brandName"].strip())


def segment_of(note: dict) -> str:
    """Pugongying's rule, restated: an ad or a brand tag makes a note cooperation."""
    return "cooperation" if note["isAdvertise"] or has_brand(note) else "organic"


def in_window(note: dict, day: date, days: int | None) -> bool:
    """N days ending the day before the snapshot; 'all' is every note."""
    return days is None or day - timedelta(days=days) <= date.fromisoformat(note["date"]) <= day - timedelta(
        1
    )


def expected_metrics(notes_now: list[dict], notes_prev: list[dict] | None, day: date, total: int) -> dict:
    """Metrics computed independently in Python, keyed by (window, segment)."""
    prev_reads = {n["noteId"]: n["readNum"] for n in notes_prev} if notes_prev is not None else None
    out = {}
    for window, days in [("30d", 30), ("90d", 90), ("all", None)]:
        for segment in ["all", "organic", "cooperation"]:
            cell = [
                n
                for n in notes_now
                if in_window(n, day, days) and (segment == "all" or segment_of(n) == segment)
            ]
            reads = [n["readNum"] for n in cell]
            likes = [n["likeNum"] for n in cell]
            collects = [n["collectNum"] for n in cell]
            inter = [n["likeNum"] + n["collectNum"] for n in cell]
            out[(window, segment)] = {
                "note_count": len(cell),
                "video_note_count": sum(n["isVideo"] for n in cell),
                "read_median": statistics.median(reads) if cell else None,
                "read_mean": statistics.fmean(reads) if cell else None,
                "interaction_median": statistics.median(likes) + statistics.median(collects)
                if cell
                else None,
                "like_median": statistics.median(likes) if cell else None,
                "collect_median": statistics.median(collects) if cell else None,
                "engagement_rate": sum(inter) / sum(reads) if cell and sum(reads) else None,
                "hundred_like_rate": sum(x >= 100 for x in likes) / len(cell) if cell else None,
                "thousand_like_rate": sum(x >= 1000 for x in likes) / len(cell) if cell else None,
                "notes_per_week": len(cell) / (days / 7) if days else None,
                "days_since_last_note": (day - max(date.fromisoformat(n["date"]) for n in cell)).days
                if cell
                else None,
                "read_gain": None
                if prev_reads is None
                else sum(n["readNum"] - prev_reads[n["noteId"]] for n in cell if n["noteId"] in prev_reads),
                "notes_total_reported": total,
                "interaction_per_note_median": statistics.median(inter) if cell else None,
                "brand_tagged_non_ad_count": sum(has_brand(n) and not n["isAdvertise"] for n in cell),
                "read_max": max(reads) if cell else None,
            }
    return out


def stored_metrics(db_path: str, creator: str, day: date) -> dict:
    """The pipeline's metric rows of one snapshot, keyed by (window, segment)."""
    rows = query(
        db_path,
        f'SELECT "window", segment, {", ".join(METRIC_COLUMNS)} FROM analytics.creator_engagement_metrics'
        " WHERE creator_id = ? AND snapshot_date = ?",
        [creator, day],
    )
    return {(r[0], r[1]): dict(zip(METRIC_COLUMNS, r[2:], strict=True)) for r in rows}


def assert_metrics_match(got: dict, want: dict, where: object) -> None:
    assert set(got) == set(want), where
    for cell, expected in want.items():
        assert set(expected) == set(METRIC_COLUMNS)  # every declared column is computed here too
        for col in METRIC_COLUMNS:
            if isinstance(expected[col], float):
                assert got[cell][col] == pytest.approx(expected[col], rel=1e-9), (where, cell, col)
            else:
                assert got[cell][col] == expected[col], (where, cell, col)


def test_metrics_match_independent_computation_including_read_gain(
    instance, simulator, api, duckdb_resource, db_path
):
    ids = creator_ids(3, prefix="metrics")
    instance.add_dynamic_partitions("creators", ids)
    yesterday = TODAY - timedelta(days=1)
    # Yesterday's snapshot: pages read with yesterday's clock, stored as raw pages (the API cannot be
    # asked for the past), then notes and metrics rebuilt from them with no call.
    simulator.clock = fixed_clock(yesterday)
    with PgyClient(TEST_TOKEN, base_url=simulator.base_url, max_rps=None) as client:
        scans = {c: client.scan_notes(c) for c in ids}
    notes_prev = {c: simulator.notes_for(c) for c in ids}
    with duckdb_resource.get_connection() as conn:
        ensure_schema(conn)
        replace_raw_pages(conn, {(c, yesterday): s.pages for c, s in scans.items()})
    assert run_pipeline(
        instance,
        api,
        duckdb_resource,
        ids,
        day=yesterday.isoformat(),
        assets=[notes, creator_engagement_metrics],
    ).success

    simulator.clock = fixed_clock(TODAY)
    simulator.reset_stats()
    # A full scan today, so that window 'all' is computed too (a window scan leaves it NULL).
    full = {"ops": {"raw__note_pages": {"config": {"scan": "full"}}}}
    assert run_pipeline(instance, api, duckdb_resource, ids, run_config=full).success
    for day, prev in [(yesterday, None), (TODAY, notes_prev)]:
        for c in ids:
            now_notes = simulator.notes_for(c, at=fixed_clock(day)())
            want = expected_metrics(now_notes, prev[c] if prev else None, day, len(now_notes))
            assert_metrics_match(stored_metrics(db_path, c, day), want, (c, day))
    gains = query(
        db_path,
        "SELECT read_gain FROM analytics.creator_engagement_metrics WHERE snapshot_date = ?"
        " AND \"window\" = 'all' AND segment = 'all'",
        [TODAY],
    )
    assert any(g[0] > 0 for g in gains)  # reads grew between the two snapshots

    # the views: latest snapshot per note, and one leaderboard row per creator at its latest snapshot
    latest = query(db_path, "SELECT DISTINCT snapshot_date FROM analytics.notes_latest")
    assert latest == [(TODAY,)]  # no note vanished, so every note's latest snapshot is today's
    board = query(db_path, "SELECT creator_id, snapshot_date FROM analytics.creator_leaderboard")
    assert sorted(board) == sorted((c, TODAY) for c in ids)


EDGE_AGES = [0, 1, 29, 30, 31, 89, 90, 91, 400]


def test_hand_built_notes_give_pugongying_metrics_on_every_edge(
    instance, simulator, api, duckdb_resource, db_path
):
    """Brand-tagged non-ad notes, a note of the snapshot day, notes exactly N and N+1 days old, empty
    windows, all-video and all-photo creators, and an id unknown to the marketplace, in one run."""
    edges, video, photo, old_only, unknown = creator_ids(5, prefix="pgy-metrics")
    simulator.clock = fixed_clock(TODAY)
    served = {
        edges: simulator.set_notes_at_ages(
            edges,
            EDGE_AGES,
            is_advertise=[False, False, True, False, False, False, False, True, False],
            # a brand on a non-ad note (twice), a blank and a full-width-space brand (none), an ad with a brand
            brand_name=[None, "花西子", "某品牌", "  ", "漫步者", "\u3000", None, "某品牌", None],
            reads=[40, 1500, 900, 4300, 260, 7700, 120, 3000, 50],
            likes=[3, 160, 44, 1200, 9, 530, 12, 95, 1],
            collects=[1, 200, 13, 30, 2, 8, 90, 4, 0],
            is_video=False,
        ),
        video: simulator.set_notes_at_ages(
            video,
            [2, 5, 10, 40],
            is_video=True,
            reads=[10, 20, 30, 40],
            likes=[1, 2, 3, 4],
            collects=[0, 0, 1, 1],
        ),
        photo: simulator.set_notes_at_ages(photo, [3, 20, 60], is_video=False),
        old_only: simulator.set_notes_at_ages(old_only, [0, 120, 300], is_video=[True, False, True]),
    }
    simulator.set_unknown(unknown)
    ids = [edges, video, photo, old_only, unknown]
    instance.add_dynamic_partitions("creators", ids)
    result = run_pipeline(instance, api, duckdb_resource, ids)
    assert result.success, step_failure_messages(result)

    for creator, items in served.items():
        want = expected_metrics(items, None, TODAY, len(items))
        assert_metrics_match(stored_metrics(db_path, creator, TODAY), want, creator)
    got = stored_metrics(db_path, edges, TODAY)
    # ages 1, 29 and 30 are in 30d; 31 is not (it is in 90d); 0 (today) is only in 'all'; 91 is not in 90d
    assert [got[(w, "all")]["note_count"] for w in ("30d", "90d", "all")] == [3, 6, 9]
    assert got[("30d", "all")]["days_since_last_note"] == 1
    assert got[("all", "all")]["days_since_last_note"] == 0
    # brand-tagged non-ads are cooperation; blank brands are none
    assert [got[("all", s)]["note_count"] for s in ("organic", "cooperation")] == [5, 4]
    assert [got[("all", s)]["brand_tagged_non_ad_count"] for s in ("all", "organic", "cooperation")] == [
        2,
        0,
        2,
    ]
    # a sum of medians differs from the median of sums: 30d likes 160, 44, 1200 and collects 200, 13, 30
    assert got[("30d", "all")]["interaction_median"] == 160 + 30
    assert got[("30d", "all")]["interaction_per_note_median"] == 360
    assert query(
        db_path,
        "SELECT published_date, is_advertise, brand_name, segment FROM analytics.notes"
        " WHERE creator_id = ? ORDER BY published_date DESC",
        [edges],
    ) == [
        (TODAY - timedelta(days=age), ad, brand, segment)
        for age, ad, brand, segment in zip(
            EDGE_AGES,
            [False, False, True, False, False, False, False, True, False],
            [None, "花西子", "某品牌", "  ", "漫步者", "\u3000", None, "某品牌", None],
            [
                "organic",
                "cooperation",
                "cooperation",
                "organic",
                "cooperation",
                "organic",
                "organic",
                "cooperation",
                "organic",
            ],
            strict=True,
        )
    ]
    assert stored_metrics(db_path, video, TODAY)[("all", "all")]["video_note_count"] == 4
    assert stored_metrics(db_path, photo, TODAY)[("all", "all")]["video_note_count"] == 0

    # empty windows: counts 0, every median and rate NULL, not 0
    for creator, cells in [
        (old_only, [("30d", "all"), ("90d", "all"), ("30d", "cooperation")]),
        (unknown, list(stored_metrics(db_path, unknown, TODAY))),
    ]:
        for cell in cells:
            row = stored_metrics(db_path, creator, TODAY)[cell]
            assert row["note_count"] == row["video_note_count"] == row["brand_tagged_non_ad_count"] == 0
            assert all(row[c] is None for c in EMPTY_CELL_NULLS), (creator, cell, row)
    assert len(stored_metrics(db_path, unknown, TODAY)) == 9

    # the unknown id: one billed call, an 'empty' snapshot, flagged in the leaderboard and the logs
    assert simulator.call_count(unknown) == 1
    assert [c.billed for c in simulator.calls if c.user_id == unknown] == [True]
    board = {
        r[0]: r[1:]
        for r in query(
            db_path,
            "SELECT creator_id, scan_status, no_pugongying_data, note_count FROM analytics.creator_leaderboard",
        )
    }
    assert board[unknown] == ("empty", True, 0)
    assert {c: board[c][:2] for c in served} == {c: ("full", False) for c in served}
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    flagged = [m for m in logs if NO_DATA_MESSAGE in m]
    assert len(flagged) == 1 and unknown in flagged[0] and "billed" in flagged[0]
    assert "its first snapshot came back empty: check its id in the registry" in flagged[0]
    assert read_streaks(instance)[unknown].count == 1 and set(read_streaks(instance)) == {unknown}


def test_simulated_and_real_data_never_share_a_file(instance, simulator, duckdb_resource, creators):
    # the file starts as real data (a non-loopback base URL would be 'justoneapi'); pretend by marking it
    with duckdb_resource.get_connection() as conn:
        ensure_schema(conn)
        conn.execute("INSERT INTO meta.data_source VALUES ('justoneapi', now()::TIMESTAMP)")
    result = run_pipeline(instance, fast_api(simulator), duckdb_resource, creators[:1])
    assert not result.success
    assert "holds justoneapi data" in "\n".join(step_failure_messages(result))
    assert simulator.call_count() == 0


def test_each_snapshot_records_how_its_scan_went_and_an_unknown_id_is_empty_after_one_call(
    instance, simulator, api, duckdb_resource, db_path, creators
):
    unknown = creator_ids(1, prefix="not-on-pgy")[0]
    simulator.set_unknown(unknown)
    instance.add_dynamic_partitions("creators", [unknown])
    result = run_pipeline(instance, api, duckdb_resource, [*creators, unknown])
    assert result.success, step_failure_messages(result)
    assert simulator.call_count(unknown) == 1
    rows = {
        r[0]: r[1:]
        for r in query(
            db_path,
            "SELECT creator_id, scan_status, total_reported, notes_loaded, pages, calls, billed_calls"
            " FROM analytics.creator_snapshots WHERE snapshot_date = ?",
            [TODAY],
        )
    }
    assert rows[unknown] == ("empty", 0, 0, 1, 1, 1)
    for c in creators:
        n = len(simulator.notes_for(c))
        pages = min_calls(simulator, c)
        assert rows[c] == ("full" if n else "empty", n, n, pages, pages, pages), c


def test_creator_names_show_in_tags_previews_failures_and_partition_metadata(
    instance, simulator, api, duckdb_resource, db_path, creators, tmp_path
):
    from pgy_pipeline.orchestration.assets import creators as creators_asset
    from pgy_pipeline.orchestration.registry import CreatorRegistryResource

    names = {c: f"博主 {i}" for i, c in enumerate(creators)}
    registry = tmp_path / "creators.yaml"
    registry.write_text(
        "creators:\n" + "".join(f"  - id: {c}\n    name: {n}\n" for c, n in names.items()), encoding="utf-8"
    )
    assert materialize(
        [creators_asset],
        instance=instance,
        resources={
            "creator_registry": CreatorRegistryResource(path=str(registry)),
            "duckdb": duckdb_resource,
        },
    ).success
    bad = creators[3]
    simulator.add_fault("code", user_id=bad, code=400, times=None)
    result = run_pipeline(instance, api, duckdb_resource, creators)
    assert not result.success
    message = "\n".join(step_failure_messages(result))
    assert f"- {names[bad]} ({bad}): InvalidRequestError" in message
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["pgy/creators"] == ", ".join(names[c] for c in creators)
    records = instance.fetch_materializations(AssetKey(["raw", "note_pages"]), limit=10).records
    labels = {
        r.partition_key.split("|")[0]: r.asset_materialization.metadata["creator"].value for r in records
    }
    assert labels == {c: f"{names[c]} ({c})" for c in creators if c != bad}

    simulator.clear_faults()
    rebuilt = run_pipeline(instance, api, duckdb_resource, creators)
    assert rebuilt.success, step_failure_messages(rebuilt)
    top = step_summary(rebuilt, "analytics__notes")["top_notes_by_reads"].value
    assert "| creator | name | note |" in top and names[creators[0]] in top
    headline = step_summary(rebuilt, "analytics__creator_engagement_metrics")
    assert names[creators[0]] in headline["headline_30d"].value


def test_each_run_publishes_the_read_replica_once_and_holds_the_step_locks(
    instance, simulator, api, duckdb_resource, db_path, creators
):
    from pgy_pipeline.warehouse.replica import replica_path

    result = run_pipeline(instance, api, duckdb_resource, creators)
    assert result.success, step_failure_messages(result)
    replica = replica_path(db_path)
    assert replica.name == "pgy.read.duckdb" and replica.parent == Path(db_path).parent
    tables = ["raw.note_pages", "analytics.notes", "analytics.creator_engagement_metrics"]
    for table in tables:
        assert query(str(replica), f"FROM {table} ORDER BY ALL") == query(
            db_path, f"FROM {table} ORDER BY ALL"
        )
    # the lock files beside the database, free again, and no copy left half-written
    locks = Path(db_path + ".locks")
    assert sorted(p.name for p in locks.iterdir()) == ["pgy_api.lock", "pgy_duckdb.lock"]
    assert all(p.read_text() == "" for p in locks.iterdir())
    assert not list(Path(db_path).parent.glob(".*.tmp"))
    logs = [e.message for e in instance.all_logs(result.run_id) if e.message]
    published = [m for m in logs if "read replica" in m and "updated" in m]
    # once per run, by its last writing step (metrics), not after raw pages and notes too
    assert len(published) == 1, logs
    # a second run publishes only the days it changed, into the other replica file
    again = run_pipeline(instance, api, duckdb_resource, creators)
    assert again.success, step_failure_messages(again)
    logs = [e.message for e in instance.all_logs(again.run_id) if e.message]
    published = [m for m in logs if "read replica" in m and "updated" in m]
    assert len(published) == 1, logs
    for table in tables:
        assert query(str(replica), f"FROM {table} ORDER BY ALL") == query(
            db_path, f"FROM {table} ORDER BY ALL"
        )


def test_a_rebuild_over_days_without_snapshots_succeeds_and_says_so(
    instance, simulator, api, duckdb_resource, db_path, creators
):
    from dagster import DagsterEventType

    from pgy_pipeline.orchestration.assets import NO_SNAPSHOT
    from pgy_pipeline.orchestration.automation import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    two = creators[:2]
    assert run_pipeline(instance, api, duckdb_resource, two).success  # today has stored pages
    simulator.reset_stats()
    first = (TODAY - timedelta(days=6)).isoformat()
    # A backfill of the rebuild assets over the last 7 days: 6 days with nothing stored, then today.
    result = materialize(
        [notes, creator_engagement_metrics],
        instance=instance,
        resources={"duckdb": duckdb_resource},
        tags={
            ASSET_PARTITION_RANGE_START_TAG: f"{two[0]}|{first}",
            ASSET_PARTITION_RANGE_END_TAG: f"{two[-1]}|{TODAY.isoformat()}",
        },
        raise_on_error=False,
    )
    assert result.success, step_failure_messages(result)
    assert simulator.call_count() == 0
    statuses: dict[tuple[str, str], object] = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            m = event.event_specific_data.materialization
            statuses[(m.asset_key.to_user_string(), m.partition)] = m.metadata.get("status")
    assert len(statuses) == 2 * 2 * 7  # every partition of both assets is materialized
    empty_days = {(a, p) for (a, p), s in statuses.items() if s is not None and s.value == NO_SNAPSHOT}
    assert len(empty_days) == 2 * 2 * 6 and all(TODAY.isoformat() not in p for _, p in empty_days)
    # today's metrics were rebuilt, not skipped
    rows = query(
        db_path, "SELECT count(*) FROM analytics.creator_engagement_metrics WHERE snapshot_date = ?", [TODAY]
    )[0][0]
    assert rows == 2 * 9  # 3 windows x 3 segments per creator
