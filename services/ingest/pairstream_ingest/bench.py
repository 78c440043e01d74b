"""``pairstream bench ingest``: the ingest path's throughput and latency, against a raw producer.

Three measurements in one run, on the recorded Binance frames:

1. **pipeline**: decode + validate + per-symbol order/dedupe + publish (runs,
   ``acks=all``, every ack awaited), frames fed as fast as possible;
2. **raw**: a bare aiokafka producer forwarding the same frame bytes, one
   message per frame keyed by symbol, no decoding or checks, every ack awaited
   (what the simplest possible forwarder would cost);
3. **latency**: frames fed at a steady rate (default 2,000 trades/s); for each
   frame, the time from its arrival to the broker's ack of the run holding it.

The recording is repeated with shifted trade ids so every trade is new (the
dedupe does its real work, nothing is dropped).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from pairstream.clock import Clock, SystemClock
from pairstream.kafka import MessageProducer, TopicRequest, ensure_topics, producer_kwargs
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream.status import percentile
from pairstream.testing import unique
from pairstream_ingest.pipeline import Pipeline, ingest_kafka
from pairstream_ingest.sinks import TickSink

DEFAULT_FRAMES = (
    Path(__file__).resolve().parents[3]
    / "tests"
    / "fixtures"
    / "binance"
    / "usdm_BTC+ETH_20240718-19.interleaved.jsonl.gz"
)
TARGET_TRADES_PER_S = 100_000
TARGET_RATIO = 0.6
TARGET_P99_MS = 5.0


@dataclass(frozen=True, slots=True)
class IngestBench:
    """The figures ``pairstream bench ingest`` prints."""

    frames_file: str
    trades: int
    pipeline_trades_per_s: int
    pipeline_messages: int
    raw_trades_per_s: int
    ratio: float
    latency_rate_per_s: float
    latency_frames: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    cpus: int
    python: str
    targets: dict[str, bool]

    def as_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def load_frames(path: Path, repeat: int) -> list[bytes]:
    """The recording ``repeat`` times, trade ids shifted so each copy is new trades."""
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
        frames = [orjson.loads(line) for line in f if line.strip()]
    span = max(f["data"]["t"] for f in frames) - min(f["data"]["t"] for f in frames) + 1
    out: list[bytes] = []
    for copy in range(repeat):
        for frame in frames:
            data = dict(frame["data"], t=frame["data"]["t"] + copy * span)
            out.append(orjson.dumps({"stream": frame["stream"], "data": data}))
    return out


def _symbols(frames: list[bytes]) -> frozenset[str]:
    return frozenset(orjson.loads(f)["data"]["s"] for f in frames[:1000])


async def _pipeline_run(
    frames: list[bytes],
    kafka: KafkaSettings,
    topics: TopicSettings,
    clock: Clock,
    rate: float | None,
    latencies: list[float] | None = None,
) -> tuple[float, int]:
    """Feed ``frames`` (at ``rate`` trades/s, or flat out); seconds until all acked, messages."""
    async with MessageProducer(kafka) as producer:
        sink = TickSink(producer, topics, clock, "usdm")
        pipeline = Pipeline(
            sink,
            clock,
            _symbols(frames),
            latency=latencies.append if latencies is not None else None,
        )
        publisher = asyncio.create_task(pipeline.run_publisher())
        try:
            started = clock.monotonic()
            if rate is None:
                for start in range(0, len(frames), 256):  # one socket read's worth at a time
                    for raw in frames[start : start + 256]:
                        pipeline.on_frame(raw, "bench")
                    await asyncio.sleep(0)
            else:
                for index, raw in enumerate(frames):
                    wait = started + index / rate - clock.monotonic()
                    if wait > 0:
                        await clock.sleep(wait)
                    pipeline.on_frame(raw, "bench", clock.monotonic())
            await pipeline.publish()
            elapsed = clock.monotonic() - started
        finally:
            publisher.cancel()
            await asyncio.gather(publisher, return_exceptions=True)
        return elapsed, sink.published_runs


async def _raw_run(topic: str, frames: list[bytes], kafka: KafkaSettings, clock: Clock) -> float:
    keys = [_symbol_key(raw) for raw in frames]  # a forwarder gets its key from the stream name
    producer = AIOKafkaProducer(enable_idempotence=False, **producer_kwargs(kafka))
    await producer.start()
    try:
        started = clock.monotonic()
        acks = [
            await producer.send(topic, value=raw, key=key)
            for raw, key in zip(frames, keys, strict=True)
        ]
        await asyncio.gather(*acks)
        return clock.monotonic() - started
    finally:
        await producer.stop()


def _symbol_key(raw: bytes) -> bytes:
    start = raw.index(b'"stream":"') + 10
    return raw[start : raw.index(b"@", start)].upper()


async def bench_ingest(
    frames_file: Path = DEFAULT_FRAMES,
    repeat: int = 4,
    rate: float = 2_000.0,
    latency_s: float = 5.0,
    kafka: KafkaSettings | None = None,
    clock: Clock | None = None,
) -> IngestBench:
    """Run the three measurements; needs a broker (``KAFKA_BOOTSTRAP`` or the embedded one)."""
    raw_kafka = kafka or KafkaSettings()  # the baseline keeps the default linger: its best case
    kafka = ingest_kafka(raw_kafka)
    clock = clock or SystemClock()
    frames = load_frames(frames_file, repeat)
    prefix = unique("bench")
    topics = TopicSettings(ticks=f"{prefix}.ticks", dead_letter=f"{prefix}.dead-letter")
    raw_topic = f"{prefix}.raw"
    partitions = TopicSettings().ticks_partitions
    await ensure_topics(
        [TopicRequest(n, partitions) for n in (topics.ticks, topics.dead_letter, raw_topic)], kafka
    )
    await _pipeline_run(frames[:2_000], kafka, topics, clock, None)  # warm-up: connections, caches
    topics = TopicSettings(ticks=f"{prefix}.ticks2", dead_letter=f"{prefix}.dead-letter")
    await ensure_topics([TopicRequest(topics.ticks, partitions)], kafka)
    elapsed, messages = await _pipeline_run(frames, kafka, topics, clock, None)
    raw_elapsed = await _raw_run(raw_topic, frames, raw_kafka, clock)
    latencies: list[float] = []
    paced = frames[: int(rate * latency_s)]
    lat_topics = TopicSettings(ticks=f"{prefix}.ticks3", dead_letter=f"{prefix}.dead-letter")
    await ensure_topics([TopicRequest(lat_topics.ticks, partitions)], kafka)
    await _pipeline_run(paced, kafka, lat_topics, clock, rate, latencies)
    trades = len(frames)
    # Rates are reported whole; the ratio and targets use the reported figures.
    pipeline_rate = round(trades / elapsed)
    raw_rate = round(trades / raw_elapsed)
    p99 = percentile(latencies, 0.99) * 1000
    return IngestBench(
        frames_file=str(frames_file),
        trades=trades,
        pipeline_trades_per_s=pipeline_rate,
        pipeline_messages=messages,
        raw_trades_per_s=raw_rate,
        ratio=round(pipeline_rate / raw_rate, 3),
        latency_rate_per_s=rate,
        latency_frames=len(latencies),
        latency_p50_ms=round(percentile(latencies, 0.5) * 1000, 3),
        latency_p99_ms=round(p99, 3),
        latency_max_ms=round(max(latencies) * 1000, 3),
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
        targets={
            f"pipeline >= {TARGET_TRADES_PER_S:,} trades/s": pipeline_rate >= TARGET_TRADES_PER_S,
            f"ratio >= {TARGET_RATIO}": pipeline_rate / raw_rate >= TARGET_RATIO,
            f"p99 <= {TARGET_P99_MS} ms at {rate:,.0f}/s": p99 <= TARGET_P99_MS,
        },
    )
