"""Every error the pipeline raises on purpose derives from :class:`PgyError`.

The tree, by what a person does about it::

    PgyError
    ├── InvalidInputError ............ bad input from a person; fix the input (no API call was made)
    │   ├── InvalidCreatorIdError .... not a 24-hex Xiaohongshu user id
    │   ├── InvalidParameterError .... a query value outside the documented set
    │   └── PastSnapshotDateError .... raw pages can only be fetched for today (Asia/Shanghai)
    ├── ApiError ..................... the Just One API answered with a failure
    │   ├── TransientError ........... worth retrying: 301, 500, HTTP 5xx/429, timeouts, broken bodies
    │   │   ├── RateLimitedError ..... 302 or HTTP 429: back off longer
    │   │   └── ServiceUnavailableError 503: the service is down for a while; back off longer
    │   ├── RetriesExhaustedError .... a transient failure outlived the retry budget
    │   ├── InvalidRequestError ...... 400: the service rejected this request's parameters
    │   ├── NotFoundError ............ 201 (billed) or 404: nothing there for this request; not retried
    │   ├── UnsupportedTargetError ... 202: the endpoint does not support this target; not retried
    │   ├── UnexpectedResponseError .. a code or body shape the documentation does not describe
    │   └── AccountError ............. terminal for the whole account; the circuit breaker opens
    │       ├── AuthError ............ 100: token invalid or inactive
    │       ├── AccountRejectedError . 101: undocumented, next to 100; treated like it
    │       ├── QuotaExceededError ... 303: daily quota used up
    │       │   └── UsageLimitError .. 300: undocumented, a quota per the vendor's SDK; treated like 303
    │       ├── PermissionDeniedError  600
    │       ├── InsufficientBalanceError 601
    │       └── SpendingCapError ..... 602: the token's spending cap is reached
    ├── CircuitOpenError ............. a call refused because an AccountError already happened
    ├── ApiGuardError ................ calls paused by the quota/account guard (stored across runs)
    ├── BudgetExhaustedError ......... the daily call budget (PGY_DAILY_CALL_BUDGET) would be passed
    ├── LockWaitTimeoutError ......... another run held a step lock (API fetch, DuckDB writer) too long
    ├── SharedPacingError ............ the PostgreSQL pacing table (PGY_PACING_URL) cannot be used
    └── WarehouseError ............... the DuckDB file cannot be used as it is
        ├── DataSourceMismatchError .. simulated and real data would mix in one DuckDB file
        ├── DuckDBLockedError ........ another process held the DuckDB file past the wait bound
        ├── SchemaVersionError ....... the file was written by a newer release than the code
        ├── MigrationError ........... a schema migration failed; the file kept its old version
        ├── StorageFormatError ....... the file's storage format cannot be read here or converted
        ├── LakeUnavailableError ..... the DuckLake profile cannot start here (DuckDB version, extensions)
        └── LakeConflictError ........ a lake commit kept conflicting with other writers past the bound

Each error carries the business ``code`` (or HTTP status), the service's ``service_message``,
the ``creator_id`` and the ``page`` it concerns, and its ``str()`` says what to do next.
Nothing here ever holds the API token.
"""

from __future__ import annotations

from typing import Any


