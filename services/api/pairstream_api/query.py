"""Query parameters every list route shares: a time range, a page size and a cursor.

Times are epoch milliseconds or ISO-8601 (``2024-07-18T12:00:00Z``; no zone = UTC).
A page is ordered by time; its ``next_cursor`` (opaque) continues strictly after its
last row, so walking the pages covers a range exactly once.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query, Request

from .errors import ApiError

_DIGITS = re.compile(r"^\d{1,15}$")
TIME_PATTERN = r"^(\d{1,15}|\d{4}-\d{2}-\d{2}([T ][0-9:.]+)?(Z|[+-]\d{2}:?\d{2})?)$"
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
TIME_HELP = "Epoch ms or ISO-8601 (UTC unless a zone is given)."


def invalid(field: str, message: str, where: str = "query") -> ApiError:
    """A 422 naming the parameter (``where``: ``query``, ``path`` or ``body``)."""
    return ApiError(
        422, "Invalid request", f"{field}: {message}",
        errors=[{"field": field, "in": where, "message": message}],
    )  # fmt: skip


def parse_time(text: str, field: str) -> int:
    """Epoch ms from ms digits or ISO-8601, within years 1970–9999."""
    if _DIGITS.match(text):
        ms = int(text)
    else:
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            ms = int(when.timestamp() * 1000)
        except (ValueError, OverflowError):
            raise invalid(field, f"not epoch ms or ISO-8601: {text!r}") from None
    if not 0 <= ms <= MAX_MS:
        raise invalid(field, f"outside 1970-01-01 … 9999-12-31: {text!r}")
    return ms


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def maybe_datetime(ms: int | None) -> datetime | None:
    """A query argument: epoch ms or None → timestamptz or NULL."""
    return None if ms is None else to_datetime(ms)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page starts: after (``ts``, ``key``) in the route's order."""

    ts: int
    key: str = ""

    def encode(self) -> str:
        raw = f"{self.ts}|{self.key}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            ts, _, key = raw.partition("|")
            cursor = cls(int(ts), key)
            if not 0 <= cursor.ts <= MAX_MS:
                raise ValueError(ts)
            return cursor
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise invalid("cursor", "not a cursor of this API (use next_cursor)") from None


@dataclass(frozen=True, slots=True)
class Window:
    """A validated time range, page size and cursor."""

    start: int | None
    end: int | None
    limit: int
    cursor: Cursor | None

    @property
    def start_at(self) -> datetime | None:
        return maybe_datetime(self.start)

    @property
    def end_at(self) -> datetime | None:
        return maybe_datetime(self.end)

    @property
    def after_at(self) -> datetime | None:
        """The time a page continues strictly after (from the cursor)."""
        return None if self.cursor is None else to_datetime(self.cursor.ts)


StartQuery = Annotated[
    str | None,
    Query(description=f"Range start, inclusive. {TIME_HELP}", pattern=TIME_PATTERN,
          examples=["2024-07-18T12:00:00Z"]),
]  # fmt: skip
EndQuery = Annotated[
    str | None,
    Query(description=f"Range end, exclusive. {TIME_HELP}", pattern=TIME_PATTERN,
          examples=["1721307600000"]),
]  # fmt: skip


def parse_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """``start`` and ``end`` in epoch ms (each optional); ``end`` may not be before ``start``."""
    start_ms = None if start is None else parse_time(start, "start")
    end_ms = None if end is None else parse_time(end, "end")
    if start_ms is not None and end_ms is not None and end_ms < start_ms:
        raise invalid("end", "before start")
    return start_ms, end_ms


async def _window(
    request: Request,
    start: StartQuery = None,
    end: EndQuery = None,
    limit: Annotated[int | None, Query(ge=1, description="Rows per page (capped).")] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
) -> Window:
    settings = request.app.state.api.settings
    if limit is not None and limit > settings.max_page_limit:
        raise invalid("limit", f"at most {settings.max_page_limit}")
    start_ms, end_ms = parse_range(start, end)
    return Window(
        start_ms, end_ms, limit or settings.page_limit,
        None if cursor is None else Cursor.decode(cursor),
    )  # fmt: skip


TimeWindow = Annotated[Window, Depends(_window)]
