"""Where ingest output goes: runs of trades to ``ticks``, bad input to the dead-letter topic."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

from pairstream.clock import Clock
from pairstream.kafka import MessageProducer
from pairstream.messages import DeadLetter, Market, TickRun, TickSource, Trade
from pairstream.settings import TopicSettings


def raw_text(raw: bytes | str) -> tuple[str, Literal["utf-8", "base64"]]:
    """``(text, encoding)`` for a dead letter's ``raw`` field."""
    if isinstance(raw, str):
        return raw, "utf-8"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


class TickSink:
    """Collects released trades per symbol and publishes each symbol's batch as runs.

    :meth:`flush` sends whatever has been collected, without waiting for more;
    :meth:`drain` waits until the broker has acknowledged everything sent.
    A failed delivery raises from :meth:`drain` (the caller must not report
    progress past it).
    """

    def __init__(
        self,
        producer: MessageProducer,
        topics: TopicSettings,
        clock: Clock,
        market: Market,
        source: TickSource,
        max_run_trades: int = 2_000,
        service: str = "ingest",
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.clock = clock
        self.market: Market = market
        self.source: TickSource = source
        self.max_run_trades = max_run_trades
        self.service = service
        self._pending: dict[str, list[Trade]] = {}
        self._inflight: list[asyncio.Future[Any]] = []
        self.published_trades = 0
        self.published_runs = 0
        self.dead_letters = 0

    def add(self, symbol: str, trades: list[Trade]) -> None:
        if trades:
            self._pending.setdefault(symbol, []).extend(trades)

    async def flush(self) -> None:
        """Send every symbol's collected trades now, as runs of at most ``max_run_trades``."""
        pending, self._pending = self._pending, {}
        now = self.clock.now_ms()
        for symbol, trades in pending.items():
            for start in range(0, len(trades), self.max_run_trades):
                run = TickRun(
                    market=self.market,
                    symbol=symbol,
                    source=self.source,
                    ts_ingest=now,
                    trades=trades[start : start + self.max_run_trades],
                )
                self._inflight.append(await self.producer.send(self.topics.ticks, run))
                self.published_runs += 1
                self.published_trades += len(run.trades)

    async def dead_letter(
        self,
        source: str,
        reason: str,
        raw: bytes | str,
        key: str | None = None,
        ts_event: int | None = None,
    ) -> None:
        text, encoding = raw_text(raw)
        letter = DeadLetter(
            source=source,
            service=self.service,
            reason=reason,
            raw=text,
            raw_encoding=encoding,
            original_key=key,
            ts_event=ts_event,
            ts_init=self.clock.now_ms(),
        )
        self._inflight.append(await self.producer.send(self.topics.dead_letter, letter))
        self.dead_letters += 1

    async def drain(self) -> None:
        """Wait for the broker's acknowledgement of everything sent so far."""
        inflight, self._inflight = self._inflight, []
        await asyncio.gather(*inflight)
