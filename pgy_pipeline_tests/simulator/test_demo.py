"""The demo's roster: the simulator serves exactly the creators creators.yaml ships with."""

from __future__ import annotations

from pathlib import Path

from pgy_pipeline.orchestration.registry import parse_registry
from pgy_pipeline.simulator.demo import DEMO_ANCHOR, DEMO_CREATORS, demo_simulator

REGISTRY = Path(__file__).resolve().parents[2] / "creators.yaml"


def test_the_registry_and_the_demo_roster_list_the_same_creators():
    registry = parse_registry(REGISTRY.read_text(encoding="utf-8"))
    assert [c.creator_id for c in registry.creators] == [c.user_id for c in DEMO_CREATORS]
    tags = [t for c in registry.creators for t in c.tags]
    assert tags.count("美妆") >= 3  # a peer group needs three creators: the README's example answers


def test_the_demo_serves_its_roster_and_answers_empty_for_any_other_id():
    sim = demo_simulator("t")
    for creator in DEMO_CREATORS:
        assert len(sim.notes_for(creator.user_id, at=DEMO_ANCHOR)) == creator.note_count
        notes = sim.notes_for(creator.user_id)
        assert len(notes) > creator.note_count  # new notes at its pace since the anchor
        assert notes == demo_simulator("other").notes_for(creator.user_id)  # every process agrees
        brands = {n["brandName"] for n in notes if n.get("isAdvertise") and n.get("brandName")}
        assert brands and brands <= set(creator.brands)
    beauty = [c for c in DEMO_CREATORS if "花西子" in c.brands]
    assert sum(any(n.get("brandName") == "花西子" for n in sim.notes_for(c.user_id)) for c in beauty) >= 2
    assert sim.is_unknown("aaaaaaaaaaaaaaaaaaaaaaaa")  # a made-up id: code 0, no notes, total 0
    assert not sim.is_unknown(DEMO_CREATORS[0].user_id)
