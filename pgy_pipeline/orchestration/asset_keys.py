"""Every asset's key, and the one declaration of the snapshot assets.

Jobs, sensors and assets import their keys from here, so no module imports another's assets to name
them. :data:`SNAPSHOT_ASSETS` declares the creator x date (or cohort x date) partitioned assets: the
asset factory (``assets.build_snapshot_assets``) builds one asset per entry, the snapshot job selects
them all and the rebuild job those that make no API call, and ``build_defs`` flags every one of them
as simulated without a token. A new snapshot asset is one entry here (and its step in ``assets.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey

NOTE_PAGES_KEY = AssetKey(["raw", "note_pages"])
NOTES_KEY = AssetKey(["analytics", "notes"])
METRICS_KEY = AssetKey(["analytics", "creator_engagement_metrics"])
CREATORS_KEY = AssetKey(["analytics", "creators"])
PEER_PERCENTILES_KEY = AssetKey(["analytics", "creator_peer_percentiles"])
ANOMALIES_KEY = AssetKey(["analytics", "anomalies"])
REPORT_KEY = AssetKey(["reports", "creator_report"])
PUGONGYING_RAW_KEY = AssetKey(["raw", "pugongying_note_rates"])
PUGONGYING_KEY = AssetKey(["analytics", "pugongying_note_rates"])


@dataclass(frozen=True)
class SnapshotAsset:
    """One snapshot asset: partitioned as the layout says, one run per range (single-run backfills)."""

    key: AssetKey
    table: str  # the relation it writes, ``schema.name`` (its column schema in the UI)
    kinds: frozenset[str]
    description: str
    deps: tuple[AssetKey, ...] = ()
    checks: tuple[tuple[str, bool], ...] = ()  # (check name, blocking)
    calls_api: bool = False  # fetches from the API: left out of ``analytics_rebuild_job``
    opt_in: bool = False  # in the jobs only when PGY_PUGONGYING_FIGURES is not 'off'


NOTE_PAGES = SnapshotAsset(
    NOTE_PAGES_KEY,
    "raw.note_pages",
    frozenset({"duckdb", "python"}),
    "Raw API response pages of each creator's notes, one row per page, body verbatim.",
    calls_api=True,
)
NOTES = SnapshotAsset(
    NOTES_KEY,
    "analytics.notes",
    frozenset({"duckdb", "sql"}),
    "Typed notes, one row per note per snapshot, rebuilt from the stored raw pages (no API call).",
    deps=(NOTE_PAGES_KEY,),
    checks=(("note_ids_unique_and_present", True), ("notes_reconcile_with_total", False)),
)
METRICS = SnapshotAsset(
    METRICS_KEY,
    "analytics.creator_engagement_metrics",
    frozenset({"duckdb", "sql"}),
    "Per-creator engagement metrics by window (30d, 90d, all) and segment (all, organic, cooperation).",
    deps=(NOTES_KEY,),
    checks=(("metric_rates_within_bounds", True),),
)
PUGONGYING_RAW = SnapshotAsset(
    PUGONGYING_RAW_KEY,
    "raw.pugongying_note_rates",
    frozenset({"duckdb", "python"}),
    "Pugongying's own note figures, each answer verbatim: at most 4 calls per creator (opt-in: "
    "PGY_PUGONGYING_FIGURES).",
    deps=(NOTES_KEY,),
    calls_api=True,
    opt_in=True,
)
PUGONGYING = SnapshotAsset(
    PUGONGYING_KEY,
    "analytics.pugongying_note_rates",
    frozenset({"duckdb", "sql"}),
    "Pugongying's own note figures typed, beside ours in analytics.metrics_vs_pugongying (no API call).",
    deps=(PUGONGYING_RAW_KEY,),
    opt_in=True,
)
# In dependency order: the snapshot job runs them in this order.
SNAPSHOT_ASSETS: tuple[SnapshotAsset, ...] = (NOTE_PAGES, NOTES, METRICS, PUGONGYING_RAW, PUGONGYING)


def snapshot_keys(*, calls_api: bool | None = None, opt_in: bool = True) -> list[AssetKey]:
    """The snapshot assets' keys; only those that do (True) or do not (False) call the API if given;
    without the opt-in ones unless ``opt_in``."""
    return [
        a.key
        for a in SNAPSHOT_ASSETS
        if (calls_api is None or a.calls_api == calls_api) and (opt_in or not a.opt_in)
    ]
