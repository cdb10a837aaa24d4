"""The analysts' own DuckDBs open the read replica: the ``duckdb`` command line (duckdb-cli, 1.5.x)
and DuckDB 1.4 LTS, every table and view answering, after real runs on the simulator; and a file the
previous release wrote in DuckDB 2.0's own format, which they refuse, is converted by the next run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from dagster import materialize

from pgy_pipeline.orchestration.analyst_assets import ANALYST_ASSETS
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline.warehouse import storage
from pgy_pipeline.warehouse.fileformat import UNREADABLE_FORMAT, file_storage_version
from pgy_pipeline.warehouse.replica import replica_path
from pgy_pipeline_tests.analyst_support import fixture_roster, write_creators, write_snapshots
from pgy_pipeline_tests.conftest import run_pipeline, setup_creators
from pgy_pipeline_tests.duckdb_readers import (
    PROJECT_ROOT,
    cli_rows,
    cli_version,
    counts_here,
    counts_in_cli,
    counts_in_duckdb_1_4,
    duckdb_cli,
    in_duckdb_1_4,
    relations,
    run_cli,
)

# The analyst tables' SQL (sql/analyst/) run by DuckDB 1.4 on a copy of the replica, through the
# pipeline's own functions (this checkout, imported from the project's root).
_ANALYST_SQL_ON_1_4 = """
import json, shutil, sys
from datetime import date
import duckdb
from pgy_pipeline.warehouse.analyst import rebuild_anomalies, rebuild_peer_percentiles
from pgy_pipeline.warehouse.storage import connect
path, days = sys.argv[1], [date.fromisoformat(d) for d in json.loads(sys.argv[2])]
with connect(path) as conn:
    percentiles = sum(rebuild_peer_percentiles(conn, days).values())
    anomalies = sum(rebuild_anomalies(conn, days).values())
print(json.dumps({"version": duckdb.__version__, "percentiles": percentiles, "anomalies": anomalies}))
"""


def _fill(instance, simulator, api, resource: PgyDuckDBResource) -> list[str]:
    """History for the analyst tables (a roster of past days), today's snapshot fetched from the
    simulator by a real run, and the analyst assets over every day: rows in the tables and views."""
    roster = fixture_roster(n_creators=6, n_snapshots=4)
    with resource.get_connection() as conn:
        write_creators(conn, roster.creators)
        write_snapshots(conn, roster.snapshots)
    creators = setup_creators(instance, simulator, "readers", [30, 12, 45])
    assert run_pipeline(instance, api, resource, creators).success
    days = [d.isoformat() for d in roster.days]
    result = materialize(
        ANALYST_ASSETS,
        instance=instance,
        resources={"duckdb": resource},
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    assert result.success
    return creators


def _storage(path: Path) -> str | None:
    with duckdb.connect(str(path), read_only=True) as conn:
        return file_storage_version(conn)


def test_the_replica_opens_in_the_duckdb_cli_and_duckdb_1_4(tmp_path, simulator, api, instance):
    cli = duckdb_cli()
    db = tmp_path / "data" / "pgy.duckdb"
    resource = PgyDuckDBResource(database=str(db), lock_wait_s=2.0)
    _fill(instance, simulator, api, resource)
    replica = replica_path(str(db))
    names = relations(replica)
    expected = counts_here(replica, names)
    assert expected["analytics.notes"] > 0 and expected["analytics.creator_leaderboard"] >= 9
    assert expected["analytics.creator_peer_percentiles"] > 0 and expected["analytics.anomalies"] > 0

    # as the README tells an analyst
    assert cli_rows(cli, replica, "SELECT count(*) FROM analytics.notes") == [
        [str(expected["analytics.notes"])]
    ]
    board = cli_rows(cli, replica, "SELECT display_name, note_count FROM analytics.creator_leaderboard")
    assert len(board) == expected["analytics.creator_leaderboard"]
    assert counts_in_cli(cli, replica, names) == expected, cli_version(cli)

    version, counts = counts_in_duckdb_1_4(replica, names)
    assert version.startswith("1.4") and counts == expected

    # DuckDB 1.4 runs the analyst tables' SQL on the file too, and the file stays readable by the CLI
    desk = tmp_path / "desk.duckdb"
    shutil.copyfile(replica, desk)
    with duckdb.connect(str(desk), read_only=True) as conn:
        days = [
            r[0].isoformat()
            for r in conn.execute(
                "SELECT DISTINCT snapshot_date FROM analytics.creator_peer_percentiles ORDER BY 1"
            ).fetchall()
        ]
    rebuilt = in_duckdb_1_4(_ANALYST_SQL_ON_1_4, str(desk), json.dumps(days), cwd=PROJECT_ROOT)
    assert rebuilt["version"].startswith("1.4")
    assert rebuilt["percentiles"] == expected["analytics.creator_peer_percentiles"]
    assert rebuilt["anomalies"] == expected["analytics.anomalies"]
    assert counts_in_cli(cli, desk, names) == expected


@pytest.mark.skipif(
    int(duckdb.__version__.split(".")[0]) < 2, reason="only DuckDB 2.0 writes the v2.0.0 format"
)
def test_a_file_the_previous_release_wrote_is_converted_by_the_next_run(
    tmp_path, simulator, api, instance, monkeypatch
):
    cli = duckdb_cli()
    db = tmp_path / "data" / "pgy.duckdb"
    db.parent.mkdir()
    resource = PgyDuckDBResource(database=str(db), lock_wait_s=2.0)
    # The previous release: DuckDB 2.0's own format, for the file and the replica copied from it.
    duckdb.connect(str(db)).close()
    monkeypatch.setattr(storage, "needs_conversion", lambda version: False)
    creators = _fill(instance, simulator, api, resource)
    monkeypatch.undo()
    replica = replica_path(str(db))
    assert _storage(db) == _storage(replica) == "v2.0.0+"
    refused = run_cli(cli, replica, "SELECT count(*) FROM analytics.notes")
    assert refused.returncode != 0 and UNREADABLE_FORMAT in refused.stderr
    names = relations(db)
    before = counts_here(db, names)

    # The upgrade's first run converts the file, then writes, then publishes the replica.
    result = run_pipeline(instance, api, resource, creators)
    assert result.success
    logs = "\n".join(e.message for e in instance.all_logs(result.run_id) if e.message)
    assert "converted the DuckDB file" in logs and "every one kept" in logs
    assert _storage(db) == _storage(replica) == "v1.0.0+"
    assert (db.parent / "pgy.duckdb.storage-v2.0.0.bak").exists()
    after = counts_here(replica, names)
    assert after == before  # a rerun of stored creators adds nothing and loses nothing
    assert counts_in_cli(cli, replica, names) == after
    version, counts = counts_in_duckdb_1_4(replica, names)
    assert version.startswith("1.4") and counts == after
