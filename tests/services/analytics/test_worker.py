"""The analytics worker on real Kafka and PostgreSQL, fed the recorded 1s bars.

The bars are published on ``bars.1s`` and stored in ``bars`` as the resampler
would; the worker's topics and tables must equal ``pairstream analyze`` (the
batch path) over the same bars, value for value.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from statsmodels.tsa.stattools import coint as sm_coint

from pairstream.analytics.batch import analyze
from pairstream.clock import SystemClock
from pairstream.codec import Codec
from pairstream.db import connection
from pairstream.db.migrate import migrate
from pairstream.kafka import (
    MessageProducer,
    contract_topics,
    create_consumer,
    ensure_topics,
)
from pairstream.messages import (
    Bar,
    DeadLetter,
    ScanUpdate,
    SpreadUpdate,
    StatsUpdate,
    ZScoreUpdate,
)
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.testing import ServiceProcess, bar_messages, eventually, recreate_topics, unique
from pairstream_analytics.config import AnalyticsSettings
from pairstream_analytics.worker import AnalyticsWorker

PAIR = "usdm:BTCUSDT-usdm:ETHUSDT"
WINDOWS = {
    "hedge_window": 60,
    "zscore_window": 20,
    "flow_window": 20,
    "stats_window": 60,
    "tests_every": 10,
}


def analytics_settings(**overrides: Any) -> AnalyticsSettings:
    values: dict[str, Any] = {
        "group_id": unique("analytics"),
        "metrics_port": 0,
        "pairs": PAIR,
        "timeframes": "1s",
        "scan_interval_s": 0,
        "rebuild_wait_s": 5,
        "session_timeout_s": 3.0,
        "heartbeat_interval_s": 0.5,
        **WINDOWS,
    }
    values.update(overrides)
    return AnalyticsSettings(**values)


def interleaved(recorded_bars: Any) -> list[Bar]:
    bars = bar_messages(recorded_bars.y, "BTCUSDT") + bar_messages(recorded_bars.x, "ETHUSDT")
    return sorted(bars, key=lambda b: (b.start, b.symbol))


async def store_bars(db: DatabaseSettings, bars: list[Bar]) -> None:
    """Migrate the test's schema and store the bars (the resampler's job)."""
    from pairstream_resampler.store import BAR_COLUMNS, bar_record

    async with connection(db) as conn:
        await migrate(conn, db)
        await conn.copy_records_to_table(
            "bars", records=[bar_record(b) for b in bars], columns=list(BAR_COLUMNS)
        )


async def publish(kafka: KafkaSettings, topic: str, bars: list[Bar]) -> None:
    """Publish bars (the contract topics exist first: Tansu would auto-create them wrong)."""
    async with MessageProducer(kafka) as producer:
        futures = [await producer.send(topic, bar) for bar in bars]
        await asyncio.gather(*futures)


def expected_outputs(recorded_bars: Any, settings: AnalyticsSettings) -> pd.DataFrame:
    return analyze(
        recorded_bars.y, recorded_bars.x, 1_000, settings.pair_config(), settings.methods
    )


Key = tuple[int, str]


class Collected:
    """The latest message per (ts, method) on each analytics topic, and dead letters."""

    def __init__(self) -> None:
        self.spread: dict[Key, SpreadUpdate] = {}
        self.zscore: dict[Key, ZScoreUpdate] = {}
        self.stats: dict[Key, StatsUpdate] = {}
        self.dead: list[DeadLetter] = []
        self.scans: list[ScanUpdate] = []


@asynccontextmanager
async def collecting(kafka: KafkaSettings, topics: TopicSettings) -> AsyncIterator[Collected]:
    names = {
        topics.spread: SpreadUpdate,
        topics.zscore: ZScoreUpdate,
        topics.stats: StatsUpdate,
        topics.dead_letter: DeadLetter,
        topics.scan: ScanUpdate,
    }
    await ensure_topics(contract_topics(topics), kafka)
    codecs = {name: Codec(name, message) for name, message in names.items()}
    consumer = create_consumer(list(names), None, kafka)
    await consumer.start()
    collected = Collected()

    async def pump() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    message = codecs[tp.topic].decode(record.value)
                    if isinstance(message, DeadLetter):
                        collected.dead.append(message)
                    elif isinstance(message, ScanUpdate):
                        collected.scans.append(message)
                    else:
                        target = {
                            SpreadUpdate: collected.spread,
                            ZScoreUpdate: collected.zscore,
                            StatsUpdate: collected.stats,
                        }[type(message)]
                        target[(message.ts, message.method)] = message

    task = asyncio.create_task(pump())
    try:
        yield collected
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


def same(a: float | None, b: Any) -> bool:
    if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
        return (a is None) and (b is None or (isinstance(b, float) and math.isnan(b)))
    return a == b  # bit for bit: the same core over the same bars


def assert_topics_equal_analyze(collected: Collected, expected: pd.DataFrame) -> None:
    assert len(collected.spread) == len(expected)
    zscored = 0
    for row in expected.itertuples(index=False):
        key = (row.ts, row.method)
        spread = collected.spread[key]
        assert (spread.hedge_ratio, spread.intercept, spread.spread) == (
            row.hedge_ratio,
            row.intercept,
            row.spread,
        )
        assert same(spread.forecast_error, row.forecast_error)
        stats = collected.stats[key]
        for name in (
            "correlation", "adf_stat", "adf_pvalue", "half_life", "vol_y", "vwap_x",
            "buy_share_y", "coint_stat", "coint_pvalue", "hedge_ratio_ci_low",
        ):  # fmt: skip
            assert same(getattr(stats, name), getattr(row, name)), (key, name)
        if not (isinstance(row.mean, float) and math.isnan(row.mean)) and row.mean is not None:
            z = collected.zscore[key]
            assert (z.mean, z.std) == (row.mean, row.std)
            assert same(z.zscore, row.zscore)
            assert (z.position, z.signal) == (
                row.position,
                None if pd.isna(row.signal) else row.signal,
            )
            zscored += 1
    assert zscored == len(collected.zscore) > 100


async def stored_outputs(db: DatabaseSettings) -> pd.DataFrame:
    async with connection(db) as conn:
        rows = await conn.fetch(
            "SELECT (extract(epoch FROM s.ts) * 1000)::bigint AS ts, s.method, s.hedge_ratio, "
            "s.spread, z.zscore, t.adf_stat, t.correlation FROM analytics_spread s "
            "LEFT JOIN analytics_zscore z USING (pair, tf, ts, method) "
            "JOIN analytics_stats t USING (pair, tf, ts, method) ORDER BY 1, 2"
        )
    return pd.DataFrame([dict(r) for r in rows])


async def stored_count(db: DatabaseSettings) -> int:
    async with connection(db) as conn:
        try:
            return int(await conn.fetchval("SELECT count(*) FROM analytics_spread"))
        except Exception:
            return 0


def assert_table_equals_analyze(table: pd.DataFrame, expected: pd.DataFrame) -> None:
    want = expected.sort_values(["ts", "method"]).reset_index(drop=True)
    assert list(zip(table["ts"], table["method"], strict=True)) == list(
        zip(want["ts"], want["method"], strict=True)
    )
    np.testing.assert_array_equal(table["hedge_ratio"].to_numpy(), want["hedge_ratio"].to_numpy())
    np.testing.assert_array_equal(table["spread"].to_numpy(), want["spread"].to_numpy())
    for name in ("zscore", "adf_stat", "correlation"):
        np.testing.assert_array_equal(
            table[name].astype(float).to_numpy(), want[name].astype(float).to_numpy()
        )


@asynccontextmanager
async def running(
    settings: AnalyticsSettings, kafka: KafkaSettings, topics: TopicSettings, db: DatabaseSettings
) -> AsyncIterator[AnalyticsWorker]:
    """A worker in this process; a failure of the worker fails the test."""
    worker = AnalyticsWorker(settings, SystemClock(), kafka=kafka, topics=topics, db=db)
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.ready or task.done(), timeout=60)
    try:
        yield worker
    finally:
        if task.done():
            task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_streamed_analytics_equal_pairstream_analyze_on_the_same_bars(
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_bars: Any,
) -> None:
    settings = analytics_settings(scan_interval_s=0.5, scan_tf="1s", scan_window=200)
    bars = interleaved(recorded_bars)
    await store_bars(db_settings, bars)
    expected = expected_outputs(recorded_bars, settings)
    async with collecting(kafka_settings, topic_settings) as collected:
        async with running(settings, kafka_settings, topic_settings, db_settings):
            forming = [b.__class__(**{**_fields(b), "final": False}) for b in bars[:50]]
            bars_topic = topic_settings.bars("1s")
            await publish(kafka_settings, bars_topic, forming + bars)
            async with MessageProducer(kafka_settings) as producer:
                await producer.raw.send_and_wait(bars_topic, b'{"symbol": "BTCUSDT", "tf": 1}')

            async def done() -> bool:
                return await stored_count(db_settings) >= len(expected) and len(
                    collected.spread
                ) >= len(expected)

            await eventually(done, timeout=90)
            await eventually(lambda: bool(collected.scans) and bool(collected.dead), timeout=30)
        assert_topics_equal_analyze(collected, expected)
        assert_table_equals_analyze(await stored_outputs(db_settings), expected)
        (letter,) = collected.dead
        assert letter.source == bars_topic
        assert "tf" in letter.reason
        # the pair scan over the same bars, against statsmodels
        scan = collected.scans[-1]
        (entry,) = scan.entries
        assert (entry.y, entry.x) == ("usdm:BTCUSDT", "usdm:ETHUSDT")
        closes = (
            pd.DataFrame({"y": recorded_bars.y.set_index("start")["close"],
                          "x": recorded_bars.x.set_index("start")["close"]})
            .sort_index().ffill().dropna().loc[: scan.ts].iloc[-200:]
        )  # fmt: skip
        assert entry.nobs == len(closes) == 200
        returns = np.diff(np.log(closes.to_numpy()), axis=0)
        assert entry.correlation == pytest.approx(np.corrcoef(returns.T)[0, 1], abs=1e-12)
        y, x = closes["y"].to_numpy(), closes["x"].to_numpy()
        stat, pvalue, _ = sm_coint(y - y.mean(), x - x.mean(), maxlag=1, autolag=None)
        assert entry.coint_stat == pytest.approx(stat, rel=1e-9)
        assert entry.coint_pvalue == pytest.approx(pvalue, rel=1e-9, abs=1e-15)
        async with connection(db_settings) as conn:
            stored = await conn.fetchrow(
                "SELECT * FROM pair_scan WHERE ts = to_timestamp($1 / 1000.0)", scan.ts
            )
        assert stored is not None
        assert stored["correlation"] == entry.correlation


def _fields(bar: Bar) -> dict[str, Any]:
    return {f: getattr(bar, f) for f in bar.__struct_fields__}


def process_env(
    kafka: KafkaSettings, topics: TopicSettings, db: DatabaseSettings, settings: AnalyticsSettings
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANALYTICS_", "TOPIC_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP": str(kafka.bootstrap),
            "DATABASE_URL": str(db.url),
            "DB_SCHEMA": db.schema_name,
            "LOG_LEVEL": "INFO",
        }
    )
    for name, value in topics.model_dump().items():
        if isinstance(value, tuple):
            value = ",".join(value)
        env[f"TOPIC_{name.upper()}"] = str(value)
    for name, value in settings.model_dump().items():
        if isinstance(value, tuple):
            value = ",".join(value)
        env[f"ANALYTICS_{name.upper()}"] = str(value)
    return env


async def test_a_worker_killed_mid_stream_and_restarted_changes_nothing(
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_bars: Any,
    tmp_path: Path,
) -> None:
    settings = analytics_settings()
    bars = interleaved(recorded_bars)
    await store_bars(db_settings, bars)
    expected = expected_outputs(recorded_bars, settings)
    env = process_env(kafka_settings, topic_settings, db_settings, settings)
    bars_topic = topic_settings.bars("1s")
    half = len(bars) // 2
    async with collecting(kafka_settings, topic_settings) as collected:
        first = ServiceProcess("analytics", env, tmp_path / "first.log")
        try:
            await publish(kafka_settings, bars_topic, bars[:half])
            await eventually(lambda: _more_than(db_settings, 300), timeout=90)
            first.kill()
        finally:
            first.stop()
        await publish(kafka_settings, bars_topic, bars[half:])
        second = ServiceProcess("analytics", env, tmp_path / "second.log")
        try:

            async def done() -> bool:
                return await stored_count(db_settings) >= len(expected)

            await eventually(done, timeout=120)
            await eventually(lambda: len(collected.spread) >= len(expected), timeout=30)
        finally:
            second.stop()
        log = (tmp_path / "second.log").read_text()
        assert "outputs may differ" not in log, log[-3000:]
        assert_topics_equal_analyze(collected, expected)
        assert_table_equals_analyze(await stored_outputs(db_settings), expected)


async def _more_than(db: DatabaseSettings, n: int) -> bool:
    return await stored_count(db) > n


async def test_checkpoints_of_recreated_topics_are_discarded_and_the_outputs_complete_again(
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_bars: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pairstream_analytics.worker")
    settings = analytics_settings(methods="ols,kalman")
    bars = interleaved(recorded_bars)
    await store_bars(db_settings, bars)
    expected = expected_outputs(recorded_bars, settings)
    bars_topic = topic_settings.bars("1s")

    async def run_once(topics: TopicSettings) -> Collected:
        async with (
            collecting(kafka_settings, topics) as collected,
            running(settings, kafka_settings, topics, db_settings),
        ):
            await publish(kafka_settings, bars_topic, bars)

            async def done() -> bool:
                return await stored_count(db_settings) >= len(expected) and len(
                    collected.spread
                ) >= len(expected)

            await eventually(done, timeout=90)
        return collected

    assert_topics_equal_analyze(await run_once(topic_settings), expected)
    assert "discarding the stored checkpoint" not in caplog.text
    # bars and analytics.bars deleted and created again under the stopped worker (infra
    # down/up), outputs into new topics and emptied tables: the same outputs, complete
    await recreate_topics(kafka_settings, [bars_topic, topic_settings.analytics_bars])
    tag = unique("again")
    again = topic_settings.model_copy(
        update={name: f"{tag}.{name}" for name in ("spread", "zscore", "stats", "scan")}
    )
    async with connection(db_settings) as conn:
        await conn.execute("TRUNCATE analytics_spread, analytics_zscore, analytics_stats")
    caplog.clear()
    collected = await run_once(again)
    assert_topics_equal_analyze(collected, expected)
    assert_table_equals_analyze(await stored_outputs(db_settings), expected)
    discarded = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "discarding the stored checkpoint" in r.getMessage()
    ]
    assert len(discarded) == 1, caplog.text[-3000:]
    assert discarded[0].startswith(f"{PAIR} 1s: discarding the stored checkpoint")
    assert topic_settings.analytics_bars in discarded[0]
