"""Dagster metadata built from the warehouse's declarations and query results."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dagster import TableColumn, TableColumnConstraints, TableSchema

from pgy_pipeline.warehouse.tables import relation


def column_schema(name: str) -> TableSchema:
    """The Dagster table schema of one declared relation (``schema.table``)."""
    return TableSchema(
        columns=[
            TableColumn(
                name=c.name,
                type=c.type,
                description=c.description + (f" Unit: {c.unit}." if c.unit else ""),
                constraints=TableColumnConstraints(nullable=c.nullable),
            )
            for c in relation(name).columns
        ]
    )


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small markdown table for a UI preview (cells cut at 60 characters)."""

    def cell(v: object) -> str:
        text = "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        return text.replace("|", "\\|").replace("\n", " ")[:60]

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
