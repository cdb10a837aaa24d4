"""``dagster`` exactly as its console script runs it, with timestamps of the process's first phases.

    python -m benchmarks.profiled_cli asset materialize -m pgy_pipeline.definitions --select ... \
        --partition-range ...

The same process as ``dagster asset materialize`` (the console script is ``dagster._cli:main``), with
four marks written as JSON to ``PGY_PROFILE_MARKS`` (wall-clock seconds since the epoch):

* ``interpreter``: this module starts running (Python is up, ``site`` done);
* ``dagster_imported``: Dagster's command line is imported;
* ``definitions_loaded``: the code location's module is imported, which builds the definitions
  (``-m MODULE``; Dagster's loader then finds it in ``sys.modules``, as it would have imported it);
* ``cli_returned``: Dagster's command returned (the run is over); what follows is interpreter exit.
"""

from __future__ import annotations

import time

_MARKS = {"interpreter": time.time()}

import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402


def _module_arg(argv: list[str]) -> str | None:
    for flag in ("-m", "--module-name"):
        if flag in argv:
            return argv[argv.index(flag) + 1]
    return None


def main() -> None:
    from dagster._cli import main as dagster_main

    _MARKS["dagster_imported"] = time.time()
    argv = sys.argv[1:]
    module = _module_arg(argv)
    if module:
        importlib.import_module(module)
    _MARKS["definitions_loaded"] = time.time()
    sys.argv = ["dagster", *argv]
    code: object = 0
    try:
        dagster_main()
    except SystemExit as exc:
        code = exc.code
    finally:
        _MARKS["cli_returned"] = time.time()
        out = os.environ.get("PGY_PROFILE_MARKS")
        if out:
            with open(out, "w", encoding="utf-8") as f:
                json.dump(_MARKS, f)
    sys.exit(code)


if __name__ == "__main__":
    main()
