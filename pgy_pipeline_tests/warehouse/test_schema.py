"""The versioned schema: migrations, the 0.1.0 upgrade, refusals, and the declarations' DDL."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import duckdb
import pytest

from pgy_pipeline.errors import MigrationError, SchemaVersionError
from pgy_pipeline.warehouse import schema
from pgy_pipeline.warehouse.schema import LATEST_VERSION, MIGRATIONS, Migration, file_version, migrate
from pgy_pipeline.warehouse.storage import rebuild_metrics
from pgy_pipeline.warehouse.tables import RELATIONS, tables, views

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "release_0_1_0.sql"
TABLES_0_1_0 = [
    "raw.note_pages",
    "analytics.notes",
    "analytics.note_rejects",
    "analytics.creator_engagement_metrics",
    "analytics.creators",
    "meta.data_source",
]
VIEWS_OVER_NEW_TABLES = {"meta.api_calls_daily", "analytics.metrics_vs_pugongying"}
RECOMPUTED = {"analytics.creator_engagement_metrics"}  # derived rows a migration rewrites


def release_0_1_0_file(path: Path) -> Path:
    with duckdb.connect(str(path)) as conn:
        conn.execute(FIXTURE.read_text(encoding="utf-8"))
    return path


def layout(conn: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str, bool]]:
    schema_name, table = name.split(".")
    return [
        (r[0], r[1], r[2])
        for r in conn.execute(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE schema_name = ? AND table_name = ? ORDER BY column_index",
            [schema_name, table],
        ).fetchall()
    ]


def test_a_new_file_has_exactly_the_declared_layout(tmp_path):
    """A declaration changed without a migration (or the other way round) fails here."""
    with duckdb.connect(str(tmp_path / "new.duckdb")) as conn:
        assert migrate(conn) == list(range(1, LATEST_VERSION + 1))
        for rel in RELATIONS:
            expected = [(c.name, c.type, c.nullable) for c in rel.columns]
            got = layout(conn, rel.name)
            if rel.kind == "view":  # a view's columns carry no NOT NULL
                expected, got = [(n, t) for n, t, _ in expected], [(n, t) for n, t, _ in got]
            assert got == expected, rel.name


def test_every_column_has_its_description_as_a_duckdb_comment(tmp_path):
    with duckdb.connect(str(tmp_path / "c.duckdb")) as conn:
        migrate(conn)
        for rel in RELATIONS:
            schema_name, table = rel.name.split(".")
            comments = dict(
                conn.execute(
                    "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
                    [schema_name, table],
                ).fetchall()
            )
            for col in rel.columns:
                assert comments[col.name].startswith(col.description), (rel.name, col.name)


def test_migrating_twice_applies_nothing_the_second_time(tmp_path):
    with duckdb.connect(str(tmp_path / "twice.duckdb")) as conn:
        migrate(conn)
        assert migrate(conn) == []
        versions = conn.execute("SELECT version FROM meta.schema_migrations ORDER BY 1").fetchall()
    assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]


def _as_json(table: str, row: tuple[object, ...]) -> tuple[object, ...]:
    """A raw page's JSON columns (request_params, body) in one canonical text, keys sorted."""
    if table != "raw.note_pages":
        return row
    return tuple(json.dumps(json.loads(v), sort_keys=True) if i in (3, 9) else v for i, v in enumerate(row))


def test_the_0_1_0_file_upgrades_with_no_row_lost_and_every_view_answering(tmp_path):
    path = release_0_1_0_file(tmp_path / "old.duckdb")
    with duckdb.connect(str(path)) as conn:
        before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES_0_1_0}
        assert file_version(conn) == 0
        migrate(conn)
        assert file_version(conn) == LATEST_VERSION
        for table, rows in before.items():
            if table in RECOMPUTED:
                continue
            old_columns = len(rows[0]) if rows else 0
            after = conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            assert len(after) == len(rows), table
            # columns a migration added come after the 0.1.0 ones; the old values are untouched (the
            # JSON of a page as the same JSON: its keys may come in another order since migration 9)
            assert sorted(_as_json(table, r[:old_columns]) for r in after) == sorted(
                _as_json(table, r) for r in rows
            ), table
        # metric rows are derived: migration 3 recomputed them under the new definitions, for exactly
        # the partitions that had them, and they equal what a rebuild from the stored notes gives now
        metrics = conn.execute("SELECT * FROM analytics.creator_engagement_metrics ORDER BY ALL").fetchall()
        assert {(r[0], r[1]) for r in metrics} == {
            (r[0], r[1]) for r in before["analytics.creator_engagement_metrics"]
        }
        assert len(metrics) == 9
        rebuild_metrics(conn, {(r[0], r[1]) for r in metrics})
        assert (
            conn.execute("SELECT * FROM analytics.creator_engagement_metrics ORDER BY ALL").fetchall()
            == metrics
        )
        segments = conn.execute("SELECT note_id, segment FROM analytics.notes ORDER BY ALL").fetchall()
        for view in views():
            count = conn.execute(f"SELECT count(*) FROM {view.name}").fetchall()[0][0]
            # the billing ledger starts empty: its view answers, with no rows yet
            assert count >= (0 if view.name in VIEWS_OVER_NEW_TABLES else 1), view.name
        board = conn.execute(
            "SELECT display_name, note_count, interaction_median, interaction_per_note_median, scan_status,"
            " no_pugongying_data FROM analytics.creator_leaderboard"
        ).fetchall()
        snapshots = conn.execute(
            "SELECT snapshot_date::VARCHAR, scan_status, total_reported, notes_loaded, pages, calls"
            " FROM analytics.creator_snapshots ORDER BY 1"
        ).fetchall()
    # 30d on 2026-11-21 holds both notes: median likes 107 + median collects 24
    assert board == [("小红", 2, 131.0, 131.0, "full", False)]
    # the new column is filled for the notes already stored: the ad with its brand is cooperation
    assert segments == [
        ("66aa00000000000000000001", "organic"),
        ("66aa00000000000000000001", "organic"),
        ("66aa00000000000000000002", "cooperation"),
        ("66aa00000000000000000002", "cooperation"),
    ]
    # a table a migration added is filled for the snapshots the old file already held
    assert snapshots == [("2026-11-20", "full", 2, 2, 1, 1), ("2026-11-21", "full", 2, 2, 1, 2)]


