#!/usr/bin/env bash
# One command from a fresh clone: install, then start the Dagster UI on http://127.0.0.1:3000 with
# the daemon (sensors, schedule, backfills), Dagster's storage in .dagster_home/ and DuckDB under data/.
# Without JUSTONEAPI_TOKEN the pipeline reads the built-in simulator and writes data/pgy_demo.duckdb.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
# One "materialization planned" event per asset for a range run, not one per partition. Dagster reads it
# where a run is created: in the webserver (the UI's Materialize) and the daemon (schedule, sensors,
# backfills), which never import the definitions (build_defs sets it only in processes that do), so it
# is exported here (README, Configuration; orchestration/dagster_internals.py).
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="${DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS:-1}"
mkdir -p "$DAGSTER_HOME" data
cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
if [ -z "${JUSTONEAPI_TOKEN:-}" ]; then
  echo "*** SIMULATED DATA: JUSTONEAPI_TOKEN is not set; the pipeline reads the built-in simulator."
  echo "*** Data goes to data/pgy_demo.duckdb. Set JUSTONEAPI_TOKEN for real data."
  # Opt-in: a simulated past, so note histories, anomalies and the report's time series have
  # something to show at once (built once, into a new demo file).
  if [ -n "${PGY_DEMO_HISTORY_DAYS:-}" ] && [ ! -e "${PGY_DUCKDB_PATH:-data/pgy_demo.duckdb}" ]; then
    echo "*** building ${PGY_DEMO_HISTORY_DAYS} days of simulated history (PGY_DEMO_HISTORY_DAYS)..."
    .venv/bin/python -m pgy_pipeline demo-history --days "$PGY_DEMO_HISTORY_DAYS"
  fi
fi
# From the Dagster home, which holds the instance's dagster.yaml (run from the project folder, Dagster
# would warn that the project's own dagster.yaml, the template copied above, is not the one in use).
root=$PWD
# Every process Dagster starts (code server, daemon, run workers) imports this checkout's package, even
# when the virtualenv's editable install points at another checkout.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
cd "$DAGSTER_HOME"
exec "$root/.venv/bin/dagster" dev -w "$root/workspace.yaml" -h 127.0.0.1 -p "${PGY_UI_PORT:-3000}"
