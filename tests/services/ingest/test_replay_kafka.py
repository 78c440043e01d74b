"""`pairstream replay` into a real broker: every recorded trade in `ticks` once, in order."""

from __future__ import annotations

import gzip
import random
from collections import defaultdict
from pathlib import Path

import orjson

from pairstream.codec import Codec
from pairstream.kafka import create_consumer
from pairstream.messages import DeadLetter, TickRun
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream.testing import eventually
from pairstream_ingest.main import run_replay

FIXTURES = Path(__file__).parents[2] / "fixtures" / "binance"
FRAMES = FIXTURES / "usdm_BTC+ETH_20240718-19.interleaved.jsonl.gz"
CSVS = [FIXTURES / "usdm_BTCUSDT_20240718-19.csv.gz", FIXTURES / "usdm_ETHUSDT_20240718-19.csv.gz"]
RECORDED = {"BTCUSDT": (5182005737, 5182016437), "ETHUSDT": (4217896584, 4217910238)}


async def read_topic(topic: str, settings: KafkaSettings, until: int, codec: Codec) -> list:
    consumer = create_consumer([topic], None, settings)
    await consumer.start()
    out: list = []
    try:

        async def enough() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            for _, records in sorted(batch.items()):
                out.extend(codec.decode(r.value) for r in records)
            return sum(len(m.trades) if isinstance(m, TickRun) else 1 for m in out) >= until

        await eventually(enough, timeout=60)
    finally:
        await consumer.stop()
    return out


async def assert_every_recorded_trade_once_in_order(
    topic: str, settings: KafkaSettings
) -> list[TickRun]:
    runs = await read_topic(topic, settings, 24_356, Codec(topic, TickRun))
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for run in runs:
        assert run.source == "replay"
        by_symbol[run.symbol].extend(t.trade_id for t in run.trades)
    for symbol, (first, last) in RECORDED.items():
        assert by_symbol[symbol] == list(range(first, last + 1)), symbol
    return runs


async def test_replaying_the_recorded_frames_publishes_each_trade_once_in_order(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    stats = await run_replay([FRAMES], speed=None, kafka=kafka_settings, topics=topic_settings)
    assert stats.per_symbol == {"usdm:BTCUSDT": 10_701, "usdm:ETHUSDT": 13_655}
    runs = await assert_every_recorded_trade_once_in_order(topic_settings.ticks, kafka_settings)
    assert len(runs) < 24_356 / 5  # trades travel in runs, not one message each


async def test_replaying_the_csv_form_publishes_the_same_trades(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    stats = await run_replay(CSVS, speed=None, kafka=kafka_settings, topics=topic_settings)
    assert sum(stats.per_symbol.values()) == 24_356
    await assert_every_recorded_trade_once_in_order(topic_settings.ticks, kafka_settings)


async def test_duplicated_shuffled_and_malformed_frames_still_give_each_trade_once(
    tmp_path: Path, kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    with gzip.open(FRAMES, "rb") as f:
        lines = f.read().splitlines()
    rng = random.Random(3)
    noisy = list(lines)
    for index in sorted(rng.sample(range(len(lines)), 2_000), reverse=True):
        # duplicates a little later, as after a reconnect overlap
        noisy.insert(min(len(noisy), index + rng.randint(1, 300)), lines[index])
    chunks = [noisy[i : i + 100] for i in range(0, len(noisy), 100)]
    for chunk in chunks:
        rng.shuffle(chunk)  # frames out of order inside a symbol
    noisy = [line for chunk in chunks for line in chunk]
    bad = [
        b"{broken",
        b'{"stream":"x@depth","data":{"e":"depthUpdate","E":1}}',
        orjson.dumps(
            {
                "data": {
                    "e": "trade",
                    "E": 1,
                    "T": 1,
                    "s": "BTCUSDT",
                    "t": 1,
                    "p": "NaN",
                    "q": "1",
                    "m": True,
                }
            }
        ),
    ]
    noisy[100:100] = bad
    path = tmp_path / "noisy.jsonl"
    path.write_bytes(b"\n".join(noisy) + b"\n")
    stats = await run_replay([path], speed=None, kafka=kafka_settings, topics=topic_settings)
    assert stats.duplicates == 2_000
    assert stats.bad == 3
    await assert_every_recorded_trade_once_in_order(topic_settings.ticks, kafka_settings)
    letters = await read_topic(
        topic_settings.dead_letter, kafka_settings, 3, Codec(topic_settings.dead_letter, DeadLetter)
    )
    reasons = sorted(letter.reason for letter in letters)
    assert any(r.startswith("malformed frame") for r in reasons)
    assert any(r.startswith("unknown event type") for r in reasons)
    assert any("price: must be a finite number > 0" in r for r in reasons)
    assert {letter.raw.encode() for letter in letters} == set(bad)


async def test_paced_replay_follows_event_time_scaled_by_speed(
    tmp_path: Path, kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    from pairstream.clock import FakeClock

    with gzip.open(FRAMES, "rb") as f:
        lines = f.read().splitlines()[:300]
    path = tmp_path / "short.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    span_ms = orjson.loads(lines[-1])["data"]["T"] - orjson.loads(lines[0])["data"]["T"]
    clock = FakeClock()
    slept: list[float] = []
    original = clock.sleep

    async def sleep_and_advance(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        await original(0)

    clock.sleep = sleep_and_advance
    await run_replay([path], speed=10.0, kafka=kafka_settings, topics=topic_settings, clock=clock)
    assert abs(sum(slept) - span_ms / 1000 / 10) < 0.01
