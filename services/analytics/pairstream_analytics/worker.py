"""The analytics worker: routes final bars by pair, runs each pair's core, stores and publishes.

Two consumer groups in one process:

* **router** (group ``<group_id>-router``) reads ``bars.<tf>`` (keyed by instrument)
  and forwards every *final* bar to ``analytics.bars`` once per configured pair
  it is a leg of, keyed by pair; offsets are committed after the broker acked
  the forwarded bars. Undecodable bars go to the dead-letter topic.
* **pairs** (group ``<group_id>``) reads ``analytics.bars``: pairs spread over
  the workers by partition. Per batch: outputs are published, then stored with
  the pairs' checkpoints in one transaction, then offsets are committed (error
  policy: database errors are retried with capped backoff, never skipped).

State is rebuilt, not stored: the first bar of a ``(pair, tf)`` a worker sees
loads the pair's checkpoint, checks its anchor (the ``analytics.bars`` record that
last advanced it must still be at its offset, :mod:`pairstream.checkpoints`; a
checkpoint of a log that is gone, e.g. after ``pairstream infra down``, is
discarded with a warning and the pair starts afresh) and replays the stored
final bars from its first joined bar through its frontier, which gives the state
the uninterrupted worker had, bit for bit. Bars at or before the frontier are then duplicates; a bar
that *revises* one already joined rebuilds the pair with it and re-emits the
outputs from its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from pairstream.checkpoints import Anchor, AnchorVerifier
from pairstream.clock import Clock
from pairstream.codec import Codec, MessageDecodeError
from pairstream.db import DB_ERRORS, connection, create_pool, through_outages
from pairstream.db.migrate import migrate
from pairstream.instruments import pair_legs
from pairstream.kafka import (
    MessageProducer,
    TopicRequest,
    create_consumer,
    ensure_topics,
)
from pairstream.messages import (
    Bar,
    PairBar,
    ScanEntry,
    ScanUpdate,
    dead_letter,
    timeframe_ms,
)
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.supervisor import Backoff
from pairstream.topics import topic_specs

from .config import AnalyticsSettings
from .handlers import Outputs, PairStream, leg_bar
from .metrics import AnalyticsMetrics
from .store import AnalyticsStore, Checkpoint

log = logging.getLogger(__name__)

T = TypeVar("T")
SCAN_LOCK = 0x7061697273  # advisory lock key: one scanner across all workers


class _DropRevoked(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forgets the pairs of revoked partitions (their next owner rebuilds them)."""

    def __init__(self, worker: AnalyticsWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        partitions = {tp.partition for tp in revoked}
        for key in [k for k, p in self.worker.partition_of.items() if p in partitions]:
            self.worker.streams.pop(key, None)
            self.worker.partition_of.pop(key, None)
            self.worker.anchors.pop(key, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("analytics partitions assigned: %s", sorted(tp.partition for tp in assigned))


class AnalyticsWorker:
    """One analytics worker (see the module doc)."""

    def __init__(
        self,
        settings: AnalyticsSettings,
        clock: Clock,
        metrics: AnalyticsMetrics | None = None,
        kafka: KafkaSettings | None = None,
        topics: TopicSettings | None = None,
        db: DatabaseSettings | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = metrics or AnalyticsMetrics()
        self.kafka = kafka or KafkaSettings()
        self.topics = topics or TopicSettings()
        self.db = db or DatabaseSettings()
        self.config = settings.pair_config()
        self.timeframes = settings.timeframes or self.topics.timeframes
        self.pair_names = frozenset(settings.pair_names)
        self.routes: dict[str, list[tuple[str, int]]] = {}
        for pair in settings.pair_names:
            y, x = pair_legs(pair)
            self.routes.setdefault(y, []).append((pair, 0))
            self.routes.setdefault(x, []).append((pair, 1))
        self.streams: dict[tuple[str, str], PairStream] = {}
        self.partition_of: dict[tuple[str, str], int] = {}
        self.anchors: dict[tuple[str, str], Anchor] = {}  # the record that last advanced a pair
        self.producer = MessageProducer(self.kafka)
        self._bar_codecs = {
            self.topics.bars(tf): Codec(self.topics.bars(tf), Bar) for tf in self.timeframes
        }
        self._pair_codec = Codec(self.topics.analytics_bars, PairBar)
        self._pool: asyncpg.Pool | None = None
        self._store: AnalyticsStore | None = None
        self._router: AIOKafkaConsumer | None = None
        self._pairs: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._verifier = AnchorVerifier(self.kafka)
        self.ready = False

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, create topics, join both groups and start the loops."""
        t = self.topics
        self._pool = await self._through_outages(
            "connecting to the database", lambda: create_pool(self.db)
        )
        async with connection(self.db) as conn:
            await migrate(conn, self.db)
        self._store = AnalyticsStore(self._pool, self.settings.group_id)
        # the contract's topics this worker uses, plus bars topics of analysed timeframes
        # that TOPIC_TIMEFRAMES does not list (not in the registry, same partition count)
        wanted = {t.analytics_bars, t.spread, t.zscore, t.stats, t.scan, t.dead_letter}
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
        group = {
            "session_timeout_ms": int(self.settings.session_timeout_s * 1000),
            "heartbeat_interval_ms": int(self.settings.heartbeat_interval_s * 1000),
            "max_poll_interval_ms": 300_000,
        }
        self._router = create_consumer(
            sorted(self._bar_codecs), f"{self.settings.group_id}-router", self.kafka, **group
        )
        self._pairs = create_consumer([], self.settings.group_id, self.kafka, **group)
        self._pairs.subscribe([t.analytics_bars], listener=_DropRevoked(self))
        await self._router.start()
        await self._pairs.start()
        self._tasks = [
            asyncio.create_task(self._route_loop(), name="analytics-router"),
            asyncio.create_task(self._pairs_loop(), name="analytics-pairs"),
        ]
        if self.settings.scan_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._scan_loop(), name="analytics-scan"))
        self.ready = True
        log.info(
            "analytics %s: %d pairs, timeframes %s, methods %s",
            self.settings.group_id,
            len(self.settings.pair_names),
            ",".join(self.timeframes),
            ",".join(self.settings.methods),
        )

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
        """Cancel the loops, leave the groups, close."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for consumer in (self._router, self._pairs):
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
        with contextlib.suppress(Exception):
            await self.producer.stop()
        with contextlib.suppress(Exception):
            await self._verifier.stop()
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.close()

    async def _through_outages(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation``, retried forever through database outages (capped full-jitter backoff)."""
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        return await through_outages(
            what,
            operation,
            backoff.delay,
            on_failure=self.metrics.db_failures.inc,
        )

    # -- router ----------------------------------------------------------------

    async def _dead_letter(self, topic: str, raw: bytes, key: bytes | None, reason: str) -> Any:
        self.metrics.dead_letters.labels(topic=topic).inc()
        letter = dead_letter(
            source=topic,
            service="analytics",
            reason=reason,
            raw=raw,
            original_key=None if key is None else key.decode(errors="replace"),
            ts_event=None,
            ts_init=self.clock.now_ms(),
        )
        return await self.producer.send(self.topics.dead_letter, letter)

    async def _route_loop(self) -> None:
        assert self._router is not None
        consumer = self._router
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=5_000)
            if not batches:
                continue
            pending = []
            for tp, records in batches.items():
                codec = self._bar_codecs[tp.topic]
                for record in records:
                    try:
                        bar = codec.decode(record.value)
                    except MessageDecodeError as error:
                        pending.append(
                            await self._dead_letter(tp.topic, record.value, record.key, str(error))
                        )
                        continue
                    if not bar.final:
                        continue
                    for pair, leg in self.routes.get(bar.instrument, ()):
                        routed = PairBar(pair=pair, leg="y" if leg == 0 else "x", bar=bar)
                        pending.append(await self.producer.send(self.topics.analytics_bars, routed))
                        self.metrics.routed.labels(tf=bar.tf).inc()
            await asyncio.gather(*pending)
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batches.items()})

    # -- pairs -----------------------------------------------------------------

    async def _stream(self, pair: str, tf: str, partition: int) -> PairStream:
        """The in-memory stream of a pair, rebuilt from its checkpoint the first time."""
        key = (pair, tf)
        stream = self.streams.get(key)
        if stream is None:
            stream = PairStream(pair, tf, timeframe_ms(tf), self.config, self.settings.methods)
            await self._discard_if_stale(pair, tf)
            await self._rebuild(stream)
            self.streams[key] = stream
            self.partition_of[key] = partition
        return stream

    async def _discard_if_stale(self, pair: str, tf: str) -> None:
        """Delete the pair's checkpoint unless its anchor record is still in its log."""
        assert self._store is not None
        store = self._store
        checkpoint = await self._through_outages(
            "reading a checkpoint", lambda: store.checkpoint(pair, tf)
        )
        if checkpoint is None:
            return
        why = await self._verifier.check(checkpoint.anchor)
        if why is None:
            assert checkpoint.anchor is not None
            self.anchors[(pair, tf)] = checkpoint.anchor
            return
        where = "no anchor" if checkpoint.anchor is None else checkpoint.anchor.describe()
        log.warning(
            "%s %s: discarding the stored checkpoint (%s, frontier %d): %s; the pair starts afresh",
            pair,
            tf,
            where,
            checkpoint.frontier,
            why,
        )
        await self._through_outages("discarding a checkpoint", lambda: store.discard(checkpoint))

    async def _rebuild(self, stream: PairStream, revised: Bar | None = None) -> Outputs:
        """Replay the stored bars of ``stream``'s checkpoint; with ``revised``, re-emit from it."""
        assert self._store is not None
        store = self._store
        checkpoint = await self._through_outages(
            "reading a checkpoint", lambda: store.checkpoint(stream.pair, stream.tf)
        )
        if checkpoint is None or checkpoint.first_ts is None:
            if checkpoint is not None:  # decided, but before both legs had a bar
                stream.replay([], checkpoint.frontier)
            return Outputs()
        first, frontier = checkpoint.first_ts, checkpoint.frontier
        legs = stream.legs
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.rebuild_wait_s
        while True:
            rows = await self._through_outages(
                "reading bars", lambda: store.final_bars(legs, stream.tf, first, frontier)
            )
            bars = [(legs.index(name), start, bar) for name, start, bar in rows]
            if revised is not None:
                leg = legs.index(revised.instrument)
                bars = [b for b in bars if (b[0], b[1]) != (leg, revised.start)]
                bars.append((leg, revised.start, leg_bar(revised)))
                bars.sort(key=lambda b: (b[1], b[0]))
            trial = PairStream(stream.pair, stream.tf, stream.tf_ms, stream.config, stream.methods)
            out = trial.replay(
                bars,
                frontier,
                emit_from=None if revised is None else revised.start,
                ts_init=self.clock.now_ms(),
            )
            if trial.joined >= checkpoint.joined or loop.time() >= deadline:
                break
            await asyncio.sleep(0.5)  # bars still on their way into the table
        if trial.joined != checkpoint.joined:
            self.metrics.incomplete_rebuilds.inc()
            log.error(
                "%s %s: rebuilt from %d joined bars, the checkpoint had %d (bars missing from the "
                "table: retention, or still in flight after %.0f s); outputs may differ",
                stream.pair,
                stream.tf,
                trial.joined,
                checkpoint.joined,
                self.settings.rebuild_wait_s,
            )
        stream.joiner, stream.core = trial.joiner, trial.core
        stream.first_ts, stream.joined = trial.first_ts, trial.joined
        self.metrics.rebuilds.inc()
        return out

    async def _pairs_loop(self) -> None:
        assert self._pairs is not None
        consumer = self._pairs
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=2_000)
            if not batches:
                continue
            out = Outputs()
            touched: dict[tuple[str, str], PairStream] = {}
            letters = []
            for tp, records in batches.items():
                for record in records:
                    try:
                        routed = self._pair_codec.decode(record.value)
                    except MessageDecodeError as error:
                        letters.append(
                            await self._dead_letter(tp.topic, record.value, record.key, str(error))
                        )
                        continue
                    bar = routed.bar
                    if (
                        bar.tf not in self.timeframes
                    ) or routed.pair not in self.settings.pair_names:
                        continue  # another deployment's pair or timeframe
                    stream = await self._stream(routed.pair, bar.tf, tp.partition)
                    result = stream.add(0 if routed.leg == "y" else 1, bar, self.clock.now_ms())
                    if result is None:
                        self.metrics.duplicates.inc()
                        continue
                    if isinstance(result, Bar):
                        self.metrics.revisions.inc()
                        result = await self._rebuild(stream, revised=result)
                    stream.hold(bar.start, record.offset)
                    out.extend(result)
                    self.metrics.analysed(bar.tf, bar.start + stream.tf_ms, self.clock)
                    touched[(routed.pair, bar.tf)] = stream
                    self.anchors[(routed.pair, bar.tf)] = Anchor.of(record)
            await self._publish(out)
            checkpoints = [
                dataclasses.replace(c, anchor=self.anchors.get(key))
                for key, s in touched.items()
                if (c := s.checkpoint()) is not None
            ]
            await self._store_outputs(out, checkpoints)
            await asyncio.gather(*letters)
            await consumer.commit(
                {tp: self._committable(tp, records) for tp, records in batches.items()}
            )

    def _committable(self, tp: TopicPartition, records: list[Any]) -> int:
        """The next offset to commit: never past a bar still waiting for its other leg.

        A bar waiting in a join is not in any checkpoint yet; it must be read
        again after a restart, so the commit stops at the oldest such bar.
        """
        offset = int(records[-1].offset) + 1
        for key, stream in self.streams.items():
            if self.partition_of.get(key) == tp.partition:
                held = stream.oldest_held()
                if held is not None:
                    offset = min(offset, held)
        return offset

    async def _store_outputs(self, out: Outputs, checkpoints: list[Checkpoint]) -> None:
        assert self._store is not None
        store = self._store
        with self.metrics.store_seconds.time():
            await self._through_outages(
                "storing analytics",
                lambda: store.write(out.spreads, out.zscores, out.stats, checkpoints),
            )

    async def _publish(self, out: Outputs) -> None:
        t = self.topics
        futures = []
        for topic, messages in (
            (t.spread, out.spreads),
            (t.zscore, out.zscores),
            (t.stats, out.stats),
        ):
            for message in messages:
                futures.append(await self.producer.send(topic, message))
            self.metrics.outputs.labels(topic=topic).inc(len(messages))
        await asyncio.gather(*futures)

    # -- scan ------------------------------------------------------------------

    async def _scan_loop(self) -> None:
        """Scan every interval while holding the scanner lock (one scanner across workers)."""
        assert self._pool is not None
        last: int | None = None
        while True:
            try:
                async with self._pool.acquire() as conn:
                    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", SCAN_LOCK):
                        try:
                            while True:
                                last = await self.scan_once(last)
                                await asyncio.sleep(self.settings.scan_interval_s)
                        finally:
                            await conn.execute("SELECT pg_advisory_unlock($1)", SCAN_LOCK)
            except DB_ERRORS as error:
                self.metrics.db_failures.inc()
                log.warning("pair scan: database error %r; retrying", error)
            await asyncio.sleep(self.settings.scan_interval_s)  # another worker scans meanwhile

    async def scan_once(self, previous: int | None = None) -> int | None:
        """Scan the stored bars now; publish and store unless nothing new since ``previous``."""
        import pandas as pd

        from pairstream.analytics.scan import align_closes, scan_pairs

        assert self._store is not None
        s = self.settings
        tf_ms = timeframe_ms(s.scan_tf)
        rows = await self._store.latest_closes(s.scan_symbols, s.scan_tf, tf_ms, s.scan_window)
        if not rows:
            return previous
        table = pd.DataFrame(rows, columns=["instrument", "start", "close"]).pivot(
            index="start", columns="instrument", values="close"
        )
        closes = align_closes(table, s.scan_window)
        if closes.empty or len(closes.columns) < 2:
            return previous
        at = int(closes.index[-1])
        if at == previous:
            return previous
        with self.metrics.scan_seconds.time():
            result = await asyncio.to_thread(scan_pairs, closes, s.adf_lag)
        now = self.clock.now_ms()
        update = ScanUpdate(
            tf=s.scan_tf,
            ts=at,
            window=s.scan_window,
            adf_lag=s.adf_lag,
            instruments=sorted(str(c) for c in closes.columns),
            entries=[
                ScanEntry(
                    y=r.y,
                    x=r.x,
                    nobs=r.nobs,
                    correlation=r.correlation,
                    hedge_ratio=r.hedge_ratio,
                    coint_stat=r.coint_stat,
                    coint_pvalue=r.coint_pvalue,
                )
                for r in result
            ],
            ts_event=at + tf_ms,
            ts_init=now,
        )
        await self.producer.send_and_wait(self.topics.scan, update)
        await self._store.write_scan(s.scan_tf, at, s.scan_window, result, now)
        self.metrics.scans.inc()
        return at
