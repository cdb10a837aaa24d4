"""The SQL files name declared columns only through placeholders filled from tables.py.

A column list written by hand in a ``.sql`` file has to be changed with every new column, and one that
is forgotten fails silently: ``read_max`` stayed set on window-scan days because the hand-written SET
list of ``metrics_window_scans.sql`` missed it. :func:`hand_written_column_lists` finds such lists;
the suite runs it over every file under ``sql/`` but the frozen migrations.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from pgy_pipeline.warehouse import sql_files
from pgy_pipeline.warehouse.schema import ensure_schema
from pgy_pipeline.warehouse.sql_files import render, sql_file, sql_source
from pgy_pipeline.warehouse.storage import partition_keys
from pgy_pipeline.warehouse.tables import CREATOR_ENGAGEMENT_METRICS, NOTES, RELATIONS

SQL_ROOT = Path(sql_files.__file__).resolve().parent / "sql"
DECLARED_TABLES = [r for r in RELATIONS if r.kind == "table"]
# A SELECT list that passes through this share of a declared table's columns, and at least
# SELECT_MIN of them, is a copy of its column list. Views select smaller, chosen subsets (their
# layouts are checked against the declarations by test_schema.py), e.g. note_history 11 of the 19
# columns of analytics.notes; the minimum keeps a few shared key columns (creator_id, snapshot_date,
# page_number, list_position) from reading as a copy of a small table such as analytics.note_rejects.
SELECT_SHARE = 2 / 3
SELECT_MIN = 5
# A SET list of this many columns of one table is a list of columns treated alike.
SET_COLUMNS = 3


def checked_files() -> list[Path]:
    return sorted(p for p in SQL_ROOT.rglob("*.sql") if "migrations" not in p.relative_to(SQL_ROOT).parts)


# --- a small SQL tokenizer: enough to find column lists, with comments and literals out of the way


@dataclass(frozen=True)
class Token:
    kind: str  # word, placeholder, other
    text: str  # words lowercased unless quoted; quoted identifiers unquoted
    quoted: bool = False

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and not self.quoted and self.text in words


_TOKEN = re.compile(
    r"""(?P<skip>--[^\n]*|/\*.*?\*/|\s+)
      | (?P<string>'(?:[^']|'')*')
      | (?P<placeholder>\{[a-z_]+:[a-z_]+\.[a-z_]+\})
      | (?P<quoted>"(?:[^"]|"")*")
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<other>::|.)""",
    re.VERBOSE | re.DOTALL,
)


def tokenize(sql: str) -> list[Token]:
    out = []
    for m in _TOKEN.finditer(sql):
        kind, text = m.lastgroup, m.group()
        if kind == "skip":
            continue
        if kind == "quoted":
            out.append(Token("word", text[1:-1].replace('""', '"'), quoted=True))
        elif kind == "word":
            out.append(Token("word", text.lower()))
        elif kind == "string":
            out.append(Token("other", "''"))
        else:
            out.append(Token(kind or "other", text))
    return out


def statements(tokens: list[Token]) -> Iterator[list[Token]]:
    current: list[Token] = []
    for t in tokens:
        if t.kind == "other" and t.text == ";":
            if current:
                yield current
            current = []
        else:
            current.append(t)
    if current:
        yield current


def items(tokens: list[Token], start: int, stop_words: set[str]) -> list[list[Token]]:
    """The comma-separated items from ``start`` at this nesting depth, up to a stop word or a ')'."""
    out: list[list[Token]] = []
    item: list[Token] = []
    depth = 0
    for t in tokens[start:]:
        if depth == 0 and t.kind == "word" and not t.quoted and t.text in stop_words:
            break
        if t.kind == "other" and t.text == "(":
            depth += 1
        elif t.kind == "other" and t.text == ")":
            if depth == 0:
                break
            depth -= 1
        if depth == 0 and t.kind == "other" and t.text == ",":
            out.append(item)
            item = []
        else:
            item.append(t)
    if item:
        out.append(item)
    return out


def passed_through(item: list[Token]) -> str | None:
    """The output name of a SELECT item that is a bare column (``c``, ``t.c``, ``t.c AS x``), else None."""
    if len(item) >= 3 and item[-2].is_word("as"):
        alias: str | None = item[-1].text
        item = item[:-2]
    else:
        alias = None
    if len(item) % 2 == 0:
        return None
    for i, t in enumerate(item):
        if (i % 2 == 0 and t.kind != "word") or (i % 2 == 1 and t.text != "."):
            return None
    return alias or item[-1].text


SELECT_ENDS = {"from", "where", "group", "having", "qualify", "order", "limit", "union", "except", "window"}


def hand_written_column_lists(sql: str) -> list[str]:
    """What in ``sql`` (a file's text, placeholders unfilled) lists a declared relation's columns by
    hand: an INSERT column list that is not ``({columns:<target>})`` (or no list, into a declared
    relation), an INSERT whose last SELECT does not pick ``{columns:<target>}`` by name, a SELECT
    list that passes through most of a declared table's columns, and a SET list of several columns."""
    problems: list[str] = []
    declared = {r.name for r in RELATIONS}
    for stmt in statements(tokenize(sql)):
        head = " ".join(t.text for t in stmt[:8]).replace(" . ", ".")  # where, for the message
        for i, t in enumerate(stmt):
            if t.is_word("into") and i > 0 and stmt[i - 1].is_word("insert"):
                target, j = stmt[i + 1].text, i + 2
                while j + 1 < len(stmt) and stmt[j].text == ".":
                    target, j = f"{target}.{stmt[j + 1].text}", j + 2
                wanted = f"{{columns:{target}}}"
                if target not in declared:
                    # a temp table: stage rows with CREATE TABLE ... AS, whose SELECT names them
                    wanted = "{columns:<a declared relation>}"
                if stmt[j].text != "(":
                    if target in declared:
                        problems.append(f"INSERT INTO {target} inserts by position: name ({wanted})")
                    continue
                listed = items(stmt, j + 1, set())
                if [[x.text for x in item] for item in listed] != [[wanted]]:
                    problems.append(f"INSERT INTO {target} lists its columns by hand: write ({wanted})")
                    continue
                depth, last_select = 0, None
                for k, u in enumerate(stmt):
                    if u.kind == "other" and u.text in ("(", ")"):
                        depth += 1 if u.text == "(" else -1
                    elif depth == 0 and u.is_word("select"):
                        last_select = k
                picked = [] if last_select is None else items(stmt, last_select + 1, SELECT_ENDS)
                if [[x.text for x in item] for item in picked] != [[wanted]]:
                    problems.append(f"INSERT INTO {target}: its last SELECT must pick {wanted} by name")
            elif t.is_word("select"):
                start = i + 2 if i + 1 < len(stmt) and stmt[i + 1].is_word("distinct") else i + 1
                names = {n for n in map(passed_through, items(stmt, start, SELECT_ENDS)) if n}
                for rel in DECLARED_TABLES:
                    hit = names & set(rel.column_names)
                    if len(hit) >= max(SELECT_MIN, SELECT_SHARE * len(rel.columns)):
                        problems.append(
                            f"a SELECT list names {len(hit)} of the {len(rel.columns)} columns of {rel.name} "
                            f"by hand ({head} ...): pick {{columns:{rel.name}}} by name"
                        )
            elif t.is_word("set") and any(u.is_word("update") for u in stmt[:i]):
                targets = {item[0].text for item in items(stmt, i + 1, {"from", "where"}) if len(item) > 1}
                for rel in DECLARED_TABLES:
                    hit = targets & set(rel.column_names)
                    if len(hit) >= SET_COLUMNS:
                        problems.append(
                            f"a SET list names {len(hit)} columns of {rel.name} by hand ({head} ...): "
                            "generate it from the declaration (see sql_files.py)"
                        )
    return problems


# --- the files


@pytest.mark.parametrize("path", checked_files(), ids=lambda p: str(p.relative_to(SQL_ROOT)))
def test_no_sql_file_lists_declared_columns_by_hand(path):
    assert hand_written_column_lists(path.read_text(encoding="utf-8")) == []


def test_every_file_renders_and_every_writing_file_names_its_columns_through_the_declaration():
    assert len(checked_files()) > 20
    writers = []
    for path in checked_files():
        parts = path.relative_to(SQL_ROOT).parts
        text = sql_file(*parts)  # an unknown placeholder form or relation raises here
        assert sql_files.PLACEHOLDER.search(text) is None, path
        if "{columns:" in sql_source(*parts):
            writers.append("/".join(parts))
    assert {
        "analyst/anomalies.sql",
        "analyst/peer_percentiles.sql",
        "metrics_publish.sql",
        "notes.sql",
        "snapshots.sql",
    } <= set(writers)


def test_migrations_are_read_as_written():
    from pgy_pipeline.warehouse.schema import MIGRATIONS

    for m in MIGRATIONS:
        path = next(SQL_ROOT.joinpath("migrations").glob(f"{m.version:04d}_*.sql"))
        assert m.sql == path.read_text(encoding="utf-8")


def test_metrics_sql_computes_exactly_the_declared_columns(tmp_path):
    """The publish picks the declared columns by name: one missing here fails the rebuild, and this
    catches one computed here but never declared (it would be dropped silently)."""
    with duckdb.connect(str(tmp_path / "m.duckdb")) as conn:
        ensure_schema(conn)
        with partition_keys(conn, []):
            conn.execute(sql_file("metrics.sql"))
            staged = [r[0] for r in conn.execute("DESCRIBE _metrics").fetchall()]
    assert staged == CREATOR_ENGAGEMENT_METRICS.column_names


# --- the mechanism


def test_placeholders_are_filled_from_the_declarations():
    assert render("INSERT INTO analytics.notes ({columns:analytics.notes})") == (
        f"INSERT INTO analytics.notes ({NOTES.quoted_columns()})"
    )
    cleared = render("SET {set_null_needing_every_note:analytics.creator_engagement_metrics}")
    assert '"read_max" = NULL' in cleared and '"note_count" = NULL' in cleared
    assert '"notes_total_reported"' not in cleared and '"days_since_last_note"' not in cleared
    # other braces in SQL are left alone: struct literals, format strings
    plain = "SELECT {'brand': b}, format('{} {:,}', x) FROM t"
    assert render(plain) == plain


def test_a_wrong_placeholder_is_named():
    with pytest.raises(ValueError, match=r"\{colums:analytics.notes\}"):
        render("SELECT {colums:analytics.notes}")
    with pytest.raises(KeyError, match="analytics.nope"):
        render("SELECT {columns:analytics.nope}")
    with pytest.raises(ValueError, match="analytics.notes declares no column with needs_every_note"):
        render("SET {set_null_needing_every_note:analytics.notes}")


OLD_PUBLISH = """
INSERT INTO analytics.creator_engagement_metrics (
    creator_id, snapshot_date, "window", segment, note_count, read_max
)
SELECT creator_id, snapshot_date, "window", segment, note_count, read_max
FROM _metrics;
"""
OLD_WINDOW_SCANS = """
UPDATE _metrics AS m
SET note_count = NULL,
    video_note_count = NULL,
    read_median = NULL,
    brand_tagged_non_ad_count = NULL
FROM analytics.creator_snapshots AS s
WHERE m."window" = 'all';
"""
PASS_THROUGH = """
WITH s AS (
    SELECT s.creator_id, s.snapshot_date, s.scan_status, s.total_reported, s.notes_loaded, s.pages,
           s.calls AS calls, billed_calls
    FROM status AS s
)
SELECT count(*) FROM s;
"""


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        (OLD_PUBLISH, "lists its columns by hand"),
        (OLD_WINDOW_SCANS, "a SET list names 4 columns of analytics.creator_engagement_metrics"),
        (PASS_THROUGH, "names 8 of the 10 columns of analytics.creator_snapshots"),
        ("INSERT INTO analytics.notes SELECT * FROM _ranked", "inserts by position"),
        (
            "INSERT INTO analytics.notes ({columns:analytics.note_rejects}) "
            "SELECT {columns:analytics.note_rejects} FROM r",
            "write ({columns:analytics.notes})",
        ),
        (
            "INSERT INTO analytics.note_rejects ({columns:analytics.note_rejects}) "
            "SELECT creator_id, snapshot_date, page_number, list_position, reason, item FROM r",
            "its last SELECT must pick {columns:analytics.note_rejects} by name",
        ),
        ("INSERT INTO _staging (a, b) SELECT 1, 2", "INSERT INTO _staging lists its columns by hand"),
        (
            "SELECT creator_id, display_name, tags, active, updated_at FROM analytics.creators",
            "names 5 of the 5 columns of analytics.creators",
        ),
    ],
)
def test_the_check_finds_hand_written_lists(sql, found):
    problems = hand_written_column_lists(sql)
    assert any(found in p for p in problems), problems


def test_the_check_lets_pass_what_is_not_a_column_list():
    ok = """
    -- a comment naming creator_id, snapshot_date, scan_status, total_reported, notes_loaded, pages
    INSERT INTO analytics.notes ({columns:analytics.notes})
    WITH ranked AS (SELECT *, count(*) OVER (PARTITION BY creator_id, snapshot_date) AS n FROM _items)
    SELECT {columns:analytics.notes}
    FROM ranked;
    UPDATE _metrics SET read_gain = NULL WHERE "window" = 'all';
    SELECT m.creator_id, m.snapshot_date, m.note_count, m.read_median FROM analytics.creator_engagement_metrics AS m;
    """
    assert hand_written_column_lists(ok) == []
