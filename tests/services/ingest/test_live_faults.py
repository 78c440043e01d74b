"""The real live ingest against a local fake Binance fed with the recorded frames, under faults.

For every fault: each recorded trade id reaches ``ticks`` exactly once (live, or
inside exactly one backfilled range), per-symbol id order holds, the quantity
per symbol is conserved exactly, bad frames are dead-lettered with reasons, and
the ingest keeps running.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from pairstream.codec import Codec
from pairstream.kafka import create_consumer
from pairstream.messages import DeadLetter, TickRun
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream.testing import eventually
from pairstream_ingest.config import IngestSettings
from pairstream_ingest.fake_binance import FakeBinance, Fault, read_lines
from pairstream_ingest.main import LiveIngest
from pairstream_ingest.sequencer import decimal_qty, span

FRAMES = (
    Path(__file__).parents[2]
    / "fixtures"
    / "binance"
    / "usdm_BTC+ETH_20240718-19.interleaved.jsonl.gz"
)
LINES = read_lines(FRAMES)


def _recorded() -> dict[str, tuple[int, int, Decimal]]:
    out: dict[str, list] = {}
    for line in LINES:
        data = orjson.loads(line)["data"]
        first, last, qty = out.get(data["s"], [data["t"], data["t"], Decimal(0)])
        out[data["s"]] = [min(first, data["t"]), max(last, data["t"]), qty + Decimal(data["q"])]
    return {s: (v[0], v[1], v[2]) for s, v in out.items()}


RECORDED = _recorded()


@dataclass
class Outcome:
    runs: list[TickRun]
    letters: list[DeadLetter]
    ingest: LiveIngest
    fake: FakeBinance
    backfilled: dict[str, int] = field(default_factory=dict)


def settings_for(fake: FakeBinance, **overrides: object) -> IngestSettings:
    values: dict[str, object] = {
        "source": "binance",
        "ws_url": fake.ws_url,
        "rest_url": fake.rest_url,
        "symbols": ("BTCUSDT", "ETHUSDT"),
        "metrics_port": 0,
        "silent_after_s": 1.0,
        "ping_interval_s": 0.5,
        "ping_timeout_s": 0.5,
        "reconnect_base_s": 0.05,
        "reconnect_cap_s": 0.5,
        "stable_after_s": 0.5,
        "gap_grace_s": 0.1,
        "gap_retry_s": 0.1,
        "control_rate": 50.0,
    }
    values.update(overrides)
    return IngestSettings(**values)  # type: ignore[arg-type]


async def read_ticks(
    kafka: KafkaSettings, topics: TopicSettings
) -> tuple[list[TickRun], list[DeadLetter]]:
    """Everything in ``ticks`` (until every recorded id is covered) and the dead letters."""
    ticks, letters = Codec(topics.ticks, TickRun), Codec(topics.dead_letter, DeadLetter)
    consumer = create_consumer([topics.ticks, topics.dead_letter], None, kafka)
    await consumer.start()
    runs: list[TickRun] = []
    dead: list[DeadLetter] = []
    top: dict[str, int] = {}
    try:

        async def complete() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    if tp.topic == topics.ticks:
                        run = ticks.decode(record.value)
                        runs.append(run)
                        top[run.symbol] = max(top.get(run.symbol, 0), span(run.trades[-1])[1])
                    else:
                        dead.append(letters.decode(record.value))
            return all(top.get(s, 0) >= last for s, (_, last, _) in RECORDED.items())

        await eventually(complete, timeout=60)
        await asyncio.sleep(0.3)  # anything published twice would show up now
        for tp, records in (await consumer.getmany(timeout_ms=500)).items():
            for record in records:
                if tp.topic == topics.ticks:
                    runs.append(ticks.decode(record.value))
                else:
                    dead.append(letters.decode(record.value))
    finally:
        await consumer.stop()
    return runs, dead


def assert_each_trade_once(runs: list[TickRun]) -> dict[str, int]:
    """Every recorded id once, in order, quantity conserved; returns backfilled ids per symbol."""
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    qty: dict[str, Decimal] = defaultdict(Decimal)
    backfilled: dict[str, int] = defaultdict(int)
    for run in runs:
        for trade in run.trades:
            lo, hi = span(trade)
            spans[run.symbol].append((lo, hi))
            qty[run.symbol] += decimal_qty(trade.qty)
            if run.source == "backfill":
                backfilled[run.symbol] += hi - lo + 1
            else:
                assert run.source == "live"
                assert lo == hi
    for symbol, (first, last, total) in RECORDED.items():
        got = spans[symbol]
        assert got[0][0] == first, symbol
        assert got[-1][1] == last, symbol
        for (_, prev_hi), (lo, _) in itertools.pairwise(got):
            assert lo == prev_hi + 1, f"{symbol}: {prev_hi} then {lo}"
        assert qty[symbol] == total, symbol
    return dict(backfilled)


async def run_scenario(
    kafka: KafkaSettings,
    topics: TopicSettings,
    outgoing: list[bytes] | None = None,
    faults: dict[int, Fault] | None = None,
    setup: object = None,
    **overrides: object,
) -> Outcome:
    fake = FakeBinance(outgoing or LINES, clean=LINES, faults=faults, batch=100, interval_s=0.004)
    if callable(setup):
        setup(fake)
    async with fake:
        ingest = LiveIngest(settings_for(fake, **overrides), kafka, topics)
        task = asyncio.create_task(ingest.run())
        try:
            await asyncio.wait_for(fake.subscribed.wait(), 20)
            fake.play()
            runs, letters = await read_ticks(kafka, topics)
            assert not task.done(), "the ingest stopped"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    outcome = Outcome(runs, letters, ingest, fake)
    outcome.backfilled = assert_each_trade_once(runs)
    return outcome


def _faults(kind: Fault, *at: int) -> dict[int, Fault]:
    return {index: kind for index in at}


@pytest.mark.parametrize(
    "kind", ["close", "reset", "server_close"], ids=["clean-close", "tcp-reset", "server-24h-close"]
)
async def test_dropped_connections_lose_nothing_and_gaps_are_filled_from_rest(
    kind: Fault, kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    outcome = await run_scenario(
        kafka_settings, topic_settings, faults=_faults(kind, 6_000, 15_000)
    )
    assert outcome.fake.connections >= 3
    assert sum(outcome.backfilled.values()) > 0
    assert outcome.fake.rest_calls["aggTrades"] > 0
    assert outcome.letters == []


async def test_stalled_socket_is_abandoned_and_its_gap_filled(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    outcome = await run_scenario(kafka_settings, topic_settings, faults=_faults("stall", 8_000))
    assert outcome.fake.connections >= 2
    assert sum(outcome.backfilled.values()) > 0


async def test_silent_route_raises_the_alarm_reconnects_and_fills_the_gap(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await run_scenario(
        kafka_settings, topic_settings, faults=_faults("close_then_silent", 7_000)
    )
    alarms = outcome.ingest.metrics.silent_alarms.labels("usdm-conn0")._value.get()
    assert alarms >= 1
    assert any("ALARM" in r.message and "no frame" in r.message for r in caplog.records)
    assert sum(outcome.backfilled.values()) > 0


async def test_duplicated_frames_are_published_once(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    noisy = [
        line for index, line in enumerate(LINES) for _ in range(2 if 3_000 <= index < 9_000 else 1)
    ]
    outcome = await run_scenario(kafka_settings, topic_settings, outgoing=noisy)
    assert outcome.backfilled == {}
    duplicates = sum(s.stats.duplicates for s in outcome.ingest.pipeline.sequencers.values())
    assert duplicates == 6_000


async def test_out_of_order_frames_are_put_back_in_id_order(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    rng = random.Random(11)
    shuffled = list(LINES)
    for start in range(0, len(shuffled), 40):
        block = shuffled[start : start + 40]
        rng.shuffle(block)
        shuffled[start : start + 40] = block
    outcome = await run_scenario(kafka_settings, topic_settings, outgoing=shuffled, gap_grace_s=1.0)
    assert outcome.backfilled == {}
    assert sum(s.stats.reordered for s in outcome.ingest.pipeline.sequencers.values()) > 1_000


async def test_malformed_frames_are_dead_lettered_with_reasons_and_the_stream_goes_on(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    def trade(stream: str, **fields: object) -> bytes:
        data = {"e": "trade", "E": 1, "T": 1, "s": "BTCUSDT", "t": 1, "p": "1", "q": "1", "m": True}
        data.update(fields)
        return orjson.dumps({"stream": stream, "data": {k: v for k, v in data.items() if v}})

    bad = {
        1_000: b'{"stream":"btcusdt@trade","data":{"e":"trade"',
        2_000: trade("btcusdt@trade", p="NaN"),
        3_000: trade("btcusdt@trade", p="-5"),
        4_000: b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1}}',
        5_000: trade("btcusdt@trade", s="SOLUSDT", p="150"),
        6_000: trade("ethusdt@trade", s="ETHUSDT", q=None),
    }
    noisy: list[bytes] = []
    for index, line in enumerate(LINES):
        if index in bad:
            noisy.append(bad[index])
        noisy.append(line)
    outcome = await run_scenario(kafka_settings, topic_settings, outgoing=noisy)
    reasons = sorted(letter.reason for letter in outcome.letters)
    assert len(reasons) == len(bad), reasons
    assert {letter.raw.encode() for letter in outcome.letters} == set(bad.values())
    joined = " | ".join(reasons)
    for expected in (
        "malformed",
        "got nan",
        "got -5.0",
        "unknown event type",
        "SOLUSDT not subscribed",
        "`q`",
    ):
        assert expected in joined, expected


async def test_proactive_rotation_overlaps_so_nothing_needs_backfill(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    outcome = await run_scenario(
        kafka_settings, topic_settings, connection_lifetime_s=1.5, rotation_overlap_s=0.4
    )
    assert outcome.fake.connections >= 2
    assert outcome.backfilled == {}
    duplicates = sum(s.stats.duplicates for s in outcome.ingest.pipeline.sequencers.values())
    assert duplicates > 0  # the overlap delivered trades twice; they were dropped


async def test_with_an_api_key_gaps_are_filled_with_the_exact_trades(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    outcome = await run_scenario(
        kafka_settings,
        topic_settings,
        faults=_faults("reset", 9_000),
        setup=lambda fake: setattr(fake, "api_keys", frozenset({"k3y"})),
        api_key="k3y",
    )
    assert outcome.fake.rest_calls["historicalTrades"] > 0
    assert outcome.fake.rest_calls["aggTrades"] == 0
    backfill_runs = [r for r in outcome.runs if r.source == "backfill"]
    assert backfill_runs
    assert all(t.first_trade_id is None for r in backfill_runs for t in r.trades)


async def test_rest_errors_and_rate_limits_are_retried(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    def flaky(fake: FakeBinance) -> None:
        fake.rest_fail_next = 2
        fake.rate_limit_next = 1

    outcome = await run_scenario(
        kafka_settings, topic_settings, faults=_faults("reset", 9_000), setup=flaky
    )
    assert outcome.fake.rest_fail_next == 0
    assert outcome.fake.rate_limit_next == 0
    assert sum(outcome.backfilled.values()) > 0


async def test_aggregate_trade_stream_with_gaps(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    fake = FakeBinance(LINES, faults=_faults("reset", 9_000), batch=100, interval_s=0.004)
    async with fake:
        ingest = LiveIngest(settings_for(fake, stream="aggTrade"), kafka_settings, topic_settings)
        task = asyncio.create_task(ingest.run())
        try:
            await asyncio.wait_for(fake.subscribed.wait(), 20)
            fake.play()
            runs, _ = await read_ticks(kafka_settings, topic_settings)
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    qty: dict[str, Decimal] = defaultdict(Decimal)
    for run in runs:
        for trade in run.trades:
            spans[run.symbol].append(span(trade))
            qty[run.symbol] += decimal_qty(trade.qty)
    for symbol, (first, last, total) in RECORDED.items():
        got = spans[symbol]
        assert got[0][0] == first
        assert got[-1][1] == last
        assert all(lo == hi_prev + 1 for (_, hi_prev), (lo, _) in itertools.pairwise(got))
        assert qty[symbol] == total


SPOT_FRAMES = FRAMES.parent / "spot_BTCUSDT_20240808-09.jsonl.gz"


async def test_one_process_streams_spot_and_usdm_with_a_backfill_per_market(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    spot_lines = read_lines(SPOT_FRAMES)
    recorded = {
        **{f"usdm:{s}": (first, last) for s, (first, last, _) in RECORDED.items()},
        "spot:BTCUSDT": (
            min(orjson.loads(line)["data"]["t"] for line in spot_lines),
            max(orjson.loads(line)["data"]["t"] for line in spot_lines),
        ),
    }
    usdm = FakeBinance(LINES, faults=_faults("close", 9_000), batch=100, interval_s=0.004)
    spot = FakeBinance(spot_lines, faults=_faults("reset", 7_000), batch=100, interval_s=0.004)
    async with usdm, spot:
        settings = settings_for(
            usdm,
            symbols="usdm:BTCUSDT,usdm:ETHUSDT,spot:BTCUSDT",
            ws_url=f"usdm={usdm.ws_url},spot={spot.ws_url}",
            rest_url=f"usdm={usdm.rest_url},spot={spot.rest_url}",
        )
        assert settings.markets == ("usdm", "spot")
        ingest = LiveIngest(settings, kafka_settings, topic_settings)
        task = asyncio.create_task(ingest.run())
        codec = Codec(topic_settings.ticks, TickRun)
        consumer = create_consumer([topic_settings.ticks], None, kafka_settings)
        spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        try:
            subscribed = asyncio.gather(usdm.subscribed.wait(), spot.subscribed.wait())
            await asyncio.wait([subscribed, task], timeout=20, return_when="FIRST_COMPLETED")
            assert not task.done(), task.exception()
            assert subscribed.done()
            await consumer.start()  # after ingest made the topic (Tansu would auto-create it)
            usdm.play()
            spot.play()

            async def every_id_read() -> bool:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        run = codec.decode(record.value)
                        assert record.key == run.instrument.encode()
                        spans[run.instrument] += [span(t) for t in run.trades]
                assert not task.done(), "the ingest stopped"
                return all(
                    spans[name] and spans[name][-1][1] >= last
                    for name, (_, last) in recorded.items()
                )

            await eventually(every_id_read, timeout=60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await consumer.stop()
    assert set(spans) == set(recorded)
    for name, (first, last) in recorded.items():
        got = spans[name]
        assert (got[0][0], got[-1][1]) == (first, last), name
        for (_, prev_hi), (lo, _) in itertools.pairwise(got):
            assert lo == prev_hi + 1, f"{name}: {prev_hi} then {lo}"  # each id once, in order
    assert usdm.rest_calls["aggTrades"] > 0
    assert spot.rest_calls["aggTrades"] > 0
