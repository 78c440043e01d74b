"""The synthetic source on a real broker: a second run goes on with new trade ids."""

from __future__ import annotations

from collections import defaultdict

from pairstream.codec import Codec
from pairstream.kafka import create_consumer
from pairstream.messages import TickRun
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream.testing import eventually
from pairstream_ingest.config import IngestSettings
from pairstream_ingest.main import run_synthetic


async def trade_ids(topic: str, kafka: KafkaSettings, count: int) -> dict[str, list[int]]:
    codec = Codec(topic, TickRun)
    consumer = create_consumer([topic], None, kafka)
    await consumer.start()
    ids: dict[str, list[int]] = defaultdict(list)
    try:

        async def all_read() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    run = codec.decode(record.value)
                    ids[run.key].extend(t.trade_id for t in run.trades)
            return sum(map(len, ids.values())) >= count

        await eventually(all_read, timeout=30)
    finally:
        await consumer.stop()
    return ids


async def test_a_second_synthetic_run_on_the_same_topic_continues_the_trade_ids(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    settings = IngestSettings(symbols="usdm:BTCUSDT,spot:BTCUSDT", synthetic_speed=None)
    first = await run_synthetic(settings, kafka_settings, topic_settings, limit=3_000)
    second = await run_synthetic(settings, kafka_settings, topic_settings, limit=3_000)
    ids = await trade_ids(topic_settings.ticks, kafka_settings, first + second)
    assert set(ids) == {"usdm:BTCUSDT", "spot:BTCUSDT"}
    for name, seen in ids.items():
        assert len(seen) == len(set(seen)), f"{name}: a trade id was published twice"
        assert seen == list(range(seen[0], seen[0] + len(seen))), f"{name}: ids not contiguous"
