"""The alerts service on real Kafka and PostgreSQL, after the real analytics worker.

The recorded July BTC/ETH trades are replayed through the resampler and the analytics
worker (in this process; the restart test feeds their 1s bars to the analytics worker
directly); the alerts worker evaluates a rule set of every condition kind over its
topics. The alerts it publishes, stores and notifies must equal the same engine run
over the stored analytics (``replay_rules``, what ``pairstream alerts test`` prints),
and a local webhook receiver must get each exactly once, signed.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from pairstream.alerts.history import replay_rules
from pairstream.alerts.rules import Rule
from pairstream.alerts.store import put_rule
from pairstream.clock import SystemClock
from pairstream.codec import Codec
from pairstream.db import connection
from pairstream.db.migrate import migrate
from pairstream.kafka import (
    MessageProducer,
    contract_topics,
    create_consumer,
    ensure_topics,
    log_size,
)
from pairstream.messages import Alert, Bar
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.testing import ServiceProcess, WebhookReceiver, bar_messages, eventually, unique
from pairstream_alerts.config import AlertsSettings
from pairstream_alerts.worker import AlertsWorker
from pairstream_analytics.config import AnalyticsSettings
from pairstream_analytics.worker import AnalyticsWorker

PAIR = "usdm:BTCUSDT-usdm:ETHUSDT"
SECRET = "s3cret"  # the receiver fixture's
T0 = 1_720_000_000_000
BINANCE = Path(__file__).parents[2] / "fixtures" / "binance"
FRAMES = BINANCE / "usdm_BTC+ETH_20240718-19.interleaved.jsonl.gz"  # the recording as frames


def rules() -> list[Rule]:
    base = {"subject": PAIR, "tf": "1s", "channels": ["hook"]}
    z = {"kind": "threshold", "field": "zscore"}
    specs: list[dict[str, Any]] = [
        {"id": "z-outside", "condition": {**z, "op": "outside", "lo": -2, "hi": 2}},
        {"id": "z-huber", "method": "huber",
         "condition": {**z, "op": "outside", "lo": -2, "hi": 2}},
        {"id": "z-cross", "condition": {**z, "op": "cross_above", "value": 1.5}},
        {
            "id": "z-hysteresis", "condition": {**z, "op": ">", "value": 1.0}, "for_bars": 3,
            "clear": 0.5, "cooldown": "20s",
        },
        {"id": "corr-below", "condition": {"kind": "correlation_break", "below": 0.5}},
        {"id": "corr-drop", "condition": {"kind": "correlation_break", "drop": 0.15, "bars": 10}},
        {"id": "coint-lost", "condition": {"kind": "cointegration", "event": "lost", "tests": 2}},
        {
            "id": "adf-regained",
            "condition": {"kind": "cointegration", "event": "regained", "test": "adf",
                          "level": 0.1, "tests": 1},
        },
        {"id": "half-life", "condition": {"kind": "half_life", "lo": 1, "hi": 20}},
        {"id": "hedge-jump", "condition": {"kind": "hedge_jump", "relative": 0.002, "bars": 5}},
        {"id": "expr", "condition": {"kind": "expression",
                                     "expr": "abs(zscore) > 1.5 && adf_pvalue < 0.3"}},
        {"id": "volume", "subject": "usdm:BTCUSDT",
         "condition": {"kind": "volume_spike", "factor": 4, "bars": 30}},
        {"id": "volatility", "subject": "usdm:*",
         "condition": {"kind": "volatility_spike", "factor": 4, "bars": 30}},
    ]  # fmt: skip
    return [Rule.model_validate({**base, "name": s["id"], **s}) for s in specs]


WINDOWS = {"hedge_window": 60, "zscore_window": 20, "flow_window": 20, "stats_window": 60}


def analytics_settings(group: str | None = None) -> AnalyticsSettings:
    return AnalyticsSettings(
        group_id=group or unique("analytics"), metrics_port=0, pairs=PAIR, timeframes="1s",  # type: ignore[arg-type]
        methods="ols,huber", scan_interval_s=0, rebuild_wait_s=5, session_timeout_s=3.0,  # type: ignore[arg-type]
        heartbeat_interval_s=0.5, tests_every=10, **WINDOWS,
    )  # fmt: skip


def alerts_settings(hook_url: str, **overrides: Any) -> AlertsSettings:
    values: dict[str, Any] = {
        "group_id": unique("alerts"),
        "metrics_port": 0,
        "timeframes": "1s",
        "default_rules": False,
        "channels": {"hook": {"url": hook_url, "secret": SECRET, "per_minute": 100_000}},
        "notify_poll_s": 0.1,
        "storm_cap": 100_000,  # these rules fire often: every notification is wanted here
        "notify_backoff_base_s": 0.1,
        "notify_backoff_cap_s": 1.0,
        "session_timeout_s": 3.0,
        "heartbeat_interval_s": 0.5,
        **overrides,
    }
    return AlertsSettings(**values)


@asynccontextmanager
async def collecting_alerts(
    kafka: KafkaSettings, topics: TopicSettings
) -> AsyncIterator[list[Alert]]:
    await ensure_topics(contract_topics(topics), kafka)
    codec = Codec(topics.alerts, Alert)
    consumer = create_consumer([topics.alerts], None, kafka)
    await consumer.start()
    seen: list[Alert] = []

    async def pump() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.extend(codec.decode(r.value) for r in records)

    task = asyncio.create_task(pump())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


async def prepare(db: DatabaseSettings, bars: list[Bar], rule_set: list[Rule]) -> None:
    from pairstream_resampler.store import BAR_COLUMNS, bar_record

    async with connection(db) as conn:
        await migrate(conn, db)
        await conn.copy_records_to_table(
            "bars", records=[bar_record(b) for b in bars], columns=list(BAR_COLUMNS)
        )
        for rule in rule_set:
            await put_rule(conn, rule)


async def publish(kafka: KafkaSettings, topic: str, bars: list[Bar]) -> None:
    async with MessageProducer(kafka) as producer:
        await asyncio.gather(*[await producer.send(topic, bar) for bar in bars])


@asynccontextmanager
async def running(worker: Any) -> AsyncIterator[Any]:
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.ready or task.done(), timeout=60)
    try:
        yield worker
    finally:
        if task.done():
            task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def stored_analytics(db: DatabaseSettings) -> int:
    async with connection(db) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM analytics_stats"))


async def expected_alerts(db: DatabaseSettings, rule_set: list[Rule]) -> list[Any]:
    async with connection(db) as conn:
        return await replay_rules(conn, rule_set)


def interleaved(recorded_bars: Any) -> list[Bar]:
    bars = bar_messages(recorded_bars.y, "BTCUSDT") + bar_messages(recorded_bars.x, "ETHUSDT")
    return sorted(bars, key=lambda b: (b.start, b.symbol))


async def analysed(
    kafka: KafkaSettings,
    topics: TopicSettings,
    db: DatabaseSettings,
    bars: list[Bar],
    recorded_bars: Any,
    group: str | None = None,
) -> None:
    """Run the analytics worker over the bars until every output is stored (with
    ``recorded_bars``: all of them; without: a first part)."""
    from pairstream.analytics.batch import analyze

    settings = analytics_settings(group)
    worker = AnalyticsWorker(settings, SystemClock(), kafka=kafka, topics=topics, db=db)
    async with running(worker):
        await publish(kafka, topics.bars("1s"), bars)
        if recorded_bars is None:  # part of the bars: some outputs are enough
            await eventually(lambda: _analytics_more_than(db, 200), timeout=120)
            return
        config = settings.pair_config()
        outputs = len(analyze(recorded_bars.y, recorded_bars.x, 1_000, config, settings.methods))

        async def done() -> bool:
            return await stored_analytics(db) >= outputs

        await eventually(done, timeout=120)


async def _analytics_more_than(db: DatabaseSettings, n: int) -> bool:
    try:
        return await stored_analytics(db) > n
    except Exception:
        return False


def assert_same_alerts(published: list[Alert], expected: list[Any]) -> None:
    want = {t.event_id: t.to_message(0) for t in expected}
    got = {a.event_id: a for a in published}
    assert set(got) == set(want)
    for event_id, alert in got.items():
        assert alert.__class__(**{**_fields(alert), "ts_init": 0}) == want[event_id]


def _fields(message: Any) -> dict[str, Any]:
    return {f: getattr(message, f) for f in message.__struct_fields__}


async def bars_stored(db: DatabaseSettings) -> int:
    async with connection(db) as conn:
        try:
            return int(await conn.fetchval("SELECT count(*) FROM bars WHERE tf = '1s' AND final"))
        except asyncpg.UndefinedTableError:
            return 0


async def test_replayed_trades_through_resampler_and_analytics_give_the_alerts_test_once(
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_bars: Any,
    receiver: WebhookReceiver,
) -> None:
    """The recorded July trades replayed into ``ticks``; the resampler, the analytics and
    the alerts workers in this process, each on its own topics and group."""
    from pairstream.analytics.batch import analyze
    from pairstream_ingest.main import run_replay
    from pairstream_resampler.config import ResamplerSettings
    from pairstream_resampler.worker import ResamplerWorker

    rule_set = rules()
    async with connection(db_settings) as conn:
        await migrate(conn, db_settings)
        for rule in rule_set:
            await put_rule(conn, rule)
    await ensure_topics(contract_topics(topic_settings), kafka_settings)
    resampling = ResamplerSettings(
        group_id=unique("resampler"), metrics_port=0, lateness_ms=2_000, idle_after_s=1.5,
        session_timeout_s=3.0, rebalance_timeout_s=3.0, heartbeat_interval_s=0.5,
    )  # fmt: skip
    resampler = ResamplerWorker(
        resampling, kafka=kafka_settings, topics=topic_settings, db=db_settings
    )
    analytics = analytics_settings()
    bars_wanted = len(recorded_bars.y) + len(recorded_bars.x)
    outputs = len(analyze(recorded_bars.y, recorded_bars.x, 1_000, analytics.pair_config(),
                          analytics.methods))  # fmt: skip
    async with collecting_alerts(kafka_settings, topic_settings) as published:
        await resampler.start()
        try:
            workers = (
                AnalyticsWorker(analytics, SystemClock(), kafka=kafka_settings,
                                topics=topic_settings, db=db_settings),
                AlertsWorker(alerts_settings(receiver.url), SystemClock(), kafka=kafka_settings,
                             topics=topic_settings, db=db_settings),
            )  # fmt: skip
            async with running(workers[0]), running(workers[1]):
                await run_replay([FRAMES], speed=None, kafka=kafka_settings, topics=topic_settings)

                async def all_bars() -> bool:
                    return await bars_stored(db_settings) >= bars_wanted

                async def all_analytics() -> bool:
                    return await stored_analytics(db_settings) >= outputs

                await eventually(all_bars, timeout=180)
                await eventually(all_analytics, timeout=180)
                expected = await expected_alerts(db_settings, rule_set)
                ids = {t.event_id for t in expected}
                await eventually(lambda: {a.event_id for a in published} >= ids, timeout=60)
                await eventually(lambda: set(receiver.keys) >= ids, timeout=60)
                await asyncio.sleep(1.0)  # anything extra would show up now
        finally:
            await resampler.stop()
    assert await bars_stored(db_settings) == bars_wanted  # the batch reference's count
    assert await stored_analytics(db_settings) == outputs
    fired = Counter(t.rule.id for t in expected if t.state == "firing")
    assert set(fired) == {r.id for r in rule_set}, fired
    assert_same_alerts(published, expected)
    assert receiver.keys == Counter(ids)
    assert receiver.bad_signatures == 0
    async with connection(db_settings) as conn:
        history = await conn.fetch("SELECT alert_id::text, state FROM alert_history")
        outbox = await conn.fetch("SELECT status, count(*) FROM alert_outbox GROUP BY 1")
    assert {r["alert_id"] for r in history} == {t.alert_id for t in expected}
    assert dict((r["status"], r["count"]) for r in outbox) == {"sent": len(ids)}


def process_env(
    kafka: KafkaSettings, topics: TopicSettings, db: DatabaseSettings, settings: AlertsSettings
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALERTS_", "TOPIC_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP": str(kafka.bootstrap),
            "DATABASE_URL": str(db.url),
            "DB_SCHEMA": db.schema_name,
            "LOG_LEVEL": "INFO",
        }
    )
    for name, value in topics.model_dump().items():
        env[f"TOPIC_{name.upper()}"] = ",".join(value) if isinstance(value, tuple) else str(value)
    dumped = settings.model_dump(mode="json")
    for name, value in dumped.items():
        if isinstance(value, list):
            value = ",".join(value)
        elif isinstance(value, dict):
            value = orjson.dumps(value).decode()
        elif isinstance(value, bool):
            value = str(value).lower()
        env[f"ALERTS_{name.upper()}"] = str(value)
    return env


async def history_count(db: DatabaseSettings) -> int:
    async with connection(db) as conn:
        try:
            return int(await conn.fetchval("SELECT count(*) FROM alert_events"))
        except Exception:
            return 0


async def test_alerts_killed_mid_stream_and_restarted_give_the_same_alerts_notified_once(
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    db_settings: DatabaseSettings,
    recorded_bars: Any,
    tmp_path: Path,
    receiver: WebhookReceiver,
) -> None:
    rule_set = rules()
    bars = interleaved(recorded_bars)
    await prepare(db_settings, bars, rule_set)
    half = len(bars) // 2
    env = process_env(kafka_settings, topic_settings, db_settings, alerts_settings(receiver.url))
    group = unique("analytics")
    first = ServiceProcess("alerts", env, tmp_path / "first.log")
    try:
        await analysed(kafka_settings, topic_settings, db_settings, bars[:half], None, group)
        await eventually(lambda: _more_than(db_settings, 50), timeout=60)
        first.kill()
    finally:
        first.stop()
    killed_at = await history_count(db_settings)
    second = ServiceProcess("alerts", env, tmp_path / "second.log")
    try:
        await analysed(
            kafka_settings, topic_settings, db_settings, bars[half:], recorded_bars, group
        )
        expected = await expected_alerts(db_settings, rule_set)
        ids = {t.event_id for t in expected}
        await eventually(lambda: set(receiver.keys) >= ids, timeout=90)
        await asyncio.sleep(1.0)
    finally:
        second.stop()
    log = (tmp_path / "second.log").read_text()
    assert "Traceback" not in log, log[-3000:]
    assert 0 < killed_at < len(ids)
    assert set(receiver.keys) == ids
    redelivered = sum(n - 1 for n in receiver.keys.values())
    assert redelivered <= 100  # at most what one claim had in flight at the kill
    assert receiver.bad_signatures == 0
    async with connection(db_settings) as conn:
        stored = {
            r["event_id"] for r in await conn.fetch("SELECT event_id::text FROM alert_events")
        }
        alert_ids = {
            r["a"] for r in await conn.fetch("SELECT alert_id::text AS a FROM alert_history")
        }
    assert stored == ids
    assert alert_ids == {t.alert_id for t in expected}


async def _more_than(db: DatabaseSettings, n: int) -> bool:
    return await history_count(db) > n


async def test_a_rule_added_while_running_applies_without_a_restart(
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    db_settings: DatabaseSettings,
    receiver: WebhookReceiver,
) -> None:
    from pairstream.messages import ZScoreUpdate

    async with connection(db_settings) as conn:
        await migrate(conn, db_settings)
    worker = AlertsWorker(
        alerts_settings(receiver.url), SystemClock(), kafka=kafka_settings,
        topics=topic_settings, db=db_settings,
    )  # fmt: skip
    rule = Rule.model_validate(
        {"id": "live", "name": "live", "subject": PAIR, "channels": ["hook"],
         "condition": {"kind": "threshold", "field": "zscore", "op": ">", "value": 2}}
    )  # fmt: skip
    async with collecting_alerts(kafka_settings, topic_settings) as published, running(worker):
        assert worker.engine.rules.rules == ()
        async with connection(db_settings) as conn:
            started = time.monotonic()
            await put_rule(conn, rule)
            await eventually(lambda: worker.engine.rules.rules == (rule,), timeout=5)
            took = time.monotonic() - started
        z = ZScoreUpdate(
            pair=PAIR, tf="1s", ts=T0, window=60, spread=1.0, mean=0.0, std=1.0, zscore=3.0,
            ts_event=T0 + 1000, ts_init=T0 + 1000,
        )  # fmt: skip
        async with MessageProducer(kafka_settings) as producer:
            await (await producer.send(topic_settings.zscore, z))
        await eventually(lambda: [a.rule_id for a in published] == ["live"], timeout=30)
        await eventually(lambda: len(receiver.keys) == 1, timeout=10)
        async with connection(db_settings) as conn:
            from pairstream.alerts.store import set_enabled

            await set_enabled(conn, "live", False)
        await eventually(lambda: not worker.engine.rules.rules[0].enabled, timeout=5)
    assert took < 1.0, f"rule change applied after {took:.3f} s"


def flips(bars: range) -> list[Any]:
    """A z-score per bar, above then below zero in turn: every bar is a transition of
    ``flip_rule``."""
    from pairstream.messages import ZScoreUpdate

    return [
        ZScoreUpdate(
            pair=PAIR,
            tf="1s",
            ts=T0 + b * 1000,
            window=60,
            spread=0.0,
            mean=0.0,
            std=1.0,
            zscore=1.0 if b % 2 == 0 else -1.0,
            ts_event=T0 + b * 1000 + 1000,
            ts_init=T0 + b * 1000 + 1000,
        )
        for b in bars
    ]


async def test_database_stopped_mid_stream_alerts_still_published_then_stored_and_sent_once(
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    own_postgres: tuple[Any, str],
    receiver: WebhookReceiver,
) -> None:
    manager, url = own_postgres
    db = DatabaseSettings(DATABASE_URL=url, DB_SCHEMA=unique("outage_"))
    flip_rule = Rule.model_validate(
        {"id": "flip", "name": "flip", "subject": PAIR, "channels": ["hook"],
         "condition": {"kind": "threshold", "field": "zscore", "op": ">", "value": 0}}
    )  # fmt: skip
    async with connection(db) as conn:
        await migrate(conn, db)
        await put_rule(conn, flip_rule)
    settings = alerts_settings(receiver.url, retry_base_s=0.1, retry_cap_s=0.5)
    worker = AlertsWorker(settings, SystemClock(), kafka=kafka_settings, topics=topic_settings,
                          db=db)  # fmt: skip
    async with collecting_alerts(kafka_settings, topic_settings) as published, running(worker):
        acks = await publish_zscores(kafka_settings, topic_settings, flips(range(0, 100)))
        await eventually(lambda: worker.stored_records >= 100, timeout=30)
        await asyncio.to_thread(manager.down)
        stored_before = worker.stored_records
        acks += await publish_zscores(kafka_settings, topic_settings, flips(range(100, 300)))
        # every transition is on `alerts` while the database is away; none of it stored
        await eventually(lambda: len({a.event_id for a in published}) >= 300, timeout=30)
        assert worker.stored_records == stored_before
        await asyncio.to_thread(manager.up)
        log_end = log_size(acks)  # 300, or more if a producer retry wrote some twice
        await eventually(lambda: worker.stored_records >= log_end, timeout=60)
        await eventually(lambda: len(receiver.keys) >= 300, timeout=60)
        await asyncio.sleep(1.0)  # anything extra would show up now
    ids = {a.event_id for a in published}
    assert len(ids) == 300
    assert receiver.keys == Counter(ids)
    assert receiver.bad_signatures == 0
    async with connection(db) as conn:
        stored = {r["e"] for r in await conn.fetch("SELECT event_id::text AS e FROM alert_events")}
        offsets = await conn.fetchval("SELECT sum(next_offset) FROM alert_offsets")
    assert stored == ids
    assert offsets == log_end


async def publish_zscores(
    kafka: KafkaSettings, topics: TopicSettings, messages: list[Any]
) -> list[Any]:
    """Publish; the acks (``RecordMetadata``)."""
    async with MessageProducer(kafka) as producer:
        return await asyncio.gather(*[await producer.send(topics.zscore, m) for m in messages])
