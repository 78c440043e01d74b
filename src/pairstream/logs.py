"""Logging for every pairstream process: readable console lines or one JSON object per line.

Quiet by default: the libraries' own narration (aiokafka and faust/mode group
joins, rebalances, every service start and stop; asyncio's slow-callback notes)
is shown from WARNING up, unless ``LOG_LEVEL=DEBUG`` or ``LOG_LIBRARY_LEVEL``
says otherwise (``pairstream up --verbose`` sets it to INFO).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pairstream.settings import LogSettings

#: Loggers of the libraries underneath, held at ``LOG_LIBRARY_LEVEL``.
LIBRARIES = ("aiokafka", "faust", "mode", "asyncio", "httpx")
#: The values :class:`pairstream.settings.LogSettings` accepts (a test keeps them equal).
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("console", "json")

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts": …, "level": …, "logger": …, "msg": …, **extra}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        import orjson

        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def _env(name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    # what LogSettings reads (names case-insensitive), without importing pydantic: the
    # CLI sets logging up before every command, `--help` included
    values = [v for k, v in os.environ.items() if k.upper() == name]
    if not values or not values[-1]:
        return default
    if values[-1] not in allowed:
        raise SystemExit(f"{name}={values[-1]!r}: expected one of {', '.join(allowed)}")
    return values[-1]


def setup_logging(settings: LogSettings | None = None) -> None:
    """Configure the root logger once per process from ``LOG_LEVEL`` / ``LOG_FORMAT`` /
    ``LOG_LIBRARY_LEVEL`` (or ``settings``)."""
    if settings is None:
        level = _env("LOG_LEVEL", LEVELS, "INFO") or "INFO"
        fmt = _env("LOG_FORMAT", FORMATS, "console")
        libraries = _env("LOG_LIBRARY_LEVEL", LEVELS, None)
    else:
        level, fmt, libraries = settings.level, settings.format, settings.library_level
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(libraries or ("DEBUG" if level == "DEBUG" else "WARNING"))
