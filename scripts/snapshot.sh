#!/usr/bin/env bash
# Snapshot one creator now, from a fresh clone: bash scripts/snapshot.sh CREATOR_ID [--refresh]
# Installs like dev.sh, uses .dagster_home (unless DAGSTER_HOME is set) and today's partition.
# Without JUSTONEAPI_TOKEN it reads the built-in simulator into data/pgy_demo.duckdb, like the UI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pgy_pipeline snapshot "$@"
