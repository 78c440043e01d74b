"""The resampler worker on a real broker and database: final bars equal the batch reference.

Each scenario feeds the recording into ``ticks``, runs real workers (in this
process, or as ``pairstream resampler`` processes where one is killed or joins),
and checks the latest revision per key on ``bars.1s|1m|5m`` and the rows of
``bars`` against the independent batch aggregation of the recorded trades —
also after SIGKILL and restart, a second worker joining, and PostgreSQL stopped
for 20 s mid-stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest

from pairstream.codec import Codec
from pairstream.db import connection
from pairstream.infra.manager import InfraManager, free_port
from pairstream.infra.parts import KafkaPart
from pairstream.kafka import MessageProducer, TopicRequest, create_consumer, ensure_topics
from pairstream.messages import Bar, DeadLetter, TickRun, Trade
from pairstream.settings import DatabaseSettings, InfraSettings, KafkaSettings, TopicSettings
from pairstream.testing import ServiceProcess, eventually, recreate_topics, unique
from pairstream_ingest.main import run_replay
from pairstream_resampler.config import ResamplerSettings
from pairstream_resampler.worker import ResamplerWorker

FRAMES = (
    Path(__file__).parents[2]
    / "fixtures"
    / "binance"
    / "usdm_BTC+ETH_20240718-19.interleaved.jsonl.gz"
)
TIMEFRAMES = ("1s", "1m", "5m")
LATENESS_MS = 2_000

Key = tuple[str, str, int]


def worker_settings(**overrides: Any) -> ResamplerSettings:
    values: dict[str, Any] = {
        "group_id": unique("resampler"),
        "metrics_port": 0,
        "lateness_ms": LATENESS_MS,
        "idle_after_s": 1.5,
        "checkpoint_interval_s": 0.2,
        "session_timeout_s": 3.0,
        "rebalance_timeout_s": 3.0,
        "heartbeat_interval_s": 0.5,
    }
    values.update(overrides)
    return ResamplerSettings(**values)


async def produce_runs(
    runs: list[TickRun], kafka: KafkaSettings, topics: TopicSettings, per_s: float | None = None
) -> None:
    """Send ``runs`` to ``ticks`` in this order (paced to ``per_s`` messages/s when given)."""
    async with MessageProducer(kafka) as producer:
        for i, run in enumerate(runs):
            await producer.send(topics.ticks, run)
            if per_s is not None and i % 50 == 49:
                await producer.flush()
                await asyncio.sleep(50 / per_s)
        await producer.flush()


def market_moves_on(trades: dict[str, list[Trade]], after_ms: int = 7_200_000) -> list[TickRun]:
    """One more trade per symbol ``after_ms`` (2 hours) after the recording: its event time closes
    every recorded bar (the wall clock would take 5 minutes to close the last 5m bar)."""
    return [
        TickRun(
            market="usdm",
            symbol=symbol,
            source="replay",
            ts_ingest=0,
            trades=[
                Trade(
                    trade_id=symbol_trades[-1].trade_id + 1,
                    ts_event=symbol_trades[-1].ts_event + after_ms,
                    price=symbol_trades[-1].price,
                    qty=1.0,
                    is_buyer_maker=False,
                )
            ],
        )
        for symbol, symbol_trades in trades.items()
    ]


def recorded(bars: dict[Key, Any], expected: dict[Key, Any]) -> dict[Key, Any]:
    """The bars inside the recording's time (not those of :func:`market_moves_on`)."""
    end = max(start for _, _, start in expected) + 300_000
    return {key: bar for key, bar in bars.items() if key[2] < end}


def small_runs(trades: dict[str, list[Trade]], seed: int) -> list[TickRun]:
    """The recording as runs of 1–5 trades (≤ 100 ms each) per symbol, in time order."""
    rng = random.Random(seed)
    runs: list[TickRun] = []
    for symbol, symbol_trades in trades.items():
        i = 0
        while i < len(symbol_trades):
            first = symbol_trades[i].ts_event
            chunk = symbol_trades[i : i + rng.randint(1, 5)]
            chunk = [t for t in chunk if t.ts_event - first <= 100]
            runs.append(
                TickRun(market="usdm", symbol=symbol, source="replay", ts_ingest=0, trades=chunk)
            )
            i += len(chunk)
    runs.sort(key=lambda run: (run.trades[0].ts_event, run.symbol))
    return runs


