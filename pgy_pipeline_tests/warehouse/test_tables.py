"""The declarations: names, types and the forms derived from them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pgy_pipeline.warehouse.tables import (
    CREATOR_ENGAGEMENT_METRICS,
    RAW_NOTE_PAGES,
    RELATIONS,
    arrow_type,
    relation,
)


def test_every_relation_is_declared_once_with_described_columns():
    names = [r.name for r in RELATIONS]
    assert len(names) == len(set(names))
    for rel in RELATIONS:
        assert rel.description and rel.columns, rel.name
        assert len({c.name for c in rel.columns}) == len(rel.columns), rel.name
        assert all(c.description for c in rel.columns), rel.name
        assert relation(rel.name) is rel


def test_derived_forms_quote_names_and_travel_json_as_text():
    assert '"window"' in CREATOR_ENGAGEMENT_METRICS.quoted_columns()
    schema = RAW_NOTE_PAGES.arrow_schema()
    assert schema.field("body").type == pa.string() and not schema.field("body").nullable
    assert RAW_NOTE_PAGES.select_casts(["body", "code"]) == '"body"::JSON AS "body", "code"'


def test_an_undeclared_type_or_relation_is_named():
    with pytest.raises(ValueError, match="HUGEINT"):
        arrow_type("HUGEINT")
    with pytest.raises(KeyError, match="analytics.nope"):
        relation("analytics.nope")