class PgyError(Exception):
    """Base class of every pgy_pipeline error."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        service_message: str | None = None,
        creator_id: str | None = None,
        page: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.service_message = service_message
        self.creator_id = creator_id
        self.page = page
        self.http_status = http_status

    def __str__(self) -> str:
        where = []
        if self.creator_id is not None:
            where.append(f"creator {self.creator_id}")
        if self.page is not None:
            where.append(f"page {self.page}")
        if self.code is not None:
            where.append(f"code {self.code}")
        if self.http_status is not None:
            where.append(f"HTTP {self.http_status}")
        if self.service_message:
            where.append(f"service said: {self.service_message!r}")
        return self.message + (f" [{'; '.join(where)}]" if where else "")

    def __reduce__(self) -> tuple[Any, ...]:  # keep keyword fields when pickled across processes
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[PgyError], message: str, state: dict[str, Any]) -> PgyError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class InvalidInputError(PgyError, ValueError):
    """Bad input from a person, found before any API call."""


class InvalidCreatorIdError(InvalidInputError):
    """A creator id that is not a 24-character hexadecimal Xiaohongshu user id."""


class InvalidParameterError(InvalidInputError):
    """A request parameter outside the values the endpoint documents."""


class PastSnapshotDateError(InvalidInputError):
    """Raw pages were asked for a date other than today in Asia/Shanghai."""


class ApiError(PgyError):
    """The service answered with a failure."""


class TransientError(ApiError):
    """A failure worth retrying."""


class RateLimitedError(TransientError):
    """The service said to slow down (code 302 or HTTP 429)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class ServiceUnavailableError(TransientError):
    """Code 503: the service is temporarily unavailable; worth retrying after a longer wait."""


class RetriesExhaustedError(ApiError):
    """A transient failure that kept happening until the retry budget ran out."""

    def __init__(self, message: str, *, attempts: int, last_error: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.attempts = attempts
        self.last_error = last_error


class InvalidRequestError(ApiError):
    """Code 400: the service rejected this request's parameters."""


class NotFoundError(ApiError):
    """Code 201 ("no content", billed) or 404: the service has nothing for this request.

    Terminal for the request: a retry of a 201 would be billed again for the same answer.
    """


class UnsupportedTargetError(ApiError):
    """Code 202: the endpoint does not support this target; the vendor says retrying will not help."""


class UnexpectedResponseError(ApiError):
    """A business code or body shape the endpoint documentation does not describe."""


class AccountError(ApiError):
    """A failure that concerns the whole account: every further call would fail or be billed."""


class AuthError(AccountError):
    """Code 100: the token is invalid or inactive."""


class AccountRejectedError(AccountError):
    """Code 101 (undocumented, next to 100): the token or account was rejected; treated like 100."""


class QuotaExceededError(AccountError):
    """Code 303: the daily quota is used up."""


class UsageLimitError(QuotaExceededError):
    """Code 300 (undocumented; the vendor's SDK pairs it with "quota exceeded"): treated like 303."""


class PermissionDeniedError(AccountError):
    """Code 600: the account may not call this endpoint."""


class InsufficientBalanceError(AccountError):
    """Code 601: the account balance is too low."""


class SpendingCapError(AccountError):
    """Code 602: the token's spending cap is reached; it stays until an operator raises it."""


class CircuitOpenError(PgyError):
    """A call refused without reaching the service, because an account error already happened."""


class ApiGuardError(PgyError):
    """API calls are paused by the stored quota/account guard."""


class BudgetExhaustedError(PgyError):
    """A call refused, without reaching the service, because it could pass the day's call budget."""


class LockWaitTimeoutError(PgyError):
    """A step waited longer than ``PGY_LOCK_WAIT_S`` for a lock another live run holds."""


class WarehouseError(PgyError):
    """The DuckDB file cannot be used as it is."""


class DataSourceMismatchError(WarehouseError):
    """Simulated and real data would be mixed in one DuckDB file."""


class DuckDBLockedError(WarehouseError):
    """Another process kept the DuckDB file locked for longer than the configured wait."""


class SchemaVersionError(WarehouseError):
    """The DuckDB file's schema version is newer than this code knows."""


class MigrationError(WarehouseError):
    """A schema migration failed; the upgrade was rolled back."""


class StorageFormatError(WarehouseError):
    """The DuckDB file's storage format cannot be read by this DuckDB, or its conversion to the
    format every supported DuckDB reads failed (the file was left as it was)."""


class SharedPacingError(PgyError):
    """The PostgreSQL pacing table named by PGY_PACING_URL cannot be reached or used."""


class LakeUnavailableError(WarehouseError):
    """The DuckLake profile cannot start in this environment (wrong DuckDB, extension missing)."""


class LakeConflictError(WarehouseError):
    """A DuckLake commit conflicted with other writers on every bounded attempt."""
