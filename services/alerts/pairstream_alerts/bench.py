"""``pairstream bench alerts``: rule evaluations per second and alert latency, with a baseline.

Throughput: ``rules`` rules over ``pairs`` pairs (``rules / pairs`` per pair, levels
spread so some fire) read seeded z-scores of ``bars`` bars per pair, first by the
engine alone, then through one worker in this process from the start of a topic (the
same messages): evaluations per second from its first message to every message
consumed and stored. The same for custom expressions. In the same run a raw aiokafka
consumer reads and decodes that topic: the baseline.

Latency: one rule per pair whose condition flips every bar, z-scores sent at a steady
rate; each alert's delay from the broker acking its z-score (the message is on
``analytics.zscore``) to the broker acking the alert on ``alerts`` (the worker's own
producer notes it), and, beside it, to a consumer here reading the alert (one more
fetch).
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from pairstream.alerts.engine import AlertEngine
from pairstream.alerts.rules import Rule
from pairstream.alerts.store import put_rule
from pairstream.clock import SystemClock
from pairstream.codec import Codec
from pairstream.db import connection
from pairstream.db.migrate import migrate
from pairstream.kafka import (
    MessageProducer,
    TopicRequest,
    create_consumer,
    ensure_topics,
    log_size,
)
from pairstream.messages import Alert, Message, ZScoreUpdate
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.status import percentile
from pairstream.testing import topics_under, unique

from .config import AlertsSettings
from .metrics import AlertsMetrics
from .worker import AlertsWorker

TARGET_THRESHOLD_PER_S = 200_000
TARGET_EXPRESSION_PER_S = 50_000
TARGET_P99_MS = 20.0
T0 = 1_750_000_000_000


@dataclass(frozen=True, slots=True)
class AlertsBench:
    """Every figure of one bench run."""

    rules: int
    pairs: int
    bars: int
    messages: int
    records: int
    engine_threshold_evals_per_s: int
    engine_expression_evals_per_s: int
    worker_threshold_evals_per_s: int
    worker_expression_evals_per_s: int
    worker_messages_per_s: int
    raw_messages_per_s: int
    ratio_to_raw: float
    alerts_raised: int
    latency_rate_per_s: float
    latency_alerts: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    latency_read_p50_ms: float
    latency_read_p99_ms: float
    cpus: int
    python: str
    targets: dict[str, bool]

    def as_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def pair_names(n: int) -> list[str]:
    return [f"usdm:P{i:03d}USDT-usdm:Q{i:03d}USDT" for i in range(n)]


def bench_rules(n_rules: int, pairs: list[str], kind: str) -> list[Rule]:
    """``n_rules`` rules spread over the pairs; thresholds at |z| 2.5 to 4 (alerts are the
    exception, as in production: a few per thousand evaluations)."""
    rules = []
    for i in range(n_rules):
        pair = pairs[i % len(pairs)]
        level = 2.5 + 1.5 * (i // len(pairs)) / max(1, n_rules // len(pairs))
        if kind == "threshold":
            condition = {"kind": "threshold", "field": "zscore", "op": "outside",
                         "lo": -level, "hi": level}  # fmt: skip
        else:
            condition = {"kind": "expression",
                         "expr": f"abs(zscore) > {level:.3f} && std > 0 && mean < 1e9"}  # fmt: skip
        rules.append(
            Rule.model_validate(
                {
                    "id": f"{kind[:4]}-{i:04d}",
                    "name": f"{kind} {i}",
                    "subject": pair,
                    "tf": "1s",
                    "condition": condition,
                    "channels": [],
                }
            )
        )
    return rules


def zscores(pairs: list[str], bars: int, seed: int = 7) -> list[ZScoreUpdate]:
    """Seeded AR(1) z-scores, bar by bar across the pairs."""
    rng = random.Random(seed)
    z = dict.fromkeys(pairs, 0.0)
    out = []
    for b in range(bars):
        ts = T0 + b * 1000
        for pair in pairs:
            z[pair] = 0.9 * z[pair] + rng.gauss(0, 0.436)  # stationary sd 1
            out.append(
                ZScoreUpdate(
                    pair=pair,
                    tf="1s",
                    ts=ts,
                    window=60,
                    spread=z[pair],
                    mean=0.0,
                    std=1.0,
                    zscore=z[pair],
                    ts_event=ts + 1000,
                    ts_init=ts + 1000,
                )
            )
    return out


def engine_rate(rules: list[Rule], messages: list[ZScoreUpdate]) -> tuple[int, int]:
    """Evaluations per second of the engine alone, and the transitions."""
    engine = AlertEngine(rules)
    started = time.perf_counter()
    raised = 0
    for m in messages:
        raised += len(engine.on_zscore(m))
    return round(engine.evaluations / (time.perf_counter() - started)), raised


async def _produce(kafka: KafkaSettings, topic: str, messages: list[ZScoreUpdate]) -> int:
    """Publish to a fresh topic; the records its log then holds (a producer retry may have
    doubled some), from the acks: Tansu under-reports a partition's end offset."""
    async with MessageProducer(kafka) as producer:
        futures = [await producer.send(topic, m) for m in messages]
        return log_size(await asyncio.gather(*futures))


