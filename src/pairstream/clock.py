"""Injectable clocks: logic asks a :class:`Clock` for the time, never ``time.time()``.

:class:`SystemClock` is the real one; :class:`FakeClock` is driven by tests
(``advance``), and its ``sleep`` wakes exactly when fake time reaches the deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Source of wall-clock time (epoch ms) and monotonic time, plus sleeping."""

    def now_ms(self) -> int:
        """Wall-clock time, epoch milliseconds."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for measuring durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to; for deterministic tests."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ns = start_ms * 1_000_000
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self._now_ns // 1_000_000

    def monotonic(self) -> float:
        return self._now_ns / 1e9

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now_ns + int(seconds * 1e9)
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future))
        await future

    def set_ms(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (never backwards) and wake sleepers that are due."""
        self._set_ns(now_ms * 1_000_000)

    def advance(self, seconds: float) -> None:
        """Move forward ``seconds`` and wake sleepers that are due."""
        self._set_ns(self._now_ns + int(seconds * 1e9))

    def _set_ns(self, target: int) -> None:
        if target < self._now_ns:
            raise ValueError("a clock does not go backwards")
        self._now_ns = target
        while self._sleepers and self._sleepers[0][0] <= self._now_ns:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting for fake time to pass."""
        return sum(1 for _, _, f in self._sleepers if not f.done())
