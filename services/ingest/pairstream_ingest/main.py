"""Wiring of the ingest service: settings, producer, topics, source, sink."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pairstream.clock import Clock, SystemClock
from pairstream.kafka import MessageProducer, contract_topics, ensure_topics
from pairstream.messages import Market
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream_ingest.config import IngestSettings
from pairstream_ingest.replay import ReplayStats, merged, replay
from pairstream_ingest.sinks import TickSink


async def run_replay(
    paths: Sequence[Path],
    speed: float | None,
    market: Market | None = None,
    symbols: frozenset[str] | None = None,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    settings: IngestSettings | None = None,
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Replay files into the ``ticks`` topic (``speed`` ``None`` = as fast as possible)."""
    settings = settings or IngestSettings()
    topics = topics or TopicSettings()
    kafka = kafka or KafkaSettings()
    clock = clock or SystemClock()
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no such replay file: {path}")
    produced = {topics.ticks, topics.dead_letter}
    await ensure_topics([t for t in contract_topics(topics) if t.name in produced], kafka)
    market = market or settings.market
    async with MessageProducer(kafka) as producer:
        sink = TickSink(
            producer,
            topics,
            clock,
            market=market,
            source="replay",
            max_run_trades=settings.max_run_trades,
        )
        return await replay(
            merged(paths, market),
            sink,
            clock,
            speed=speed,
            symbols=symbols,
            max_waiting=settings.max_waiting,
            progress=progress,
        )
