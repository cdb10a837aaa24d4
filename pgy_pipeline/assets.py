"""The three assets: raw API pages -> normalized notes -> per-creator engagement metrics.

All three are partitioned by creator x snapshot date and take ``BackfillPolicy.single_run()``, so a
backfill over many creators is one run (one process), not one run per creator. Each step works on
every partition of its run at once and replaces those partitions in DuckDB in one transaction.
"""

import pyarrow as pa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    BackfillPolicy,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from pgy_pipeline.client import NotesQuery
from pgy_pipeline.errors import AccountError, PastSnapshotDateError
from pgy_pipeline.guard import raise_if_guarded, trip_guard
from pgy_pipeline.ingest import fetch_creators
from pgy_pipeline.partitions import (
    context_partition_keys,
    note_partitions,
    partition_key,
    today_shanghai,
)
from pgy_pipeline.registry import CreatorRegistryResource
from pgy_pipeline.resources import PgyApiResource
from pgy_pipeline.spool import Spool
from pgy_pipeline.storage import (
    PartitionKey,
    PgyDuckDBResource,
    claim_data_source,
    ensure_schema,
    rebuild_metrics,
    rebuild_notes,
    replace_creators,
    replace_raw_pages,
    stored_raw_keys,
)
from pgy_pipeline.tables import column_schema

GROUP = "pgy"
NOTE_PAGES_KEY = AssetKey(["raw", "note_pages"])
NOTES_KEY = AssetKey(["analytics", "notes"])
METRICS_KEY = AssetKey(["analytics", "creator_engagement_metrics"])
CREATORS_KEY = AssetKey(["analytics", "creators"])


class NotePagesConfig(Config):
    """Run config of ``raw/note_pages``."""

    refresh: bool = Field(
        default=False,
        description="Fetch again even for creators whose pages for today are already stored (costs calls).",
    )
    advertise_switch: str = Field(default="ALL", description="advertiseSwitch: ALL | ORGANIC_ONLY.")
    order_type: str = Field(default="LATEST", description="orderType: LATEST | MOST_READ | MOST_INTERACT.")
    note_type: str = Field(default="ALL", description="noteType: ALL | COOPERATION | PHOTO_TEXT | VIDEO.")
    is_third_platform: str = Field(default="NO", description="isThirdPlatform: NO | YES.")


def _keys_text(keys: list[PartitionKey] | set[PartitionKey], limit: int = 10) -> str:
    keys = sorted(keys)
    shown = ", ".join(f"{c}|{d.isoformat()}" for c, d in keys[:limit])
    return shown + (f" ... and {len(keys) - limit} more" if len(keys) > limit else "")


