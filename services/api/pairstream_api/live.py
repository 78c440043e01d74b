"""The live side of the API: one Kafka consumer per process feeding WebSocket channels
and the hot cache.

Channels (canonical names; bare symbols and pairs are of the default market):

* ``bars:<market>:<symbol>:<tf>`` — bars as they form and close (``BarPublic``);
* ``analytics:<pair>:<tf>:<method>`` — parts of the pair's points as they are published:
  ``{"kind": "spread" | "zscore" | "stats", "ts", "method", …}`` (fields of
  ``AnalyticsPoint``);
* ``scan:<tf>`` — each new scan (``ScanPublic``);
* ``alerts`` — every alert transition (``AlertTransitionPublic``).

Each published message has the channel's sequence number (per API process, from 1,
contiguous) and the Kafka record's timestamp (``kafka_ts``). Every client has one bounded
queue: fan-out only appends to it, so a client that does not read delays nobody; when
the queue is full its oldest messages are dropped, counted and the client told
(``dropped``), and its sequence numbers then show the gap. A subscription's snapshot
carries the channel's sequence number at subscription; the messages after it follow it.

The consumer has no group (each process reads every partition) and starts after the last
record of each topic (``seek_to_end``: not the broker's reported end, which Tansu
under-reports). Records it cannot decode are skipped and counted (``api_live_invalid``): the
producing services dead-letter bad input, this is a reader of their output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from pairstream.codec import Codec, MessageDecodeError
from pairstream.instruments import parse_instrument, parse_pair
from pairstream.kafka import create_consumer, seek_to_end
from pairstream.messages import (
    Alert,
    Bar,
    Message,
    ScanUpdate,
    SpreadUpdate,
    StatsUpdate,
    ZScoreUpdate,
)
from pairstream.supervisor import Backoff
from pairstream.topics import topic_specs

from .hotcache import Part, bar_order
from .state import ApiState

log = logging.getLogger(__name__)

RECENT = 256  # messages kept per channel for snapshots (PostgreSQL may not hold them yet)
PROBE_S = 1.0  # how often the broker is asked whether it is up
PROBE_TIMEOUT_S = 2.0
KEEP_S = 1.0  # how often clients are looked at for heartbeats and stuck sends, at most

BAR_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "vwap",
              "buy_volume", "revision", "final")  # fmt: skip
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "spread": ("hedge_ratio", "intercept", "spread"),
    "zscore": ("mean", "std", "zscore", "window", "position", "signal"),
    "stats": ("correlation", "adf_stat", "adf_pvalue", "half_life", "coint_stat",
              "coint_pvalue", "hedge_ratio_ci_low", "hedge_ratio_ci_high", "vol_y", "vol_x"),
}  # fmt: skip


def dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


class Client:
    """One connection's queue of encoded messages (see the module doc).

    Its sender stamps ``sending_since`` (monotonic s) around each send and ``last_sent``
    after it; the hub's keeper reads them for heartbeats and to cut off a client that
    takes too long (``cut_off``: its sender is cancelled, ``too_slow`` set) — one timer for
    all clients instead of one per frame.
    """

    def __init__(self, limit: int, on_drop: Callable[[int], None], now: float) -> None:
        self.limit = limit
        self.queue: deque[str] = deque()
        self.wake = asyncio.Event()
        self.dropped = 0  # since the client was last told
        self.channels: set[str] = set()
        self.sender: asyncio.Task[None] | None = None
        self.sending_since: float | None = None
        self.last_sent = now
        self.too_slow = False
        self._held: dict[str, deque[str]] = {}  # channels waiting for their snapshot
        self._on_drop = on_drop

    def cut_off(self) -> None:
        """Stop the sender of a client that does not take what is sent."""
        self.too_slow = True
        if self.sender is not None:
            self.sender.cancel()

    def push(self, text: str) -> None:
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self.dropped += 1
            self._on_drop(1)
        self.queue.append(text)
        self.wake.set()

    def offer(self, channel: str, text: str) -> None:
        held = self._held.get(channel)
        if held is None:
            self.push(text)
            return
        if len(held) >= self.limit:
            held.popleft()
            self.dropped += 1
            self._on_drop(1)
        held.append(text)

    def hold(self, channel: str) -> None:
        self._held[channel] = deque()

    def release(self, channel: str, snapshot: str) -> None:
        """The snapshot, then what came for the channel while it was read."""
        self.push(snapshot)
        for text in self._held.pop(channel, ()):
            self.push(text)


@dataclass
class Channel:
    name: str
    seq: int = 0
    subscribers: set[Client] = field(default_factory=set)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))


class LiveHub:
    """The process's consumer, its channels and clients, and the broker status."""

    def __init__(self, state: ApiState) -> None:
        self.state = state
        self.channels: dict[str, Channel] = {}
        self.clients: set[Client] = set()
        self.kafka_up: bool | None = None  # None: not known yet
        self.consumer: AIOKafkaConsumer | None = None
        t = state.topics
        self.topic_names = [*(t.bars(tf) for tf in t.timeframes), t.spread, t.zscore, t.stats,
                            t.scan, t.alerts]  # fmt: skip
        self._codecs: dict[str, Codec[Message]] = {
            spec.name: Codec(spec.name, spec.message)
            for spec in topic_specs(t)
            if spec.name in self.topic_names
        }

    # -- channels ---------------------------------------------------------------------

    def canonical(self, text: str) -> str:
        """The canonical name of a channel a client asked for; ``ValueError`` says why not."""
        kind, _, rest = text.partition(":")
        a, t = self.state.analytics, self.state.topics
        if kind == "alerts" and not rest:
            return "alerts"
        if kind == "scan" and rest:
            if rest not in a.timeframes and rest != a.scan_tf:
                raise ValueError(f"no scan of timeframe {rest!r} (ANALYTICS_SCAN_TF={a.scan_tf})")
            return f"scan:{rest}"
        if kind == "bars" and ":" in rest:
            instrument, tf = rest.rsplit(":", 1)
            name = parse_instrument(instrument, self.state.market)
            if tf not in t.timeframes:
                raise ValueError(f"no bars of timeframe {tf!r} (bars topics: "
                                 f"{', '.join(t.timeframes)})")  # fmt: skip
            return f"bars:{name}:{tf}"
        if kind == "analytics" and rest.count(":") >= 2:
            pair, tf, method = rest.rsplit(":", 2)
            name = parse_pair(pair, self.state.market)
            if name not in a.pair_names:
                raise ValueError(f"{name} is not an analysed pair (ANALYTICS_PAIRS)")
            if tf not in a.timeframes:
                raise ValueError(f"{name} is not analysed at {tf!r}")
            if method not in a.methods:
                raise ValueError(f"no method {method!r} (ANALYTICS_METHODS)")
            return f"analytics:{name}:{tf}:{method}"
        raise ValueError(
            f"unknown channel {text!r}: bars:<instrument>:<tf>, "
            "analytics:<pair>:<tf>:<method>, scan:<tf> or alerts"
        )

    def channel(self, name: str) -> Channel:
        found = self.channels.get(name)
        if found is None:
            found = self.channels[name] = Channel(name)
        return found

    def subscribe(self, client: Client, name: str) -> tuple[int, list[dict[str, Any]]]:
        """Hold the channel's messages for ``client`` until its snapshot is released;
        the sequence number and the recent messages as of now."""
        channel = self.channel(name)
        channel.subscribers.add(client)
        client.channels.add(name)
        client.hold(name)
        return channel.seq, list(channel.recent)

    def unsubscribe(self, client: Client, name: str) -> None:
        channel = self.channels.get(name)
        if channel is not None:
            channel.subscribers.discard(client)
        client.channels.discard(name)
        client.release(name, dumps({"type": "unsubscribed", "channel": name}))

    def add(self, client: Client) -> None:
        self.clients.add(client)
        self.state.metrics.ws_clients.set(len(self.clients))

    def remove(self, client: Client) -> None:
        for name in client.channels:
            channel = self.channels.get(name)
            if channel is not None:
                channel.subscribers.discard(client)
        self.clients.discard(client)
        self.state.metrics.ws_clients.set(len(self.clients))

    def publish(self, name: str, data: dict[str, Any], kafka_ts: int) -> None:
        channel = self.channel(name)
        channel.seq += 1
        channel.recent.append(data)
        if not channel.subscribers:
            return
        text = dumps({"type": "update", "channel": name, "seq": channel.seq,
                      "kafka_ts": kafka_ts, "data": data})  # fmt: skip
        for client in channel.subscribers:
            client.offer(name, text)

    def status(self) -> dict[str, Any]:
        return {"type": "status", "kafka": {True: "up", False: "down", None: "unknown"}[
            self.kafka_up]}  # fmt: skip

    def _set_kafka(self, up: bool) -> None:
        if up == self.kafka_up:
            return
        self.kafka_up = up
        self.state.cache_following(up and self.consumer is not None)
        (log.info if up else log.warning)("live consumer: Kafka %s", "up" if up else "down")
        text = dumps(self.status())
        for client in self.clients:
            client.push(text)

    # -- the consumer -----------------------------------------------------------------

    async def run(self) -> None:
        """Consume until cancelled, through broker outages, with the broker probe and the
        clients' keeper beside."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._probe())
            tasks.create_task(self._consume())
            tasks.create_task(self._keep())

    async def _keep(self) -> None:
        """Heartbeats to idle clients; clients stuck in one send too long are cut off."""
        s, clock = self.state.settings, self.state.clock
        period = min(KEEP_S, s.ws_heartbeat_s / 2, s.ws_send_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = clock.monotonic()
            beat: str | None = None
            for client in self.clients:
                since = client.sending_since
                if since is not None:
                    if now - since > s.ws_send_timeout_s:
                        client.cut_off()
                elif not client.queue and now - client.last_sent >= s.ws_heartbeat_s:
                    beat = beat or dumps({"type": "heartbeat", "ts": clock.now_ms()})
                    client.push(beat)

    async def _probe(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self.state.kafka_metadata(), PROBE_TIMEOUT_S)
            except Exception as error:  # any failure to get metadata: the broker is down
                log.debug("Kafka probe failed: %r", error)
                self._set_kafka(False)
            else:
                self._set_kafka(True)
            await asyncio.sleep(PROBE_S)

    async def _consume(self) -> None:
        backoff, failures = Backoff(0.2, 5.0), 0
        while True:
            consumer = create_consumer(
                self.topic_names, None, self.state.kafka, auto_offset_reset="latest",
                fetch_max_wait_ms=self.state.settings.fetch_max_wait_ms,
                metadata_max_age_ms=5_000,  # topics created after the API are found soon
            )  # fmt: skip
            try:
                await consumer.start()
            except Exception as error:  # the broker is down: try again
                log.debug("live consumer cannot start: %r", error)
                with contextlib.suppress(Exception):
                    await consumer.stop()
                failures += 1
                await asyncio.sleep(backoff.delay(failures))
                continue
            self.consumer = consumer
            try:
                await seek_to_end(consumer)
                while True:
                    batches = await consumer.getmany(timeout_ms=1_000, max_records=5_000)
                    # positions are set by the first fetch: the cache follows from here on
                    self.state.cache_following(bool(self.kafka_up))
                    failures = 0
                    messages = [m for tp, records in batches.items()
                                for m in self._handle(tp.topic, records)]  # fmt: skip
                    if messages:
                        await self._cache(messages)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # a consumer failure: a new consumer from the end
                log.warning("live consumer failed (%r); starting a new one", error)
            finally:
                self.consumer = None
                self.state.cache_following(False)
                with contextlib.suppress(Exception):
                    await consumer.stop()
            failures += 1
            await asyncio.sleep(backoff.delay(failures))

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Message | None:
        if record.value is None:
            return None
        try:
            return self._codecs[record.topic].decode(record.value)
        except MessageDecodeError as error:
            self.state.metrics.live_invalid.labels(record.topic).inc()
            log.warning("skipping %s@%d/%d: %s", record.topic, record.partition,
                        record.offset, error)  # fmt: skip
            return None

    def _handle(self, topic: str, records: list[ConsumerRecord[bytes, bytes]]) -> list[Message]:
        """Publish the records' messages on their channels; the messages."""
        self.state.metrics.live_records.labels(topic).inc(len(records))
        out = []
        for record in records:
            message = self._decode(record)
            if message is not None:
                name, data = to_channel(message)
                self.publish(name, data, record.timestamp)
                out.append(message)
        return out

    async def _cache(self, messages: list[Message]) -> None:
        cache = self.state.cache
        if cache is None:
            return
        entries: dict[str, list[Part]] = {}
        for message in messages:
            for key, part in cache_parts(message, cache.key):
                entries.setdefault(key, []).append(part)
        await cache.put(list(entries.items()))


