"""The alerts service's tables: history, events, outbox, engine state and offsets.

One :meth:`AlertStore.write` holds everything one or more batches changed, in one
transaction: the episodes (upserted by ``alert_id``), the transitions (once per
``event_id``), one outbox row per (event, channel), the state of the feeds the
batches touched and the next offset of every partition they read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import orjson

from pairstream.alerts.engine import Transition
from pairstream.alerts.rules import Silence
from pairstream.checkpoints import Anchor
from pairstream.codec import Codec
from pairstream.messages import Alert


def ts(ms: int) -> datetime:
    """Epoch ms → timestamptz."""
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Offset:
    """The next offset of a partition, and the record it follows."""

    topic: str
    partition: int
    next_offset: int
    anchor: Anchor | None


@dataclass(frozen=True, slots=True)
class FeedRow:
    """A feed's stored state and the partition it belongs to."""

    feed: str
    topic: str
    partition: int
    state: bytes


@dataclass(frozen=True, slots=True)
class BatchWrite:
    """What one batch changed: its transitions and their messages, the silences in force
    and the time it ran (they decide each notification's status), the events held by
    the storm cap, and the feeds and offsets as they stand after it."""

    transitions: Sequence[Transition]
    messages: Sequence[Alert]
    silences: Sequence[Silence]
    feeds: Sequence[FeedRow]
    offsets: Sequence[Offset]
    now_ms: int
    held: frozenset[str] = frozenset()


class AlertStore:
    """Reads and writes of one consumer group."""

    def __init__(self, pool: asyncpg.Pool, group_id: str, alerts_topic: str) -> None:
        self.pool = pool
        self.group_id = group_id
        self._codec = Codec(alerts_topic, Alert)

    async def offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Offset]:
        """Stored offsets of the given (topic, partition)s."""
        wanted = list(partitions)
        rows = await self.pool.fetch(
            """
            SELECT topic, partition, next_offset, anchor_offset, anchor_fingerprint
            FROM alert_offsets
            WHERE group_id = $1 AND (topic, partition) IN (
                SELECT * FROM unnest($2::text[], $3::int[]))
            """,
            self.group_id,
            [t for t, _ in wanted],
            [p for _, p in wanted],
        )
        out = {}
        for r in rows:
            anchor = None
            if r["anchor_offset"] is not None:
                anchor = Anchor(
                    r["topic"], r["partition"], r["anchor_offset"], r["anchor_fingerprint"]
                )
            out[(r["topic"], r["partition"])] = Offset(
                r["topic"], r["partition"], r["next_offset"], anchor
            )
        return out

    async def feeds(self, topic: str, partitions: Iterable[int]) -> list[FeedRow]:
        """Stored feeds of these partitions of ``topic``."""
        rows = await self.pool.fetch(
            "SELECT feed, topic, partition, state FROM alert_engine_state "
            "WHERE group_id = $1 AND topic = $2 AND partition = ANY($3::int[])",
            self.group_id,
            topic,
            list(partitions),
        )
        return [FeedRow(r["feed"], r["topic"], r["partition"], bytes(r["state"])) for r in rows]

    async def forget(self, topic: str, home: str, partition: int) -> None:
        """Delete the offset of a partition whose log is gone and the feeds living on it."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM alert_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3",
                self.group_id,
                topic,
                partition,
            )
            await conn.execute(
                "DELETE FROM alert_engine_state "
                "WHERE group_id = $1 AND topic = $2 AND partition = $3",
                self.group_id,
                home,
                partition,
            )

    async def write(self, batches: Sequence[BatchWrite]) -> None:
        """Everything ``batches`` changed (in their order), in one transaction; a feed or
        an offset in several batches is stored as the last one left it. Notifications of
        held events are recorded as held, not sent."""
        history = []
        events = []
        outbox = []
        feeds: dict[str, FeedRow] = {}
        offsets: dict[tuple[str, int], Offset] = {}
        for batch in batches:
            now_ms = batch.now_ms
            for t, m in zip(batch.transitions, batch.messages, strict=True):
                ended = None if t.state == "firing" else ts(t.ts)
                history.append(
                    (
                        t.alert_id, t.rule.id, t.rule.version, t.subject, t.tf, t.method,
                        t.rule.severity, t.rule.condition.kind, t.state, ts(t.started_ts),
                        ended, t.value, t.threshold, t.message,
                        orjson.dumps(t.rule.labels).decode(), ts(now_ms),
                    )
                )  # fmt: skip
                payload = self._codec.encode(m).decode()
                events.append((t.event_id, t.alert_id, t.state, ts(t.ts), payload, ts(m.ts_init)))
                muted = any(s.mutes(t.rule.id, t.subject, now_ms) for s in batch.silences)
                held = t.event_id in batch.held
                for channel in t.rule.channels:
                    status = "silenced" if muted else "held" if held else "pending"
                    outbox.append((t.event_id, channel, payload, status, ts(now_ms)))
            feeds.update((f.feed, f) for f in batch.feeds)
            offsets.update(((o.topic, o.partition), o) for o in batch.offsets)
        async with self.pool.acquire() as conn, conn.transaction():
            if history:
                await conn.executemany(
                    """
                    INSERT INTO alert_history (alert_id, rule_id, rule_version, subject, tf,
                        method, severity, kind, state, started_ts, ended_ts, value, threshold,
                        message, labels, updated_at)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                        $15::jsonb, $16)
                    ON CONFLICT (alert_id) DO UPDATE SET
                        state = EXCLUDED.state, ended_ts = EXCLUDED.ended_ts,
                        value = COALESCE(EXCLUDED.value, alert_history.value),
                        threshold = COALESCE(EXCLUDED.threshold, alert_history.threshold),
                        message = EXCLUDED.message, updated_at = EXCLUDED.updated_at
                    WHERE EXCLUDED.state <> 'firing' OR alert_history.state = 'firing'
                    """,
                    history,
                )
                await conn.executemany(
                    """
                    INSERT INTO alert_events (event_id, alert_id, state, ts, payload, ts_init)
                    VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (event_id) DO NOTHING
                    """,
                    events,
                )
                await conn.executemany(
                    """
                    INSERT INTO alert_outbox (event_id, channel, payload, status, created_at,
                        next_attempt)
                    VALUES ($1, $2, $3::jsonb, $4, $5, $5)
                    ON CONFLICT (event_id, channel) DO NOTHING
                    """,
                    outbox,
                )
            if feeds:
                await conn.executemany(
                    """
                    INSERT INTO alert_engine_state (group_id, feed, topic, partition, state)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (group_id, feed) DO UPDATE SET state = EXCLUDED.state,
                        topic = EXCLUDED.topic, partition = EXCLUDED.partition
                    """,
                    [
                        (self.group_id, f.feed, f.topic, f.partition, f.state)
                        for f in feeds.values()
                    ],
                )
            if offsets:
                await conn.executemany(
                    """
                    INSERT INTO alert_offsets (group_id, topic, partition, next_offset,
                        anchor_offset, anchor_fingerprint)
                    VALUES ($1, $2, $3, $4, $5, $6)
                    ON CONFLICT (group_id, topic, partition) DO UPDATE SET
                        next_offset = EXCLUDED.next_offset,
                        anchor_offset = EXCLUDED.anchor_offset,
                        anchor_fingerprint = EXCLUDED.anchor_fingerprint
                    """,
                    [
                        (
                            self.group_id, o.topic, o.partition, o.next_offset,
                            None if o.anchor is None else o.anchor.offset,
                            None if o.anchor is None else o.anchor.fingerprint,
                        )
                        for o in offsets.values()
                    ],
                )  # fmt: skip