def _md_table(header: list[str], rows: list[tuple]) -> str:
    def cell(v: object) -> str:
        text = "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        return text.replace("|", "\\|").replace("\n", " ")[:60]

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@asset(
    key=NOTE_PAGES_KEY,
    partitions_def=note_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"duckdb", "python"},
    pool="pgy_api",
)
def note_pages(
    context: AssetExecutionContext,
    config: NotePagesConfig,
    pgy_api: PgyApiResource,
    duckdb: PgyDuckDBResource,
) -> MaterializeResult:
    """Raw API response pages of each creator's notes, one row per page, body verbatim."""
    keys = context_partition_keys(context)
    query = NotesQuery(config.advertise_switch, config.order_type, config.note_type, config.is_third_platform)
    today = today_shanghai()
    if pgy_api.simulated_warning:
        context.log.warning(pgy_api.simulated_warning)

    with duckdb.get_connection() as conn:
        ensure_schema(conn)
        claim_data_source(conn, pgy_api.data_source, duckdb.database)
        stored = stored_raw_keys(conn, keys)

    past = sorted(k for k in keys if k[1] != today and (config.refresh or k not in stored))
    if past:
        raise PastSnapshotDateError(
            f"cannot fetch raw pages for {_keys_text(past)}: the API only serves the present, so raw "
            f"pages can only be fetched for today ({today.isoformat()}, Asia/Shanghai). To rebuild "
            "analytics/notes and analytics/creator_engagement_metrics for past dates, materialize "
            "those assets alone: they read the raw pages already stored and make no API call. "
            "No API call was made."
        )

    spool = Spool(duckdb.spool_path)
    todo = [k for k in keys if config.refresh or k not in stored]
    pages_by_key, from_spool = {}, []
    for key in todo:
        # Spooled pages were fetched after anything stored (the spool is cleared on every write), so
        # even a refresh takes them rather than paying for the same pages again.
        spooled = spool.load(*key)
        if spooled is not None:
            pages_by_key[key] = spooled
            from_spool.append(key)
    to_fetch = [k for k in todo if k not in pages_by_key]
    context.log.info(
        f"{len(keys)} partition(s): {len(keys) - len(todo)} already stored "
        f"(skipped; set refresh to fetch again), {len(from_spool)} from the spool (fetched earlier, "
        f"not yet written), {len(to_fetch)} to fetch from the API"
    )

    failures: dict[str, Exception] = {}
    stats: dict = {"calls": 0, "retries": 0, "outcomes": {}}
    drift: dict[str, list[str]] = {}
    if to_fetch:
        raise_if_guarded(context.instance)
        client = pgy_api.get_client()
        try:
            step = max(1, len(to_fetch) // 10)

            def progress(done: int, total: int, outcome) -> None:
                if done % step == 0 or done == total:
                    context.log.info(
                        f"fetched {done}/{total} creators ({len(outcome.failures)} failed), "
                        f"{client.stats.calls} API calls, {client.stats.retries} retries so far"
                    )

            outcome = fetch_creators(
                client, [c for c, _ in to_fetch], today, query=query, spool=spool, progress=progress
            )
        finally:
            client.close()
        stats = client.stats.as_dict()
        for creator_id, scan in outcome.scans.items():
            pages_by_key[(creator_id, today)] = scan.pages
            if scan.drift:
                drift[creator_id] = scan.drift
                context.log.warning(f"creator {creator_id}: " + "; ".join(scan.drift))
        failures.update(outcome.failures)
        account = next((e for e in outcome.failures.values() if isinstance(e, AccountError)), None)
        if account is not None:
            state = trip_guard(context.instance, account)
            context.log.error(state.describe())

    rows = 0
    if pages_by_key:
        with duckdb.get_connection() as conn:
            rows = replace_raw_pages(conn, pages_by_key)
    for key in pages_by_key:
        spool.discard(*key)

    metadata = {
        "dagster/row_count": rows,
        "dagster/column_schema": column_schema("raw.note_pages"),
        "partitions_written": len(pages_by_key),
        "partitions_already_stored": len(keys) - len(todo),
        "partitions_from_spool": len(from_spool),
        "api_calls": stats["calls"],
        "api_retries": stats["retries"],
        "api_outcomes": MetadataValue.json(stats["outcomes"]),
        "data_source": pgy_api.data_source,
        "query": MetadataValue.json(query.params("<creator>", 1) | {"pageNumber": "1.."}),
    }
    if drift:
        metadata["list_drift"] = MetadataValue.json(drift)
    if failures:
        for creator_id, snapshot_date in pages_by_key:
            context.log_event(
                AssetMaterialization(
                    asset_key=NOTE_PAGES_KEY,
                    partition=partition_key(creator_id, snapshot_date),
                    metadata={
                        "api_calls": sum(p.attempts for p in pages_by_key[(creator_id, snapshot_date)])
                    },
                )
            )
        lines = [f"- {c}: {type(e).__name__}: {e}" for c, e in sorted(failures.items())]
        raise Failure(
            description=(
                f"{len(failures)} of {len(keys)} creator(s) failed; {len(pages_by_key)} written, "
                f"{len(keys) - len(todo)} already stored. Rerun to fetch only the failed ones.\n"
                + "\n".join(lines)
            ),
            metadata={
                **metadata,
                "failed_creators": MetadataValue.json({c: str(e) for c, e in failures.items()}),
            },
        )
    return MaterializeResult(metadata=metadata)


@asset(
    key=NOTES_KEY,
    deps=[NOTE_PAGES_KEY],
    partitions_def=note_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"duckdb", "sql"},
    pool="pgy_duckdb",
    check_specs=[
        AssetCheckSpec("note_ids_unique_and_present", asset=NOTES_KEY, blocking=True),
        AssetCheckSpec("notes_reconcile_with_total", asset=NOTES_KEY),
    ],
)
def notes(context: AssetExecutionContext, duckdb: PgyDuckDBResource) -> MaterializeResult:
    """Typed notes, one row per note per snapshot, rebuilt from the stored raw pages (no API call)."""
    keys = context_partition_keys(context)
    with duckdb.get_connection() as conn:
        ensure_schema(conn)
        missing = rebuild_notes(conn, keys)
        conn.execute("CREATE OR REPLACE TEMP TABLE _run_keys AS SELECT * FROM _keys")
        rows, issues = conn.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE len(quality_issues) > 0)
            FROM analytics.notes JOIN _run_keys USING (creator_id, snapshot_date)
            """
        ).fetchall()[0]
        rejects = conn.execute(
            "SELECT reason, count(*) FROM analytics.note_rejects JOIN _run_keys USING (creator_id, snapshot_date) "
            "GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        bad_ids = conn.execute(
            """
            SELECT creator_id, snapshot_date, note_id, count(*) AS n
            FROM analytics.notes JOIN _run_keys USING (creator_id, snapshot_date)
            GROUP BY ALL HAVING n > 1 OR note_id IS NULL OR note_id = ''
            LIMIT 20
            """
        ).fetchall()
        reconcile = conn.execute(
            """
            WITH reported AS (
                SELECT creator_id, snapshot_date, arg_max(total, page_number) AS total,
                       count(DISTINCT total) AS totals_seen
                FROM raw.note_pages JOIN _run_keys USING (creator_id, snapshot_date) GROUP BY ALL
            ), loaded AS (
                SELECT creator_id, snapshot_date, count(*) AS notes
                FROM analytics.notes JOIN _run_keys USING (creator_id, snapshot_date) GROUP BY ALL
            )
            SELECT r.creator_id, r.snapshot_date, r.total, coalesce(l.notes, 0) AS notes, r.totals_seen
            FROM reported r LEFT JOIN loaded l USING (creator_id, snapshot_date)
            WHERE r.total IS DISTINCT FROM coalesce(l.notes, 0) OR r.totals_seen > 1
            ORDER BY 1, 2
            """
        ).fetchall()
        top = conn.execute(
            """
            SELECT creator_id, note_id, title, published_date, read_num, like_num, collect_num
            FROM analytics.notes JOIN _run_keys USING (creator_id, snapshot_date)
            ORDER BY read_num DESC NULLS LAST LIMIT 10
            """
        ).fetchall()

    checks = [
        AssetCheckResult(
            check_name="note_ids_unique_and_present",
            passed=not bad_ids,
            severity=AssetCheckSeverity.ERROR,
            metadata={"violations": MetadataValue.json([[str(v) for v in r] for r in bad_ids])},
        ),
        AssetCheckResult(
            check_name="notes_reconcile_with_total",
            passed=not reconcile,
            severity=AssetCheckSeverity.WARN,
            description=(
                "notes loaded equal the API's total in every partition"
                if not reconcile
                else "notes loaded differ from the API's total, or the total changed while paging "
                "(notes added or removed meanwhile): some notes may have been missed"
            ),
            metadata={
                "mismatches": MetadataValue.json(
                    [
                        {"partition": f"{c}|{d}", "total": t, "notes": n, "total_changed_while_paging": s > 1}
                        for c, d, t, n, s in reconcile[:50]
                    ]
                ),
                "mismatch_count": len(reconcile),
            },
        ),
    ]
    metadata = {
        "dagster/row_count": rows,
        "dagster/column_schema": column_schema("analytics.notes"),
        "api_calls": 0,
        "notes_with_quality_issues": issues,
        "rejected_items": MetadataValue.json({r: n for r, n in rejects}),
        "top_notes_by_reads": MetadataValue.md(
            _md_table(["creator", "note", "title", "published", "reads", "likes", "collects"], top)
        ),
    }
    if missing:
        raise Failure(
            description=(
                f"no raw pages stored for {_keys_text(missing)}: materialize raw/note_pages for those "
                f"partitions first (only possible for today). The other {len(keys) - len(missing)} "
                "partition(s) were rebuilt."
            ),
            metadata=metadata,
        )
    return MaterializeResult(metadata=metadata, check_results=checks)


@asset(
    key=METRICS_KEY,
    deps=[NOTES_KEY],
    partitions_def=note_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    group_name=GROUP,
    kinds={"duckdb", "sql"},
    pool="pgy_duckdb",
    check_specs=[AssetCheckSpec("metric_rates_within_bounds", asset=METRICS_KEY, blocking=True)],
)
def creator_engagement_metrics(
    context: AssetExecutionContext, duckdb: PgyDuckDBResource
) -> MaterializeResult:
    """Per-creator engagement metrics by window (30d, 90d, all) and segment (all, organic, cooperation)."""
    keys = context_partition_keys(context)
    with duckdb.get_connection() as conn:
        ensure_schema(conn)
        missing = rebuild_metrics(conn, keys)
        conn.execute("CREATE OR REPLACE TEMP TABLE _run_keys AS SELECT * FROM _keys")
        rows = conn.execute(
            "SELECT count(*) FROM analytics.creator_engagement_metrics JOIN _run_keys USING (creator_id, snapshot_date)"
        ).fetchall()[0][0]
        out_of_bounds = conn.execute(
            """
            SELECT creator_id, snapshot_date, "window", segment,
                   engagement_rate, hundred_like_rate, thousand_like_rate
            FROM analytics.creator_engagement_metrics JOIN _run_keys USING (creator_id, snapshot_date)
            WHERE NOT (coalesce(hundred_like_rate, 0) BETWEEN 0 AND 1)
               OR NOT (coalesce(thousand_like_rate, 0) BETWEEN 0 AND 1)
               OR NOT (coalesce(engagement_rate, 0) BETWEEN 0 AND 1)
            LIMIT 20
            """
        ).fetchall()
        headline = conn.execute(
            """
            SELECT creator_id, snapshot_date, note_count, read_median, interaction_median,
                   engagement_rate, hundred_like_rate, notes_per_week, read_gain
            FROM analytics.creator_engagement_metrics JOIN _run_keys USING (creator_id, snapshot_date)
            WHERE "window" = '30d' AND segment = 'all'
            ORDER BY read_median DESC NULLS LAST LIMIT 20
            """
        ).fetchall()
    metadata = {
        "dagster/row_count": rows,
        "dagster/column_schema": column_schema("analytics.creator_engagement_metrics"),
        "api_calls": 0,
        "headline_30d": MetadataValue.md(
            _md_table(
                [
                    "creator",
                    "snapshot",
                    "notes",
                    "read median",
                    "interaction median",
                    "engagement",
                    "100-like rate",
                    "notes/week",
                    "read gain",
                ],
                headline,
            )
        ),
    }
    if missing:
        raise Failure(
            description=f"no raw pages stored for {_keys_text(missing)}: nothing to compute for them.",
            metadata=metadata,
        )
    check = AssetCheckResult(
        check_name="metric_rates_within_bounds",
        passed=not out_of_bounds,
        severity=AssetCheckSeverity.ERROR,
        metadata={"violations": MetadataValue.json([[str(v) for v in r] for r in out_of_bounds])},
    )
    return MaterializeResult(metadata=metadata, check_results=[check])


@asset(
    key=CREATORS_KEY,
    group_name=GROUP,
    kinds={"duckdb", "yaml"},
    pool="pgy_duckdb",
)
def creators(
    context: AssetExecutionContext, creator_registry: CreatorRegistryResource, duckdb: PgyDuckDBResource
) -> MaterializeResult:
    """Creator names, tags and active flags from the registry file, for joins in SQL."""
    registry = creator_registry.load()
    for problem in registry.problems:
        context.log.warning(problem)
    table = pa.table(
        {
            "creator_id": [c.creator_id for c in registry.creators],
            "display_name": [c.display_name for c in registry.creators],
            "tags": [list(c.tags) for c in registry.creators],
            "active": [c.active for c in registry.creators],
        },
        schema=pa.schema(
            [
                ("creator_id", pa.string()),
                ("display_name", pa.string()),
                ("tags", pa.list_(pa.string())),
                ("active", pa.bool_()),
            ]
        ),
    )
    with duckdb.get_connection() as conn:
        ensure_schema(conn)
        replace_creators(conn, table)
    return MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "dagster/column_schema": column_schema("analytics.creators"),
            "active_creators": sum(c.active for c in registry.creators),
            "registry_problems": MetadataValue.json(registry.problems),
            "registry_fingerprint": registry.fingerprint,
        }
    )
