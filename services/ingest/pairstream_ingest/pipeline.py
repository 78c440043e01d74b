"""The one path every trade takes: validate, order and dedupe per symbol, publish runs.

Live frames, backfilled trades and synthetic trades all go through
:class:`Pipeline`; :meth:`Pipeline.run_publisher` sends whatever has been read,
as soon as the event loop is free, and waits for the broker's acknowledgement
before the next batch (batches grow by themselves under load).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable

from pairstream.clock import Clock
from pairstream.instruments import instrument
from pairstream.messages import TickSource, Trade
from pairstream.settings import KafkaSettings
from pairstream_ingest.binance import ControlAnswer, FrameError, decode_frame
from pairstream_ingest.metrics import IngestMetrics
from pairstream_ingest.sequencer import Released, Sequencer, SequencerStats
from pairstream_ingest.sinks import TickSink

log = logging.getLogger(__name__)


def ingest_kafka(kafka: KafkaSettings) -> KafkaSettings:
    """The ingest's producer settings: no linger, since the pipeline batches by itself."""
    return kafka.model_copy(update={"linger_ms": 0})


class Pipeline:
    """Frames and trades in, ordered runs of trades out; gaps reported to the backfill."""

    def __init__(
        self,
        sink: TickSink,
        clock: Clock,
        symbols: frozenset[str],
        metrics: IngestMetrics | None = None,
        history: int = 100_000,
        latency: Callable[[float], None] | None = None,
        start_grace_s: float | None = None,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.symbols = symbols
        self.metrics = metrics
        self.history = history
        self.latency = latency
        self.start_grace_s = start_grace_s
        self.sequencers: dict[str, Sequencer] = {}
        self.gapped: set[str] = set()
        self.catch_up: set[str] = set()
        self.gap_found = asyncio.Event()
        self._dirty = asyncio.Event()
        self._publishing = asyncio.Lock()
        self._received: list[float] = []
        self._reported: dict[str, SequencerStats] = {}

    def sequencer(self, symbol: str) -> Sequencer:
        seq = self.sequencers.get(symbol)
        if seq is None:
            hold = self.start_grace_s is not None
            seq = self.sequencers[symbol] = Sequencer(symbol, history=self.history, hold_start=hold)
            self._reported[symbol] = SequencerStats()
            if self.start_grace_s is not None:
                loop = asyncio.get_running_loop()
                loop.call_later(self.start_grace_s, self._start, symbol)
        return seq

    def _start(self, symbol: str) -> None:
        seq = self.sequencers[symbol]
        self._release(symbol, seq.start())
        if seq.waiting:
            self.gapped.add(symbol)
            self.gap_found.set()

    def resume(
        self,
        symbol: str,
        last_id: int,
        last_ts: int,
        recent: list[tuple[int, int, float]] | None = None,
    ) -> None:
        """Continue ``symbol`` after ``last_id``, published before a restart.

        Its sequencer starts there, so the first live trade past it opens a gap that
        the backfill fills as after a reconnect (trades up to it are duplicates); a
        catch-up is asked for too, so the missed trades come even if no live one does.
        """
        self.sequencer(symbol).resume(last_id, last_ts, recent)
        self.catch_up.add(symbol)
        self.gap_found.set()

    def resubscribed(self, symbols: list[str]) -> None:
        """A connection came back: trades may have been missed with no later trade to show it."""
        self.catch_up.update(s for s in symbols if s in self.sequencers)
        if self.catch_up:
            self.gap_found.set()

    def on_frame(
        self, raw: bytes | str, origin: str, received: float | None = None
    ) -> ControlAnswer | None:
        """Handle one WebSocket frame; a control answer is returned to the connection.

        ``received`` (the clock's monotonic time) feeds the frame-to-ack latency.
        """
        try:
            decoded = decode_frame(raw)
        except FrameError as error:
            self.sink.dead_letter(origin, error.reason, raw)
            self._dirty.set()
            return None
        if isinstance(decoded, ControlAnswer):
            return decoded
        if decoded.symbol not in self.symbols:
            name = instrument(self.sink.market, decoded.symbol)
            self.sink.dead_letter(origin, f"instrument {name} not subscribed", raw, key=name)
            self._dirty.set()
            return None
        if received is not None and self.latency is not None:
            self._received.append(received)
        self.offer(decoded.symbol, decoded.trade, "live")
        return None

    def offer(self, symbol: str, trade: Trade, source: TickSource) -> None:
        """Push one trade of ``symbol`` through its sequencer towards the sink."""
        seq = self.sequencer(symbol)
        self._release(symbol, seq.push(trade, source))
        if seq.waiting and seq.next_id is not None and symbol not in self.gapped:
            self.gapped.add(symbol)
            self.gap_found.set()

    def skip_gap(self, symbol: str) -> None:
        """Give up the symbol's current gap (counted and alarmed by the caller)."""
        self._release(symbol, self.sequencer(symbol).skip_gap())

    def _release(self, symbol: str, released: list[Released]) -> None:
        if released:
            self.sink.add(symbol, released)
            self._dirty.set()
            if not self.sequencers[symbol].waiting:
                self.gapped.discard(symbol)

    def sync_metrics(self) -> None:
        """Move the sequencers' counters into the Prometheus metrics."""
        if self.metrics is None:
            return
        for symbol, seq in self.sequencers.items():
            seen, now = self._reported[symbol], seq.stats
            name = instrument(self.sink.market, symbol)
            self.metrics.duplicates.labels(name).inc(now.duplicates - seen.duplicates)
            self.metrics.gaps.labels(name).inc(now.gaps - seen.gaps)
            self.metrics.gap_ids_skipped.labels(name).inc(now.skipped_ids - seen.skipped_ids)
            self._reported[symbol] = dataclasses.replace(now)

    async def publish(self) -> None:
        """Send what has been read and wait for the broker's acknowledgement.

        Calls never overlap: one returns once everything read before it is acknowledged.
        """
        async with self._publishing:
            await self._publish()

    async def _publish(self) -> None:
        self._dirty.clear()
        received, self._received = self._received, []
        await self.sink.flush()
        await self.sink.drain()
        if received and self.latency is not None:
            acked = self.clock.monotonic()
            for at in received:
                self.latency(acked - at)
        self.sync_metrics()

    async def run_publisher(self) -> None:
        """Publish forever: as soon as anything was read, without waiting for more."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0)  # frames already received join this batch
            await self.publish()
