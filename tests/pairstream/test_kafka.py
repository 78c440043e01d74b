"""Kafka helpers on the real broker: topics, producer, a consumer group splitting partitions."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import UnknownError

from pairstream.codec import Codec
from pairstream.kafka import (
    MessageProducer,
    TopicRequest,
    contract_topics,
    create_consumer,
    ensure_topics,
    log_size,
    partition_counts,
    seek_to_end,
    start_producer,
    stop_consumer,
)
from pairstream.messages import TickRun, Trade
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream.testing import eventually, example_messages, unique
from pairstream.topics import topic_specs


async def test_ensure_topics_creates_once_with_partition_counts_then_reports_existing(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    requests = contract_topics(topic_settings)
    first = await ensure_topics(requests, kafka_settings)
    assert set(first.values()) == {"created"}
    assert set(first) == {t.name for t in topic_specs(topic_settings)}
    second = await ensure_topics(requests, kafka_settings)
    assert set(second.values()) == {"exists"}
    counts = await partition_counts([topic_settings.ticks, topic_settings.alerts], kafka_settings)
    assert counts == {topic_settings.ticks: 6, topic_settings.alerts: 3}


async def test_ensure_topics_refuses_an_existing_topic_with_fewer_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    name = unique("narrow")
    await ensure_topics([TopicRequest(name, 2)], kafka_settings)
    with pytest.raises(Exception, match="has 2 partitions, 6 wanted"):
        await ensure_topics([TopicRequest(name, 6)], kafka_settings)


async def test_idempotence_auto_falls_back_on_tansu_and_on_fails_loudly(
    kafka_settings: KafkaSettings,
) -> None:
    producer = await start_producer(kafka_settings.model_copy(update={"idempotence": "auto"}))
    try:
        topic = unique("idem")
        await ensure_topics([TopicRequest(topic, 1)], kafka_settings)
        meta = await producer.send_and_wait(topic, b"v", key=b"k")
        assert meta.offset == 0
    finally:
        await producer.stop()
    strict = kafka_settings.model_copy(update={"idempotence": "on"})
    try:
        producer = await start_producer(strict)
    except UnknownError:
        return  # Tansu: InitProducerId is refused, and "on" says so
    await producer.stop()  # a broker that supports idempotence (Apache Kafka from the env)


async def read_all(consumer: AIOKafkaConsumer, count: int) -> list[tuple[int, bytes, bytes]]:
    got: list[tuple[int, bytes, bytes]] = []

    async def enough() -> bool:
        batch = await consumer.getmany(timeout_ms=200)
        for tp, records in batch.items():
            got.extend((tp.partition, r.key, r.value) for r in records)
        return len(got) >= count

    await eventually(enough, timeout=30)
    return got


async def test_every_topic_message_round_trips_through_the_broker(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    specs = topic_specs(topic_settings)
    await ensure_topics(contract_topics(topic_settings), kafka_settings)
    async with MessageProducer(kafka_settings) as producer:
        for spec in specs:
            await producer.send_and_wait(spec.name, example_messages()[spec.message])
    for spec in specs:
        consumer = create_consumer([spec.name], None, kafka_settings)
        await consumer.start()
        try:
            [(_, key, value)] = await read_all(consumer, 1)
        finally:
            await consumer.stop()
        message = Codec(spec.name, spec.message).decode(value)
        assert message == example_messages()[spec.message]
        assert key.decode() == message.key


async def test_consumer_group_of_two_splits_partitions_and_keeps_per_key_order(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    topic = topic_settings.ticks
    await ensure_topics([TopicRequest(topic, 4)], kafka_settings)
    symbols = [f"SYM{i}USDT" for i in range(8)]
    per_symbol = 25
    async with MessageProducer(kafka_settings) as producer:
        for n in range(per_symbol):
            for symbol in symbols:
                run = TickRun(
                    market="usdm",
                    symbol=symbol,
                    source="synthetic",
                    ts_ingest=n,
                    trades=[
                        Trade(
                            trade_id=n,
                            ts_event=n,
                            price=100.0 + n,
                            qty=1.0,
                            is_buyer_maker=bool(n % 2),
                        )
                    ],
                )
                await producer.send(topic, run)
    group = unique("group")
    fast = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 200}
    members = [create_consumer([topic], group, kafka_settings, **fast) for _ in range(2)]
    for member in members:
        await member.start()
    codec = Codec(topic, TickRun)
    received: dict[int, list[TickRun]] = defaultdict(list)
    offsets: dict[int, dict[TopicPartition, int]] = defaultdict(dict)

    async def poll_all() -> bool:
        for index, member in enumerate(members):
            batch = await member.getmany(timeout_ms=100)
            for tp, records in batch.items():
                received[index].extend(codec.decode(r.value) for r in records)
                offsets[index][tp] = records[-1].offset + 1
        total = sum(len(v) for v in received.values())
        split = all(len(m.assignment()) == 2 for m in members)
        return total >= per_symbol * len(symbols) and split

    try:
        await eventually(poll_all, timeout=60, what="both members consume their share")
        assignments = [{tp.partition for tp in m.assignment()} for m in members]
        assert assignments[0].isdisjoint(assignments[1])
        assert assignments[0] | assignments[1] == {0, 1, 2, 3}
        everything = [run for runs in received.values() for run in runs]
        assert len(everything) == per_symbol * len(symbols)  # each message exactly once
        for runs in received.values():
            by_symbol: dict[str, list[int]] = defaultdict(list)
            for run in runs:
                by_symbol[run.symbol].append(run.trades[0].trade_id)
            for ids in by_symbol.values():
                assert ids == list(range(per_symbol))  # one member holds a key, in order
        assert all(received[i] for i in (0, 1)), "one member got nothing"
    finally:
        await asyncio.gather(*(stop_consumer(m, offsets[i]) for i, m in enumerate(members)))


async def test_log_size_from_acks_counts_every_record_in_batches_of_any_size(
    kafka_settings: KafkaSettings,
) -> None:
    name = unique("sized")
    await ensure_topics([TopicRequest(name, 2)], kafka_settings)
    acks = []
    async with MessageProducer(kafka_settings) as producer:
        for n in (100, 200, 1):  # the broker may under-report the end of a large last batch
            futures = [await producer.raw.send(name, b"x", partition=i % 2) for i in range(n)]
            acks += await asyncio.gather(*futures)
    expected = log_size(acks)
    assert expected >= 301  # more if a producer retry wrote some twice
    consumer = create_consumer([name], None, kafka_settings)
    await consumer.start()
    try:
        read: list[int] = []

        async def read_more() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                read.extend(r.offset for r in records)
            return len(read) >= expected

        await eventually(read_more, timeout=30)
        await read_more()  # nothing beyond
    finally:
        await consumer.stop()
    assert len(read) == expected


async def test_seek_to_end_starts_after_the_last_record_even_inside_a_large_last_batch(
    kafka_settings: KafkaSettings,
) -> None:
    name = unique("end")
    await ensure_topics([TopicRequest(name, 3), TopicRequest(unique("empty"), 1)], kafka_settings)
    async with MessageProducer(kafka_settings) as producer:
        for n in (50, 300):  # partition 2 stays empty; the last batches are large
            futures = [await producer.raw.send(name, b"old", partition=i % 2) for i in range(n)]
            await asyncio.gather(*futures)
    consumer = create_consumer([name], None, kafka_settings, auto_offset_reset="latest")
    await consumer.start()
    try:
        await seek_to_end(consumer)
        async with MessageProducer(kafka_settings) as producer:
            for partition in (0, 1, 2):
                await (await producer.raw.send(name, b"new", partition=partition))
        read: list[bytes] = []

        async def three() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                read.extend(r.value for r in records if r.value is not None)
            return len(read) >= 3

        await eventually(three, timeout=20)
        await three()  # nothing more
    finally:
        await consumer.stop()
    assert read == [b"new"] * 3  # a plain "latest" start also replays old records here
