"""The analyst's views and tables against an independent Python computation on hand-built snapshots.

The snapshots hold every case the desk must get right: a vanished note, a spike, a multi-day gap, a
window-bounded scan (older notes not loaded, which must not read as vanished), a read correction, a
dropped total, a creator going quiet, a brand with two creators (one spelling it with spaces), a
brand on an organic note, a tag with two creators and one with one (NULL percentiles).
"""

from __future__ import annotations

import statistics
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from pgy_pipeline.errors import InvalidInputError
from pgy_pipeline.warehouse.analyst import AnomalyRules, rebuild_anomalies, rebuild_peer_percentiles
from pgy_pipeline.warehouse.tables import BRAND_TRIM_CHARS, PEER_METRICS
from pgy_pipeline_tests.analyst_support import Creator, Note, hex_id, write_creators, write_snapshots

D1, D2, D3, D5 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 5)
DAYS = [D1, D2, D3, D5]
A, B, C, D, E, F, G, H = (hex_id("case", x) for x in "ABCDEFGH")
REGISTRY = [
    Creator(A, "小美", ["美妆"]),
    Creator(B, "阿花", ["美妆"]),
    Creator(C, "甜甜", ["美食"]),
    Creator(D, "晓雪", ["美食"]),
    Creator(E, "一一", ["美食", "旅行"]),
    Creator(F, "安琪", ["美食"]),
    Creator(H, "子涵", []),
]  # G is not in the registry: it is only in the 'all' group


def n(creator: str, k: int, published: date, reads: int, **kw) -> Note:
    return Note(hex_id(creator, k), f"{creator[:4]} 第{k}篇", published, reads, **kw)


def grow(base: int, day: date, published: date) -> int:
    """Reads that grow with age and flatten out."""
    age = (day - published).days + 1
    return int(base * min(1.0, age / 8))


def build_snapshots() -> tuple[dict[tuple[str, date], list[Note]], dict[tuple[str, date], int]]:
    snaps: dict[tuple[str, date], list[Note]] = {}
    totals: dict[tuple[str, date], int] = {}
    feb = date(2026, 2, 1)
    for day in DAYS:
        # A: a3 vanishes between D3 and D5 (the two-day gap); a1 is a brand cooperation
        a = [
            n(
                A,
                1,
                feb + timedelta(days=20),
                grow(4000, day, feb + timedelta(days=20)),
                is_ad=True,
                brand="花西子",
            ),
            n(A, 2, feb + timedelta(days=24), grow(2500, day, feb + timedelta(days=24)), likes=150),
            n(A, 3, feb + timedelta(days=26), grow(3000, day, feb + timedelta(days=26)), likes=90),
            n(A, 4, feb + timedelta(days=27), grow(1800, day, feb + timedelta(days=27)), likes=40),
        ]
        snaps[(A, day)] = [x for x in a if not (day == D5 and x.note_id == hex_id(A, 3))]
        snaps[(B, day)] = [
            n(B, 1, feb + timedelta(days=22), grow(900, day, feb + timedelta(days=22)), likes=20)
        ]
        # C: c1 spikes on D3; c2 names the brand with spaces around it; c3 is organic with a brand
        c1 = grow(5000, day, feb + timedelta(days=18)) + (200_000 if day >= D3 else 0)
        snaps[(C, day)] = [
            n(C, 1, feb + timedelta(days=18), c1, likes=300, collects=50),
            n(
                C,
                2,
                feb + timedelta(days=23),
                grow(7000, day, feb + timedelta(days=23)),
                is_ad=True,
                brand=" 花西子\u3000",
            ),
            n(C, 3, feb + timedelta(days=25), grow(6000, day, feb + timedelta(days=25)), brand="元气森林"),
            n(C, 4, feb + timedelta(days=27), grow(4000, day, feb + timedelta(days=27)), likes=120),
        ]
        # D: on D5 a scan bounded by publish date loads only the two newest notes (total says 4)
        d_notes = [
            n(D, k, feb + timedelta(days=5 + 5 * k), grow(2000 * k, day, feb + timedelta(days=5 + 5 * k)))
            for k in range(1, 5)
        ]
        if day == D5:
            snaps[(D, day)] = d_notes[2:]
            totals[(D, day)] = 4
        else:
            snaps[(D, day)] = d_notes
        # E: the service corrects e1's reads down on D3
        e1 = 8000 if day < D3 else 7400
        snaps[(E, day)] = [
            n(E, 1, feb + timedelta(days=5), e1, likes=200),
            n(E, 2, feb + timedelta(days=21), grow(3000, day, feb + timedelta(days=21))),
        ]
        # F: deletes f3 on D3, and its total drops with it
        f = [
            n(
                F,
                k,
                feb + timedelta(days=6 * k),
                grow(1500 * k, day, feb + timedelta(days=6 * k)),
                likes=110 * k,
            )
            for k in range(1, 4)
        ]
        snaps[(F, day)] = f if day < D3 else f[:2]
        # G: 5 notes 40-80 days before D1, none since: it went quiet (reported once, on D1)
        snaps[(G, day)] = [n(G, k, D1 - timedelta(days=40 + 10 * k), 10_000 + k) for k in range(5)]
        # H: its last note is 30 days before D2, so it turns quiet on D3 (after 4 notes before)
        snaps[(H, day)] = [n(H, k, D2 - timedelta(days=30 + 12 * k), 20_000 + k) for k in range(5)]
    return snaps, totals