def bar_data(bar: Bar) -> dict[str, Any]:
    data: dict[str, Any] = {"instrument": f"{bar.market}:{bar.symbol}", "tf": bar.tf,
                            "start": bar.start}  # fmt: skip
    for name in BAR_FIELDS:
        data[name] = getattr(bar, name)
    return data


def part_data(kind: str, message: SpreadUpdate | ZScoreUpdate | StatsUpdate) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": kind, "ts": message.ts, "method": message.method}
    for name in KIND_FIELDS[kind]:
        data[name] = getattr(message, name)
    return data


def scan_data(scan: ScanUpdate) -> dict[str, Any]:
    entries = sorted(scan.entries, key=lambda e: (e.y, e.x))
    cells = [
        {"y": e.y, "x": e.x, "correlation": e.correlation, "hedge_ratio": e.hedge_ratio,
         "coint_stat": e.coint_stat, "coint_pvalue": e.coint_pvalue, "nobs": e.nobs}
        for e in entries
    ]  # fmt: skip
    instruments = sorted({e.y for e in entries} | {e.x for e in entries})
    return {"tf": scan.tf, "ts": scan.ts, "window": scan.window, "instruments": instruments,
            "cells": cells}  # fmt: skip


def alert_data(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id, "event_id": alert.event_id, "rule_id": alert.rule_id,
        "rule_version": alert.rule_version, "subject": alert.subject, "tf": alert.tf,
        "method": alert.method, "severity": alert.severity, "kind": alert.kind,
        "state": alert.state, "started_ts": alert.started_ts, "ts": alert.ts_event,
        "ended_ts": None if alert.state == "firing" else alert.ts_event,
        "value": alert.value, "threshold": alert.threshold, "message": alert.message,
        "labels": dict(alert.labels),
    }  # fmt: skip


