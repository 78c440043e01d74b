"""Where ingest output goes: runs of trades to ``ticks``, bad input to the dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pairstream.clock import Clock
from pairstream.kafka import MessageProducer
from pairstream.messages import DeadLetter, Market, Message, TickRun, TickSource, Trade, dead_letter
from pairstream.settings import TopicSettings
from pairstream.supervisor import Backoff
from pairstream_ingest.metrics import IngestMetrics
from pairstream_ingest.sequencer import Released

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Sent:
    topic: str
    message: Message
    ack: asyncio.Future[Any]


class TickSink:
    """Collects released trades per instrument and publishes them as runs, in order.

    :meth:`flush` sends whatever has been collected, without waiting for more;
    :meth:`drain` waits until the broker has acknowledged everything sent. A
    failed send is sent again, with everything after it, in the same order,
    until the broker takes it (readers drop the repeats by trade id), so
    nothing is reported as published before it is.
    """

    def __init__(
        self,
        producer: MessageProducer,
        topics: TopicSettings,
        clock: Clock,
        market: Market,
        max_run_trades: int = 2_000,
        service: str = "ingest",
        metrics: IngestMetrics | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.clock = clock
        self.market: Market = market
        self.max_run_trades = max_run_trades
        self.service = service
        self.metrics = metrics
        self.backoff = backoff or Backoff(base_s=0.2, cap_s=10.0)
        self._pending: dict[tuple[Market, str], list[tuple[TickSource, list[Trade]]]] = {}
        self._letters: list[DeadLetter] = []
        self._inflight: list[_Sent] = []
        self.published_trades = 0
        self.published_runs = 0
        self.dead_letters = 0

    def add(self, symbol: str, released: Iterable[Released], market: Market | None = None) -> None:
        """Queue released trades of ``symbol`` (kept in order, grouped by source).

        ``market`` is the sink's own unless given (a replay of several markets).
        """
        segments: list[tuple[TickSource, list[Trade]]] | None = None
        for trade, source in released:
            if segments is None:
                segments = self._pending.setdefault((market or self.market, symbol), [])
            if not segments or segments[-1][0] != source:
                segments.append((source, []))
            segments[-1][1].append(trade)

    def dead_letter(
        self,
        source: str,
        reason: str,
        raw: bytes | str,
        key: str | None = None,
        ts_event: int | None = None,
    ) -> None:
        """Queue ``raw`` for the dead-letter topic with the reason (sent by :meth:`flush`)."""
        self._letters.append(
            dead_letter(
                source=source,
                service=self.service,
                reason=reason,
                raw=raw,
                original_key=key,
                ts_event=ts_event,
                ts_init=self.clock.now_ms(),
            )
        )
        self.dead_letters += 1
        if self.metrics is not None:
            self.metrics.dead_letters.labels(key or "").inc()

    async def flush(self) -> None:
        """Send every instrument's collected trades now, as runs of at most ``max_run_trades``."""
        pending, self._pending = self._pending, {}
        letters, self._letters = self._letters, []
        now = self.clock.now_ms()
        for (market, symbol), segments in pending.items():
            for source, trades in segments:
                for start in range(0, len(trades), self.max_run_trades):
                    run = TickRun(
                        market=market,
                        symbol=symbol,
                        source=source,
                        ts_ingest=now,
                        trades=trades[start : start + self.max_run_trades],
                    )
                    await self._send(self.topics.ticks, run)
                    self.published_runs += 1
                    self.published_trades += len(run.trades)
        for letter in letters:
            await self._send(self.topics.dead_letter, letter)

    async def _send(self, topic: str, message: Message) -> None:
        self._inflight.append(_Sent(topic, message, await self.producer.send(topic, message)))

    async def drain(self) -> None:
        """Wait until the broker has acknowledged everything sent so far."""
        failures = 0
        while self._inflight:
            inflight, self._inflight = self._inflight, []
            results = await asyncio.gather(*(s.ack for s in inflight), return_exceptions=True)
            failed = next((i for i, r in enumerate(results) if isinstance(r, BaseException)), None)
            self._acked(inflight if failed is None else inflight[:failed])
            if failed is None:
                return
            failures += 1
            delay = self.backoff.delay(failures)
            log.error(
                "delivery to %s failed (%r); resending %d messages in %.1f s",
                inflight[failed].topic,
                results[failed],
                len(inflight) - failed,
                delay,
            )
            await self.clock.sleep(delay)
            for sent in inflight[failed:]:
                await self._send(sent.topic, sent.message)

    def _acked(self, sent: list[_Sent]) -> None:
        if self.metrics is None:
            return
        for item in sent:
            if isinstance(item.message, TickRun):
                run = item.message
                self.metrics.published(
                    run.instrument, run.source, len(run.trades), run.trades[-1].ts_event
                )
