"""The creator registry file: what is refused as a whole, and what a row may hold."""

from __future__ import annotations

import pytest

from pgy_pipeline.orchestration.registry import RegistryFileError, load_registry, parse_registry

GOOD = "5ff0e6410000000001008400"


def test_a_missing_file_is_named_with_the_variable_that_points_at_it(tmp_path):
    with pytest.raises(RegistryFileError, match="PGY_CREATORS_FILE"):
        load_registry(tmp_path / "nope.yaml")


def test_ids_written_as_numbers_names_and_tags_are_typed_and_the_fingerprint_follows_the_bytes():
    text = f"creators:\n  - id: {GOOD}\n    name: 小红\n    tags: [fashion]\n  - id: {GOOD[:-1]}1\n    active: false\n"
    reg = parse_registry(text)
    assert [(c.creator_id, c.display_name, c.tags, c.active) for c in reg.creators] == [
        (GOOD, "小红", ("fashion",), True),
        (GOOD[:-1] + "1", None, (), False),
    ]
    assert reg.active_ids == [GOOD]
    assert parse_registry(text).fingerprint == reg.fingerprint != parse_registry(text + "\n").fingerprint


@pytest.mark.parametrize(
    "row, problem",
    [
        ("  - id: ABC\n", "24 lowercase hexadecimal"),
        (f"  - id: {GOOD}\n    tags: fashion\n", "'tags' must be a list"),
        (f"  - id: {GOOD}\n    active: maybe\n", "'active' must be true or false"),
        (f"  - id: {GOOD}\n    name: [1]\n", "'name' must be text"),
    ],
)
def test_a_bad_row_is_skipped_with_a_reason_naming_its_row(row, problem):
    reg = parse_registry("creators:\n" + row, source="reg.yaml")
    assert reg.creators == []
    assert (
        len(reg.problems) == 1
        and reg.problems[0].startswith("reg.yaml row 1:")
        and problem in reg.problems[0]
    )
