"""Where bars go: an ordered outbox to Kafka and a bounded buffer for the database."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pairstream.clock import Clock
from pairstream.kafka import MessageProducer
from pairstream.messages import Bar, Message

from .metrics import ResamplerMetrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Item:
    topic: str
    message: Message
    final_at: float | None  # monotonic time the watermark passed a final bar's end


class Outbox:
    """Publishes messages in the order they were queued, from one task.

    The agent only queues (it never awaits the broker), so a cancelled or
    restarted agent cannot lose half of one message's output. :meth:`barrier`
    returns the acknowledgement futures of everything queued before it.
    """

    def __init__(self, producer: MessageProducer, clock: Clock, metrics: ResamplerMetrics) -> None:
        self.producer = producer
        self.clock = clock
        self.metrics = metrics
        self._queue: asyncio.Queue[_Item | asyncio.Future[list[asyncio.Future[object]]]] = (
            asyncio.Queue()
        )
        self._acks: list[asyncio.Future[object]] = []
        #: recent delays from a bar's watermark passing to its final bar acked (seconds)
        self.final_delays: deque[float] = deque(maxlen=100_000)
        self.published = 0

    def put(self, topic: str, message: Message, final_at: float | None = None) -> None:
        self._queue.put_nowait(_Item(topic, message, final_at))

    async def barrier(self) -> list[asyncio.Future[object]]:
        """Wait until everything queued so far is handed to the producer; its ack futures."""
        done: asyncio.Future[list[asyncio.Future[object]]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(done)
        return await done

    async def run(self) -> None:
        """Forever: hand queued messages to the producer in order."""
        while True:
            item = await self._queue.get()
            if isinstance(item, asyncio.Future):
                acks, self._acks = self._acks, []
                if not item.done():
                    item.set_result(acks)
                continue
            ack = await self.producer.send(item.topic, item.message)
            self.published += 1
            if item.final_at is not None:
                ack.add_done_callback(self._final_acked(item.final_at))
            self._acks.append(ack)

    def _final_acked(self, final_at: float) -> Callable[[asyncio.Future[object]], None]:
        def observe(future: asyncio.Future[object]) -> None:
            if not future.cancelled() and future.exception() is None:
                delay = self.clock.monotonic() - final_at
                self.final_delays.append(delay)
                self.metrics.final_delay.observe(delay)

        return observe


Key = tuple[str, str, str, int]  # market, symbol, tf, start


class BarBuffer:
    """Bars waiting for the database, latest revision per ``(market, symbol, tf, start)``.

    Bounded: :attr:`full` once ``max_rows`` bars are waiting or being written, and
    the agent stops consuming until a write frees room.
    """

    def __init__(self, max_rows: int, metrics: ResamplerMetrics) -> None:
        self.max_rows = max_rows
        self.metrics = metrics
        self._rows: dict[Key, Bar] = {}
        self._writing = 0
        self._room = asyncio.Event()
        self._room.set()

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def pending(self) -> int:
        """Bars not stored yet: waiting, or in the write under way."""
        return len(self._rows) + self._writing

    @property
    def full(self) -> bool:
        return self.pending >= self.max_rows

    def add(self, bar: Bar) -> None:
        key = (bar.market, bar.symbol, bar.tf, bar.start)
        held = self._rows.get(key)
        if held is None or held.revision <= bar.revision:
            self._rows[key] = bar
        self._update()

    def take(self) -> list[Bar]:
        """Everything waiting, now counted as being written until :meth:`done`."""
        rows = list(self._rows.values())
        self._rows.clear()
        self._writing = len(rows)
        self._update()
        return rows

    def done(self, rows: list[Bar], stored: bool) -> None:
        """A write of ``rows`` ended; when it failed they wait again (newer revisions win)."""
        self._writing = 0
        if not stored:
            for bar in rows:
                self.add(bar)
        self._update()

    async def wait_room(self) -> None:
        while self.full:
            self._room.clear()
            await self._room.wait()

    def _update(self) -> None:
        self.metrics.buffered.set(len(self._rows) + self._writing)
        if not self.full:
            self._room.set()
