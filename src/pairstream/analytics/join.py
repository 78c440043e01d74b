"""Joining a pair's two legs bar by bar.

Rule for a bar missing on one leg: the resampler publishes no bar for an
interval without trades, so when one leg has a bar starting at ``ts`` and the
other has none, the missing leg's **previous close is carried forward** with
zero volume (its price did not change: nobody traded). A ``ts`` is decided only
once *both* legs have a bar starting at or after it (so an idle leg holds the
pair back until its next bar), and a ``ts`` before one leg's first bar is
skipped. Bars must arrive in increasing ``ts`` per leg; a bar at or before the
decided frontier is reported back to the caller instead (a duplicate or a
revision of something already joined).
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from pairstream.analytics.pair import LegBar

__all__ = ["JoinedBar", "PairJoiner"]


class JoinedBar(NamedTuple):
    """Both legs' bars starting at ``ts``; ``carried_*`` marks a carried-forward leg."""

    ts: int
    y: LegBar
    x: LegBar
    carried_y: bool
    carried_x: bool


class PairJoiner:
    """Joins the ``Y`` leg (index 0) and the ``X`` leg (index 1) of a pair on bar start."""

    __slots__ = ("_frontier", "_last", "_pending")

    def __init__(self) -> None:
        self._pending: tuple[deque[tuple[int, LegBar]], deque[tuple[int, LegBar]]] = (
            deque(),
            deque(),
        )
        self._last: list[LegBar | None] = [None, None]
        self._frontier: int | None = None

    @property
    def frontier(self) -> int | None:
        """The last ``ts`` decided (joined or skipped), if any."""
        return self._frontier

    def newest(self, leg: int) -> int | None:
        """Start of the newest bar received on ``leg`` that is not yet decided."""
        pending = self._pending[leg]
        return pending[-1][0] if pending else None

    def add(self, leg: int, ts: int, bar: LegBar) -> list[JoinedBar] | None:
        """Take one leg's bar; return the joined bars it decides (``None``: already decided)."""
        frontier = self._frontier
        pending = self._pending[leg]
        if frontier is not None and ts <= frontier:
            return None
        if pending and ts <= pending[-1][0]:
            if ts == pending[-1][0]:
                pending[-1] = (ts, bar)  # a newer revision of a bar not yet joined
                return []
            raise ValueError(f"leg {leg}: bar {ts} after {pending[-1][0]} (out of order)")
        pending.append((ts, bar))
        y_pending, x_pending = self._pending
        if not y_pending or not x_pending:
            return []
        return self._decide(min(y_pending[-1][0], x_pending[-1][0]))

    def decide_through(self, until: int) -> list[JoinedBar]:
        """Decide every pending ``ts`` up to ``until`` as if both legs had moved past it.

        For a rebuild: ``until`` must be a frontier that was reached before.
        """
        return self._decide(until)

    def _decide(self, until: int) -> list[JoinedBar]:
        y_pending, x_pending = self._pending
        joined: list[JoinedBar] = []
        last = self._last
        while True:
            head_y = y_pending[0][0] if y_pending else None
            head_x = x_pending[0][0] if x_pending else None
            candidates = [t for t in (head_y, head_x) if t is not None and t <= until]
            if not candidates:
                break
            t = min(candidates)
            y_bar = y_pending.popleft()[1] if head_y == t else None
            x_bar = x_pending.popleft()[1] if head_x == t else None
            if y_bar is not None:
                last[0] = y_bar
            if x_bar is not None:
                last[1] = x_bar
            self._frontier = t
            prev_y, prev_x = last
            if prev_y is None or prev_x is None:
                continue  # before one leg's first bar
            joined.append(
                JoinedBar(
                    t,
                    prev_y if y_bar is not None else _carried(prev_y),
                    prev_x if x_bar is not None else _carried(prev_x),
                    y_bar is None,
                    x_bar is None,
                )
            )
        if self._frontier is None or self._frontier < until:
            self._frontier = until
        return joined


def _carried(bar: LegBar) -> LegBar:
    return LegBar(bar.close, 0.0, 0.0, 0.0)
