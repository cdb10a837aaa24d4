#!/usr/bin/env bash
# Creates .venv with Python 3.11+ and installs the project with its test and PostgreSQL extras.
# With PGY_SETUP_LAKE=1 (scripts/test.sh sets it) also .venv-lake: the same project on DuckDB 1.4.4
# with the DuckLake, PostgreSQL and httpfs extension wheels (the lake profile; see README).
# Sourced by dev.sh and test.sh; safe to run again (pip skips what is installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
make_venv() {  # make_venv DIR EXTRAS
  local dir=$1 extras=$2
  if [ ! -x "$dir/bin/python" ]; then
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
    "$PYTHON" -m venv "$dir"
  fi
  local stamp
  stamp=$dir/.installed-$( (cat pyproject.toml; echo "$extras") | cksum | cut -d' ' -f1)
  if [ ! -f "$stamp" ]; then
    "$dir/bin/python" -m pip install --quiet --upgrade pip
    "$dir/bin/python" -m pip install --quiet -e ".[$extras]"
    touch "$stamp"
  fi
}
make_venv .venv "test,postgres"
if [ "${PGY_SETUP_LAKE:-0}" = 1 ]; then
  make_venv .venv-lake "test,postgres,lake,lake-test"
fi