def shuffled_within_lateness(runs: list[TickRun], seed: int) -> list[TickRun]:
    rng = random.Random(seed)
    return sorted(runs, key=lambda r: r.trades[0].ts_event + rng.uniform(0, 0.9 * LATENESS_MS))


class Output:
    """Everything the workers published: latest bar per key, dead letters."""

    def __init__(self, kafka: KafkaSettings, topics: TopicSettings) -> None:
        self.kafka = kafka
        self.topics = topics
        self.bars: dict[Key, Bar] = {}
        self.messages = 0
        self.dead_letters: list[DeadLetter] = []

    async def collect_until_final(self, expected: set[Key], timeout: float = 90.0) -> None:
        names = [self.topics.bars(tf) for tf in TIMEFRAMES]
        codecs = {name: Codec(name, Bar) for name in names}
        dead = Codec(self.topics.dead_letter, DeadLetter)
        consumer = create_consumer([*names, self.topics.dead_letter], None, self.kafka)
        await consumer.start()
        try:

            async def all_final() -> bool:
                batch = await consumer.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    for record in records:
                        if tp.topic == self.topics.dead_letter:
                            self.dead_letters.append(dead.decode(record.value))
                            continue
                        bar = codecs[tp.topic].decode(record.value)
                        key = (bar.symbol, bar.tf, bar.start)
                        held = self.bars.get(key)
                        self.messages += 1
                        if held is None or bar.revision >= held.revision:
                            self.bars[key] = bar
                return all(key in self.bars and self.bars[key].final for key in expected)

            await eventually(all_final, timeout=timeout)
        finally:
            await consumer.stop()


async def fetch_rows(db: DatabaseSettings, sql: str) -> list[SimpleNamespace]:
    """Rows of ``sql`` in the test's schema (none while the tables do not exist yet)."""
    async with connection(db) as conn:
        try:
            return [SimpleNamespace(**dict(row)) for row in await conn.fetch(sql)]
        except asyncpg.UndefinedTableError:
            return []


async def stored_bars(db: DatabaseSettings, expected: set[Key]) -> dict[Key, Any]:
    """The ``bars`` rows, once every expected bar is stored as final."""
    found: dict[Key, Any] = {}

    async def all_stored() -> bool:
        rows = await fetch_rows(
            db, "SELECT *, (extract(epoch FROM start) * 1000)::bigint AS start_ms FROM bars"
        )
        found.clear()
        found.update({(row.symbol, row.tf, row.start_ms): row for row in rows})
        return set(found) >= expected and all(found[k].final for k in expected)

    await eventually(all_stored, timeout=60)
    return found


async def hourly_bars(db: DatabaseSettings) -> dict[tuple[str, int], Any]:
    rows = await fetch_rows(
        db, "SELECT *, (extract(epoch FROM start) * 1000)::bigint AS start_ms FROM bars_1h"
    )
    return {(row.symbol, row.start_ms): row for row in rows}


async def final_bars_match(
    kafka: KafkaSettings,
    topics: TopicSettings,
    db: DatabaseSettings,
    expected: dict[Key, Any],
    bars_equal: Callable[..., None],
) -> Output:
    """Wait until every expected bar is final; topics and table must equal ``expected``."""
    output = Output(kafka, topics)
    await output.collect_until_final(set(expected))
    bars_equal(recorded(output.bars, expected), expected)
    bars_equal(recorded(await stored_bars(db, set(expected)), expected), expected)
    return output


@asynccontextmanager
async def running(
    settings: ResamplerSettings, kafka: KafkaSettings, topics: TopicSettings, db: DatabaseSettings
) -> AsyncIterator[ResamplerWorker]:
    """A worker in this process, started (topics exist, group joined) and stopped after."""
    worker = ResamplerWorker(settings, kafka=kafka, topics=topics, db=db)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop()


