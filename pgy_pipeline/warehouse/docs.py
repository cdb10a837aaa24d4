"""Renders ``docs/tables.md``, the analysts' reference, from the declarations in
:mod:`pgy_pipeline.warehouse.tables`. ``python -m pgy_pipeline.warehouse.docs`` rewrites the file;
``--check`` exits 1 when it is out of date (the test suite checks it too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pgy_pipeline.warehouse.pugongying import FIELD_MAPPINGS, METRICS_TABLE
from pgy_pipeline.warehouse.schema import LATEST_VERSION
from pgy_pipeline.warehouse.tables import RELATIONS, Relation

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "tables.md"

INTRO = """# Tables and views (the SQL contract)

<!-- Generated from pgy_pipeline/warehouse/tables.py by `python -m pgy_pipeline.warehouse.docs`; do not edit by hand. -->

All tables live in one DuckDB file: `PGY_DUCKDB_PATH`, by default `data/pgy.duckdb` with a token and
`data/pgy_demo.duckdb` without one (simulated data). Dagster asset keys match `schema.table` names:
asset `raw/note_pages` is table `raw.note_pages`.

Partitions are `creator_id` × `snapshot_date`. A partition's rows are always replaced whole, in one
transaction: a query sees a partition's old rows or its new rows, never a mix. The same column
descriptions are attached to the assets in the Dagster UI (`dagster/column_schema`) and to the
DuckDB columns themselves (`COMMENT ON COLUMN`), so `SELECT column_name, comment FROM duckdb_columns()`
shows them in any SQL tool.

The layout is versioned: this release writes schema version {version} (`meta.schema_migrations`).
Upgrading the package upgrades an existing file the first time the pipeline writes to it, in one
transaction; a file written by a newer release is refused rather than changed.
"""

EXAMPLES = """## Example queries
```sql
-- Who grew fastest since the previous snapshot (30-day notes)?
SELECT c.display_name, m.snapshot_date, m.read_gain, m.read_median
FROM analytics.creator_engagement_metrics m
JOIN analytics.creators c USING (creator_id)
WHERE m."window" = '30d' AND m.segment = 'all'
ORDER BY m.snapshot_date DESC, m.read_gain DESC NULLS LAST;

-- Organic versus cooperation medians over 90 days, latest snapshot
SELECT creator_id, segment, note_count, read_median, interaction_median
FROM analytics.creator_engagement_metrics
WHERE "window" = '90d' AND segment <> 'all'
QUALIFY snapshot_date = max(snapshot_date) OVER (PARTITION BY creator_id);

-- Reads of one note across daily snapshots
SELECT snapshot_date, read_num, like_num FROM analytics.notes WHERE note_id = '...' ORDER BY 1;
```
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_relation(rel: Relation) -> str:
    """One ``## schema.name`` section: description, notes and a column table."""
    lines = [f"## {rel.name}", f"{'View. ' if rel.kind == 'view' else ''}{rel.description}"]
    if rel.notes:
        lines += ["", rel.notes]
    lines += ["", "| column | type | null | unit | meaning |", "|---|---|---|---|---|"]
    for c in rel.columns:
        null = "yes" if c.nullable else "no"
        lines.append(f"| {c.name} | {c.type} | {null} | {_cell(c.unit)} | {_cell(c.description)} |")
    return "\n".join(lines) + "\n"


MAPPING_INTRO = f"""## Pugongying's figures and ours
Pugongying does not publish its formulas. These are inferred from responses recorded from its own
creator endpoints (one creator, December 2025, public repository noir-madlax/GoodGame): evidence, not
proof. Columns are those of `{METRICS_TABLE}` unless qualified. The main gap: this endpoint returns
no comments (nor shares or impressions), so every interaction figure here is likes + collects.
"""


def render_mappings() -> str:
    """The table of Pugongying fields against our columns (from :mod:`pgy_pipeline.warehouse.pugongying`)."""
    lines = [
        MAPPING_INTRO,
        "| Pugongying | our column | our formula | what differs, and why |",
        "|---|---|---|---|",
    ]
    for m in FIELD_MAPPINGS:
        columns = ", ".join(f"`{c}`" for c in m.columns) or "none"
        lines.append(f"| {_cell(m.pugongying)} | {columns} | {_cell(m.formula)} | {_cell(m.differs)} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    """The whole of ``docs/tables.md``."""
    parts = [INTRO.format(version=LATEST_VERSION)]
    parts += [render_relation(r) for r in RELATIONS]
    parts.append(render_mappings())
    parts.append(EXAMPLES)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgy_pipeline.warehouse.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/tables.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            print(f"{DOC_PATH} is out of date: run python -m pgy_pipeline.warehouse.docs", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
