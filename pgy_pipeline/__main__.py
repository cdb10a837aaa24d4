"""``python -m pgy_pipeline snapshot CREATOR_ID [--refresh]``: see :mod:`pgy_pipeline.commands`."""

import sys

from pgy_pipeline.commands import main

sys.exit(main())
