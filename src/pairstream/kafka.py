"""Kafka helpers shared by every service: producer, consumer factory, topic creation.

Producers always use ``acks='all'``. Idempotence is a setting: ``on`` for
Apache Kafka, ``off``, or ``auto`` (the default), which tries it and falls back
to plain ``acks='all'`` when the broker rejects ``InitProducerId`` (Tansu
v0.6.0 does). Correctness never rests on it: consumers dedupe by trade id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, UnknownError, UnsupportedVersionError

from pairstream.codec import Codec
from pairstream.infra import resolve_endpoint
from pairstream.messages import Message
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream.topics import topic_specs

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36


def bootstrap_servers(settings: KafkaSettings | None = None) -> str:
    """``KAFKA_BOOTSTRAP``, else the embedded broker of ``pairstream infra up``."""
    settings = settings or KafkaSettings()
    return settings.bootstrap or resolve_endpoint("kafka")


@dataclass(frozen=True, slots=True)
class TopicRequest:
    """A topic to create: name and partition count."""

    name: str
    partitions: int
    replication_factor: int = 1


def contract_topics(settings: TopicSettings | None = None) -> list[TopicRequest]:
    """Every topic of the public contract, as configured."""
    s = settings or TopicSettings()
    return [TopicRequest(t.name, t.partitions, s.replication_factor) for t in topic_specs(s)]


def _admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(settings),
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
    )


async def _partition_counts(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, int]:
    described = await admin.describe_topics(list(names))
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


async def partition_counts(
    names: Sequence[str], settings: KafkaSettings | None = None
) -> dict[str, int]:
    """Number of partitions of each existing topic among ``names``."""
    admin = _admin(settings or KafkaSettings())
    await admin.start()
    try:
        return await _partition_counts(admin, names)
    finally:
        await admin.close()


async def ensure_topics(
    topics: Iterable[TopicRequest], settings: KafkaSettings | None = None
) -> dict[str, str]:
    """Create the topics that do not exist yet (idempotent); returns ``{name: outcome}``.

    A topic that already exists with *fewer* partitions than requested is an
    error: keyed ordering would silently change if we added partitions.
    """
    wanted = {t.name: t for t in topics}
    admin = _admin(settings or KafkaSettings())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        outcome = {name: "exists" for name in wanted if name in existing}
        missing = [t for name, t in wanted.items() if name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(t.name, t.partitions, t.replication_factor) for t in missing]
            )
            for name, code, *rest in response.topic_errors:
                if code == 0:
                    outcome[name] = "created"
                elif code == _TOPIC_ALREADY_EXISTS:
                    outcome[name] = "exists"
                else:
                    message = rest[0] if rest else ""
                    raise KafkaError(f"creating topic {name!r} failed: error {code} {message}")
        for name, have in (await _partition_counts(admin, list(wanted))).items():
            if have < wanted[name].partitions:
                raise KafkaError(
                    f"topic {name!r} has {have} partitions, {wanted[name].partitions} wanted"
                )
        return outcome
    finally:
        await admin.close()


def producer_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """aiokafka producer arguments from settings (``acks='all'`` always)."""
    return {
        "bootstrap_servers": bootstrap_servers(settings),
        "client_id": settings.client_id,
        "acks": "all",
        "linger_ms": settings.linger_ms,
        "max_batch_size": settings.max_batch_size,
        "request_timeout_ms": settings.request_timeout_ms,
        "compression_type": None if settings.compression == "none" else settings.compression,
    }


async def start_producer(settings: KafkaSettings | None = None) -> AIOKafkaProducer:
    """A started producer; with ``idempotence=auto`` falls back when the broker refuses it."""
    settings = settings or KafkaSettings()
    kwargs = producer_kwargs(settings)
    if settings.idempotence != "off":
        producer = AIOKafkaProducer(enable_idempotence=True, **kwargs)
        sender_log = logging.getLogger("aiokafka.producer.sender")
        level = sender_log.level
        if settings.idempotence == "auto":
            sender_log.setLevel(logging.CRITICAL)  # a refusal is an answer here, reported below
        try:
            await producer.start()
            return producer
        except (UnknownError, UnsupportedVersionError) as error:
            await producer.stop()
            if settings.idempotence == "on":
                raise
            log.warning(
                "broker rejected the idempotent producer (%s); using acks=all without "
                "idempotence (set KAFKA_IDEMPOTENCE=off to skip this check)",
                error,
            )
        finally:
            sender_log.setLevel(level)
    producer = AIOKafkaProducer(enable_idempotence=False, **kwargs)
    await producer.start()
    return producer


def log_size(acks: Sequence[Any]) -> int:
    """Records in fresh partitions after these acks (``RecordMetadata``): the last acked
    offset + 1 of each. Tansu under-reports a partition's end offset (the last batch's
    first offset + 1), so the acks are the way to count what a producer wrote."""
    ends: dict[int, int] = {}
    for ack in acks:
        ends[ack.partition] = max(ends.get(ack.partition, 0), ack.offset + 1)
    return sum(ends.values())


class MessageProducer:
    """Sends topic messages, encoded by their topic's codec and keyed by their key."""

    def __init__(self, settings: KafkaSettings | None = None) -> None:
        self.settings = settings or KafkaSettings()
        self._producer: AIOKafkaProducer | None = None
        self._codecs: dict[tuple[str, type[Message]], Codec[Any]] = {}

    async def start(self) -> None:
        self._producer = await start_producer(self.settings)

    @property
    def raw(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    def _codec(self, topic: str, message: Message) -> Codec[Any]:
        key = (topic, type(message))
        codec = self._codecs.get(key)
        if codec is None:
            codec = self._codecs[key] = Codec(topic, type(message))
        return codec

    async def send(self, topic: str, message: Message, key: str | None = None) -> Any:
        """Queue ``message``; returns a future that resolves when the broker has acked it."""
        value = self._codec(topic, message).encode(message)
        key_bytes = (key if key is not None else message.key).encode()
        return await self.raw.send(topic, value=value, key=key_bytes)

    async def send_and_wait(self, topic: str, message: Message, key: str | None = None) -> Any:
        """Send and wait for the broker's acknowledgement."""
        return await (await self.send(topic, message, key))

    async def flush(self) -> None:
        await self.raw.flush()

    async def stop(self) -> None:
        """Deliver what is queued, then close."""
        if self._producer is not None:
            try:
                await self._producer.flush()
            finally:
                await self._producer.stop()
                self._producer = None

    async def __aenter__(self) -> MessageProducer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def create_consumer(
    topics: Sequence[str],
    group_id: str | None,
    settings: KafkaSettings | None = None,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer (not started) with manual commits and ``earliest`` reset by default.

    Services commit offsets only after their output is delivered (at-least-once).
    """
    settings = settings or KafkaSettings()
    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "client_id": settings.client_id,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_uncommitted",
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
    }
    kwargs.update(overrides)
    return AIOKafkaConsumer(*topics, **kwargs)


async def stop_consumer(
    consumer: AIOKafkaConsumer, processed: dict[TopicPartition, int] | None = None
) -> None:
    """Clean shutdown: commit the offsets of what was fully processed, leave the group, close.

    ``processed`` maps each partition to the offset of the next record to read.
    """
    try:
        if processed:
            await consumer.commit(processed)
    finally:
        await consumer.stop()


async def seek_to_end(consumer: AIOKafkaConsumer, timeout_s: float = 5.0) -> None:
    """Position each assigned partition after its last record, wherever the broker says
    the end is.

    ``auto_offset_reset="latest"`` trusts the broker's end offset, and Tansu reports the
    last batch's first offset + 1: a consumer starting there replays the rest of that
    batch (old records, taken for new ones). So the record before the reported end is
    read, and the position set after the last record of that first answer. Records
    produced meanwhile are skipped, as if the consumer had started a moment later.
    """
    tps = sorted(consumer.assignment())
    if not tps:
        return
    begins = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    positions: dict[TopicPartition, int] = {}
    for tp in tps:
        if ends[tp] > begins[tp]:
            consumer.seek(tp, ends[tp] - 1)
        else:
            positions[tp] = ends[tp]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = [tp for tp in tps if tp not in positions]
    while pending and loop.time() < deadline:
        batches = await consumer.getmany(*pending, timeout_ms=200)
        for tp, records in batches.items():
            if records:
                positions[tp] = records[-1].offset + 1
        pending = [tp for tp in pending if tp not in positions]
    for tp in pending:  # the last record did not come back in time: as reported
        positions[tp] = ends[tp]
    for tp, offset in positions.items():
        consumer.seek(tp, offset)
