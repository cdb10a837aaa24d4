"""Where the warehouse's SQL lives: ``pgy_pipeline/warehouse/sql/``, read as package data."""

from __future__ import annotations

from importlib import resources


def sql_file(*parts: str) -> str:
    """The text of ``pgy_pipeline/warehouse/sql/<parts...>``."""
    return resources.files("pgy_pipeline.warehouse").joinpath("sql", *parts).read_text(encoding="utf-8")
