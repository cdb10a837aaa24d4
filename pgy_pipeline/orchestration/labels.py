"""Creators and partitions in words, for log lines, failures and run tags (Dagster-free)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pgy_pipeline.warehouse.keys import PartitionKey


def keys_text(keys: Iterable[PartitionKey], limit: int = 10) -> str:
    """``creator|date, ...`` for a message, the first ``limit`` keys and a count of the rest."""
    ordered = sorted(keys)
    shown = ", ".join(f"{c}|{d.isoformat()}" for c, d in ordered[:limit])
    return shown + (f" ... and {len(ordered) - limit} more" if len(ordered) > limit else "")


def creator_label(creator_id: str, names: Mapping[str, str]) -> str:
    """``name (id)`` when the registry names the creator, else the id: people know creators by name."""
    name = names.get(creator_id)
    return f"{name} ({creator_id})" if name else creator_id


def creators_tag(creator_ids: Sequence[str], names: Mapping[str, str], limit: int = 5) -> str:
    """A run tag value naming the run's creators: all of them for a small run, else a count and the ends."""
    ordered = list(dict.fromkeys(creator_ids))

    def short(c: str) -> str:
        return names.get(c) or c

    if len(ordered) <= limit:
        text = ", ".join(short(c) for c in ordered)
    else:
        text = f"{len(ordered)} creators: {short(ordered[0])} ... {short(ordered[-1])}"
    return text[:200]
