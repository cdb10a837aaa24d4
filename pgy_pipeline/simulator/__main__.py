"""Entry point of ``python -m pgy_pipeline.simulator``; everything lives in :mod:`.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
