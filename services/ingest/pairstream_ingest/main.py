"""Wiring of the ingest service: settings, producer, topics, source, pipeline, metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
from prometheus_client import start_http_server

from pairstream.clock import Clock, SystemClock
from pairstream.instruments import instrument, split_instrument
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
from pairstream_ingest.replay import ReplayFile, ReplayStats, merged, replay
from pairstream_ingest.resume import RESUMABLE_SOURCES, Resumed, ScanStats, last_published
from pairstream_ingest.sinks import TickSink

log = logging.getLogger(__name__)


async def _ensure_output_topics(kafka: KafkaSettings, topics: TopicSettings) -> None:
    produced = {topics.ticks, topics.dead_letter}
    await ensure_topics([t for t in contract_topics(topics) if t.name in produced], kafka)


async def run_replay(
    paths: Sequence[Path | ReplayFile],
    speed: float | None,
    market: Market | None = None,
    symbols: frozenset[str] | None = None,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    settings: IngestSettings | None = None,
    clock: Clock | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Replay files into the ``ticks`` topic (``speed`` ``None`` = as fast as possible).

    ``market`` is the market of files that do not say theirs (see :class:`ReplayFile`).
    """
    settings = settings or IngestSettings()
    topics = topics or TopicSettings()
    kafka = kafka or KafkaSettings()
    clock = clock or SystemClock()
    files = [p if isinstance(p, ReplayFile) else ReplayFile(p) for p in paths]
    for file in files:
        if not file.path.is_file():
            raise FileNotFoundError(f"no such replay file: {file.path}")
    await _ensure_output_topics(kafka, topics)
    market = market or settings.market
    async with MessageProducer(kafka) as producer:
        sink = TickSink(
            producer, topics, clock, market=market, max_run_trades=settings.max_run_trades
        )
        return await replay(
            merged(files, market),
            sink,
            clock,
            speed=speed,
            symbols=symbols,
            max_waiting=settings.max_waiting,
            progress=progress,
        )


