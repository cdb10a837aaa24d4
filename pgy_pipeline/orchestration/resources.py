"""Dagster resources: thin wrappers that build the API client and open the warehouse from config.

Operators configure everything through the environment (see ``definitions.py``); nothing here
reads ``os.environ``. With no token the resource serves simulated data from an in-process
simulator, and says so loudly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
from dagster import ConfigurableResource
from dagster_duckdb import DuckDBResource
from pydantic import Field

from pgy_pipeline.api.client import DEFAULT_BASE_URL, PgyClient
from pgy_pipeline.api.ledger import CallHooks
from pgy_pipeline.api.pacing import AdaptivePacer, PaceState
from pgy_pipeline.locks import DUCKDB_LOCK, StepLocks, hold
from pgy_pipeline.warehouse.lake import LakeSettings, is_lake
from pgy_pipeline.warehouse.replica import begin_write, end_write, file_backed, publish_replica
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
            from pgy_pipeline.simulator.demo import demo_simulator  # only needed in this mode

            _demo_base_url = demo_simulator(DEMO_TOKEN).start()
            log.warning(NO_TOKEN_WARNING)
        return _demo_base_url


#: How often Pugongying's own note figures are fetched (PGY_PUGONGYING_FIGURES).
FIGURE_CADENCES = ("off", "daily", "weekly")


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
        "(JUSTONEAPI_ADAPTIVE_PACING); false, or with PGY_PACING_URL (shared pacing): a fixed pace of max_rps.",
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
    pugongying_figures: str = Field(
        default="off",
        description="Pugongying's own note figures (PGY_PUGONGYING_FIGURES): 'off', 'daily' or 'weekly'; "
        "at most 4 calls per creator per refresh, through the same ledger, budget, guard and pacing.",
    )
    pacing_url: str = Field(
        default="",
        repr=False,
        description="PostgreSQL URL of the pacing shared by every process using the token (PGY_PACING_URL); "
        "empty: pace within this process only.",
    )

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

    def get_client(
        self,
        learned: PaceState | None = None,
        hooks: CallHooks | None = None,
        on_pace: Callable[[PaceState], None] | None = None,
    ) -> PgyClient:
        """A new client (the caller closes it), starting at the ``learned`` pace when given; ``on_pace``
        is handed the adaptive pace as it moves (see :class:`~pgy_pipeline.api.pacing.AdaptivePacer`)."""
        token, base_url = self.token, self.base_url
        if not token:
            token, base_url = DEMO_TOKEN, _demo_simulator_url()
        pacer = (
            AdaptivePacer(
                self.max_rps,
                self.max_concurrency,
                start_rps=self.start_rps or self.max_rps,
                learned=learned,
                on_change=on_pace,
            )
            # With shared pacing (PGY_PACING_URL) the pace is the table's, fixed at max_rps for all runs.
            if self.adaptive_pacing and not self.pacing_url
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
            pacing_url=self.pacing_url or None,
        )


class PgyDuckDBResource(DuckDBResource):
    """dagster-duckdb's resource, with a bounded, explained wait for DuckDB's single-writer lock, the
    step locks that serialize the pipeline across runs, and the analysts' read replica.

    The stock resource retries about 100 s and then re-raises DuckDB's error; this one waits up to
    ``lock_wait_s``, logs who holds the lock while it waits, and then names that process.
    :meth:`step_lock` and :meth:`writer` take the locks of ``pgy_pipeline.locks``, which
    the holder's death releases (no daemon, no cleanup).
    """

    lock_wait_s: float = Field(default=120.0, description="How long to wait for another process's lock.")
    spool_dir: str = Field(
        default="",
        description="Where fetched pages wait for their DuckDB write; empty: '<database>.spool' beside the file.",
    )
    lock_dir: str = Field(
        default="",
        description="Where the step lock files live (PGY_LOCK_DIR); empty: '<database>.locks' beside the file.",
    )
    lock_url: str = Field(
        default="",
        repr=False,
        description="PostgreSQL URL for the step locks (PGY_LOCK_URL; team profile). Empty: lock files.",
    )
    step_lock_wait_s: float = Field(
        default=600.0,
        description="How long a step waits for a step lock held by another run (PGY_LOCK_WAIT_S).",
    )
    lock_report_s: float = Field(default=15.0, description="How often a waiting step logs who it waits for.")

    lake_data_path: str = Field(
        default="",
        description="Lake profile: where data files go, a directory or s3://bucket/prefix (PGY_LAKE_DATA_PATH).",
    )
    s3_endpoint: str = Field(
        default="", description="S3-compatible endpoint host:port; empty: AWS (PGY_S3_ENDPOINT)."
    )
    s3_region: str = Field(default="", description="S3 region (AWS_REGION or AWS_DEFAULT_REGION).")
    s3_url_style: str = Field(
        default="", description="'path' or 'vhost'; empty: DuckDB's default (PGY_S3_URL_STYLE)."
    )
    s3_use_ssl: bool = Field(default=True, description="TLS to the S3 endpoint (PGY_S3_USE_SSL).")
    s3_access_key_id: str = Field(default="", repr=False, description="AWS_ACCESS_KEY_ID.")
    s3_secret_access_key: str = Field(default="", repr=False, description="AWS_SECRET_ACCESS_KEY.")
    s3_session_token: str = Field(default="", repr=False, description="AWS_SESSION_TOKEN.")

    @property
    def is_lake(self) -> bool:
        """True on the DuckLake profile (PGY_DUCKDB_PATH=ducklake:...)."""
        return is_lake(self.database)

    @property
    def single_writer(self) -> bool:
        """True when one process at a time may write (a DuckDB file): writers must be serialized.

        False on the lake, where concurrent writers commit optimistically; serializing them there
        would only throw away the reason for the lake.
        """
        return not self.is_lake

    @property
    def lake_settings(self) -> LakeSettings:
        return LakeSettings(
            data_path=self.lake_data_path,
            s3_endpoint=self.s3_endpoint,
            s3_region=self.s3_region,
            s3_access_key_id=self.s3_access_key_id,
            s3_secret_access_key=self.s3_secret_access_key,
            s3_session_token=self.s3_session_token,
            s3_url_style=self.s3_url_style,
            s3_use_ssl=self.s3_use_ssl,
        )

    @property
    def spool_path(self) -> Path:
        if self.spool_dir:
            return Path(self.spool_dir)
        if not file_backed(self.database) or self.is_lake:
            return Path("data") / "spool"
        return Path(self.database + ".spool")

    @property
    def step_locks(self) -> StepLocks:
        if self.lock_dir:
            directory = Path(self.lock_dir)
        elif not file_backed(self.database) or self.is_lake:
            directory = Path("data") / "locks"  # never a folder named after a conninfo
        else:
            directory = Path(self.database + ".locks")
        return StepLocks(directory=directory, url=self.lock_url)

    @contextmanager
    def step_lock(self, name: str, *, run_id: str, log: Callable[[str], None]) -> Iterator[None]:
        """Hold the step lock ``name`` for the block (see ``locks.hold``)."""
        with hold(
            self.step_locks,
            name,
            run_id=run_id,
            wait_s=self.step_lock_wait_s,
            log=log,
            report_every_s=self.lock_report_s,
        ):
            yield

    @contextmanager
    def writer(
        self,
        *,
        run_id: str,
        log: Callable[[str], None],
        publish: bool = True,
        days: Iterable[date] | None = None,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection under the writer lock; after the block (and the connection is closed), the
        read replica is published while the lock is still held, when ``publish`` is true.

        ``days``: the snapshot days the block may change, for the replica's change journal (see
        :mod:`pgy_pipeline.warehouse.replica`): a publication rewrites only those days' rows. ``()``
        for a block that changes no dated row; None (unknown) makes the next publication copy the
        whole file.

        On the lake (``single_writer`` False) writers commit concurrently and analysts attach the lake
        read-only, so there is neither a writer lock nor a replica.
        """
        if not self.single_writer:
            with self._connect(log) as conn:
                yield conn
            return
        with self.step_lock(DUCKDB_LOCK, run_id=run_id, log=log):
            begin_write(self.database)
            try:
                with self._connect(log) as conn:
                    yield conn
                    conn.execute("CHECKPOINT")
            finally:
                end_write(self.database, None if days is None else list(days))
            if publish:
                self.publish(log)

    def publish(self, log: Callable[[str], None]) -> None:
        """Publish the read replica (the caller holds the writer lock). A failure leaves analysts the
        previous replica and is logged; the journal keeps what changed for the next publication."""
        try:
            copy = publish_replica(self.database)
        except (OSError, duckdb.Error) as exc:
            log(f"read replica NOT updated (analysts see the previous one): {exc}")
            return
        if copy is None:
            return
        what = (
            f"{len(copy.days)} changed day(s) refreshed, {copy.rows:,} rows"
            if copy.mode == "changed days"
            else f"whole copy ({copy.reason})"
        )
        written = "" if copy.written is None else f", {copy.written / 1e6:.1f} MB written"
        log(
            f"read replica {copy.path} updated: {what}{written}, in {copy.seconds:.2f} s "
            f"(file {copy.bytes / 1e6:.1f} MB)"
        )

    @contextmanager
    def _connect(self, log: Callable[[str], None] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        def waiting(seconds: float, holder: str) -> None:
            message = (
                f"waiting {seconds:.0f} s so far for the DuckDB file {self.database}, locked by {holder}"
            )
            (log or log_warning)(message)

        with connect(
            self.database,
            lock_wait_s=self.lock_wait_s,
            config=dict(self.connection_config),
            on_wait=waiting,
            lake=self.lake_settings if self.is_lake else None,
            on_convert=log or log_warning,
        ) as conn:
            yield conn

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connect() as conn:
            yield conn


def log_warning(message: str) -> None:
    log.warning(message)