@pytest.fixture
async def ticks_topic(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> TopicSettings:
    """Unique topics; ``ticks`` with 4 partitions so two workers can split them."""
    topics = topic_settings.model_copy(update={"ticks_partitions": 4})
    await ensure_topics([TopicRequest(topics.ticks, 4)], kafka_settings)
    return topics


async def test_replayed_recording_gives_the_batch_bars_in_topics_and_table(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    hourly_reference: dict[tuple[str, int], Any],
    bars_equal: Callable[..., None],
) -> None:
    expected = reference_bars()
    await run_replay([FRAMES], speed=None, kafka=kafka_settings, topics=ticks_topic)
    await produce_runs(market_moves_on(recorded_trades), kafka_settings, ticks_topic)
    async with running(worker_settings(), kafka_settings, ticks_topic, db_settings):
        output = await final_bars_match(
            kafka_settings, ticks_topic, db_settings, expected, bars_equal
        )
        assert output.dead_letters == []
        # the bars_1h view (a continuous aggregate on TimescaleDB) over the stored 1m bars
        hourly = await hourly_bars(db_settings)
        bars_equal(
            {(s, "1h", start): bar for (s, start), bar in hourly.items()},
            {(s, "1h", start): bar for (s, start), bar in hourly_reference.items()},
        )


async def test_runs_shuffled_within_the_lateness_give_the_same_bars(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
) -> None:
    expected = reference_bars()
    runs = small_runs(recorded_trades, seed=11)
    shuffled = shuffled_within_lateness(runs, seed=12)
    assert shuffled != runs
    await produce_runs(shuffled + market_moves_on(recorded_trades), kafka_settings, ticks_topic)
    async with running(worker_settings(), kafka_settings, ticks_topic, db_settings) as worker:
        output = await final_bars_match(
            kafka_settings, ticks_topic, db_settings, expected, bars_equal
        )
        assert output.dead_letters == []
        assert any(bar.revision >= 2 for bar in output.bars.values()), "no bar was revised"
        assert _value(worker, "resampler_late_trades_total") == 0


async def test_every_trade_delivered_twice_is_counted_once(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
) -> None:
    expected = reference_bars()
    runs = small_runs(recorded_trades, seed=13)
    twice = shuffled_within_lateness(runs + runs, seed=14)
    await produce_runs(twice + market_moves_on(recorded_trades), kafka_settings, ticks_topic)
    async with running(worker_settings(), kafka_settings, ticks_topic, db_settings) as worker:
        output = await final_bars_match(
            kafka_settings, ticks_topic, db_settings, expected, bars_equal
        )
        assert output.dead_letters == []
        assert _value(worker, "resampler_duplicates_total") == 24_356


async def test_trades_later_than_the_lateness_are_dead_lettered_and_in_no_bar(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
) -> None:
    runs = small_runs(recorded_trades, seed=15)
    # every 300th run of BTCUSDT arrives 10 s (event time) after its neighbours
    held = [run for i, run in enumerate(runs) if run.symbol == "BTCUSDT" and i % 300 == 0]
    held_ids = {id(run) for run in held}
    ordered: list[TickRun] = []
    for run in runs:
        if id(run) not in held_ids:
            ordered.append(run)
        while held and run.trades[0].ts_event - held[0].trades[-1].ts_event > 10_000:
            ordered.append(held.pop(0))
    ordered.extend(held)
    late = {("BTCUSDT", t.trade_id) for r in runs if id(r) in held_ids for t in r.trades}
    expected = reference_bars(exclude=frozenset(late))
    await produce_runs(ordered + market_moves_on(recorded_trades), kafka_settings, ticks_topic)
    async with running(worker_settings(), kafka_settings, ticks_topic, db_settings):
        output = await final_bars_match(
            kafka_settings, ticks_topic, db_settings, expected, bars_equal
        )
        lettered = set()
        for letter in output.dead_letters:
            assert letter.service == "resampler"
            assert letter.source == ticks_topic.ticks
            assert letter.reason.startswith("late: event time before the watermark")
            assert "allowed lateness 2000 ms" in letter.reason
            run = Codec(ticks_topic.ticks, TickRun).decode(letter.raw)
            lettered |= {(run.symbol, t.trade_id) for t in run.trades}
        assert len(late) > 10
        assert lettered == late


def _value(worker: ResamplerWorker, name: str) -> float:
    return sum(
        sample.value
        for metric in worker.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == name
    )


def process_env(
    kafka: KafkaSettings, topics: TopicSettings, db: DatabaseSettings, settings: ResamplerSettings
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESAMPLER_", "TOPIC_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP": str(kafka.bootstrap),
            "DATABASE_URL": str(db.url),
            "DB_SCHEMA": db.schema_name,
            "TOPIC_TICKS": topics.ticks,
            "TOPIC_BARS_TEMPLATE": topics.bars_template,
            "TOPIC_DEAD_LETTER": topics.dead_letter,
            "TOPIC_TICKS_PARTITIONS": str(topics.ticks_partitions),
            "LOG_LEVEL": "INFO",
        }
    )
    for name, value in settings.model_dump().items():
        env[f"RESAMPLER_{name.upper()}"] = str(value)
    return env