class LiveIngest:
    """Binance streams → pipeline → ``ticks``, with gap backfill over REST.

    Each market of the instruments (spot, USD-M) has its own pipeline,
    connections and REST backfill; they share one producer.
    """

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
        self.pipelines: dict[Market, Pipeline] = {}
        self.connections: list[Connection] = []
        self.ready = asyncio.Event()

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline of the first market (the only one, unless both are ingested)."""
        return next(iter(self.pipelines.values()))

    async def run(self) -> None:
        """Stream until cancelled."""
        await _ensure_output_topics(self.kafka, self.topics)
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            MessageProducer(self.kafka) as producer,
            aiohttp.ClientSession(timeout=timeout) as session,
            asyncio.TaskGroup() as group,
        ):
            backfillers = []
            for market in self.settings.markets:
                s = self.settings.for_market(market)
                sink = TickSink(
                    producer, self.topics, self.clock, market, s.max_run_trades,
                    metrics=self.metrics,
                )  # fmt: skip
                pipeline = self.pipelines[market] = Pipeline(
                    sink,
                    self.clock,
                    frozenset(s.symbols),
                    self.metrics,
                    latency=self.metrics.latency.observe,
                    start_grace_s=s.gap_grace_s,
                )
                api_key = s.api_key.get_secret_value() if s.api_key else None
                limiter = WeightLimiter(s.rest_weight_per_minute, self.clock)
                rest = BinanceRest(session, s.rest_base, market, limiter, api_key, self.metrics)
                backfiller = Backfiller(
                    pipeline, rest, self.clock, s.gap_grace_s, s.gap_retry_s, s.gap_give_up_s,
                    self.metrics,
                )  # fmt: skip
                backfillers.append(backfiller)
            await self.resume()
            for market, pipeline in self.pipelines.items():
                s = self.settings.for_market(market)
                opened = connections(pipeline, s, self.clock, self.metrics)
                self.connections += opened
                log.info(
                    "live %s %s streams of %d symbols over %d connections to %s",
                    market, s.stream, len(s.symbols), len(opened), s.ws_base,
                )  # fmt: skip
            self.ready.set()
            for pipeline in self.pipelines.values():
                group.create_task(pipeline.run_publisher(), name="publisher")
            for backfiller in backfillers:
                group.create_task(backfiller.run(), name="backfill")
            for connection in self.connections:
                group.create_task(connection.run(), name=connection.name)

    async def resume(self) -> dict[str, Resumed]:
        """Seed each instrument with its last trade already in ``ticks`` (before a restart)."""
        s = self.settings
        if s.resume_scan_max_records == 0:
            return {}
        started = self.clock.monotonic()
        stats = ScanStats()
        wanted = {split_instrument(name) for name in s.instruments}
        found = await last_published(
            self.kafka, self.topics.ticks, wanted, s.resume_scan_max_records,
            sources=RESUMABLE_SOURCES, stats=stats,
        )  # fmt: skip
        now = self.clock.now_ms()
        resumed: dict[str, Resumed] = {}
        for market, symbol in sorted(wanted):
            last = found.get((market, symbol))
            if last is None:
                log.info(
                    "%s:%s: nothing published before in the scanned tail of %s; "
                    "starting with the first live trade", market, symbol, self.topics.ticks,
                )  # fmt: skip
                continue
            self.pipelines[market].resume(symbol, last.last_id, last.last_ts, last.recent)
            resumed[instrument(market, symbol)] = last
            log.info(
                "%s:%s: resuming after trade id %d (published %.1f s ago, %s run at %s[%d] "
                "offset %d, trade time %d); the ids since are backfilled",
                market, symbol, last.last_id, (now - last.ts_ingest) / 1000, last.source,
                self.topics.ticks, last.partition, last.offset, last.last_ts,
            )  # fmt: skip
        log.info(
            "resume scan: %d records of %d partitions in %.2f s",
            stats.records, stats.partitions, self.clock.monotonic() - started,
        )  # fmt: skip
        return resumed


async def run_synthetic(
    settings: IngestSettings,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    clock: Clock | None = None,
    metrics: IngestMetrics | None = None,
    limit: int | None = None,
) -> int:
    """Publish the synthetic market (forever, or ``limit`` trades); returns trades published.

    Trade ids go on after the last synthetic trade already in ``ticks`` (a second
    run on the same broker would otherwise repeat ids the resampler has seen).
    """
    kafka = ingest_kafka(kafka or KafkaSettings())
    topics = topics or TopicSettings()
    clock = clock or SystemClock()
    await _ensure_output_topics(kafka, topics)
    market = SyntheticMarket.of(settings.instruments, seed=settings.synthetic_seed)
    if settings.resume_scan_max_records:
        found = await last_published(
            kafka, topics.ticks, {split_instrument(s.symbol) for s in market.symbols},
            settings.resume_scan_max_records, sources={"synthetic"},
        )  # fmt: skip
        market = dataclasses.replace(
            market,
            symbols=tuple(
                dataclasses.replace(s, first_id=found[key].last_id + 1)
                if (key := split_instrument(s.symbol)) in found
                else s
                for s in market.symbols
            ),
        )
    speed = settings.synthetic_speed
    async with MessageProducer(kafka) as producer:
        pipelines: dict[str, Pipeline] = {}
        for in_market in settings.markets:
            one = settings.for_market(in_market)
            sink = TickSink(
                producer, topics, clock, one.market, one.max_run_trades, metrics=metrics
            )
            pipelines[in_market] = Pipeline(sink, clock, frozenset(one.symbols), metrics)

        async def publish() -> None:
            for pipeline in pipelines.values():
                await pipeline.publish()

        start_ms = clock.now_ms()
        started = clock.monotonic()
        count = 0
        for name, trade in trades(market, start_ms):
            if limit is not None and count >= limit:
                break
            if speed is not None:
                wait = started + (trade.ts_event - start_ms) / 1000 / speed - clock.monotonic()
                if wait > 0:
                    await publish()
                    await clock.sleep(wait)
            of_market, symbol = split_instrument(name)
            pipelines[of_market].offer(symbol, trade, "synthetic")
            count += 1
            if count % settings.max_run_trades == 0:
                await publish()
        await publish()
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
            [ReplayFile.parse(p) for p in settings.replay_paths], settings.replay_speed,
            settings=settings,
            clock=clock,
        )  # fmt: skip
        log.info("replay done: %s", stats)