async def _worker_rate(
    rules: list[Rule], records: int, kafka: KafkaSettings,
    topics: TopicSettings, db: DatabaseSettings, settings: AlertsSettings,
) -> tuple[float, int]:  # fmt: skip
    """Seconds from the worker's first message to every message stored; evaluations."""
    async with connection(db) as conn:
        await migrate(conn, db)
        await conn.execute("DELETE FROM alert_rules")
        for rule in rules:
            await put_rule(conn, rule)
    metrics = AlertsMetrics()
    worker = AlertsWorker(settings, SystemClock(), metrics, kafka=kafka, topics=topics, db=db)
    await worker.start()
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if worker.stored_records >= records:
                assert worker.first_batch_at is not None
                return time.monotonic() - worker.first_batch_at, worker.engine.evaluations
            await asyncio.sleep(0.002)
        raise RuntimeError("the worker did not finish within 10 minutes")
    finally:
        await worker.stop()


async def _raw_consume(kafka: KafkaSettings, topic: str, messages: int) -> float:
    codec = Codec(topic, ZScoreUpdate)
    consumer = create_consumer([topic], None, kafka)
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < messages:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                if started is None:
                    started = time.perf_counter()
                for record in records:
                    codec.decode(record.value)
                    seen += 1
        assert started is not None
        return time.perf_counter() - started
    finally:
        await consumer.stop()


class _AckTimes(MessageProducer):
    """The worker's producer, noting when the broker acks each alert."""

    def __init__(self, kafka: KafkaSettings, alerts_topic: str) -> None:
        super().__init__(kafka)
        self.alerts_topic = alerts_topic
        self.acked: dict[tuple[str, int], float] = {}

    async def send(self, topic: str, message: Message, key: str | None = None) -> Any:
        future = await super().send(topic, message, key)
        if topic == self.alerts_topic:
            assert isinstance(message, Alert)
            at = (message.subject, message.ts_event)
            future.add_done_callback(lambda _: self.acked.setdefault(at, time.perf_counter()))
        return future