def test_a_file_from_a_newer_release_is_refused_naming_both_versions(tmp_path):
    path = tmp_path / "newer.duckdb"
    with duckdb.connect(str(path)) as conn:
        migrate(conn)
        conn.execute(
            "INSERT INTO meta.schema_migrations VALUES (?, 'from the future', now()::TIMESTAMP, '9.9.9')",
            [LATEST_VERSION + 5],
        )
    with duckdb.connect(str(path)) as conn:
        with pytest.raises(SchemaVersionError) as err:
            migrate(conn)
    assert f"schema version {LATEST_VERSION + 5}" in str(err.value)
    assert f"versions up to {LATEST_VERSION}" in str(err.value)


def test_a_failed_migration_leaves_the_file_at_its_old_version_and_names_the_step(tmp_path):
    path = release_0_1_0_file(tmp_path / "old.duckdb")
    broken = [
        *MIGRATIONS,
        Migration(
            LATEST_VERSION + 1, "add a column", "ALTER TABLE analytics.irregular_note_counts ADD COLUMN extra INTEGER;"
        ),
        Migration(
            LATEST_VERSION + 2, "a broken step", "ALTER TABLE analytics.no_such_table ADD COLUMN x INTEGER;"
        ),
    ]
    with duckdb.connect(str(path)) as conn:
        with pytest.raises(MigrationError) as err:
            migrate(conn, broken)
        assert f"migration {LATEST_VERSION + 2} (a broken step) failed" in str(err.value)
        assert "stays at schema version 0" in str(err.value)
        assert file_version(conn) == 0  # not even the bookkeeping table was kept
        assert "extra" not in [c for c, _, _ in layout(conn, "analytics.irregular_note_counts")]
        assert conn.execute("SELECT count(*) FROM analytics.notes").fetchall() == [(4,)]


def _open_and_migrate(path: str, lock_wait_s: float) -> list[int]:
    from pgy_pipeline.warehouse.storage import connect

    with connect(path, lock_wait_s=lock_wait_s) as conn:
        return migrate(conn)


def test_two_processes_opening_an_old_file_at_once_apply_each_migration_once(tmp_path):
    path = str(release_0_1_0_file(tmp_path / "old.duckdb"))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_open_and_migrate, [(path, 60.0), (path, 60.0)])
    assert sorted(results, key=len) == [[], list(range(1, LATEST_VERSION + 1))]
    with duckdb.connect(path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT version, count(*) FROM meta.schema_migrations GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert rows == [(m.version, 1) for m in MIGRATIONS]


def test_migrations_are_numbered_without_gaps_and_each_says_what_it_does():
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert all(m.description for m in MIGRATIONS)
    assert schema.load_migrations() == MIGRATIONS


def test_new_tables_ddl_comes_from_the_declaration():
    for rel in tables():
        ddl = rel.create_sql()
        assert ddl.startswith(f"CREATE TABLE {rel.name} (")
        for col in rel.columns:
            assert f'"{col.name}" {col.type}' in ddl


def test_the_lake_dialect_drops_only_what_ducklake_cannot_hold():
    from pgy_pipeline.warehouse.schema import lake_sql

    sql = (
        'CREATE TABLE m.t (\n    "version" INTEGER NOT NULL,\n    PRIMARY KEY ("version")\n);\n'
        "ALTER TABLE a.b ADD COLUMN n BIGINT NOT NULL DEFAULT 0;\n"
        "ALTER TABLE a.b ALTER COLUMN n DROP DEFAULT;\n"
        "UPDATE a.b SET x = 1 WHERE y IS NOT NULL;\n"
    )
    assert lake_sql(sql) == (
        'CREATE TABLE m.t (\n    "version" INTEGER NOT NULL\n);\n'
        "ALTER TABLE a.b ADD COLUMN n BIGINT DEFAULT 0;\n"
        "\n"
        "UPDATE a.b SET x = 1 WHERE y IS NOT NULL;\n"
    )
