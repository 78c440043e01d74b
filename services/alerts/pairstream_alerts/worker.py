"""The alerts worker: analytics and bars in, alert transitions out, exactly once.

One consumer group reads ``analytics.spread``, ``.zscore``, ``.stats`` (keyed by
pair; the three topics have the same partition count, so a pair's messages all land
on one worker) and ``bars.<tf>`` (keyed by instrument) and feeds the shared
:class:`~pairstream.alerts.engine.AlertEngine`. Per batch: the transitions are
published to ``alerts``, then stored — episodes, events, outbox rows, the state of
every feed the batch touched and the next offset of every partition — in one
transaction (database errors are retried, never skipped), then the offsets are
committed to the broker as well. Storing runs beside the stream: one writer takes
every batch queued meanwhile into one transaction (group commit), so an alert waits
for the broker, never for the database, until too many input records are unstored.

The database, not the broker, says where a partition resumes: on assignment the
stored offset is used when its anchor record is still in the log (else the partition
starts afresh from the earliest offset, with a WARNING), and the feeds of that
partition are restored from their stored state. So a restart, a crash or a rebalance
gives the same transitions with the same ids, and the outbox (keyed by event and
channel) never holds a notification twice. Undecodable input → dead-letter topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from pairstream.alerts.engine import AlertEngine, Transition, feed_key
from pairstream.alerts.rules import Rule, Silence
from pairstream.alerts.store import CHANNEL, current_rules, put_rule, silences
from pairstream.checkpoints import Anchor, AnchorVerifier
from pairstream.clock import Clock
from pairstream.codec import Codec, MessageDecodeError
from pairstream.db import connect, connection, create_pool, through_outages
from pairstream.db.migrate import migrate
from pairstream.kafka import MessageProducer, TopicRequest, create_consumer, ensure_topics
from pairstream.messages import (
    Bar,
    SpreadUpdate,
    StatsUpdate,
    ZScoreUpdate,
    dead_letter,
    timeframe_ms,
)
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.supervisor import Backoff
from pairstream.topics import topic_specs

from .config import AlertsSettings
from .metrics import AlertsMetrics
from .notifier import Notifier
from .store import AlertStore, BatchWrite, FeedRow, Offset

log = logging.getLogger(__name__)

T = TypeVar("T")
ANALYTICS = "analytics"  # the feeds of a pair live on partition p of all three topics

DEFAULT_RULE_ID = "default-zscore-1s"
MAX_UNSTORED = 10_000  # input records published but not yet stored: beyond, reading waits
STOP_DRAIN_S = 10.0  # on stop, how long the writer may finish what is queued


@dataclass(frozen=True, slots=True)
class _Unstored:
    """A published batch waiting for the writer, and the group offsets to commit after."""

    write: BatchWrite
    commit: dict[TopicPartition, int]
    records: int


def default_rule(entry_z: float) -> Rule:
    """|z| at or beyond ``entry_z`` on every pair's 1s Kalman z-score, to the log (the
    Kalman hedge needs no window: its z-scores come first, after ``zscore_window`` bars)."""
    return Rule.model_validate(
        {
            "id": DEFAULT_RULE_ID,
            "name": f"|z| >= {entry_z:g}",
            "subject": "*-*",
            "tf": "1s",
            "method": "kalman",
            "condition": {
                "kind": "threshold", "field": "zscore", "op": "outside",
                "lo": -entry_z, "hi": entry_z,
            },
            "severity": "warning",
            "channels": ["log"],
            "labels": {"source": "default"},
        }
    )  # fmt: skip


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: AlertsWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.worker.release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        try:
            await self.worker.take(assigned)
        except Exception as error:  # aiokafka would only log it: fail the worker instead
            self.worker.fail(error)


class AlertsWorker:
    """One alerts worker (see the module doc)."""

    def __init__(
        self,
        settings: AlertsSettings,
        clock: Clock,
        metrics: AlertsMetrics | None = None,
        kafka: KafkaSettings | None = None,
        topics: TopicSettings | None = None,
        db: DatabaseSettings | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or AlertsMetrics()
        self.kafka = kafka or KafkaSettings()
        self.topics = topics or TopicSettings()
        self.db = db or DatabaseSettings()
        t = self.topics
        self.timeframes = settings.timeframes or t.timeframes
        self._codecs: dict[str, tuple[str, Codec[Any]]] = {
            t.spread: ("spread", Codec(t.spread, SpreadUpdate)),
            t.zscore: ("zscore", Codec(t.zscore, ZScoreUpdate)),
            t.stats: ("stats", Codec(t.stats, StatsUpdate)),
        }
        for tf in self.timeframes:
            self._codecs[t.bars(tf)] = ("bar", Codec(t.bars(tf), Bar))
        self.engine = AlertEngine()
        self.metrics.firing.set_function(self.engine.firing)
        self.silences: list[Silence] = []
        # alerts are few and wanted at once: no linger
        self.producer = MessageProducer(self.kafka.model_copy(update={"linger_ms": 0}))
        self.feed_home: dict[str, tuple[str, int]] = {}  # feed → (ANALYTICS or bars topic, p)
        self._pool: asyncpg.Pool | None = None
        self._store: AlertStore | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._verifier = AnchorVerifier(self.kafka)
        self._tasks: list[asyncio.Task[None]] = []
        self._reload = asyncio.Event()
        self._listen_conn: asyncpg.Connection | None = None
        self.stored_records = 0  # input records whose outputs are stored
        self.first_batch_at: float | None = None  # clock.monotonic() of the first input used
        self._unstored: deque[_Unstored] = deque()  # published, in order, not yet stored
        self._unstored_records = 0
        self._queued = asyncio.Event()  # wakes the writer
        self._stored = asyncio.Event()  # set after each write
        self._writer: asyncio.Task[None] | None = None
        self._batch = asyncio.Lock()  # a batch, or a rebalance: never both at once
        self._failed: asyncio.Future[None] | None = None
        self._storm: dict[str, deque[int]] = {}  # rule → bar ts of its recent fires
        self.positions: dict[TopicPartition, int] = {}  # next offset to use per partition
        self.ready = False

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, create topics, load rules, join the group and start the loops."""
        t = self.topics
        self._failed = asyncio.get_running_loop().create_future()
        self._pool = await self._through_outages("connecting to the database", self._connect)
        async with connection(self.db) as conn:
            await migrate(conn, self.db)
        self._store = AlertStore(self._pool, self.settings.group_id, t.alerts)
        if self.settings.default_rules:
            await self._through_outages("installing the default rule", self._install_default)
        await self._through_outages("loading rules", self._load_rules)
        wanted = {t.spread, t.zscore, t.stats, t.alerts, t.dead_letter}
        requests = {
            s.name: TopicRequest(s.name, s.partitions, t.replication_factor)
            for s in topic_specs(t)
            if s.name in wanted
        }
        for tf in self.timeframes:
            name = t.bars(tf)
            requests.setdefault(name, TopicRequest(name, t.bars_partitions, t.replication_factor))
        await ensure_topics(list(requests.values()), self.kafka)
        await self.producer.start()
        self._consumer = create_consumer(
            [],
            self.settings.group_id,
            self.kafka,
            session_timeout_ms=int(self.settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(self.settings.heartbeat_interval_s * 1000),
            max_poll_interval_ms=300_000,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            # partition p of the three analytics topics together: a pair's messages meet
            partition_assignment_strategy=(RangePartitionAssignor,),
        )
        self._consumer.subscribe(sorted(self._codecs), listener=_Rebalance(self))
        await self._consumer.start()
        self._writer = asyncio.create_task(self._write_loop(), name="alerts-writer")
        self._tasks = [
            self._writer,
            asyncio.create_task(self._watch_failure(), name="alerts-failure"),
            asyncio.create_task(self._consume_loop(), name="alerts-consume"),
            asyncio.create_task(self._rules_loop(), name="alerts-rules"),
            asyncio.create_task(self._notify(), name="alerts-notify"),
        ]
        self.ready = True
        log.info(
            "alerts %s: %d rules, timeframes %s",
            self.settings.group_id,
            len(self.engine.rules.rules),
            ",".join(self.timeframes),
        )

    async def _watch_failure(self) -> None:
        assert self._failed is not None
        await self._failed

    async def _notify(self) -> None:
        assert self._pool is not None
        await Notifier(self._pool, self.settings, self.clock, self.metrics).run()

    async def _connect(self) -> asyncpg.Pool:
        return await create_pool(self.db)

    async def run(self) -> None:
        """Start, then run until cancelled or a loop fails (raised)."""
        await self.start()
        try:
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Cancel the loops, let the writer store what is queued (for a while: what it
        leaves is read again on restart), leave the group, close."""
        for task in self._tasks:
            if task is not self._writer:
                task.cancel()
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._all_stored(), STOP_DRAIN_S)
            self._writer.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        for closing in (self.producer.stop, self._verifier.stop):
            with contextlib.suppress(Exception):
                await closing()
        if self._listen_conn is not None:
            with contextlib.suppress(Exception):
                await self._listen_conn.close()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()

    async def _through_outages(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        return await through_outages(
            what, operation, backoff.delay, on_failure=self.metrics.db_failures.inc
        )

    # -- rules -----------------------------------------------------------------

    async def _install_default(self) -> None:
        """Install the default rule; keep it at the configured level while nobody changed
        it (a person's edit or removal is kept)."""
        async with connection(self.db) as conn:
            last = await conn.fetchrow(
                "SELECT changed_by, deleted FROM alert_rules WHERE id = $1 "
                "ORDER BY version DESC LIMIT 1",
                DEFAULT_RULE_ID,
            )
            if last is None or (last["changed_by"] == "default" and not last["deleted"]):
                rule = default_rule(self.settings.default_entry_z)
                await put_rule(conn, rule, changed_by="default")

    async def _load_rules(self) -> list[Transition]:
        assert self._pool is not None
        rules = await current_rules(self._pool)
        self.silences = await silences(self._pool, self.clock.now_ms())
        self.metrics.rules.set(sum(r.enabled for r in rules))
        return self.engine.set_rules(rules)

    async def _rules_loop(self) -> None:
        """Reload rules and silences on NOTIFY (within a second), and run the wall-clock
        rules every ``clock_interval_s``."""
        assert self._pool is not None
        while True:
            if self._listen_conn is None or self._listen_conn.is_closed():
                # (re)connect, then reload: changes made while it was down are not lost
                self._listen_conn = await self._through_outages(
                    "listening for rule changes", lambda: connect(self.db)
                )
                await self._listen_conn.add_listener(CHANNEL, lambda *_: self._reload.set())
                self._reload.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload.wait(), timeout=self.settings.clock_interval_s)
            transitions: list[Transition] = []
            if self._reload.is_set():
                self._reload.clear()
                transitions += await self._through_outages("reloading rules", self._load_rules)
                log.info(
                    "rules reloaded: %d enabled", sum(r.enabled for r in self.engine.rules.rules)
                )
            self._measure_lag()
            transitions += self.engine.on_clock(self.clock.now_ms())
            if transitions:
                await self._emit(transitions, [], [])

    def _measure_lag(self) -> None:
        if self._consumer is None:
            return
        behind: dict[str, int] = dict.fromkeys(self._codecs, 0)
        for tp, position in list(self.positions.items()):
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                behind[tp.topic] += max(0, highwater - position)
        for topic, n in behind.items():
            self.metrics.consumer_lag.labels(topic=topic).set(n)

    # -- partitions ------------------------------------------------------------

    def _home(self, topic: str) -> str:
        return topic if self._codecs[topic][0] == "bar" else ANALYTICS

    def fail(self, error: BaseException) -> None:
        """Stop the worker with ``error`` (raised by :meth:`run`)."""
        log.error("alerts worker failed: %s", error)
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(error)

    async def release(self, revoked: list[TopicPartition]) -> None:
        """Forget the feeds of revoked partitions (their next owner restores them), once
        the batch in progress and its store are done: what is stored is what was used."""
        async with self._batch:
            await self._all_stored()
            for tp in revoked:
                self.positions.pop(tp, None)
            gone = {(self._home(tp.topic), tp.partition) for tp in revoked}
            for feed, home in list(self.feed_home.items()):
                if home in gone:
                    self.engine.drop_feed(feed)
                    del self.feed_home[feed]

    async def take(self, assigned: list[TopicPartition]) -> None:
        """Resume assigned partitions where the database says, restoring their feeds.

        Records fetched while this runs are dropped (the partition has no position yet);
        the seeks at the end, with no await between them and the positions, read them
        again."""
        assert self._store is not None
        assert self._consumer is not None
        store, consumer = self._store, self._consumer
        stored = await self._through_outages(
            "reading offsets", lambda: store.offsets((tp.topic, tp.partition) for tp in assigned)
        )
        homes: dict[str, set[int]] = {}
        starts: dict[TopicPartition, int] = {}
        afresh: list[TopicPartition] = []
        for tp in assigned:
            offset = stored.get((tp.topic, tp.partition))
            why = None if offset is None else await self._verifier.check(offset.anchor)
            if offset is not None and why is None:
                starts[tp] = offset.next_offset
                homes.setdefault(self._home(tp.topic), set()).add(tp.partition)
                continue
            afresh.append(tp)
            if offset is not None:
                where = "no anchor" if offset.anchor is None else offset.anchor.describe()
                log.warning(
                    "%s partition %d: discarding the stored alert state (%s): %s; starting afresh",
                    tp.topic, tp.partition, where, why,
                )  # fmt: skip
                forget = functools.partial(
                    store.forget, tp.topic, self._home(tp.topic), tp.partition
                )
                await self._through_outages("discarding alert state", forget)
        # a pair's feeds hang on partition p of all three analytics topics: one reset, all
        reset = {(self._home(tp.topic), tp.partition) for tp in afresh}
        for tp in [tp for tp in starts if (self._home(tp.topic), tp.partition) in reset]:
            del starts[tp]
            afresh.append(tp)
            forget = functools.partial(store.forget, tp.topic, self._home(tp.topic), tp.partition)
            await self._through_outages("discarding alert state", forget)
            homes.get(self._home(tp.topic), set()).discard(tp.partition)
        if afresh:
            starts.update(await consumer.beginning_offsets(afresh))
        for home, partitions in homes.items():
            feeds = functools.partial(store.feeds, home, partitions)
            rows = await self._through_outages("restoring feeds", feeds)
            for row in rows:
                if row.feed not in self.feed_home:
                    self.engine.import_feed(row.state)
                    self.feed_home[row.feed] = (row.topic, row.partition)
        for tp, start in starts.items():
            consumer.seek(tp, start)
        self.positions.update(starts)
        log.info("alerts partitions assigned: %d", len(assigned))

    # -- the loop --------------------------------------------------------------

    async def _consume_loop(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=5_000)
            if not batches:
                continue
            async with self._batch:
                await self._batch_of(batches)

    async def _batch_of(self, batches: dict[TopicPartition, list[Any]]) -> None:
        """One batch: evaluate, publish, start storing it (after the previous store)."""
        started = self.clock.monotonic()
        transitions: list[Transition] = []
        touched: set[str] = set()
        offsets: list[Offset] = []
        letters = []
        now = self.clock.now_ms()
        evaluations = self.engine.evaluations
        used = 0  # records read here for the first time (the others are read again or were)
        for tp, fetched in batches.items():
            source, codec = self._codecs[tp.topic]
            home = (self._home(tp.topic), tp.partition)
            position = self.positions.get(tp)
            if position is None:  # fetched before its assignment was set up: read again
                continue
            # a record before the position is one already used (fetched before a seek)
            records = [r for r in fetched if r.offset >= position]
            self.metrics.consumed.labels(topic=tp.topic).inc(len(fetched))
            if not records:
                continue
            used += len(records)
            self.positions[tp] = records[-1].offset + 1
            for record in records:
                try:
                    message = codec.decode(record.value)
                except MessageDecodeError as error:
                    letters.append(await self._dead_letter(tp.topic, record, str(error)))
                    continue
                if source == "bar" and not message.final:
                    continue  # forming bars are never evaluated
                transitions += self._feed(source, message, now)
                key = self._key(source, message)
                touched.add(key)
                self.feed_home[key] = home
            offsets.append(
                Offset(tp.topic, tp.partition, records[-1].offset + 1, Anchor.of(records[-1]))
            )
        self.metrics.evaluations.inc(self.engine.evaluations - evaluations)
        if used and self.first_batch_at is None:
            self.first_batch_at = started
        commit = {tp: p for tp, p in self.positions.items() if tp in batches}
        await self._emit(transitions, sorted(touched), offsets, commit, used)
        await asyncio.gather(*letters)
        if self._unstored_records >= MAX_UNSTORED:
            await self._stored_until(lambda: self._unstored_records < MAX_UNSTORED)

    # -- storing ---------------------------------------------------------------

    async def _write_loop(self) -> None:
        """Store queued batches in order, all that are waiting in one transaction, then
        commit their offsets to the group too."""
        assert self._store is not None
        assert self._consumer is not None
        store, consumer = self._store, self._consumer
        try:
            while True:
                await self._queued.wait()
                self._queued.clear()
                while self._unstored:
                    taken = list(self._unstored)  # batches queued while it writes wait
                    write = functools.partial(store.write, [u.write for u in taken])
                    with self.metrics.store_seconds.time():
                        await self._through_outages("storing alerts", write)
                    for _ in taken:
                        self._unstored.popleft()
                    records = sum(u.records for u in taken)
                    self._unstored_records -= records
                    self.stored_records += records
                    commit: dict[TopicPartition, int] = {}
                    for u in taken:
                        commit.update(u.commit)
                    if commit:
                        try:  # the database holds the offsets; the group's copy shows lag
                            await consumer.commit(commit)
                        except KafkaError as error:
                            log.warning(
                                "committing offsets to the group failed (the database has "
                                "them): %s", error,
                            )  # fmt: skip
                    self._stored.set()
        finally:
            self._stored.set()  # waiters see the writer gone

    async def _stored_until(self, done: Callable[[], bool]) -> None:
        """Wait for the writer until ``done()``; raises if the writer has stopped."""
        while not done():
            if self._writer is None or self._writer.done():
                raise RuntimeError("the alert writer has stopped; nothing more is stored")
            self._stored.clear()
            await self._stored.wait()

    async def _all_stored(self) -> None:
        await self._stored_until(lambda: not self._unstored)

    def _feed(self, source: str, message: Any, now: int) -> list[Transition]:
        e = self.engine
        if source == "bar":
            return e.on_bar(message, wall_ms=now)
        if source == "spread":
            return e.on_spread(message, wall_ms=now)
        if source == "zscore":
            return e.on_zscore(message, wall_ms=now)
        return e.on_stats(message, wall_ms=now)

    @staticmethod
    def _key(source: str, message: Any) -> str:
        if source == "bar":
            return feed_key(f"{message.market}:{message.symbol}", message.tf, None)
        return feed_key(message.pair, message.tf, message.method)

    async def _emit(
        self,
        transitions: list[Transition],
        touched: list[str],
        offsets: list[Offset],
        commit: dict[TopicPartition, int] | None = None,
        records: int = 0,
    ) -> None:
        """Publish (acked when this returns), then queue the store of everything."""
        now = self.clock.now_ms()
        messages = [t.to_message(now) for t in transitions]
        futures = [await self.producer.send(self.topics.alerts, m) for m in messages]
        await asyncio.gather(*futures)
        for t in transitions:
            self.metrics.transitions.labels(
                rule=t.rule.id, severity=t.rule.severity, state=t.state
            ).inc()
        feeds = [
            FeedRow(key, *self.feed_home[key], self.engine.export_feed(key))
            for key in touched
            if key in self.feed_home
        ]
        held = self._over_storm_cap(transitions)
        write = BatchWrite(transitions, messages, list(self.silences), feeds, offsets, now, held)
        self._unstored.append(_Unstored(write, commit or {}, records))
        self._unstored_records += records
        self._queued.set()

    def _over_storm_cap(self, transitions: list[Transition]) -> frozenset[str]:
        """Firing alerts beyond ``ALERTS_STORM_CAP`` of one rule within ``ALERTS_STORM_BARS``
        bars (event time): recorded, but their notifications held. Counted in memory, so
        a restart starts counting afresh."""
        held = set()
        cap, bars = self.settings.storm_cap, self.settings.storm_bars
        for t in transitions:
            if t.state != "firing":
                continue
            fired = self._storm.setdefault(t.rule.id, deque())
            since = t.ts - bars * timeframe_ms(t.tf)
            while fired and fired[0] <= since:
                fired.popleft()
            if len(fired) >= cap:
                held.add(t.event_id)
                self.metrics.notifications.labels(channel="*", outcome="held").inc()
                continue
            fired.append(t.ts)
        return frozenset(held)

    async def _dead_letter(self, topic: str, record: Any, reason: str) -> Any:
        self.metrics.dead_letters.labels(topic=topic).inc()
        letter = dead_letter(
            source=topic,
            service="alerts",
            reason=reason,
            raw=record.value,
            original_key=None if record.key is None else record.key.decode(errors="replace"),
            ts_event=None,
            ts_init=self.clock.now_ms(),
        )
        return await self.producer.send(self.topics.dead_letter, letter)
