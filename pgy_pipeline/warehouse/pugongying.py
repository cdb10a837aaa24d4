"""How our metric columns compare with the figures on a Pugongying creator page, declared once.

Analysts hold our numbers against the page they see on Pugongying, which does not publish its
formulas. The evidence is responses recorded from Pugongying's own creator endpoints (one creator,
December 2025, in the public repository noir-madlax/GoodGame, ``backend/test/redbook/pgy/output/``):
its 30-day figures read on 2025-12-08 over three daily notes (reads 1471, 4319, 46; likes 61, 53, 6;
collects 18, 26, 4) give readMedian 1471, interactionMedian 75 = likeMedian 53 + collectMedian 18 +
commentMedian 4, mEngagementNum 91 = the median of the notes' own interaction counts,
interactionRate "3.4" = 201 interactions / 5836 reads, and a daily noteNumber that leaves out two
brand-tagged notes whose isAdvertise is false. One creator is evidence, not proof: the differences
are named below.

:mod:`pgy_pipeline.warehouse.docs` renders :data:`FIELD_MAPPINGS` into ``docs/tables.md``; a test checks
that every column named here exists in the declarations of :mod:`pgy_pipeline.warehouse.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass

METRICS_TABLE = "analytics.creator_engagement_metrics"


@dataclass(frozen=True)
class FieldMapping:
    """One Pugongying figure, the columns that stand for it here, how both are computed, and the gap."""

    pugongying: str  # the field(s) in Pugongying's creator data
    columns: tuple[str, ...]  # "relation.column"; a bare name is a column of METRICS_TABLE
    formula: str  # ours
    differs: str  # what differs from Pugongying's figure, and why

    def qualified_columns(self) -> list[tuple[str, str]]:
        """``(relation, column)`` for each column named."""
        out = []
        for name in self.columns:
            relation, _, column = name.rpartition(".")
            out.append((relation or METRICS_TABLE, column))
        return out


FIELD_MAPPINGS: tuple[FieldMapping, ...] = (
    FieldMapping(
        "daily (日常笔记) vs cooperation notes (business)",
        ("segment", "brand_tagged_non_ad_count", "analytics.notes.segment"),
        "organic = neither is_advertise nor a brand_name; cooperation = is_advertise or a brand_name "
        "(blank brands count as none)",
        "Same rule as far as the evidence shows: Pugongying's daily figures leave out notes with a "
        "brandName even when isAdvertise is false. brand_tagged_non_ad_count shows how many notes that "
        "moves.",
    ),
    FieldMapping(
        "the 30-day / 90-day window (dateType), dateKey",
        ("window",),
        "notes published from snapshot_date - N to snapshot_date - 1; 'all' = every note",
        "Same: Pugongying's window ends the day before it is read (dateKey = yesterday). Our counters "
        "are those of the snapshot's fetch; Pugongying may answer from a cache (the recorded requests "
        "allowed one), so its figures can be a little older.",
    ),
    FieldMapping(
        "noteNumber",
        ("note_count",),
        "count of notes in the window and segment",
        "Same for the daily notes of the notesRate figures (segment 'organic'). Pugongying's dataSummary "
        "noteNumber counted every note of the window while its medians covered daily notes only: "
        "compare with segment 'all' there.",
    ),
    FieldMapping(
        "videoNoteNumber",
        ("video_note_count",),
        "count of notes with is_video",
        "Same.",
    ),
    FieldMapping(
        "readMedian",
        ("read_median",),
        "median(read_num)",
        "Same formula. Reads grow daily, so figures read on different days differ slightly.",
    ),
    FieldMapping(
        "interactionMedian",
        ("interaction_median", "like_median", "collect_median"),
        "median(like_num) + median(collect_num)",
        "Pugongying adds median(comments) (75 = 53 + 18 + 4 in the evidence); this endpoint returns no "
        "comments, so ours is lower by the comment median.",
    ),
    FieldMapping(
        "mEngagementNum",
        ("interaction_per_note_median",),
        "median over notes of (like_num + collect_num)",
        "Pugongying counts each note's comments in its interactions too (91 in the evidence); ours "
        "cannot, so it is lower.",
    ),
    FieldMapping(
        "interactionRate",
        ("engagement_rate",),
        "sum(interaction_num) / sum(read_num), a ratio 0-1",
        "Pugongying shows a percent with one decimal ('3.4' for 3.4%) and counts comments; ours is a "
        "ratio (0.034) of likes + collects only, so lower.",
    ),
    FieldMapping(
        "hundredLikePercent",
        ("hundred_like_rate",),
        "share of notes with like_num >= 100, a ratio 0-1",
        "Pugongying shows a percent; the definition is consistent with its figures but only a 0.0 was "
        "recorded, so it is not confirmed.",
    ),
    FieldMapping(
        "thousandLikePercent",
        ("thousand_like_rate",),
        "share of notes with like_num >= 1000, a ratio 0-1",
        "As hundredLikePercent.",
    ),
    FieldMapping(
        "impMedian, picture3sViewRate",
        (),
        "not computed",
        "Impressions and view rates are not in this endpoint's items.",
    ),
    FieldMapping(
        "empty window (0 notes)",
        ("read_median", "interaction_median", "engagement_rate", "hundred_like_rate"),
        "NULL",
        "Pugongying shows 0 medians and rates, meaning 'no notes'; here they are NULL, so an average "
        "over creators is not pulled down by creators without notes.",
    ),
)