async def stored_count(db: DatabaseSettings) -> int:
    (row,) = await fetch_rows(db, "SELECT count(*) AS n FROM bars") or [SimpleNamespace(n=0)]
    return int(row.n)


async def test_a_worker_killed_with_sigkill_and_restarted_gives_the_same_bars(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
    tmp_path: Path,
) -> None:
    expected = reference_bars()
    runs = shuffled_within_lateness(small_runs(recorded_trades, seed=21), seed=22)
    env = process_env(kafka_settings, ticks_topic, db_settings, worker_settings(metrics_port=0))
    first = ServiceProcess("resampler", env, tmp_path / "first.log")
    feeding = asyncio.create_task(
        produce_runs(runs + market_moves_on(recorded_trades), kafka_settings, ticks_topic, 1_500)
    )
    try:
        # killed mid-stream, once it has stored some bars and checkpoints
        await eventually(lambda: _stored_at_least(db_settings, 200), timeout=60)
        assert not feeding.done()
        first.kill()
        killed_with = await stored_count(db_settings)
        second = ServiceProcess("resampler", env, tmp_path / "second.log")
        try:
            await feeding
            output = await final_bars_match(
                kafka_settings, ticks_topic, db_settings, expected, bars_equal
            )
            assert output.dead_letters == []
            assert "resuming at offset" in second.output()
            assert "discarding the stored checkpoint" not in second.output()  # same log
            assert killed_with < len(expected)
        finally:
            assert second.stop() == 0, second.output()
    finally:
        feeding.cancel()
        first.stop()


async def test_a_second_worker_joining_mid_stream_changes_nothing(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
    tmp_path: Path,
) -> None:
    expected = reference_bars()
    runs = shuffled_within_lateness(small_runs(recorded_trades, seed=23), seed=24)
    env = process_env(kafka_settings, ticks_topic, db_settings, worker_settings(metrics_port=0))
    first = ServiceProcess("resampler", env, tmp_path / "first.log")
    feeding = asyncio.create_task(
        produce_runs(runs + market_moves_on(recorded_trades), kafka_settings, ticks_topic, 1_000)
    )
    second: ServiceProcess | None = None
    try:
        await eventually(lambda: _stored_at_least(db_settings, 100), timeout=60)
        assert not feeding.done()
        second = ServiceProcess("resampler", env, tmp_path / "second.log")
        await feeding
        output = await final_bars_match(
            kafka_settings, ticks_topic, db_settings, expected, bars_equal
        )
        assert output.dead_letters == []
        joined = second
        await eventually(lambda: _assigned_some(joined), timeout=30)
    finally:
        feeding.cancel()
        if second is not None:
            assert second.stop() == 0, second.output()
        assert first.stop() == 0, first.output()


def _assigned_some(worker: ServiceProcess) -> bool:
    """The worker logged an assignment with at least one partition."""
    return any(
        "assigned partitions [" in line and "assigned partitions []" not in line
        for line in worker.output().splitlines()
    )


async def _stored_at_least(db: DatabaseSettings, rows: int) -> bool:
    return await stored_count(db) >= rows


