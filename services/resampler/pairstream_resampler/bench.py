"""``pairstream bench resampler``: one worker's throughput and final-bar latency, with a baseline.

Throughput: the recorded trades (``repeat`` copies, ids and times shifted so each
copy is new trading) are put into a fresh ``ticks`` topic as replayed runs, then
one worker in this process builds 1s/1m/5m bars from the start of the topic. We
time it from its first message to (a) every trade folded, (b) every final bar
acked by the broker, (c) every final bar stored. In the same run a raw aiokafka
consumer reads and decodes the same topic (no bars): the baseline.

Latency: a seeded synthetic market trades live (event time = now, one message per
trade as live ingest sends them) into another topic; each final bar's delay from
the moment the watermark passed its end to the broker's ack is recorded.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import orjson

from pairstream.clock import Clock, SystemClock
from pairstream.codec import Codec
from pairstream.db import connection
from pairstream.kafka import MessageProducer, TopicRequest, create_consumer, ensure_topics
from pairstream.messages import TickRun, Trade, timeframe_ms
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.status import percentile
from pairstream.synthetic import SyntheticMarket, trades
from pairstream.testing import unique
from pairstream_ingest.bench import DEFAULT_FRAMES
from pairstream_ingest.replay import frame_items

from .config import ResamplerSettings
from .worker import ResamplerWorker

TARGET_TICKS_PER_S = 100_000
TARGET_P99_MS = 50.0
RUN_TRADES = 1_000  # trades per replayed run (ingest's replay sends up to 2,000)


@dataclass(frozen=True, slots=True)
class ResamplerBench:
    """Every figure of one bench run."""

    frames_file: str
    trades: int
    messages: int
    final_bars: int
    timeframes: list[str]
    folded_ticks_per_s: int
    topics_ticks_per_s: int
    stored_ticks_per_s: int
    stored_rows_per_s: int
    raw_ticks_per_s: int
    ratio_to_raw: float
    checkpoint_interval_s: float
    latency_symbols: int
    latency_seconds: float
    latency_finals: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    lateness_ms: int
    cpus: int
    python: str
    targets: dict[str, bool]

    def as_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def replayed_runs(path: Path, repeat: int) -> tuple[list[TickRun], int]:
    """The recording ``repeat`` times as runs (ids and times shifted per copy), then one
    trade per symbol 10 minutes later so every recorded bar is final; and the trade count."""
    recorded: list[tuple[str, Trade]] = [
        (item.symbol, item.trade)
        for item in frame_items(path)
        if item.trade is not None and item.symbol is not None
    ]
    first_ts = min(t.ts_event for _, t in recorded)
    last_ts = max(t.ts_event for _, t in recorded)
    shift_ms = (last_ts - first_ts) // 60_000 * 60_000 + 600_000  # whole minutes apart
    ids: dict[str, tuple[int, int]] = {}
    for symbol, trade in recorded:
        lo, hi = ids.get(symbol, (trade.trade_id, trade.trade_id))
        ids[symbol] = (min(lo, trade.trade_id), max(hi, trade.trade_id))
    runs: list[TickRun] = []
    pending: dict[str, list[Trade]] = defaultdict(list)

    def flush(symbol: str) -> None:
        run = sorted(pending.pop(symbol), key=lambda t: t.trade_id)
        runs.append(TickRun(market="usdm", symbol=symbol, source="replay", ts_ingest=0, trades=run))

    last: dict[str, Trade] = {}
    for copy in range(repeat):
        for symbol, trade in recorded:
            lo, hi = ids[symbol]
            shifted = Trade(
                trade_id=trade.trade_id + copy * (hi - lo + 1),
                ts_event=trade.ts_event + copy * shift_ms,
                price=trade.price,
                qty=trade.qty,
                is_buyer_maker=trade.is_buyer_maker,
            )
            pending[symbol].append(shifted)
            last[symbol] = shifted
            if len(pending[symbol]) >= RUN_TRADES:
                flush(symbol)
    for symbol in list(pending):
        flush(symbol)
    for symbol, trade in last.items():
        closing = Trade(
            trade_id=trade.trade_id + 1,
            ts_event=trade.ts_event + 600_000,
            price=trade.price,
            qty=1.0,
            is_buyer_maker=False,
        )
        runs.append(
            TickRun(market="usdm", symbol=symbol, source="replay", ts_ingest=0, trades=[closing])
        )
    return runs, len(recorded) * repeat


def final_bar_count(runs: list[TickRun], timeframes: tuple[str, ...]) -> int:
    """Bars the runs must give, without the closing trades' own (still open) bars."""
    keys: set[tuple[str, str, int]] = set()
    for run in runs[: -len({r.symbol for r in runs})]:
        for trade in run.trades:
            for tf in timeframes:
                span = timeframe_ms(tf)
                keys.add((run.symbol, tf, trade.ts_event // span * span))
    return len(keys)


async def _produce(runs: list[TickRun], kafka: KafkaSettings, topic: str) -> None:
    async with MessageProducer(kafka) as producer:
        for run in runs:
            await producer.send(topic, run)


async def _raw_consume(kafka: KafkaSettings, topic: str, messages: int) -> float:
    """Seconds for a plain aiokafka consumer to read and decode ``messages`` runs."""
    codec = Codec(topic, TickRun)
    consumer = create_consumer([topic], None, kafka)
    await consumer.start()
    try:
        seen = 0
        started: float | None = None
        while seen < messages:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batch.values():
                if started is None:
                    started = time.perf_counter()
                for record in records:
                    codec.decode(record.value)
                    seen += 1
        assert started is not None
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def _finals_stored(db: DatabaseSettings) -> int:
    async with connection(db) as conn:
        try:
            return int(await conn.fetchval("SELECT count(*) FROM bars WHERE final"))
        except asyncpg.UndefinedTableError:
            return 0


async def _throughput(
    runs: list[TickRun],
    trade_count: int,
    finals: int,
    kafka: KafkaSettings,
    topics: TopicSettings,
    db: DatabaseSettings,
    settings: ResamplerSettings,
) -> tuple[float, float, float]:
    """Seconds from the worker's first message to: all folded, all finals acked, all stored."""
    worker = ResamplerWorker(settings, kafka=kafka, topics=topics, db=db)
    await worker.start()
    try:
        folded = acked = stored = None
        deadline = time.monotonic() + 600
        while stored is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            first = worker.first_event_at
            if first is None:
                continue
            now = time.monotonic()
            if folded is None and worker.trades_seen >= trade_count:
                folded = now - first
            if acked is None and len(worker.outbox.final_delays) >= finals:
                acked = now - first
            if acked is not None and await _finals_stored(db) >= finals:
                stored = now - first
        if folded is None or acked is None or stored is None:
            raise RuntimeError("the worker did not finish within 10 minutes")
        return folded, acked, stored
    finally:
        await worker.stop()


async def _latency(
    kafka: KafkaSettings,
    topics: TopicSettings,
    db: DatabaseSettings,
    settings: ResamplerSettings,
    symbols: int,
    seconds: float,
    clock: Clock,
) -> list[float]:
    """Final-bar delays (s) while a synthetic market trades live."""
    market = SyntheticMarket.of(tuple(f"S{i:02d}USDT" for i in range(symbols)), seed=11)
    worker = ResamplerWorker(settings, kafka=kafka, topics=topics, db=db, clock=clock)
    await worker.start()
    try:
        async with MessageProducer(kafka) as producer:
            start = clock.now_ms()
            stream = trades(market, start)
            symbol, trade = next(stream)
            end = start + int(seconds * 1000)
            while trade.ts_event < end:
                wait = (trade.ts_event - clock.now_ms()) / 1000
                if wait > 0:
                    await asyncio.sleep(wait)
                due: dict[str, list[Trade]] = defaultdict(list)
                now_ms = clock.now_ms()
                while trade.ts_event <= now_ms:
                    due[symbol].append(trade)
                    symbol, trade = next(stream)
                for name, batch in due.items():
                    run = TickRun(
                        market="usdm", symbol=name, source="synthetic", ts_ingest=now_ms,
                        trades=batch,
                    )  # fmt: skip
                    await producer.send(topics.ticks, run)
        await asyncio.sleep(settings.lateness_ms / 1000 + 0.5)
        return list(worker.outbox.final_delays)
    finally:
        await worker.stop()


async def bench_resampler(
    *,
    frames_file: Path = DEFAULT_FRAMES,
    repeat: int = 8,
    latency_symbols: int = 50,
    latency_seconds: float = 8.0,
    checkpoint_interval_s: float = 0.25,
    kafka: KafkaSettings | None = None,
    db: DatabaseSettings | None = None,
) -> ResamplerBench:
    """Run both measurements on fresh topics, groups and a fresh schema."""
    kafka = kafka or KafkaSettings()
    base_db = db or DatabaseSettings()
    tag = unique("bench")
    schema = unique("bench_").replace("-", "_")
    db = base_db.model_copy(update={"schema_name": schema})
    topics = TopicSettings(
        ticks=f"{tag}.ticks",
        bars_template=f"{tag}.bars.{{tf}}",
        dead_letter=f"{tag}.dead-letter",
        ticks_partitions=6,
    )
    settings = ResamplerSettings(
        group_id=f"{tag}-resampler",
        metrics_port=0,
        checkpoint_interval_s=checkpoint_interval_s,
    )
    try:
        runs, trade_count = replayed_runs(frames_file, repeat)
        finals = final_bar_count(runs, topics.timeframes)
        await ensure_topics([TopicRequest(topics.ticks, topics.ticks_partitions)], kafka)
        await _produce(runs, kafka, topics.ticks)
        folded, acked, stored = await _throughput(
            runs, trade_count, finals, kafka, topics, db, settings
        )
        raw = await _raw_consume(kafka, topics.ticks, len(runs))
        live = topics.model_copy(update={"ticks": f"{tag}.live-ticks"})
        live_settings = settings.model_copy(update={"group_id": f"{tag}-live"})
        await ensure_topics([TopicRequest(live.ticks, live.ticks_partitions)], kafka)
        delays = await _latency(
            kafka, live, db, live_settings, latency_symbols, latency_seconds, SystemClock()
        )
    finally:
        async with connection(base_db) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    topics_rate = trade_count / acked
    raw_rate = trade_count / raw
    p99 = percentile(delays, 0.99) * 1000
    return ResamplerBench(
        frames_file=str(frames_file),
        trades=trade_count,
        messages=len(runs),
        final_bars=finals,
        timeframes=list(topics.timeframes),
        folded_ticks_per_s=round(trade_count / folded),
        topics_ticks_per_s=round(topics_rate),
        stored_ticks_per_s=round(trade_count / stored),
        stored_rows_per_s=round(finals / stored),
        raw_ticks_per_s=round(raw_rate),
        ratio_to_raw=round(round(topics_rate) / round(raw_rate), 3),
        checkpoint_interval_s=checkpoint_interval_s,
        latency_symbols=latency_symbols,
        latency_seconds=latency_seconds,
        latency_finals=len(delays),
        latency_p50_ms=round(percentile(delays, 0.5) * 1000, 3),
        latency_p99_ms=round(p99, 3),
        latency_max_ms=round(max(delays) * 1000, 3) if delays else float("nan"),
        lateness_ms=settings.lateness_ms,
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
        targets={
            f"ticks -> bar topics >= {TARGET_TICKS_PER_S:,} ticks/s": round(topics_rate)
            >= TARGET_TICKS_PER_S,
            f"final bar p99 <= {TARGET_P99_MS} ms": p99 <= TARGET_P99_MS,
        },
    )
