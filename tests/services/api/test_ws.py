"""The WebSocket and the hot cache over real connections: snapshots equal to PostgreSQL,
live messages from Kafka in order with contiguous sequence numbers, a client that stops
reading losing its oldest messages (told) without holding up the others, resync on
reconnect, auth, bad requests, and ``…/latest`` answered from Redis."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from websockets.frames import Opcode

from pairstream.kafka import MessageProducer
from pairstream.messages import Bar, SpreadUpdate
from pairstream.testing import eventually
from pairstream_api.metrics import cache_hits
from pairstream_api.wsclient import LiveClient, StuckClient

from ..conftest import PAIR, Server, Stocked

BARS = "bars:usdm:BTCUSDT:1s"
OLS = f"analytics:{PAIR}:1s:ols"


def ws_url(server: Server, **query: str) -> str:
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    return server.url.replace("http://", "ws://") + "/api/v1/ws" + (f"?{extra}" if extra else "")


class Market:
    """New 1s bars of BTCUSDT after the recorded ones, and spreads of the pair, sent to the
    stocked topics (nothing stores them: only the API's live consumer sees them)."""

    def __init__(self, stocked: Stocked, producer: MessageProducer, offset_s: int) -> None:
        self.stocked = stocked
        self.producer = producer
        self.last = [b for b in stocked.bars if b.symbol == "BTCUSDT"][-1]
        self.next_start = self.last.start + offset_s * 1000

    def bar(self) -> Bar:
        """The next bar (not sent)."""
        close = self.last.close + (self.next_start // 1000 % 7) * 0.5
        bar = msgspec.structs.replace(
            self.last, start=self.next_start, close=close, high=max(self.last.high, close),
            ts_event=self.next_start + 999, ts_init=self.next_start + 1_000,
        )  # fmt: skip
        self.next_start += 1000
        return bar

    async def bars(self, n: int) -> list[Bar]:
        """``n`` next bars, sent in flushes of 100."""
        sent = []
        for _ in range(n):
            bar = self.bar()
            sent.append(bar)
            await self.producer.send(self.stocked.topics.bars("1s"), bar)
            if len(sent) % 100 == 0:  # a paced stream, not one burst
                await self.producer.flush()
        await self.producer.flush()
        return sent

    async def spread(self, ts: int, value: float) -> SpreadUpdate:
        update = SpreadUpdate(
            pair=PAIR, tf="1s", ts=ts, method="ols", hedge_ratio=20.0, intercept=1.0,
            spread=value, ts_event=ts, ts_init=ts,
        )  # fmt: skip
        await self.producer.send(self.stocked.topics.spread, update)
        await self.producer.flush()
        return update


async def following(live: LiveClient, market: Market) -> None:
    """Send bars until one reaches ``live`` (the consumer starts at the end of the topics)."""
    for _ in range(60):
        await market.bars(1)
        try:
            await live.wait(lambda c: c.of("update", BARS), timeout=0.5)
            return
        except TimeoutError:
            continue
    raise AssertionError("the live consumer never delivered")


async def test_snapshot_equals_postgres_then_live_bars_arrive_in_order_with_contiguous_seq(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    async with api() as server, server.client() as http, MessageProducer(stocked.kafka) as p:
        market = Market(stocked, p, offset_s=1_000)
        async with LiveClient(ws_url(server)) as live:
            await live.subscribe(BARS, OLS, snapshot=50)
            await live.wait(lambda c: len(c.of("snapshot")) == 2)
            stored = (await http.get("/api/v1/bars/BTCUSDT", params={
                "tf": "1s", "start": str(market.last.start - 49_000)})).json()["items"]  # fmt: skip
            points = (await http.get(f"/api/v1/analytics/{PAIR}", params={
                "tf": "1s", "start": "0", "limit": "10000"})).json()["items"]  # fmt: skip
            bars_snapshot = live.of("snapshot", BARS)[0]
            assert bars_snapshot["complete"] is True
            assert bars_snapshot["data"] == stored
            assert live.of("snapshot", OLS)[0]["data"] == points[-50:]
            hello = live.of("hello")[0]
            assert hello["kafka"] in ("up", "unknown")

            await following(live, market)
            sent = await market.bars(40)
            await live.wait(lambda c: c.of("update", BARS)[-1]["data"]["start"] == sent[-1].start)
            updates = live.of("update", BARS)
            tail = [u["data"] for u in updates[-40:]]
            assert [d["start"] for d in tail] == [b.start for b in sent]
            assert [d["close"] for d in tail] == [b.close for b in sent]
            seqs = [u["seq"] for u in updates]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert live.gaps == 0
            assert all(u["kafka_ts"] > 0 for u in updates)

        # a reconnecting client resyncs: its snapshot holds what it missed, from the
        # consumer's recent messages (PostgreSQL never stored these bars)
        missed = await market.bars(5)
        async with LiveClient(ws_url(server)) as again:
            await again.wait(lambda c: c.of("hello"))
            await again.subscribe(BARS, snapshot=10)
            await again.wait(lambda c: c.of("snapshot"))
            snap = again.of("snapshot")[0]
            assert [d["start"] for d in snap["data"][-5:]] == [b.start for b in missed]
            more = await market.bars(3)
            await again.wait(lambda c: len(c.of("update", BARS)) >= 3)
            assert [u["seq"] for u in again.of("update", BARS)][:3] == [
                snap["seq"] + 1, snap["seq"] + 2, snap["seq"] + 3]  # fmt: skip
            assert [u["data"]["start"] for u in again.of("update", BARS)][:3] == [
                b.start for b in more]  # fmt: skip


async def test_a_client_that_stops_reading_loses_its_oldest_messages_and_others_get_all(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    async with (
        api(ws_queue=1_000, ws_send_timeout_s=3) as server,
        MessageProducer(stocked.kafka) as producer,
    ):
        market = Market(stocked, producer, offset_s=100_000)
        async with LiveClient(ws_url(server)) as healthy, StuckClient(ws_url(server)) as stuck:
            await stuck.subscribe(BARS)
            await healthy.subscribe(BARS, snapshot=0)
            await following(healthy, market)
            # about 350 bytes per message: more than the server's socket buffer (4 MB at most)
            sent = await market.bars(15_000)
            await healthy.wait(
                lambda c: c.of("update", BARS)[-1]["data"]["start"] == sent[-1].start, 60
            )
            assert healthy.gaps == 0
            assert not healthy.of("dropped")
            got = [u["data"]["start"] for u in healthy.of("update", BARS)]
            assert got[-15_000:] == [b.start for b in sent]
            # the stuck client lost messages, then was disconnected for not reading
            state = server.app.state.api
            assert state.metrics.ws_dropped._value.get() > 0

            def disconnected() -> bool:
                return bool(state.metrics.ws_disconnected.labels("slow")._value.get() >= 1)

            await healthy.wait(lambda _: disconnected(), timeout=30)
            assert len(state.hub.clients) == 1
            frames = await stuck.drain()
            texts = []
            for f in frames:
                if f.opcode is Opcode.TEXT:
                    decoded = orjson.loads(f.data)
                    texts += decoded if isinstance(decoded, list) else [decoded]
            assert texts[0]["type"] == "hello"
            if frames[-1].opcode is Opcode.CLOSE:  # else the server closed its socket
                assert frames[-1].data[:2] == (4408).to_bytes(2, "big")
            # it got what fitted in the socket buffers, in order, and was then cut off
            seqs = [t["seq"] for t in texts if t["type"] == "update"]
            assert 0 < len(seqs) < 15_000
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_a_client_behind_a_burst_is_told_what_it_lost_and_sees_the_gap_in_seq(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    async with (
        api(ws_queue=20) as server,
        MessageProducer(stocked.kafka) as producer,
        LiveClient(ws_url(server)) as live,
    ):  # fmt: skip
        market = Market(stocked, producer, offset_s=150_000)
        await live.subscribe(BARS, snapshot=0)
        await following(live, market)
        before = len(live.of("update", BARS))
        last = live.of("update", BARS)[-1]["seq"]
        sent = []
        for _ in range(2_000):  # one burst: one flush, fetched in large batches
            sent.append(market.bar())
            await producer.send(stocked.topics.bars("1s"), sent[-1])
        await producer.flush()
        await live.wait(lambda c: c.of("update", BARS)[-1]["data"]["start"] == sent[-1].start)
        got = live.of("update", BARS)[before:]
        lost = sum(m["count"] for m in live.of("dropped"))
        assert lost > 0
        assert live.gaps > 0
        assert len(got) + lost == len(sent)  # every message either arrived or was counted
        assert got[-1]["seq"] == last + len(sent)
        assert [g["data"]["start"] for g in got] == sorted(g["data"]["start"] for g in got)


async def test_bad_requests_get_errors_and_the_connection_stays_usable(
    api: Callable[..., Any],
) -> None:
    async with api() as server, LiveClient(ws_url(server)) as live:
        await live.wait(lambda c: c.of("hello"))
        assert live.connection is not None
        await live.connection.send("not json")
        await live.send(op="dance")
        await live.send(op="subscribe", channels="bars")
        await live.send(op="subscribe", channels=[BARS], snapshot=-1)
        await live.subscribe("bars:usdm:BTCUSDT:7s", "analytics:BTCUSDT-XRPUSDT:1s:ols",
                             f"analytics:{PAIR}:1s:huber", "weather")  # fmt: skip
        await live.send(op="ping")
        await live.wait(lambda c: c.of("pong"))
        details = [e["detail"] for e in live.of("error")]
        assert len(details) == 8, details
        assert details[0].startswith("not JSON")
        assert "`op` must be" in details[1]
        assert "`channels` must be a list" in details[2]
        assert "`snapshot` must be an integer" in details[3]
        assert "no bars of timeframe '7s'" in details[4]
        assert "usdm:BTCUSDT-usdm:XRPUSDT is not an analysed pair" in details[5]
        assert "no method 'huber'" in details[6]
        assert "unknown channel 'weather'" in details[7]
        await live.subscribe("alerts", "scan:1s", snapshot=5)
        await live.wait(lambda c: len(c.of("snapshot")) == 2)
        assert [s["channel"] for s in live.of("snapshot")] == ["alerts", "scan:1s"]


async def test_an_idle_connection_gets_heartbeats_and_a_busy_one_does_not(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    async with (
        api(ws_heartbeat_s=1.5) as server, MessageProducer(stocked.kafka) as producer,
        LiveClient(ws_url(server)) as idle, LiveClient(ws_url(server)) as busy,
    ):  # fmt: skip
        market = Market(stocked, producer, offset_s=300_000)
        await busy.subscribe(BARS, snapshot=0)
        await following(busy, market)
        mark = len(busy.messages)
        for _ in range(50):  # a bar every 0.1 s for 5 s
            await market.bars(1)
            await asyncio.sleep(0.1)
        await idle.wait(lambda c: len(c.of("heartbeat")) >= 3, timeout=10)
        beats = [m["_received"] for m in idle.of("heartbeat")]
        assert all(b - a >= 1_200 for a, b in itertools.pairwise(beats))  # 1.5 s, about
        assert idle.of("hello")[0]["heartbeat_s"] == 1.5
        assert not [m for m in busy.messages[mark:] if m["type"] == "heartbeat"]


async def test_the_socket_needs_a_key_when_reads_are_closed(
    api: Callable[..., Any], keys: dict[str, str]
) -> None:
    async with api(open_reads=False) as server:
        async with LiveClient(ws_url(server)) as anonymous:
            await anonymous.wait(lambda c: c.closed is not None)
        assert anonymous.of("error")[0]["status"] == 401
        assert anonymous.closed == (4401, "this API needs a key (API_OPEN_READS is off)")
        async with LiveClient(ws_url(server, api_key="ps_000000000000_nope")) as wrong:
            await wrong.wait(lambda c: c.closed is not None)
        assert wrong.closed is not None
        assert wrong.closed[0] == 4401
        for live in (LiveClient(ws_url(server), token=keys["read"]),
                     LiveClient(ws_url(server, api_key=keys["read"]))):  # fmt: skip
            async with live:
                await live.subscribe(BARS, snapshot=1)
                await live.wait(lambda c: c.of("snapshot"))
                assert live.closed is None


async def test_latest_is_answered_from_the_hot_cache_and_kept_by_the_live_consumer(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    path = f"/api/v1/analytics/{PAIR}/latest"
    async with (
        api() as server, server.client() as http, MessageProducer(stocked.kafka) as producer,
        LiveClient(ws_url(server)) as live,
    ):  # fmt: skip
        state = server.app.state.api
        market = Market(stocked, producer, offset_s=200_000)
        await live.subscribe(BARS, OLS, snapshot=0)
        await following(live, market)
        first = (await http.get(path, params={"tf": "1s"})).json()  # from PostgreSQL, seeded
        second = (await http.get(path, params={"tf": "1s"})).json()
        assert second == first
        assert cache_hits(state.metrics) >= 1
        assert first["cointegrated"] is not None

        ts = first["methods"]["ols"]["ts"] + 500_000
        await market.spread(ts, 4.5)
        await live.wait(lambda c: c.of("update", OLS))
        assert live.of("update", OLS)[-1]["data"] == {
            "kind": "spread", "ts": ts, "method": "ols", "hedge_ratio": 20.0, "intercept": 1.0,
            "spread": 4.5}  # fmt: skip

        async def newest() -> dict[str, Any] | None:  # the cache is written after the WS
            body: dict[str, Any] = (await http.get(path, params={"tf": "1s"})).json()
            return body if body["methods"]["ols"]["ts"] == ts else None

        now = await eventually(newest, timeout=10)
        ols = now["methods"]["ols"]
        assert (ols["ts"], ols["spread"], ols["zscore"]) == (ts, 4.5, None)
        assert now["methods"]["kalman"] == first["methods"]["kalman"]
        assert now["cointegrated"] == first["cointegrated"]

        # bars sent before the cache was first trusted were emptied with it; a new one is kept
        (bar,) = await market.bars(1)

        async def newest_bar() -> bool:
            got = await http.get("/api/v1/bars/BTCUSDT/latest", params={"tf": "1s"})
            return bool(got.json()["start"] == bar.start)  # never stored in PostgreSQL

        await eventually(newest_bar, timeout=10)
        missing = await http.get("/api/v1/bars/BTCUSDT/latest", params={"tf": "1m"})
        assert missing.status_code == 404
        assert "no 1m bars of usdm:BTCUSDT" in missing.json()["detail"]
