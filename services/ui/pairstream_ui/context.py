"""What every page's callbacks share: the settings, the API client, and helpers for the
URL state and for errors shown to the user."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args
from urllib.parse import urlencode

import orjson

from pairstream.clock import Clock, SystemClock
from pairstream.messages import HedgeMethod, timeframe_ms

from .client import ApiClient, ApiDownError, ApiError
from .config import UiSettings

#: What a page shows instead of a chart when the API fails; ``ApiError``'s detail is the
#: API's own words.
SHOWN_ERRORS = (ApiDownError, ApiError)


#: Items asked for per page (the API's default page size: within any API_MAX_PAGE_LIMIT).
PAGE = 1_000
#: The hedge-ratio methods, in the order the pages offer them.
METHODS: tuple[str, ...] = get_args(HedgeMethod)
#: The chart windows (bars) a page offers, beside ``UI_POINTS``.
WINDOWS = (120, 300, 600, 1800, 3600)


@dataclass(frozen=True)
class Ui:
    settings: UiSettings
    api: ApiClient
    clock: Clock = field(default_factory=SystemClock)

    async def latest(self, path: str, tf: str) -> Any:
        """A ``…/latest`` route's answer, ``None`` when there is nothing yet (404)."""
        try:
            return await self.api.get(path, tf=tf)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def windows(self) -> list[int]:
        """The chart windows offered (bars), ``UI_POINTS`` among them."""
        return sorted({*WINDOWS, self.settings.points})

    def points(self, text: str | None) -> int:
        """A window from the URL, else ``UI_POINTS``."""
        try:
            value = int(text or "")
        except ValueError:
            return self.settings.points
        return value if value in self.windows() else self.settings.points

    def window_start(self, latest: Any, field: str, tf: str, points: int) -> int | None:
        """The start of a window of ``points`` bars ending at the newest ``field`` of a
        ``…/latest`` answer: ``None`` when there is none yet."""
        newest = _newest(latest, field)
        if newest is None:
            return None
        return int(newest) - (points - 1) * timeframe_ms(tf)

    async def window(
        self, path: str, start: int | None, points: int, **params: Any
    ) -> list[dict[str, Any]]:
        """Every item of a paginated route from ``start`` (``points`` at most; none while
        ``start`` is ``None``: nothing stored yet)."""
        if start is None:
            return []
        items: list[dict[str, Any]] = []
        cursor = None
        while len(items) < points:
            page = await self.api.get(path, start=start, cursor=cursor,
                                      limit=min(points - len(items), PAGE), **params)  # fmt: skip
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items[-points:]


def _newest(latest: Any, field: str) -> int | None:
    if isinstance(latest, Mapping):
        if field in latest and latest[field] is not None:
            return int(latest[field])
        values = [_newest(v, field) for v in latest.values() if isinstance(v, Mapping)]
        found = [v for v in values if v is not None]
        return max(found) if found else None
    return None


def live_chart(graph: Any, id: str, spec: Mapping[str, Any] | None, **props: Any) -> Any:
    """``graph`` in a wrapper whose ``data-live`` spec ``assets/live.js`` follows (none:
    not live)."""
    from dash import html

    wrapper = html.Div(graph, id=id, **props)
    if spec is not None:
        setattr(wrapper, "data-live", orjson.dumps(spec).decode())  # a wildcard prop
    return wrapper


def query(values: Mapping[str, Any]) -> str:
    """The URL query of a page's controls (empty values left out)."""
    return "?" + urlencode({k: v for k, v in values.items() if v not in (None, "", [])})


def problem_text(error: Exception) -> str:
    """How an API failure reads on a page."""
    if isinstance(error, ApiError):
        fields = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in error.errors)
        return f"the API answered {error.status}: {error.detail}" + (
            f" ({fields})" if fields else ""
        )
    return str(error)


def field_errors(error: Exception, fields: Collection[str]) -> dict[str, str]:
    """An API failure as messages per form field (``general``: the rest). A field's
    error on a part of it (``condition.value``) names that part."""
    if not isinstance(error, ApiError) or not error.errors:
        return {"general": problem_text(error)}
    out: dict[str, list[str]] = {}
    for e in error.errors:
        path = str(e.get("field") or "")
        head = path.split(".")[0]
        name = head if head in fields else "general"
        part = path[len(head) + 1 :] if name != "general" and "." in path else ""
        if name == "general" and path:
            part = path
        message = str(e.get("message"))
        out.setdefault(name, []).append(f"{part}: {message}" if part else message)
    return {k: "; ".join(v) for k, v in out.items()}


def dataset_label(d: Mapping[str, Any]) -> str:
    """How a picker shows an uploaded dataset."""
    return f"{d['name']} ({d['tf']}, {d['rows']:,} bars)"


def when(ms: int | None) -> str:
    """An epoch-ms time as the pages show it (UTC)."""
    from datetime import UTC, datetime

    return "—" if ms is None else f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M:%S} UTC"


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def span(seconds: float | None) -> str:
    return "—" if seconds is None else _span(seconds)