async def test_postgres_stopped_for_20s_mid_stream_loses_nothing(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    own_postgres: tuple[InfraManager, str],
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
) -> None:
    manager, url = own_postgres
    db = DatabaseSettings(DATABASE_URL=url, DB_SCHEMA=unique("outage_"))
    expected = reference_bars()
    runs = shuffled_within_lateness(small_runs(recorded_trades, seed=25), seed=26)
    async with running(worker_settings(), kafka_settings, ticks_topic, db) as worker:
        feeding = asyncio.create_task(
            produce_runs(runs + market_moves_on(recorded_trades), kafka_settings, ticks_topic, 800)
        )
        try:
            await eventually(lambda: _stored_at_least(db, 100), timeout=60)
            await asyncio.to_thread(manager.down)
            published_before = worker.outbox.published
            await asyncio.sleep(20)
            # the stream went on while the database was away, bars buffered, offsets held
            assert worker.outbox.published > published_before + 500
            # waiting, or taken by a write attempt that has not failed yet (then the
            # buffer may look empty: every row is in the attempt)
            assert worker.buffer.pending > 0
            assert _value(worker, "resampler_sink_failures_total") >= 1
            await asyncio.to_thread(manager.up)  # InfraManager runs its own loop
            await feeding
            output = await final_bars_match(kafka_settings, ticks_topic, db, expected, bars_equal)
            assert output.dead_letters == []
        finally:
            feeding.cancel()


async def test_a_checkpoint_of_a_recreated_ticks_topic_is_discarded_and_the_new_log_read_in_full(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pairstream_resampler.worker")
    expected = reference_bars()
    settings = worker_settings()
    moves = market_moves_on(recorded_trades)
    await run_replay([FRAMES], speed=None, kafka=kafka_settings, topics=ticks_topic)
    await produce_runs(moves, kafka_settings, ticks_topic)
    async with running(settings, kafka_settings, ticks_topic, db_settings):
        await final_bars_match(kafka_settings, ticks_topic, db_settings, expected, bars_equal)
    # restarted on the same log: the checkpoints are proved and used, nothing is read again
    async with running(settings, kafka_settings, ticks_topic, db_settings) as worker:
        await asyncio.sleep(3)
        assert worker.trades_seen == 0
    assert "discarding the stored checkpoint" not in caplog.text
    # `ticks` deleted and created again under the stopped worker (what infra down/up does),
    # the same recording replayed: every bar again, into new bars topics and an emptied table
    await recreate_topics(kafka_settings, [ticks_topic.ticks])
    again = ticks_topic.model_copy(
        update={
            "bars_template": f"{ticks_topic.ticks}.again.bars.{{tf}}",
            "dead_letter": f"{ticks_topic.ticks}.again.dead-letter",
        }
    )
    async with connection(db_settings) as conn:
        await conn.execute("DELETE FROM bars")
    await run_replay([FRAMES], speed=None, kafka=kafka_settings, topics=again)
    await produce_runs(moves, kafka_settings, again)
    caplog.clear()
    async with running(settings, kafka_settings, again, db_settings) as worker:
        output = await final_bars_match(kafka_settings, again, db_settings, expected, bars_equal)
        assert output.dead_letters == []
        assert worker.trades_seen >= sum(len(t) for t in recorded_trades.values())
    discarded = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "discarding the stored checkpoint" in r.getMessage()
    ]
    assert discarded, caplog.text[-3000:]
    for message in discarded:
        assert message.startswith(f"{ticks_topic.ticks} partition ")
        assert "is another one" in message or "no record at offset" in message, message


@pytest.fixture
def second_broker(tmp_path: Path) -> Iterator[str]:
    """Another embedded Tansu, as ``pairstream infra down`` + ``up`` leaves: empty."""
    settings = InfraSettings(
        PAIRSTREAM_STATE_DIR=tmp_path / "kafka2", kafka_port=free_port("127.0.0.1")
    )
    manager = InfraManager(settings, external={}, parts=(KafkaPart(),))
    (report,) = manager.up()
    try:
        yield str(report.url)
    finally:
        manager.down()


