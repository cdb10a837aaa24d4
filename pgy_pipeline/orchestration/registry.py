"""The creator registry: a versioned YAML file listing the creators the pipeline follows.

A bad row (malformed id, duplicate, wrong type) is reported and skipped; the valid rows still apply.
A file that cannot be read as a whole (missing, not YAML, no ``creators`` list) raises
:class:`RegistryFileError`, and nothing changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dagster import ConfigurableResource
from pydantic import Field

from pgy_pipeline.api.client import validate_creator_id
from pgy_pipeline.errors import InvalidCreatorIdError, InvalidInputError


class RegistryFileError(InvalidInputError):
    """The registry file as a whole cannot be used."""


@dataclass(frozen=True)
class Creator:
    creator_id: str
    display_name: str | None
    tags: tuple[str, ...]
    active: bool


@dataclass
class Registry:
    creators: list[Creator] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per skipped row
    fingerprint: str = ""  # hash of the file's bytes: changes when the file does

    @property
    def active_ids(self) -> list[str]:
        return [c.creator_id for c in self.creators if c.active]


def parse_registry(text: str, source: str = "creators.yaml") -> Registry:
    """Parse the registry's YAML text; see the module docstring for what is skipped or refused."""
    registry = Registry(fingerprint=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16])
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryFileError(f"{source} is not valid YAML: {exc}. Nothing was changed.") from None
    rows = doc.get("creators") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise RegistryFileError(
            f"{source} must have a top-level 'creators:' list (see the comments in the shipped file). "
            "Nothing was changed."
        )
    seen: dict[str, int] = {}
    for n, row in enumerate(rows, start=1):
        where = f"{source} row {n}"
        if not isinstance(row, dict):
            registry.problems.append(f"{where}: expected a mapping with 'id', got {row!r:.60}; skipped")
            continue
        raw_id = row.get("id")
        if isinstance(raw_id, int):  # YAML reads an all-digit id as a number
            raw_id = str(raw_id)
        try:
            creator_id = validate_creator_id(raw_id)
        except InvalidCreatorIdError as exc:
            registry.problems.append(f"{where}: {exc.message.replace(' No API call was made.', '')}; skipped")
            continue
        if creator_id in seen:
            registry.problems.append(
                f"{where}: duplicate id {creator_id} (first at row {seen[creator_id]}); skipped"
            )
            continue
        name, tags, active = row.get("name"), row.get("tags", []), row.get("active", True)
        if name is not None and not isinstance(name, str):
            registry.problems.append(f"{where}: 'name' must be text, got {name!r:.40}; skipped")
            continue
        if tags is None:
            tags = []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            registry.problems.append(f"{where}: 'tags' must be a list of text, got {tags!r:.60}; skipped")
            continue
        if not isinstance(active, bool):
            registry.problems.append(f"{where}: 'active' must be true or false, got {active!r:.20}; skipped")
            continue
        seen[creator_id] = n
        registry.creators.append(Creator(creator_id, name, tuple(tags), active))
    return registry


def load_registry(path: str | Path) -> Registry:
    """Read and parse the registry file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryFileError(
            f"creator registry {path} not found: create it or set PGY_CREATORS_FILE. Nothing was changed."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryFileError(
            f"creator registry {path} could not be read: {exc}. Nothing was changed."
        ) from None
    return parse_registry(text, source=str(path))


class CreatorRegistryResource(ConfigurableResource):
    """Where the creator registry file is (PGY_CREATORS_FILE)."""

    path: str = Field(description="Path of the creators YAML file.")

    def load(self) -> Registry:
        return load_registry(self.path)