@pytest.fixture(scope="module")
def desk(tmp_path_factory) -> tuple[Path, dict, dict]:
    snaps, totals = build_snapshots()
    path = tmp_path_factory.mktemp("desk") / "desk.duckdb"
    with duckdb.connect(str(path)) as conn:
        write_creators(conn, REGISTRY)
        write_snapshots(conn, snaps, totals)
        assert set(rebuild_peer_percentiles(conn, DAYS)) == set(DAYS)
        rebuild_anomalies(conn, DAYS)
    return path, snaps, totals


def query(path: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql, params or []).fetchall()


def previous_day(snaps: dict, creator: str, day: date) -> date | None:
    earlier = [d for (c, d) in snaps if c == creator and d < day]
    return max(earlier) if earlier else None


def test_note_history_gives_the_change_and_the_days_between(desk):
    path, snaps, _ = desk
    expected = set()
    for (creator, day), notes in snaps.items():
        prev_day = previous_day(snaps, creator, day)
        before = {x.note_id: x for x in snaps.get((creator, prev_day), [])} if prev_day else {}
        for x in notes:
            p = before.get(x.note_id)
            gap = (day - prev_day).days if prev_day else None
            change = x.reads - p.reads if p else None
            expected.add(
                (
                    creator,
                    x.note_id,
                    day,
                    (day - x.published).days,
                    x.reads,
                    prev_day,
                    gap,
                    p is None,
                    change,
                    None if change is None else change / gap,
                )
            )
    got = set(
        query(
            path,
            "SELECT creator_id, note_id, snapshot_date, days_since_publish, read_num, previous_snapshot_date, "
            "days_between_snapshots, first_seen, read_num_change, read_num_change_per_day FROM analytics.note_history",
        )
    )
    assert got == expected
    # the two-day gap: A's a2 gained over D3 -> D5 is shown as a two-day change, and halved per day
    a2 = [r for r in got if r[1] == hex_id(A, 2) and r[2] == D5][0]
    assert a2[6] == 2 and a2[9] == a2[8] / 2


def _brand(name: str | None) -> str | None:
    trimmed = name.strip(BRAND_TRIM_CHARS) if name is not None else None
    return trimmed or None


