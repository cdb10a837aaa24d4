#!/usr/bin/env bash
# One command from a fresh clone: install, lint (ruff), type-check (mypy --strict), and run the whole
# test suite; then the lake profile's tests in .venv-lake (DuckDB 1.4.4 with the DuckLake extension;
# PGY_SKIP_LAKE=1 skips them). Arguments go to the main suite's pytest and skip the lake suite.
# Each suite runs through scripts/run_suite.py: it passes only if every test it collected ran, with
# no failure and no error (an interrupted run, or one that collected nothing, fails).
# The PostgreSQL tests need a server: set PGY_TEST_POSTGRES_URL, or have PostgreSQL's binaries
# installed (initdb, pg_ctl) and this script starts a throwaway one on a free port. Without either
# they skip, listed at the end of the run; under CI=true they fail.
# PGY_SKIP_SETUP=1 uses .venv and .venv-lake as they are (no pip: offline, or a shared environment).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${PGY_SKIP_LAKE:-0}" != 1 ]; then export PGY_SETUP_LAKE=1; fi
if [ "${PGY_SKIP_SETUP:-0}" != 1 ]; then bash scripts/setup.sh; fi
.venv/bin/ruff check pgy_pipeline pgy_pipeline_tests benchmarks scripts
.venv/bin/ruff format --check pgy_pipeline pgy_pipeline_tests benchmarks scripts >/dev/null || \
  echo "note: ruff format would reformat some files (not enforced)"
.venv/bin/mypy   # strict, on the package: see [tool.mypy] in pyproject.toml
.venv/bin/python -m pgy_pipeline.warehouse.docs --check

pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ]; then
    runuser -u postgres -- pg_ctl -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || \
      pg_ctl -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
  fi
}
trap cleanup EXIT
if [ -z "${PGY_TEST_POSTGRES_URL:-}" ]; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$pgbin" ] && [ -x "$pgbin/initdb" ]; then
    export PATH="$pgbin:$PATH"
    pg_dir=$(mktemp -d /tmp/pgy-pg.XXXXXX)
    port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_pg=()
    if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; as_pg=(runuser -u postgres --); fi
    "${as_pg[@]}" initdb -D "$pg_dir/data" -U pgy --auth=trust >/dev/null
    "${as_pg[@]}" pg_ctl -D "$pg_dir/data" -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1" \
      -l "$pg_dir/log" -w start >/dev/null
    export PGY_TEST_POSTGRES_URL="postgresql://pgy@127.0.0.1:$port/postgres"
    echo "started a throwaway PostgreSQL on 127.0.0.1:$port for the tests that need one"
  fi
fi
ci_value=${CI:-}
case "${ci_value,,}" in "" | 0 | false | no) ci=0 ;; *) ci=1 ;; esac  # as pgy_pipeline_tests/suite_checks.py
if [ -z "${PGY_TEST_POSTGRES_URL:-}" ]; then
  no_pg="no PostgreSQL server: PostgreSQL's server binaries (initdb) are not installed and PGY_TEST_POSTGRES_URL is not set"
  if [ "$ci" = 1 ]; then
    echo "ERROR: $no_pg; under CI the tests that need it fail (.ci/run installs postgresql)"
  else
    echo "WARNING: $no_pg; the tests that need it will be skipped (apt-get install postgresql)"
  fi
fi
status=0
.venv/bin/python scripts/run_suite.py main --python .venv/bin/python -- -q -p no:cacheprovider "$@" \
  || status=$?
if [ "${PGY_SKIP_LAKE:-0}" != 1 ] && [ $# -eq 0 ]; then
  echo "lake profile tests (.venv-lake, DuckDB 1.4.4):"
  # DuckDB 1.4.4 now and then aborts at interpreter exit, after every test has reported: such a run
  # passes if its report holds every collected test, passed; an abort before that fails.
  PGY_REQUIRE_LAKE=1 .venv/bin/python scripts/run_suite.py lake --python .venv-lake/bin/python \
    --allow-abort-at-exit -- -q -p no:cacheprovider pgy_pipeline_tests/lake || status=$?
fi
if [ -n "${no_pg:-}" ] && [ "$ci" = 0 ]; then
  echo "WARNING: $no_pg: the tests that need it did not run (listed above)"
fi
exit $status
