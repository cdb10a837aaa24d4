"""The Dagster UI benchmark's code location (see ``benchmarks.ui_defs`` for the variables it reads)."""

from __future__ import annotations

import os

from benchmarks.ui_defs import load_partitions_with_start, standin_defs

if os.environ.get("PGY_UIBENCH_START"):
    load_partitions_with_start(os.environ["PGY_UIBENCH_START"])

LAYOUT = os.environ.get("PGY_PARTITIONING", "creator")
if os.environ.get("PGY_UIBENCH_DEFS", "real") == "real":
    from pgy_pipeline.definitions import build_defs

    defs = build_defs()
else:
    defs = standin_defs(LAYOUT)
