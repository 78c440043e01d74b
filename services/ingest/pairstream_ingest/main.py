"""Wiring of the ingest service: settings, producer, topics, source, pipeline, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
from prometheus_client import start_http_server

from pairstream.clock import Clock, SystemClock
from pairstream.kafka import MessageProducer, contract_topics, ensure_topics
from pairstream.messages import Market
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream.status import Rates, status_every
from pairstream.synthetic import SyntheticMarket, trades
from pairstream_ingest.backfill import Backfiller, BinanceRest, WeightLimiter
from pairstream_ingest.config import IngestSettings
from pairstream_ingest.live import Connection, connections
from pairstream_ingest.metrics import IngestMetrics
from pairstream_ingest.pipeline import Pipeline, ingest_kafka
from pairstream_ingest.replay import ReplayStats, merged, replay
from pairstream_ingest.sinks import TickSink

log = logging.getLogger(__name__)


async def _ensure_output_topics(kafka: KafkaSettings, topics: TopicSettings) -> None:
    produced = {topics.ticks, topics.dead_letter}
    await ensure_topics([t for t in contract_topics(topics) if t.name in produced], kafka)


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
    await _ensure_output_topics(kafka, topics)
    market = market or settings.market
    async with MessageProducer(kafka) as producer:
        sink = TickSink(
            producer, topics, clock, market=market, max_run_trades=settings.max_run_trades
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


class LiveIngest:
    """Binance streams → pipeline → ``ticks``, with gap backfill over REST."""

    def __init__(
        self,
        settings: IngestSettings,
        kafka: KafkaSettings | None = None,
        topics: TopicSettings | None = None,
        clock: Clock | None = None,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.kafka = ingest_kafka(kafka or KafkaSettings())
        self.topics = topics or TopicSettings()
        self.clock = clock or SystemClock()
        self.metrics = metrics or IngestMetrics(self.clock)
        self.pipeline: Pipeline | None = None
        self.backfiller: Backfiller | None = None
        self.connections: list[Connection] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Stream until cancelled."""
        s = self.settings
        await _ensure_output_topics(self.kafka, self.topics)
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            MessageProducer(self.kafka) as producer,
            aiohttp.ClientSession(timeout=timeout) as session,
        ):
            sink = TickSink(
                producer, self.topics, self.clock, s.market, s.max_run_trades, metrics=self.metrics
            )
            self.pipeline = Pipeline(
                sink,
                self.clock,
                frozenset(s.symbols),
                self.metrics,
                latency=self.metrics.latency.observe,
                start_grace_s=s.gap_grace_s,
            )
            api_key = s.api_key.get_secret_value() if s.api_key else None
            limiter = WeightLimiter(s.rest_weight_per_minute, self.clock)
            rest = BinanceRest(session, s.rest_base, s.market, limiter, api_key, self.metrics)
            self.backfiller = Backfiller(
                self.pipeline, rest, self.clock, s.gap_grace_s, s.gap_retry_s, s.gap_give_up_s,
                self.metrics,
            )  # fmt: skip
            self.connections = connections(self.pipeline, s, self.clock, self.metrics)
            log.info(
                "live %s %s streams of %d symbols over %d connections to %s",
                s.market, s.stream, len(s.symbols), len(self.connections), s.ws_base,
            )  # fmt: skip
            self.ready.set()
            async with asyncio.TaskGroup() as group:
                group.create_task(self.pipeline.run_publisher(), name="publisher")
                group.create_task(self.backfiller.run(), name="backfill")
                for connection in self.connections:
                    group.create_task(connection.run(), name=connection.name)


async def run_synthetic(
    settings: IngestSettings,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    clock: Clock | None = None,
    metrics: IngestMetrics | None = None,
    limit: int | None = None,
) -> int:
    """Publish the synthetic market (forever, or ``limit`` trades); returns trades published."""
    kafka = ingest_kafka(kafka or KafkaSettings())
    topics = topics or TopicSettings()
    clock = clock or SystemClock()
    await _ensure_output_topics(kafka, topics)
    market = SyntheticMarket.of(settings.symbols, seed=settings.synthetic_seed)
    speed = settings.synthetic_speed
    async with MessageProducer(kafka) as producer:
        sink = TickSink(
            producer, topics, clock, settings.market, settings.max_run_trades, metrics=metrics
        )
        pipeline = Pipeline(sink, clock, frozenset(settings.symbols), metrics)
        start_ms = clock.now_ms()
        started = clock.monotonic()
        count = 0
        for symbol, trade in trades(market, start_ms):
            if limit is not None and count >= limit:
                break
            if speed is not None:
                wait = started + (trade.ts_event - start_ms) / 1000 / speed - clock.monotonic()
                if wait > 0:
                    await pipeline.publish()
                    await clock.sleep(wait)
            pipeline.offer(symbol, trade, "synthetic")
            count += 1
            if count % settings.max_run_trades == 0:
                await pipeline.publish()
        await pipeline.publish()
        return count


async def run_ingest(settings: IngestSettings, clock: Clock | None = None) -> None:
    """``pairstream ingest``: the configured source until stopped."""
    clock = clock or SystemClock()
    metrics = IngestMetrics(clock)
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
        log.info("metrics on :%d/metrics", settings.metrics_port)
    rates = Rates(metrics.registry, clock)
    async with status_every(settings.status_interval_s, lambda: metrics.status(rates), clock, log):
        await _run_source(settings, clock, metrics)


async def _run_source(settings: IngestSettings, clock: Clock, metrics: IngestMetrics) -> None:
    if settings.source == "binance":
        await LiveIngest(settings, clock=clock, metrics=metrics).run()
    elif settings.source == "synthetic":
        await run_synthetic(settings, clock=clock, metrics=metrics)
    else:
        if not settings.replay_paths:
            raise ValueError("--source replay needs files (INGEST_REPLAY_PATHS or --replay PATH)")
        stats = await run_replay(
            [Path(p) for p in settings.replay_paths], settings.replay_speed, settings=settings,
            clock=clock,
        )  # fmt: skip
        log.info("replay done: %s", stats)
