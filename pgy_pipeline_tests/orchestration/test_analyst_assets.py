"""The analyst's assets in Dagster: date partitions mapped from the creator x date metrics, per-date
metadata, checks, the report's link, and the sensor that refreshes them after metrics change."""

from __future__ import annotations

from pathlib import Path

import duckdb
from dagster import (
    AssetCheckSeverity,
    AssetMaterialization,
    DagsterInstance,
    MultiPartitionKey,
    build_sensor_context,
    materialize,
)

from pgy_pipeline.definitions import Settings, build_defs
from pgy_pipeline.orchestration.analyst_assets import (
    ANALYST_ASSETS,
    ANOMALIES_KEY,
    BY_DATE,
    PEER_PERCENTILES_KEY,
    REPORT_KEY,
    analyst_refresh_sensor,
)
from pgy_pipeline.orchestration.assets import METRICS_KEY
from pgy_pipeline.orchestration.dagster_internals import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from pgy_pipeline.orchestration.partitions import (
    date_partitions,
    note_partitions,
    snapshot_date_partitions,
    today_shanghai,
)
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline_tests.analyst_support import fixture_roster, write_creators, write_snapshots


def _roster_file(tmp_path: Path):
    roster = fixture_roster(n_creators=6, n_snapshots=4)
    db = tmp_path / "data" / "pgy.duckdb"
    db.parent.mkdir()
    with duckdb.connect(str(db)) as conn:
        write_creators(conn, roster.creators)
        write_snapshots(conn, roster.snapshots)
    return db, roster


def _metadata(instance: DagsterInstance, key, partition: str) -> dict:
    for record in instance.fetch_materializations(key, limit=100).records:
        mat = record.asset_materialization
        if mat is not None and mat.partition == partition:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {key} for {partition}")


def test_a_date_partition_reads_every_creator_partition_of_that_day(instance):
    day = "2026-03-10"
    creators = ["a" * 24, "b" * 24]
    instance.add_dynamic_partitions("creators", creators)
    upstream = BY_DATE.get_upstream_mapped_partitions_result_for_partitions(
        snapshot_date_partitions.subset_with_partition_keys([day]),
        snapshot_date_partitions,
        note_partitions,
        dynamic_partitions_store=instance,
    ).partitions_subset.get_partition_keys()
    assert sorted(upstream) == [MultiPartitionKey({"creator": c, "date": day}) for c in creators]


def test_materializing_a_range_of_days_writes_each_date_with_its_figures_checks_and_report(
    tmp_path, instance
):
    db, roster = _roster_file(tmp_path)
    days = [d.isoformat() for d in roster.days]
    result = materialize(
        ANALYST_ASSETS,
        instance=instance,
        resources={"duckdb": PgyDuckDBResource(database=str(db), lock_wait_s=2.0)},
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[-1],
        },
    )
    assert result.success
    with duckdb.connect(str(db), read_only=True) as conn:
        pct = dict(
            conn.execute(
                "SELECT snapshot_date::VARCHAR, count(*) FROM analytics.creator_peer_percentiles GROUP BY 1"
            ).fetchall()
        )
        found = dict(
            conn.execute(
                "SELECT snapshot_date::VARCHAR, count(*) FROM analytics.anomalies GROUP BY 1"
            ).fetchall()
        )
    for day in days:
        assert _metadata(instance, PEER_PERCENTILES_KEY, day)["dagster/row_count"] == pct[day] > 0
        assert _metadata(instance, ANOMALIES_KEY, day)["dagster/row_count"] == found.get(day, 0)
        report = _metadata(instance, REPORT_KEY, day)
        assert report["path"] == str(db.parent / "reports" / f"{day}.html")
        assert Path(report["path"]).exists() and report["url"].startswith("file:///")
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["percentiles_within_bounds"].passed
    warn = checks["no_anomalies"]
    assert not warn.passed and warn.severity == AssetCheckSeverity.WARN
    assert warn.metadata["count"].value == sum(found.values()) == 2
    assert "note_disappeared" in warn.metadata["first_rows"].value
    assert "read_spike" in warn.metadata["first_rows"].value


def test_the_assets_declare_their_columns_and_are_in_the_graph(tmp_path):
    defs = build_defs(Settings.from_env({"PGY_DUCKDB_PATH": str(tmp_path / "x.duckdb")}))
    graph = defs.resolve_asset_graph()
    for key in (PEER_PERCENTILES_KEY, ANOMALIES_KEY, REPORT_KEY):
        # dates from the project's first snapshot day: a new file has none, so today
        assert graph.get(key).partitions_def == date_partitions(today_shanghai().isoformat())
    spec = graph.get(ANOMALIES_KEY)
    assert "dagster/column_schema" in spec.metadata
    assert METRICS_KEY in graph.get(PEER_PERCENTILES_KEY).parent_keys
    assert defs.resolve_job_def("analyst_job") is not None
    assert defs.resolve_sensor_def("analyst_refresh_sensor") is not None


def test_the_refresh_sensor_asks_once_for_each_block_of_days_whose_metrics_changed(instance):
    for creator in ("a" * 24, "b" * 24):
        for day in ("2026-03-09", "2026-03-10"):
            instance.report_runless_asset_event(
                AssetMaterialization(METRICS_KEY, partition=f"{creator}|{day}")
            )
    context = build_sensor_context(instance=instance)
    requests = analyst_refresh_sensor(context)
    # consecutive days: one range run, not a run per day
    [request] = requests
    assert request.partition_key is None
    assert (request.tags[ASSET_PARTITION_RANGE_START_TAG], request.tags[ASSET_PARTITION_RANGE_END_TAG]) == (
        "2026-03-09",
        "2026-03-10",
    )
    again = analyst_refresh_sensor(build_sensor_context(instance=instance, cursor=context.cursor))
    assert "no new metrics" in again.skip_message
    instance.report_runless_asset_event(AssetMaterialization(METRICS_KEY, partition=f"{'a' * 24}|2026-03-12"))
    later = analyst_refresh_sensor(build_sensor_context(instance=instance, cursor=context.cursor))
    assert [r.partition_key for r in later] == ["2026-03-12"]