def expected_brand_notes(snaps: dict) -> dict[tuple[str, str], dict]:
    """(creator, note) -> the note's cooperation rows, first and latest."""
    seen: dict[tuple[str, str], list[tuple[date, Note]]] = {}
    for (creator, day), notes in snaps.items():
        for x in notes:
            if x.is_ad or x.brand is not None:
                seen.setdefault((creator, x.note_id), []).append((day, x))
    out = {}
    for key, rows in seen.items():
        rows.sort(key=lambda r: r[0])
        latest = rows[-1][1]
        if _brand(latest.brand) is None:
            continue
        out[key] = {
            "brand": _brand(latest.brand),
            "latest": latest,
            "gain": latest.reads - rows[0][1].reads,
            "latest_day": rows[-1][0],
        }
    return out


def test_brand_cooperations_and_brands_match_and_brand_names_are_trimmed(desk):
    path, snaps, _ = desk
    notes = expected_brand_notes(snaps)
    per_pair: dict[tuple[str, str], list[dict]] = {}
    for (creator, _), v in notes.items():
        per_pair.setdefault((v["brand"], creator), []).append(v)
    expected = {
        (brand, creator): (
            len(vs),
            sum(v["latest"].is_ad for v in vs),
            sum(v["latest"].reads for v in vs),
            sum(v["latest"].likes + v["latest"].collects for v in vs),
            statistics.median(v["latest"].reads for v in vs),
            sum(v["gain"] for v in vs),
        )
        for (brand, creator), vs in per_pair.items()
    }
    got = {
        (r[0], r[1]): r[2:]
        for r in query(
            path,
            "SELECT brand_name, creator_id, cooperation_notes, advertised_notes, read_num, interaction_num, "
            "read_median, read_gain_since_first_seen FROM analytics.brand_cooperations",
        )
    }
    assert got == expected
    # one brand, two creators, although C spells it with an ASCII and an ideographic space
    assert {c for (b, c) in got if b == "花西子"} == {A, C}
    assert ("元气森林", C) in got  # an organic note tagged with a brand is a cooperation note

    by_brand: dict[str, list[dict]] = {}
    for v in notes.values():
        by_brand.setdefault(v["brand"], []).append(v)
    expected_brands = {
        brand: (
            len({creator for (b, creator) in per_pair if b == brand}),
            len(vs),
            sum(v["latest"].reads for v in vs),
            statistics.median(v["latest"].reads for v in vs),
            sum(v["gain"] for v in vs),
        )
        for brand, vs in by_brand.items()
    }
    got_brands = {
        r[0]: r[1:]
        for r in query(
            path,
            "SELECT brand_name, creators, cooperation_notes, read_num, read_median, read_gain_since_first_seen "
            "FROM analytics.brands",
        )
    }
    assert got_brands == expected_brands
    rate = query(
        path,
        "SELECT engagement_rate FROM analytics.brand_cooperations WHERE creator_id = ? AND brand_name = '花西子'",
        [A],
    )
    a1 = notes[(A, hex_id(A, 1))]["latest"]
    assert rate == [((a1.likes + a1.collects) / a1.reads,)]


