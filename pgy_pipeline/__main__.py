"""``python -m pgy_pipeline snapshot CREATOR_ID [--refresh]``: see :mod:`pgy_pipeline.orchestration.snapshot_now`."""

import sys

from pgy_pipeline.orchestration.snapshot_now import main

sys.exit(main())
