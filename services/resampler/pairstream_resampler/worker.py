"""The resampler worker: a faust-streaming app whose agent turns ``ticks`` into bars.

Why checkpoints in PostgreSQL and not a Faust table changelog
---------------------------------------------------------------
A bar must reach the ``bars`` table exactly as it reaches the topic, and a
restart must neither count a trade twice nor lose one. A changelog topic cannot
be written atomically with the database, and faust-streaming's ``exactly_once``
is not reliable (DESIGN §4), so after a crash a changelog-restored state and the
table could disagree. Instead, every ``checkpoint_interval_s`` the worker takes a
consistent snapshot between two messages — per input partition, the next offset
and the builder state of its symbols (open bars, event clock, seen trade ids) —
waits until every bar and dead letter emitted so far is acked by the broker, and
then stores the buffered bars *and* the snapshot in one transaction. Only then
are the input events acknowledged, so Faust commits Kafka offsets no further
than what is stored.

After a crash, restart or rebalance, a partition's new owner loads its snapshot,
checks that it was taken from this very log (its anchor, the last input record it
covers, is still at its offset: :mod:`pairstream.checkpoints`; a snapshot of a
log that is gone, e.g. after ``pairstream infra down``, is discarded with a
warning and the partition is read from the start) and skips input below the
snapshot's offset; everything after it is processed again from the same state,
so the same bars come out again (same content, same revisions) and the upserts
are idempotent. Duplicates inside the input are dropped by trade id; the seen ids
are part of the snapshot.

The event clock of a symbol that is idle (no trade for ``idle_after_s`` while its
partition is read up to its end) follows the wall clock from its last trade, so
its bars close; while the worker is behind or paused by a database outage it
does not, so a backlog is never made late by our own delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import asyncpg
import faust
import msgspec
from faust.types import TP, EventT, StreamT

from pairstream.checkpoints import Anchor, AnchorVerifier, fingerprint
from pairstream.clock import Clock, SystemClock
from pairstream.codec import Codec, MessageDecodeError
from pairstream.db import DB_ERRORS, connection, create_pool, through_outages
from pairstream.db.migrate import migrate
from pairstream.instruments import split_instrument
from pairstream.kafka import MessageProducer, TopicRequest, bootstrap_servers, ensure_topics
from pairstream.messages import TickRun, Trade, dead_letter
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.supervisor import Backoff
from pairstream.topics import topic_spec

from .app import App
from .config import ResamplerSettings
from .core import BarBuilder, Outcome, SymbolBars
from .metrics import ResamplerMetrics
from .sinks import BarBuffer, Outbox
from .store import BarStore

log = logging.getLogger(__name__)
T = TypeVar("T")

SERVICE = "resampler"
#: what a database outage looks like to asyncpg


class Checkpoint(msgspec.Struct):
    """The stored state of one input partition, by instrument (``usdm:BTCUSDT``)."""

    symbols: dict[str, SymbolBars]


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Checkpoint).decode


@dataclass(slots=True)
class Partition:
    """A partition of ``ticks`` this worker owns: where it is and what it holds."""

    number: int
    next_offset: int
    symbols: dict[str, SymbolBars]  # by instrument
    events: list[EventT[bytes]] = field(default_factory=list)  # processed, not yet stored
    dirty: bool = False
    anchor: Anchor | None = None  # of the last record in the stored state
    last: Any = None  # the last message processed (its anchor is taken when stored)

    def take_anchor(self) -> Anchor | None:
        """The anchor of the last processed record (computed once, when it is stored)."""
        if self.last is not None:
            m, self.last = self.last, None
            timestamp = round(m.timestamp * 1000) if m.timestamp is not None else -1
            self.anchor = Anchor(
                m.topic, m.partition, m.offset, fingerprint(m.key, m.value, timestamp)
            )
        return self.anchor


class ResamplerWorker:
    """One worker process: consume ``ticks``, publish bars, store bars and checkpoints."""

    def __init__(
        self,
        settings: ResamplerSettings | None = None,
        *,
        kafka: KafkaSettings | None = None,
        topics: TopicSettings | None = None,
        db: DatabaseSettings | None = None,
        clock: Clock | None = None,
        metrics: ResamplerMetrics | None = None,
    ) -> None:
        self.settings = settings or ResamplerSettings()
        self.kafka = kafka or KafkaSettings()
        self.topics = topics or TopicSettings()
        self.db = db or DatabaseSettings()
        self.clock = clock or SystemClock()
        self.metrics = metrics or ResamplerMetrics()
        self.builder = BarBuilder(
            self.topics.timeframes, self.settings.lateness_ms, self.settings.max_id_ranges
        )
        self.producer = MessageProducer(self.kafka)
        self.outbox = Outbox(self.producer, self.clock, self.metrics)
        self.buffer = BarBuffer(self.settings.buffer_max_rows, self.metrics)
        self._codec = Codec(self.topics.ticks, TickRun)
        self._parts: dict[int, Partition] = {}
        self._assigned: set[int] = set()
        self._arrivals: dict[str, tuple[float, int]] = {}  # instrument → (monotonic, clock)
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._failed: asyncio.Future[None] | None = None
        self._pool: asyncpg.Pool | None = None
        self._store: BarStore | None = None
        self._verifier = AnchorVerifier(self.kafka)
        self._datadir = tempfile.mkdtemp(prefix="pairstream-resampler-")
        #: monotonic time of the first message processed, and trades in processed messages
        self.first_event_at: float | None = None
        self.trades_seen = 0
        self.app = self._make_app()

    # ------------------------------------------------------------------ wiring

    def _make_app(self) -> App:
        s = self.settings
        app = App(
            s.group_id,
            fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
            broker=[f"kafka://{server}" for server in bootstrap_servers(self.kafka).split(",")],
            broker_client_id=self.kafka.client_id,
            value_serializer="raw",
            key_serializer="raw",
            web_enabled=False,
            autodiscover=False,
            datadir=self._datadir,
            topic_disable_leader=True,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            stream_wait_empty=False,  # unstored events stay unacked; the next owner redoes them
            broker_commit_interval=s.checkpoint_interval_s,
            # a replayed run is ~100 kB: fetch many per round trip (Faust's default is 1 MB)
            consumer_max_fetch_size=16 * 1024 * 1024,
            broker_session_timeout=s.session_timeout_s,
            broker_rebalance_timeout=s.rebalance_timeout_s,
            broker_heartbeat_interval=s.heartbeat_interval_s,
        )
        ticks = app.topic(self.topics.ticks, key_type=bytes, value_type=bytes)
        app.agent(ticks, name=f"{s.group_id}.bars", concurrency=1)(self._agent)
        # mode's signal type wants a bare `signal` keyword; the handlers take it in **_
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        return app

    async def start(self) -> None:
        """Prepare topics and tables, then join the group and start consuming."""
        self._failed = asyncio.get_running_loop().create_future()
        t = self.topics
        requests = [TopicRequest(t.ticks, t.ticks_partitions)]
        for name in [t.bars(tf) for tf in t.timeframes] + [t.dead_letter]:
            requests.append(TopicRequest(name, topic_spec(name, t).partitions))
        await ensure_topics(requests, self.kafka)
        self._pool = await self._through_outages(
            "connecting to the database", lambda: create_pool(self.db)
        )
        async with connection(self.db) as conn:
            await migrate(conn, self.db)
        self._store = BarStore(self._pool, self.settings.group_id, t.ticks)
        await self.producer.start()
        self._tasks = [
            asyncio.create_task(self._guard(self.outbox.run()), name="resampler-outbox"),
            asyncio.create_task(self._guard(self._checkpoint_loop()), name="resampler-checkpoint"),
            asyncio.create_task(self._guard(self._idle_loop()), name="resampler-idle"),
        ]
        await self.app.start()
        log.info(
            "resampler %s consuming %s: timeframes %s, lateness %d ms",
            self.settings.group_id,
            t.ticks,
            ",".join(self.builder.timeframes),
            self.settings.lateness_ms,
        )

    async def _through_outages(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation``, retried forever through database outages (capped full-jitter backoff)."""
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        return await through_outages(
            what,
            operation,
            backoff.delay,
        )

    async def run(self) -> None:
        """Start, then run until stopped (cancelled) or a part fails (raised)."""
        await self.start()
        try:
            assert self._failed is not None
            await self._failed
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Store what can be stored (briefly), then leave the group and close."""
        try:
            if self._store is not None and self._failed is not None and not self._failed.done():
                with contextlib.suppress(*DB_ERRORS):
                    await asyncio.wait_for(self.checkpoint(), timeout=5.0)
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks = []
            await self.app.stop()
            await self.producer.stop()
            with contextlib.suppress(Exception):
                await self._verifier.stop()
            if self._pool is not None:
                await self._pool.close()
                self._pool = None
            shutil.rmtree(self._datadir, ignore_errors=True)

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        log.error("resampler failed: %r", error)
        if self._failed is not None and not self._failed.done():
            self._failed.set_exception(error)

    # ------------------------------------------------------------- rebalances

    async def _on_assigned(self, sender: Any, assigned: set[TP], **_: Any) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == self.topics.ticks}
        self._assigned = mine
        for number in list(self._parts):
            if number not in mine:
                self._parts.pop(number)
        for part in self._parts.values():  # kept: the pause was ours, not the market's
            self._restart_idle_timers(part)
        log.info("assigned partitions %s of %s", sorted(mine), self.topics.ticks)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **_: Any) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self.topics.ticks}
        self._assigned -= gone
        try:
            await asyncio.wait_for(self.checkpoint(), timeout=self.settings.session_timeout_s / 3)
        except DB_ERRORS as error:
            log.warning(
                "could not store state before a rebalance (%r); the next owner redoes it", error
            )
        for number in gone:
            self._parts.pop(number, None)
            with contextlib.suppress(KeyError):  # its lag is the next owner's to report
                self.metrics.consumer_lag.remove(str(number))

    def _restart_idle_timers(self, part: Partition) -> None:
        """Count the symbols' idle time from now: a pause of ours is not a quiet market."""
        now = self.clock.monotonic()
        for name, state in part.symbols.items():
            self._arrivals[name] = (now, state.clock)

    async def _partition(self, number: int) -> Partition:
        """The state of a newly owned partition, from its checkpoint (waits for the database)."""
        assert self._store is not None
        store = self._store
        stored = await self._through_outages(
            f"loading the checkpoint of partition {number}", lambda: store.load(number)
        )
        if stored is not None:
            offset, blob, anchor = stored
            why = await self._verifier.check(anchor)
            if why is not None:
                log.warning(
                    "%s partition %d: discarding the stored checkpoint (next offset %d): %s; "
                    "reading the partition from its earliest offset",
                    self.topics.ticks,
                    number,
                    offset,
                    why,
                )
                await self._through_outages(
                    f"discarding the checkpoint of partition {number}",
                    lambda: store.discard(number, offset),
                )
                stored = None
        if stored is None:
            part = Partition(number, 0, {})
        else:
            symbols = _decode(blob).symbols
            for state in symbols.values():
                state.bars = {tf: state.bars.get(tf, {}) for tf in self.builder.timeframes}
            part = Partition(number, offset, symbols, anchor=anchor)
        self._restart_idle_timers(part)
        log.info(
            "partition %d: resuming at offset %d with %d instrument(s)",
            number,
            part.next_offset,
            len(part.symbols),
        )
        return part

    # ------------------------------------------------------------------ agent

    async def _agent(self, stream: StreamT[bytes]) -> None:
        try:
            manual = cast(faust.Stream[bytes], stream).noack()  # acked once stored
            async for event in manual.events():
                await self._on_event(event)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self._fail(error)
            raise

    async def _on_event(self, event: EventT[bytes]) -> None:
        message = event.message
        number = message.partition
        part = self._parts.get(number)
        if part is None:
            if number not in self._assigned:
                return  # revoked meanwhile: the new owner reads it from the stored offset
            part = await self._partition(number)
            if number not in self._assigned:
                return
            self._parts[number] = part
        if message.offset < part.next_offset:
            event.ack()  # already in the stored state
            return
        now_ms = self.clock.now_ms()
        if self.first_event_at is None:
            self.first_event_at = self.clock.monotonic()
        raw = message.value or b""
        try:
            run = self._codec.decode(raw)
        except MessageDecodeError as error:
            self._dead_letter(str(error), raw, _key(message.key), None, now_ms)
        else:
            self._on_run(part, run, now_ms)
        part.next_offset = message.offset + 1
        part.last = message
        part.events.append(event)
        part.dirty = True
        if self.buffer.full:
            await self.buffer.wait_room()

    def _on_run(self, part: Partition, run: TickRun, now_ms: int) -> None:
        name = run.instrument
        state = part.symbols.get(name)
        if state is None:
            state = part.symbols[name] = self.builder.new_symbol(run.exchange, run.market)
        watermark = self.builder.watermark(state)  # the one late trades are judged by
        out = self.builder.on_trades(state, run.symbol, run.trades, now_ms)
        self.trades_seen += len(run.trades)
        self._arrivals[name] = (self.clock.monotonic(), state.clock)
        m = self.metrics
        if out.accepted:
            m.ticks.labels(name).inc(out.accepted)
        if out.duplicates:
            m.duplicates.labels(name).inc(out.duplicates)
        if out.late:
            m.late.labels(name).inc(len(out.late))
            self._dead_letter_trades(
                run,
                out.late,
                f"late: event time before the watermark {watermark} "
                f"(allowed lateness {self.builder.lateness_ms} ms); its bar is already final",
                now_ms,
            )
        if out.overlapping:
            self._dead_letter_trades(
                run,
                out.overlapping,
                "overlap: the trade ids of this aggregate were partly counted already",
                now_ms,
            )
        self._publish(name, state, out, now_ms)

    def _publish(self, name: str, state: SymbolBars, out: Outcome, now_ms: int) -> None:
        if not out.bars:
            return
        final_at = self.clock.monotonic()
        for bar in out.bars:
            self.outbox.put(self.topics.bars(bar.tf), bar, final_at if bar.final else None)
            self.buffer.add(bar)
            self.metrics.bars.labels(bar.tf, str(bar.final).lower()).inc()
        watermark = self.builder.watermark(state)
        self.metrics.watermark_lag.labels(name).set(max(0.0, (now_ms - watermark) / 1000))

    def _dead_letter_trades(
        self, run: TickRun, trades: list[Trade], reason: str, now_ms: int
    ) -> None:
        late = TickRun(
            exchange=run.exchange,
            market=run.market,
            symbol=run.symbol,
            source=run.source,
            ts_ingest=run.ts_ingest,
            trades=trades,
        )
        self._dead_letter(reason, self._codec.encode(late), run.key, trades[0].ts_event, now_ms)

    def _dead_letter(
        self, reason: str, raw: bytes, key: str | None, ts_event: int | None, now_ms: int
    ) -> None:
        letter = dead_letter(
            source=self.topics.ticks,
            service=SERVICE,
            reason=reason,
            raw=raw,
            original_key=key,
            ts_event=ts_event,
            ts_init=now_ms,
        )
        self.outbox.put(self.topics.dead_letter, letter)
        self.metrics.dead_letters.labels(reason.split(":", 1)[0]).inc()

    # ------------------------------------------------------------- checkpoints

    async def checkpoint(self) -> bool:
        """Store the buffered bars with a snapshot of every changed partition; ack its input.

        Returns False when the database refused (everything waits for the next try).
        A producer failure is raised: nothing is acked, and a restart redoes it.
        """
        assert self._store is not None
        async with self._lock:
            parts = [p for p in self._parts.values() if p.dirty or p.events]
            if not parts and not len(self.buffer):
                return True
            snapshot = {
                p.number: (p.next_offset, _encode(Checkpoint(p.symbols)), p.take_anchor())
                for p in parts
            }
            events = {p.number: p.events for p in parts}
            for p in parts:
                p.events, p.dirty = [], False
            rows = self.buffer.take()
            acks = await self.outbox.barrier()
            stored = False
            try:
                await asyncio.gather(*acks)
                started = self.clock.monotonic()
                await asyncio.wait_for(self._store.write(rows, snapshot), timeout=30.0)
                stored = True
                self.metrics.sink_batch.observe(self.clock.monotonic() - started)
                self.metrics.sink_rows.inc(len(rows))
            except DB_ERRORS as error:
                self.metrics.sink_failures.inc()
                log.warning("storing %d bar(s) failed (%r); retrying", len(rows), error)
                return False
            finally:
                self.buffer.done(rows, stored)
                for p in parts:
                    if self._parts.get(p.number) is not p:
                        continue  # revoked: its next owner redoes the unstored input
                    if stored:
                        for event in events[p.number]:
                            event.ack()
                    else:
                        p.events[:0] = events[p.number]
                        p.dirty = True
            return True

    async def _checkpoint_loop(self) -> None:
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        failures = 0
        while True:
            delay = self.settings.checkpoint_interval_s if not failures else backoff.delay(failures)
            await asyncio.sleep(delay)
            failures = 0 if await self.checkpoint() else failures + 1

    # -------------------------------------------------------------- idle time

    async def _idle_loop(self) -> None:
        interval = min(0.25, self.settings.idle_after_s / 4)
        while True:
            await asyncio.sleep(interval)
            self.advance_idle()

    def advance_idle(self) -> None:
        """Move the event clock of idle symbols on with the wall clock (see the module doc)."""
        if self.buffer.full:
            return
        now = self.clock.monotonic()
        now_ms = self.clock.now_ms()
        idle_after = self.settings.idle_after_s
        for part in list(self._parts.values()):
            highwater = self.app.consumer.highwater(TP(self.topics.ticks, part.number))
            if highwater is None:
                continue
            behind = highwater - part.next_offset
            self.metrics.consumer_lag.labels(str(part.number)).set(max(0, behind))
            if behind > 0:
                continue
            for name, state in part.symbols.items():
                seen_at, clock = self._arrivals.get(name, (now, state.clock))
                idle = now - seen_at
                if idle < idle_after or clock < 0:
                    continue
                symbol = split_instrument(name)[1]
                out = self.builder.advance(state, symbol, clock + int(idle * 1000), now_ms)
                if out.bars:
                    part.dirty = True
                    self._publish(name, state, out, now_ms)


def _key(key: Any) -> str | None:
    if isinstance(key, bytes):
        return key.decode(errors="replace")
    return key if isinstance(key, str) else None