def test_peer_percentiles_match_beats_x_percent_of_peers_and_small_groups_are_null(desk):
    path, _, _ = desk
    metrics = query(
        path,
        "SELECT creator_id, snapshot_date, read_median, interaction_median, engagement_rate, hundred_like_rate "
        "FROM analytics.creator_engagement_metrics WHERE \"window\" = '30d' AND segment = 'all'",
    )
    tags = {c.creator_id: set(c.tags) for c in REGISTRY}
    expected = {}
    for creator, day, *values in metrics:
        for group in {"all", *tags.get(creator, set())}:
            peers = [m for m in metrics if m[1] == day and (group == "all" or group in tags.get(m[0], set()))]
            row = [len(peers), *values]
            for i in range(len(PEER_METRICS)):
                own = values[i]
                others = [p[2 + i] for p in peers if p[2 + i] is not None]
                if own is None or len(others) < 3:
                    row.append(None)
                else:
                    lower = sum(
                        1 for p in peers if p[0] != creator and p[2 + i] is not None and p[2 + i] < own
                    )
                    row.append(100.0 * lower / (len(others) - 1))
            expected[(creator, day, group)] = tuple(row)
    got = {
        r[:3]: r[3:]
        for r in query(
            path,
            "SELECT creator_id, snapshot_date, peer_group, peer_count, read_median, interaction_median, "
            "engagement_rate, hundred_like_rate, read_median_percentile, interaction_median_percentile, "
            "engagement_rate_percentile, hundred_like_rate_percentile FROM analytics.creator_peer_percentiles",
        )
    }
    assert got.keys() == expected.keys()
    for key, row in expected.items():
        assert got[key] == pytest.approx(row), key
    # a tag with two creators, and one with one: counted, never ranked
    assert got[(A, D1, "美妆")][0] == 2 and got[(A, D1, "美妆")][5:] == (None, None, None, None)
    assert got[(E, D1, "旅行")][0] == 1 and got[(E, D1, "旅行")][5] is None
    # the whole roster ranks: someone beats everybody, someone nobody
    pct = [v[5] for (c, d, g), v in got.items() if d == D1 and g == "all" and v[5] is not None]
    assert max(pct) == 100.0 and min(pct) == 0.0


def expected_anomalies(snaps: dict, totals: dict, rules: AnomalyRules) -> set[tuple]:
    def covered_from(key):
        loaded = snaps[key]
        total = totals.get(key, len(loaded))
        if len(loaded) >= total:
            return None
        return min(x.published for x in loaded) + timedelta(days=1) if loaded else key[1] + timedelta(days=1)

    def covers(start, published):
        return start is None or published >= start

    def read_gain(creator, day):
        prev = previous_day(snaps, creator, day)
        if prev is None:
            return None
        before = {x.note_id: x.reads for x in snaps[(creator, prev)]}
        return (
            sum(x.reads - before[x.note_id] for x in snaps[(creator, day)] if x.note_id in before)
            / (day - prev).days
        )

    out = set()
    for (creator, day), notes in snaps.items():
        prev = previous_day(snaps, creator, day)
        now = {x.note_id: x for x in notes}
        if prev is not None:
            before = {x.note_id: x for x in snaps[(creator, prev)]}
            c_now, c_before = covered_from((creator, day)), covered_from((creator, prev))
            for nid, x in before.items():
                if nid not in now and covers(c_now, x.published) and covers(c_before, x.published):
                    out.add(("note_disappeared", creator, nid, day))
            gains = [
                g
                for c, d in snaps
                if c == creator and day - timedelta(days=rules.spike_baseline_days) <= d < day
                for g in [read_gain(creator, d)]
                if g is not None
            ]
            baseline = statistics.median(gains) if gains else None
            for nid, x in now.items():
                if nid in before:
                    per_day = (x.reads - before[nid].reads) / (day - prev).days
                    if x.reads < before[nid].reads:
                        out.add(("reads_decreased", creator, nid, day))
                    if (
                        baseline is not None
                        and per_day > rules.spike_factor * baseline
                        and per_day >= rules.spike_floor
                    ):
                        out.add(("read_spike", creator, nid, day))
            if totals.get((creator, day), len(notes)) < totals.get((creator, prev), len(before)):
                out.add(("total_dropped", creator, None, day))
        last = max(x.published for x in notes)
        earlier = sum(
            1
            for x in notes
            if day - timedelta(days=rules.quiet_days + rules.quiet_earlier_days)
            <= x.published
            <= day - timedelta(days=rules.quiet_days + 1)
        )
        quiet_now = last < day - timedelta(days=rules.quiet_days) and earlier >= rules.quiet_min_notes
        if quiet_now and (prev is None or last >= prev - timedelta(days=rules.quiet_days)):
            out.add(("creator_went_quiet", creator, None, day))
    return out


