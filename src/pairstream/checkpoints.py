"""Checkpoint anchors: a stored checkpoint is used only on the log it was taken from.

A consumer that keeps its position and state in PostgreSQL (the resampler per
input partition, the analytics per pair) outlives the broker's logs: ``pairstream
infra down`` drops the embedded broker's topics, a topic can be deleted and
recreated, but the database keeps the checkpoints, whose offsets then point into
a different log. Used there, they skip or mis-dedupe the new data (issue 10).

So each checkpoint is stored with an :class:`Anchor`: topic, partition, offset
and a :func:`fingerprint` of the last input record it covers. Before a checkpoint
is used, :class:`AnchorVerifier` fetches the record at that offset and compares.
The checkpoint is trusted only when that very record is there; otherwise
:meth:`AnchorVerifier.check` says why (no anchor, no such record, another record,
deleted by retention) and the caller discards the checkpoint with a WARNING and
starts as a new consumer would, from the earliest offset.

The check fetches and looks, it does not trust end offsets: Tansu v0.6.0 reports
a partition's end as its last batch's first offset + 1 (DESIGN §5).

Tansu also forgets a group's committed offsets with the topic (measured: after
delete + create, ``OffsetFetch`` answers nothing for the group), and a second
broker starts without any, so a stale Kafka commit does not skip the new log;
the checkpoint's offset is the one a worker resumes from.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from pairstream.kafka import create_consumer
from pairstream.settings import KafkaSettings

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 16


def fingerprint(key: bytes | None, value: bytes | None, timestamp_ms: int) -> bytes:
    """blake2b-16 of a record's key, value and timestamp (lengths included, so unambiguous)."""
    h = hashlib.blake2b(digest_size=FINGERPRINT_BYTES)
    for part in (key, value):
        if part is None:
            h.update(b"\xff" * 8)
        else:
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
    h.update(int(timestamp_ms).to_bytes(8, "big", signed=True))
    return h.digest()


@dataclass(frozen=True, slots=True)
class Anchor:
    """The last input record a checkpoint covers: where it is and what it was."""

    topic: str
    partition: int
    offset: int
    fingerprint: bytes

    @classmethod
    def of(cls, record: Any) -> Anchor:
        """The anchor of an aiokafka ``ConsumerRecord`` (timestamp in ms)."""
        return cls(
            record.topic,
            record.partition,
            record.offset,
            fingerprint(record.key, record.value, record.timestamp),
        )

    def describe(self) -> str:
        return f"{self.topic} partition {self.partition} offset {self.offset}"


class _UnverifiedError(Exception):
    """The broker gave no answer that proves or disproves the anchor (retried)."""


class AnchorVerifier:
    """Proves (or not) that an anchor's record is still in its log; one per worker.

    Uses one consumer without a group (assign + seek), started on first use.
    """

    def __init__(
        self, kafka: KafkaSettings, timeout_s: float = 10.0, retry_cap_s: float = 10.0
    ) -> None:
        self.kafka = kafka
        self.timeout_s = timeout_s
        self.retry_cap_s = retry_cap_s
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = create_consumer(
                [],
                None,
                self.kafka,
                client_id=f"{self.kafka.client_id}-anchors",
                auto_offset_reset="none",
                max_partition_fetch_bytes=1024 * 1024,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    async def check(self, anchor: Anchor | None) -> str | None:
        """``None`` when the anchor's record is in its log unchanged, else why not.

        Only proof discards a checkpoint: while the broker cannot answer (a
        timeout, a Kafka error, nothing fetched), the check is retried with capped
        backoff, never taken as a verdict.
        """
        if anchor is None:
            return "the checkpoint has no anchor (written before anchors existed)"
        failures = 0
        while True:
            async with self._lock:
                consumer = await self._started()
                try:
                    return await asyncio.wait_for(self._check(consumer, anchor), self.timeout_s * 2)
                except (TimeoutError, KafkaError, _UnverifiedError) as error:
                    failures += 1
                    delay = min(self.retry_cap_s, 0.5 * 2 ** (failures - 1))
                    log.warning(
                        "cannot verify the checkpoint at %s yet (%r); retrying in %.1f s",
                        anchor.describe(), error, delay,
                    )  # fmt: skip
            await asyncio.sleep(delay)

    async def _check(self, consumer: AIOKafkaConsumer, anchor: Anchor) -> str | None:
        tp = TopicPartition(anchor.topic, anchor.partition)
        consumer.assign([tp])
        begin = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]  # may be under-reported: look, do not trust
        if anchor.offset < begin:
            return (
                f"the log now starts at offset {begin}, after the checkpoint's record at offset "
                f"{anchor.offset} (deleted by retention, or another log): it cannot be proved"
            )
        if end <= begin:
            return f"the log is empty: there is no record at offset {anchor.offset}"
        # at or below end - 1 a record surely exists; above it, only the last batch may hold it
        consumer.seek(tp, min(anchor.offset, end - 1))
        deadline = time.monotonic() + self.timeout_s
        last: int | None = None
        while True:
            try:
                batch = await consumer.getmany(tp, timeout_ms=500)
            except OffsetOutOfRangeError:
                return f"offset {anchor.offset} is out of the log's range"
            records = batch.get(tp, [])
            if not records:
                if last is not None:  # read through the log's last batch
                    return (
                        f"the log ends at offset {last} (before the checkpoint's record at "
                        f"offset {anchor.offset})"
                    )
                if time.monotonic() > deadline:
                    raise _UnverifiedError(f"no record at offset {anchor.offset} arrived in time")
                continue
            for record in records:
                if record.offset == anchor.offset:
                    found = fingerprint(record.key, record.value, record.timestamp)
                    if found == anchor.fingerprint:
                        return None
                    return f"the record at offset {anchor.offset} is another one (another log)"
                if record.offset > anchor.offset:
                    return f"the log has no record at offset {anchor.offset}"
                last = record.offset