async def _latency(
    kafka: KafkaSettings, topics: TopicSettings, db: DatabaseSettings,
    settings: AlertsSettings, pairs: list[str], rate: float, seconds: float,
) -> tuple[list[float], list[float]]:  # fmt: skip
    """Delays (s) from a z-score acked on its topic to its alert acked on ``alerts``, and
    to the alert read from ``alerts`` by a consumer here."""
    rules = [
        Rule.model_validate(
            {
                "id": f"flip-{i:03d}",
                "name": "flip",
                "subject": pair,
                "tf": "1s",
                "channels": [],
                "condition": {"kind": "threshold", "field": "zscore", "op": ">", "value": 0},
            }
        )
        for i, pair in enumerate(pairs)
    ]
    async with connection(db) as conn:
        await conn.execute("DELETE FROM alert_rules")
        for rule in rules:
            await put_rule(conn, rule)
    worker = AlertsWorker(settings, SystemClock(), kafka=kafka, topics=topics, db=db)
    worker.producer = acks = _AckTimes(worker.producer.settings, topics.alerts)
    await worker.start()
    codec = Codec(topics.alerts, Alert)
    reader = create_consumer([topics.alerts], None, kafka, auto_offset_reset="latest",
                             fetch_max_wait_ms=5)  # fmt: skip
    await reader.start()
    sent: dict[tuple[str, int], float] = {}
    read: dict[tuple[str, int], float] = {}

    async def reading() -> None:
        while True:
            for records in (await reader.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for record in records:
                    alert = codec.decode(record.value)
                    read.setdefault((alert.subject, alert.ts_event), now)

    reader_task = asyncio.create_task(reading())
    try:
        await asyncio.sleep(1.0)  # the reader's position is set
        async with MessageProducer(kafka) as producer:
            interval = 1.0 / rate
            start = time.perf_counter()
            n = int(rate * seconds)
            for i in range(n):
                pair = pairs[i % len(pairs)]
                bar = i // len(pairs)
                ts = T0 + bar * 1000
                z = 1.0 if bar % 2 == 0 else -1.0  # every bar a transition
                wait = start + i * interval - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                message = ZScoreUpdate(
                    pair=pair, tf="1s", ts=ts, window=60, spread=z, mean=0.0, std=1.0, zscore=z,
                    ts_event=ts + 1000, ts_init=ts + 1000,
                )  # fmt: skip
                future = await producer.send(topics.zscore, message)
                future.add_done_callback(
                    lambda _, at=(pair, ts): sent.setdefault(at, time.perf_counter())
                )
        await asyncio.sleep(2.0)
        to_ack = [acks.acked[k] - at for k, at in sent.items() if k in acks.acked]
        to_read = [read[k] - at for k, at in sent.items() if k in read]
        return to_ack, to_read
    finally:
        reader_task.cancel()
        await asyncio.gather(reader_task, return_exceptions=True)
        await reader.stop()
        await worker.stop()


async def bench_alerts(
    *,
    n_rules: int = 1_000,
    n_pairs: int = 100,
    bars: int = 300,
    rate: float = 200.0,
    seconds: float = 8.0,
    kafka: KafkaSettings | None = None,
    db: DatabaseSettings | None = None,
) -> AlertsBench:
    """Run every measurement on fresh topics, groups and a fresh schema."""
    kafka = kafka or KafkaSettings()
    base_db = db or DatabaseSettings()
    tag = unique("bench")
    schema = unique("bench_").replace("-", "_")
    db = base_db.model_copy(update={"schema_name": schema})
    pairs = pair_names(n_pairs)
    messages = zscores(pairs, bars)
    threshold, expression = (
        bench_rules(n_rules, pairs, "threshold"),
        bench_rules(n_rules, pairs, "expression"),
    )
    engine_threshold, raised = engine_rate(threshold, messages)
    engine_expression, _ = engine_rate(expression, messages)
    try:
        rates: dict[str, tuple[float, int]] = {}
        records: dict[str, int] = {}
        for kind, rules in (("threshold", threshold), ("expression", expression)):
            topics = topics_under(f"{tag}.{kind}")
            settings = AlertsSettings(
                group_id=f"{tag}-{kind}", metrics_port=0, timeframes=("1s",),
                default_rules=False,
            )  # fmt: skip
            await ensure_topics([TopicRequest(topics.zscore, topics.analytics_partitions)], kafka)
            logged = await _produce(kafka, topics.zscore, messages)
            rates[kind] = await _worker_rate(rules, logged, kafka, topics, db, settings)
            records[kind] = logged
        raw = await _raw_consume(kafka, f"{tag}.threshold.zscore", records["threshold"])
        live = topics_under(f"{tag}.live")
        live_settings = AlertsSettings(
            group_id=f"{tag}-live", metrics_port=0, timeframes=("1s",), default_rules=False
        )
        await ensure_topics([TopicRequest(live.zscore, live.analytics_partitions)], kafka)
        delays, read = await _latency(kafka, live, db, live_settings, pairs, rate, seconds)
    finally:
        async with connection(base_db) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    (t_s, t_evals), (e_s, e_evals) = rates["threshold"], rates["expression"]
    worker_threshold, worker_expression = round(t_evals / t_s), round(e_evals / e_s)
    logged = records["threshold"]
    worker_messages, raw_messages = round(logged / t_s), round(logged / raw)
    p99 = percentile(delays, 0.99) * 1000
    return AlertsBench(
        rules=n_rules,
        pairs=n_pairs,
        bars=bars,
        messages=len(messages),
        records=logged,
        engine_threshold_evals_per_s=engine_threshold,
        engine_expression_evals_per_s=engine_expression,
        worker_threshold_evals_per_s=worker_threshold,
        worker_expression_evals_per_s=worker_expression,
        worker_messages_per_s=worker_messages,
        raw_messages_per_s=raw_messages,
        ratio_to_raw=round(worker_messages / raw_messages, 3),
        alerts_raised=raised,
        latency_rate_per_s=rate,
        latency_alerts=len(delays),
        latency_p50_ms=round(percentile(delays, 0.5) * 1000, 3),
        latency_p99_ms=round(p99, 3),
        latency_max_ms=round(max(delays) * 1000, 3) if delays else float("nan"),
        latency_read_p50_ms=round(percentile(read, 0.5) * 1000, 3),
        latency_read_p99_ms=round(percentile(read, 0.99) * 1000, 3),
        cpus=os.cpu_count() or 0,
        python=platform.python_version(),
        targets={
            f"threshold rules >= {TARGET_THRESHOLD_PER_S:,} evaluations/s (one worker)": (
                worker_threshold >= TARGET_THRESHOLD_PER_S
            ),
            f"expression rules >= {TARGET_EXPRESSION_PER_S:,} evaluations/s (one worker)": (
                worker_expression >= TARGET_EXPRESSION_PER_S
            ),
            f"analytics message -> alert acked p99 <= {TARGET_P99_MS} ms": p99 <= TARGET_P99_MS,
        },
    )