def test_anomalies_match_and_each_case_is_found_once(desk):
    path, snaps, totals = desk
    got = set(query(path, "SELECT kind, creator_id, note_id, snapshot_date FROM analytics.anomalies"))
    assert got == expected_anomalies(snaps, totals, AnomalyRules())
    assert ("note_disappeared", A, hex_id(A, 3), D5) in got and ("total_dropped", A, None, D5) in got
    assert ("read_spike", C, hex_id(C, 1), D3) in got
    assert ("reads_decreased", E, hex_id(E, 1), D3) in got
    assert ("note_disappeared", F, hex_id(F, 3), D3) in got and ("total_dropped", F, None, D3) in got
    assert ("creator_went_quiet", G, None, D1) in got and ("creator_went_quiet", H, None, D3) in got
    # the window-bounded scan of D on D5 did not load its two older notes: not reported as vanished
    assert not [r for r in got if r[1] == D]
    # nothing else: no spike for normal growth, no second report of a quiet creator
    assert len(got) == 8
    ((message, per_day, baseline, threshold),) = query(
        path,
        "SELECT message, change_per_day, baseline, threshold FROM analytics.anomalies WHERE kind = 'read_spike'",
    )
    assert per_day > threshold == max(10 * baseline, 1000)
    assert message.startswith(
        f'"{C[:4]} 第1篇" gained {per_day:,.0f} reads a day from 2026-03-02 to 2026-03-03'
    )


def test_spike_rules_are_parameters_and_bad_ones_are_refused(desk, tmp_path):
    path, snaps, totals = desk
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(path.read_bytes())
    for rules in (AnomalyRules(spike_factor=1.5, spike_floor=0), AnomalyRules(spike_floor=1e9)):
        with duckdb.connect(str(copy)) as conn:
            rebuild_anomalies(conn, DAYS, rules)
            got = set(
                conn.execute(
                    "SELECT kind, creator_id, note_id, snapshot_date FROM analytics.anomalies"
                ).fetchall()
            )
        assert got == expected_anomalies(snaps, totals, rules)
        spikes = {r for r in got if r[0] == "read_spike"}
        assert bool(spikes) == (rules.spike_floor == 0)  # the floor alone keeps the big spike out
    for bad in (AnomalyRules(spike_factor=1.0), AnomalyRules(spike_floor=-1), AnomalyRules(quiet_days=0)):
        with pytest.raises(InvalidInputError):
            bad.validate()


def test_rebuilding_a_date_replaces_it_and_a_failure_leaves_the_old_rows(desk, tmp_path):
    path, _, _ = desk
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(path.read_bytes())
    with duckdb.connect(str(copy)) as conn:
        before = conn.execute("SELECT * FROM analytics.anomalies ORDER BY ALL").fetchall()
        pct_before = conn.execute("SELECT count(*) FROM analytics.creator_peer_percentiles").fetchall()
        rebuild_anomalies(conn, [D3])
        rebuild_peer_percentiles(conn, [D3, D5])
        assert conn.execute("SELECT * FROM analytics.anomalies ORDER BY ALL").fetchall() == before
        assert (
            conn.execute("SELECT count(*) FROM analytics.creator_peer_percentiles").fetchall() == pct_before
        )
        conn.execute(
            "CREATE OR REPLACE VIEW analytics.snapshot_coverage AS "
            "SELECT creator_id, snapshot_date, NULL::INTEGER AS total_reported, 0 AS notes_loaded, "
            "error('coverage unavailable')::DATE AS covered_from FROM raw.note_pages"
        )
        with pytest.raises(duckdb.Error, match="coverage unavailable"):
            rebuild_anomalies(conn, [D3])
        assert conn.execute("SELECT * FROM analytics.anomalies ORDER BY ALL").fetchall() == before
