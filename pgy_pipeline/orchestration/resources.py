"""Dagster resources: thin wrappers that build the API client and open the warehouse from config.

Operators configure everything through the environment (see ``definitions.py``); nothing here
reads ``os.environ``. With no token the resource serves simulated data from an in-process
simulator, and says so loudly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource
from pydantic import Field

from pgy_pipeline.api.client import DEFAULT_BASE_URL, PgyClient
from pgy_pipeline.api.ledger import CallHooks
from pgy_pipeline.api.pacing import AdaptivePacer, PaceState
from pgy_pipeline.warehouse.storage import connect

log = logging.getLogger(__name__)

NO_TOKEN_WARNING = (
    "SIMULATED DATA: JUSTONEAPI_TOKEN is not set, so the pipeline reads the built-in simulator of "
    "the Just One API endpoint, not Xiaohongshu. Set JUSTONEAPI_TOKEN for real data."
)
LOOPBACK_WARNING = (
    "SIMULATED DATA: JUSTONEAPI_BASE_URL points at this machine ({base_url}), so the pipeline reads a "
    "local simulator of the Just One API endpoint, not Xiaohongshu."
)
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

_demo_lock = threading.Lock()
_demo_base_url: str | None = None
DEMO_TOKEN = "demo-simulator-token"


def _demo_simulator_url() -> str:
    """Start (once per process) the simulator that stands in for the service when no token is set."""
    global _demo_base_url
    with _demo_lock:
        if _demo_base_url is None:
            from pgy_pipeline.simulator import Simulator  # the simulator is only needed in this mode

            _demo_base_url = Simulator(token=DEMO_TOKEN).start()
            log.warning(NO_TOKEN_WARNING)
        return _demo_base_url


class PgyApiResource(ConfigurableResource):
    """Just One API access for the Pugongying notes endpoint: token, endpoint, retries and pacing."""

    token: str = Field(
        default="",
        repr=False,
        description="Just One API token (JUSTONEAPI_TOKEN). Empty: use the built-in simulator.",
    )
    base_url: str = Field(default=DEFAULT_BASE_URL, description="Service root (JUSTONEAPI_BASE_URL).")
    timeout_s: float = Field(
        default=60.0, description="Per-request timeout, whole body included (JUSTONEAPI_TIMEOUT_S)."
    )
    max_rps: float = Field(
        default=2.0,
        description="Ceiling on request starts per second (JUSTONEAPI_MAX_RPS); with adaptive pacing the "
        "pace is learned below it.",
    )
    adaptive_pacing: bool = Field(
        default=True,
        description="Learn the service's limit: cut the pace on 302, climb slowly after successes "
        "(JUSTONEAPI_ADAPTIVE_PACING); false: a fixed pace of max_rps.",
    )
    start_rps: float | None = Field(
        default=None,
        description="First pace while nothing is learned yet (JUSTONEAPI_START_RPS); None: the ceiling.",
    )
    full_scan_every_days: int = Field(
        default=7,
        description="A creator's scan reads its whole list when its last full scan is this many days old "
        "(PGY_FULL_SCAN_EVERY_DAYS); other days read only the 90-day window.",
    )
    daily_call_budget: int = Field(
        default=0,
        description="Most billed calls per Asia/Shanghai day across all runs (PGY_DAILY_CALL_BUDGET); 0: none.",
    )
    max_concurrency: int = Field(
        default=4, description="Requests in flight at once (JUSTONEAPI_MAX_CONCURRENCY)."
    )
    max_attempts: int = Field(default=5, description="Attempts per page for transient failures.")
    max_retry_time_s: float = Field(default=300.0, description="Retry budget per page, in seconds.")
    backoff_initial_s: float = Field(default=1.0, description="First backoff step for transient failures.")
    rate_limit_backoff_s: float = Field(
        default=10.0,
        description="First backoff step after a 302 (fixed pace; adaptive pacing waits about 1 s, having "
        "cut the pace) or a 503, with no Retry-After.",
    )
    max_pages: int = Field(default=1000, description="Hard cap on pages per creator scan.")

    @property
    def simulated(self) -> bool:
        """True when the data comes from a simulator rather than the real service."""
        return not self.token or urlsplit(self.base_url).hostname in _LOOPBACK_HOSTS

    @property
    def simulated_warning(self) -> str | None:
        """Why the data is simulated, in words for a log line or the UI; None for real data."""
        if not self.token:
            return NO_TOKEN_WARNING
        if self.simulated:
            return LOOPBACK_WARNING.format(base_url=self.base_url)
        return None

    @property
    def data_source(self) -> str:
        return "simulator" if self.simulated else "justoneapi"

    @property
    def budget(self) -> int | None:
        return self.daily_call_budget if self.daily_call_budget > 0 else None

    def get_client(self, learned: PaceState | None = None, hooks: CallHooks | None = None) -> PgyClient:
        """A new client (the caller closes it), starting at the ``learned`` pace when given."""
        token, base_url = self.token, self.base_url
        if not token:
            token, base_url = DEMO_TOKEN, _demo_simulator_url()
        pacer = (
            AdaptivePacer(
                self.max_rps, self.max_concurrency, start_rps=self.start_rps or self.max_rps, learned=learned
            )
            if self.adaptive_pacing
            else None
        )
        return PgyClient(
            token,
            base_url=base_url,
            timeout_s=self.timeout_s,
            max_rps=self.max_rps,
            max_concurrency=self.max_concurrency,
            max_attempts=self.max_attempts,
            max_retry_time_s=self.max_retry_time_s,
            backoff_initial_s=self.backoff_initial_s,
            rate_limit_backoff_s=self.rate_limit_backoff_s,
            max_pages=self.max_pages,
            pacer=pacer,
            hooks=hooks,
        )


class PgyDuckDBResource(DuckDBResource):
    """dagster-duckdb's resource, with a bounded, explained wait for DuckDB's single-writer lock.

    The stock resource retries about 100 s and then re-raises DuckDB's error; this one waits up to
    ``lock_wait_s``, logs who holds the lock while it waits, and then names that process.
    """

    lock_wait_s: float = Field(default=120.0, description="How long to wait for another process's lock.")
    spool_dir: str = Field(
        default="",
        description="Where fetched pages wait for their DuckDB write; empty: '<database>.spool' beside the file.",
    )

    @property
    def spool_path(self) -> Path:
        if self.spool_dir:
            return Path(self.spool_dir)
        if self.database.startswith("md:") or self.database == ":memory:":
            return Path("data") / "spool"
        return Path(self.database + ".spool")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        def waiting(seconds: float, holder: str) -> None:
            log.warning(
                f"waiting {seconds:.0f} s so far for the DuckDB file {self.database}, locked by {holder}"
            )

        with connect(
            self.database, lock_wait_s=self.lock_wait_s, config=dict(self.connection_config), on_wait=waiting
        ) as conn:
            yield conn