async def test_a_second_run_on_a_new_broker_gives_the_same_bars_and_analytics(
    kafka_settings: KafkaSettings,
    ticks_topic: TopicSettings,
    db_settings: DatabaseSettings,
    second_broker: str,
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 10: replay + resampler + analytics, infra down/up (a new, empty broker, the
    same database), the same again: both runs complete, equal to the batch references."""
    import pandas as pd

    from pairstream.analytics.batch import analyze
    from pairstream.clock import SystemClock
    from pairstream_analytics.config import AnalyticsSettings
    from pairstream_analytics.worker import AnalyticsWorker

    caplog.set_level(logging.INFO)
    expected = reference_bars()
    resampler = worker_settings()
    analytics = AnalyticsSettings(
        group_id=unique("analytics"),
        metrics_port=0,
        pairs="BTCUSDT-ETHUSDT",
        timeframes="1s",
        methods="ols,kalman",
        scan_interval_s=0,
        rebuild_wait_s=5,
        session_timeout_s=3.0,
        heartbeat_interval_s=0.5,
        hedge_window=60,
        zscore_window=20,
        flow_window=20,
        stats_window=60,
        tests_every=10,
    )
    # the market moves on 10 minutes later (closes every bar, few carried 1s intervals)
    moves = market_moves_on(recorded_trades, after_ms=600_000)
    last = min(trades[-1].ts_event for trades in recorded_trades.values()) // 1000 * 1000

    async def analyze_stored_bars() -> pd.DataFrame:
        rows = await fetch_rows(
            db_settings,
            "SELECT symbol, (extract(epoch FROM start) * 1000)::bigint AS start, close, volume, "
            "quote_volume, buy_volume FROM bars WHERE tf = '1s' AND final ORDER BY start",
        )
        table = pd.DataFrame([vars(r) for r in rows])
        table = table[table["start"] <= last]
        y, x = (table[table.symbol == s].reset_index(drop=True) for s in ("BTCUSDT", "ETHUSDT"))
        out = analyze(y, x, 1_000, analytics.pair_config(), analytics.methods)
        return out[out["ts"] <= last].sort_values(["ts", "method"]).reset_index(drop=True)

    async def stored_analytics() -> pd.DataFrame:
        rows = await fetch_rows(
            db_settings,
            "SELECT (extract(epoch FROM s.ts) * 1000)::bigint AS ts, s.method, s.hedge_ratio, "
            "s.spread, z.zscore FROM analytics_spread s LEFT JOIN analytics_zscore z "
            "USING (pair, tf, ts, method) ORDER BY 1, 2",
        )
        table = pd.DataFrame(
            [vars(r) for r in rows], columns=["ts", "method", "hedge_ratio", "spread", "zscore"]
        )
        return table[table["ts"] <= last].reset_index(drop=True)

    async def run(kafka: KafkaSettings) -> pd.DataFrame:
        await ensure_topics([TopicRequest(ticks_topic.ticks, 4)], kafka)
        await run_replay([FRAMES], speed=None, kafka=kafka, topics=ticks_topic)
        await produce_runs(moves, kafka, ticks_topic)
        worker = AnalyticsWorker(
            analytics, SystemClock(), kafka=kafka, topics=ticks_topic, db=db_settings
        )
        task = asyncio.create_task(worker.run())
        try:
            async with running(resampler, kafka, ticks_topic, db_settings):
                await final_bars_match(kafka, ticks_topic, db_settings, expected, bars_equal)
                want = await analyze_stored_bars()
                assert len(want) > 500

                async def complete() -> bool:
                    assert not task.done() or task.result() is None
                    return len(await stored_analytics()) >= len(want)

                await eventually(complete, timeout=90)
            got = await stored_analytics()
            assert list(zip(got["ts"], got["method"], strict=True)) == list(
                zip(want["ts"], want["method"], strict=True)
            )
            for name in ("hedge_ratio", "spread", "zscore"):
                assert got[name].astype(float).to_numpy().tolist() == pytest.approx(
                    want[name].astype(float).to_numpy().tolist(), rel=0, abs=0, nan_ok=True
                ), name
            return got
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    first = await run(kafka_settings)
    assert "discarding the stored checkpoint" not in caplog.text
    async with connection(db_settings) as conn:  # so the second run must store everything again
        await conn.execute("TRUNCATE bars, analytics_spread, analytics_zscore, analytics_stats")
    caplog.clear()
    again = kafka_settings.model_copy(update={"bootstrap": second_broker})
    second = await run(again)
    assert "discarding the stored checkpoint" in caplog.text
    pd.testing.assert_frame_equal(first, second)
