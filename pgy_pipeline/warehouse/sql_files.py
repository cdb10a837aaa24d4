"""Where the warehouse's SQL lives: ``pgy_pipeline/warehouse/sql/``, read as package data; and how
that SQL names the columns of the relations declared in :mod:`pgy_pipeline.warehouse.tables`.

A ``.sql`` file never lists a declared relation's columns by hand: every such list would be one more
place to change when a column is added, and a forgotten one fails silently (the column stays NULL,
as ``read_max`` once did on window-scan days). The file writes a placeholder instead, which
:func:`sql_file` fills from the declaration:

``{columns:schema.name}``
    Every column of the relation in declared order, quoted: ``"creator_id", "snapshot_date",
    "window", ...``. An INSERT names its columns with it, and its last SELECT picks them by name
    from a relation that computes each one (``expression AS name``)::

        INSERT INTO analytics.notes ({columns:analytics.notes})
        SELECT {columns:analytics.notes}
        FROM _ranked
        WHERE ...

    so rows go in by name, never by position, and a column the query does not compute fails the
    statement ("Referenced column ... not found") instead of being left NULL.

``{set_null_needing_every_note:schema.name}``
    ``"note_count" = NULL, "video_note_count" = NULL, ...`` for every column declared
    ``needs_every_note``: the SET list of an UPDATE that clears them.

A placeholder is exactly ``{form:schema.name}``, lowercase and without spaces; no other SQL of ours
looks like that (a struct literal quotes its keys, ``{'k': v}``). An unknown form or relation
raises. Migrations (``sql/migrations/``) are frozen history and are read as written, never filled
(:mod:`pgy_pipeline.warehouse.schema` reads them itself). ``pgy_pipeline_tests/warehouse/
test_sql_files.py`` fails on a hand-written column list in any other file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources

from pgy_pipeline.warehouse.tables import Relation, relation

PLACEHOLDER = re.compile(r"\{([a-z_]+):([a-z_]+\.[a-z_]+)\}")


def _set_null_needing_every_note(rel: Relation) -> str:
    columns = rel.columns_needing_every_note()
    if not columns:
        # an empty SET list is a syntax error far from its cause: name the cause instead
        raise ValueError(f"{rel.name} declares no column with needs_every_note")
    return ", ".join(f"{c.quoted} = NULL" for c in columns)


FORMS: dict[str, Callable[[Relation], str]] = {
    "columns": lambda rel: rel.quoted_columns(),
    "set_null_needing_every_note": _set_null_needing_every_note,
}


def render(text: str) -> str:
    """``text`` with every ``{form:schema.name}`` placeholder filled from the declarations."""

    def fill(match: re.Match[str]) -> str:
        form, name = match.groups()
        if form not in FORMS:
            raise ValueError(f"unknown SQL placeholder {match.group(0)}: the forms are {', '.join(FORMS)}")
        return FORMS[form](relation(name))

    return PLACEHOLDER.sub(fill, text)


def sql_source(*parts: str) -> str:
    """The text of ``pgy_pipeline/warehouse/sql/<parts...>`` as written, placeholders unfilled."""
    return resources.files("pgy_pipeline.warehouse").joinpath("sql", *parts).read_text(encoding="utf-8")


def sql_file(*parts: str) -> str:
    """The SQL of ``pgy_pipeline/warehouse/sql/<parts...>``, ready to run (placeholders filled)."""
    return render(sql_source(*parts))
