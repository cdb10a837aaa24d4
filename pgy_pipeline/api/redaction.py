"""The token never reaches a log record, an error or a repr: every form of it is replaced by ``***``.

httpx logs each request URL at INFO with the token percent-encoded; the filter installed here on the
``httpx`` and ``httpcore`` loggers replaces every registered form
(:meth:`~pgy_pipeline.api.transport.Transport` registers its token's).
"""

from __future__ import annotations

import logging


class _RedactSecrets(logging.Filter):
    """Replaces registered secrets in log records (httpx logs every request URL at INFO)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                record.msg, record.args = redact(message, self.secrets), None
        return True


REDACTOR = _RedactSecrets()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(REDACTOR)


def redact(text: str, secrets: set[str] | list[str] | tuple[str, ...]) -> str:
    """Return ``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