KINDS: dict[type[Message], str] = {SpreadUpdate: "spread", ZScoreUpdate: "zscore",
                                   StatsUpdate: "stats"}  # fmt: skip


def to_channel(message: Message) -> tuple[str, dict[str, Any]]:
    """The channel of a message from a topic, and what its subscribers get."""
    if isinstance(message, Bar):
        return f"bars:{message.market}:{message.symbol}:{message.tf}", bar_data(message)
    if isinstance(message, SpreadUpdate | ZScoreUpdate | StatsUpdate):
        name = f"analytics:{message.pair}:{message.tf}:{message.method}"
        return name, part_data(KINDS[type(message)], message)
    if isinstance(message, ScanUpdate):
        return f"scan:{message.tf}", scan_data(message)
    if isinstance(message, Alert):
        return "alerts", alert_data(message)
    raise TypeError(f"no channel for {type(message).__name__}")


def cache_parts(
    message: Message, key: Callable[..., str]
) -> list[tuple[str, Part]]:  # fmt: skip
    """The hot-cache parts a message updates (see :mod:`.hotcache`)."""
    if isinstance(message, Bar):
        order = bar_order(message.start, message.revision)
        entry = key("bar", f"{message.market}:{message.symbol}", message.tf)
        return [(entry, Part("bar", order, bar_data(message)))]
    if isinstance(message, SpreadUpdate | ZScoreUpdate | StatsUpdate):
        kind = KINDS[type(message)]
        entry = key("analytics", message.pair, message.tf)
        parts = [(entry, Part(f"{message.method}:{kind}", message.ts, part_data(kind, message)))]
        if isinstance(message, StatsUpdate) and message.coint_pvalue is not None:
            parts.append((entry, Part("verdict", message.ts, message.coint_pvalue < 0.05)))
        return parts
    if isinstance(message, ScanUpdate):
        return [(key("scan", message.tf), Part("scan", message.ts, scan_data(message)))]
    return []
