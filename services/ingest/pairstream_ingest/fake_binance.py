"""A local stand-in for Binance (WebSocket streams + trade-history REST), for tests and demos.

It plays recorded frames as a "market" that moves on whether or not anyone is
connected, speaks Binance's wire formats (combined ``/stream`` and raw ``/ws``
frames; SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS answers and errors; the
``aggTrades`` and ``historicalTrades`` endpoints with their parameter rules,
page limits, API-key check and ``X-MBX-USED-WEIGHT-1M`` header) and injects
faults on cue: clean close, TCP reset, a stalled socket, a server-side
(24 h-style) close, silent routes, REST errors and rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec
import orjson
from aiohttp import WSMsgType, web

Fault = Literal["close", "reset", "stall", "server_close", "close_then_silent"]
ROUTE = "/market"


class _Payload(msgspec.Struct, frozen=True):
    e: str
    s: str
    t: int
    T: int
    E: int
    p: str
    q: str
    m: bool


class _Frame(msgspec.Struct, frozen=True):
    stream: str
    data: _Payload


@dataclass(frozen=True, slots=True)
class Aggregate:
    """An aggregate trade built from consecutive recorded trades (same time, price and taker)."""

    a: int
    symbol: str
    p: str
    q: str
    f: int
    l: int  # noqa: E741 (Binance's field name)
    T: int
    E: int
    m: bool

    def rest(self) -> dict[str, Any]:
        return {"a": self.a, "p": self.p, "q": self.q, "f": self.f, "l": self.l, "T": self.T,
                "m": self.m}  # fmt: skip

    def payload(self) -> dict[str, Any]:
        return {"e": "aggTrade", "E": self.E, "s": self.symbol, **self.rest()}


def read_lines(path: Path) -> list[bytes]:
    """The frames of a ``.jsonl``/``.jsonl.gz`` recording."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return [line.rstrip(b"\r\n") for line in f if line.strip()]


def aggregate(trades: list[_Payload], first_id: int = 1_000_000) -> list[Aggregate]:
    """Binance-style aggregates of one symbol's trades (in id order)."""
    out: list[Aggregate] = []
    group: list[_Payload] = []

    def close() -> None:
        qty = sum((Decimal(t.q) for t in group), Decimal(0))
        head = group[0]
        out.append(Aggregate(first_id + len(out), head.s, head.p, format(qty.normalize(), "f"),
                             head.t, group[-1].t, head.T, group[-1].E, head.m))  # fmt: skip

    for trade in trades:
        if group and (trade.T, trade.p, trade.m) != (group[0].T, group[0].p, group[0].m):
            close()
            group = []
        group.append(trade)
    if group:
        close()
    return out


@dataclass(eq=False)
class _Client:
    ws: web.WebSocketResponse
    request: web.Request
    combined: bool
    data_route: bool
    silent: bool
    streams: set[str] = field(default_factory=set)
    stalled: bool = False
    control_times: list[float] = field(default_factory=list)


class FakeBinance:
    """Plays ``outgoing`` frames (noise included) to subscribers; REST serves ``clean`` trades.

    ``faults`` maps an index of ``outgoing`` to what happens to every connected
    client just before that frame is played.
    """

    def __init__(
        self,
        outgoing: list[bytes],
        clean: Iterable[bytes] | None = None,
        faults: dict[int, Fault] | None = None,
        batch: int = 50,
        interval_s: float = 0.005,
        silent_connections: int = 0,
        api_keys: frozenset[str] = frozenset(),
        control_limit: int = 10,
    ) -> None:
        self.outgoing = outgoing
        self.faults = dict(faults or {})
        self.batch = batch
        self.interval_s = interval_s
        self.silent_connections = silent_connections
        self.api_keys = api_keys
        self.control_limit = control_limit
        self.trades: dict[str, list[_Payload]] = defaultdict(list)
        for line in outgoing if clean is None else clean:
            frame = msgspec.json.decode(line, type=_Frame)
            self.trades[frame.data.s].append(frame.data)
        for trades in self.trades.values():
            trades.sort(key=lambda t: t.t)
        self.aggregates = {s: aggregate(t) for s, t in self.trades.items()}
        self._agg_by_last = {(a.symbol, a.l): a for aggs in self.aggregates.values() for a in aggs}
        self.emitted: dict[str, int] = {}  # symbol -> highest trade id played so far
        self.cursor = 0
        self.clients: set[_Client] = set()
        self.connections = 0
        self.rest_calls: dict[str, int] = defaultdict(int)
        self.rest_fail_next = 0
        self.rate_limit_next = 0
        self._weight_minute = 0
        self._weight = 0
        self.subscribed = asyncio.Event()
        self.finished = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._player: asyncio.Task[None] | None = None
        self.port = 0

    # ---------------------------------------------------------------- lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_get(ROUTE + "/stream", self._ws)
        app.router.add_get(ROUTE + "/ws", self._ws)
        app.router.add_get("/stream", self._ws)  # retired routes: answer, then stay silent
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/fapi/v1/aggTrades", self._agg_trades)
        app.router.add_get("/fapi/v1/historicalTrades", self._historical_trades)
        app.router.add_get("/api/v3/aggTrades", self._agg_trades)  # spot's REST paths
        app.router.add_get("/api/v3/historicalTrades", self._historical_trades)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host = host
        self.port = self._runner.addresses[0][1]

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{ROUTE}/stream"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def play(self) -> None:
        """Start the market (frames flow whether or not anyone listens)."""
        self._player = asyncio.create_task(self._play())

    async def stop(self) -> None:
        if self._player is not None:
            self._player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._player
        for client in list(self.clients):
            with contextlib.suppress(Exception):
                client.request.transport.abort()  # type: ignore[union-attr]
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBinance:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ market
    async def _play(self) -> None:
        while self.cursor < len(self.outgoing):
            end = min(self.cursor + self.batch, len(self.outgoing))
            for index in range(self.cursor, end):
                fault = self.faults.pop(index, None)
                if fault is not None:
                    await self._fault(fault)
                await self._broadcast(self.outgoing[index])
            self.cursor = end
            await asyncio.sleep(self.interval_s)
        self.finished.set()

    async def _broadcast(self, line: bytes) -> None:
        try:
            frame = msgspec.json.decode(line, type=_Frame)
        except (msgspec.DecodeError, msgspec.ValidationError):
            frame = None  # noise: sent as it is to everyone
        if frame is not None:
            symbol = frame.data.s
            self.emitted[symbol] = max(self.emitted.get(symbol, 0), frame.data.t)
            agg = self._agg_by_last.get((symbol, frame.data.t))
        for client in list(self.clients):
            if client.stalled or client.silent or client.ws.closed:
                continue
            if frame is None:
                await self._send(client, line)
                continue
            if frame.stream in client.streams:
                await self._send(client, line if client.combined else _raw_data(line))
            agg_stream = f"{frame.data.s.lower()}@aggTrade"
            if agg is not None and agg_stream in client.streams:
                payload = agg.payload()
                data = {"stream": agg_stream, "data": payload} if client.combined else payload
                await self._send(client, orjson.dumps(data))

    async def _send(self, client: _Client, data: bytes) -> None:
        try:
            await client.ws.send_str(data.decode())
        except (ConnectionError, RuntimeError):
            self.clients.discard(client)

    async def _fault(self, fault: Fault) -> None:
        if fault == "close_then_silent":
            self.silent_connections += 1  # the route goes quiet for the next connection
        for client in list(self.clients):
            if not client.data_route or client.stalled:
                continue
            if fault in ("close", "close_then_silent"):
                await client.ws.close(code=1000)
            elif fault == "server_close":
                await client.ws.close(code=1001, message=b"connection lifetime reached")
            elif fault == "reset":
                transport = client.request.transport
                assert transport is not None
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            elif fault == "stall":
                client.stalled = True
                transport = client.request.transport
                assert transport is not None
                transport.pause_reading()  # pings go unanswered too
            if fault != "stall":
                self.clients.discard(client)

    # ---------------------------------------------------------------- websocket
    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        data_route = request.path.startswith(ROUTE)
        silent = not data_route
        if data_route and self.silent_connections > 0:
            self.silent_connections -= 1
            silent = True
        client = _Client(ws, request, request.path.endswith("/stream"), data_route, silent)
        self.connections += 1
        self.clients.add(client)
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                now = asyncio.get_running_loop().time()
                client.control_times = [t for t in client.control_times if now - t < 1.0]
                client.control_times.append(now)
                if len(client.control_times) > self.control_limit:
                    await ws.close(code=1008, message=b"Too many requests")
                    break
                await ws.send_str(self._control(client, message.data))
        finally:
            self.clients.discard(client)
        return ws

    def _control(self, client: _Client, text: str) -> str:
        try:
            request = orjson.loads(text)
            method, request_id = request["method"], request.get("id")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _error(None, 3, "Invalid JSON: expected an object with `method`")
        params = request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(_valid_stream(p) for p in params):
                return _error(request_id, 2, f"Invalid request: bad stream name in {params!r}")
            if method == "SUBSCRIBE":
                client.streams.update(params)
                self.subscribed.set()
            else:
                client.streams.difference_update(params)
            return orjson.dumps({"result": None, "id": request_id}).decode()
        if method == "LIST_SUBSCRIPTIONS":
            result = sorted(client.streams)
            return orjson.dumps({"result": result, "id": request_id}).decode()
        return _error(request_id, 2, f"Invalid request: unknown variant `{method}`")

    # --------------------------------------------------------------------- rest
    def _weigh(self, weight: int) -> dict[str, str]:
        minute = int(asyncio.get_running_loop().time() // 60)
        if minute != self._weight_minute:
            self._weight_minute, self._weight = minute, 0
        self._weight += weight
        return {"X-MBX-USED-WEIGHT-1M": str(self._weight)}

    def _refuse(self) -> web.Response | None:
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            return web.json_response(
                {"code": -1003, "msg": "Too many requests; current limit is 2400 per minute."},
                status=429,
                headers={"Retry-After": "1"},
            )
        if self.rest_fail_next > 0:
            self.rest_fail_next -= 1
            return web.json_response({"code": -1001, "msg": "Internal error."}, status=503)
        return None

    async def _agg_trades(self, request: web.Request) -> web.Response:
        self.rest_calls["aggTrades"] += 1
        headers = self._weigh(20)
        refused = self._refuse()
        if refused is not None:
            return refused
        q = request.query
        symbol = q.get("symbol")
        if not symbol:
            return _bad(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or "
                        "malformed.", headers)  # fmt: skip
        try:
            limit = min(int(q.get("limit", 500)), 1000)
            from_id = int(q["fromId"]) if "fromId" in q else None
            start = int(q["startTime"]) if "startTime" in q else None
            end = int(q["endTime"]) if "endTime" in q else None
        except ValueError:
            return _bad(-1100, "Illegal characters found in a parameter.", headers)
        if from_id is not None and (start is not None or end is not None):
            return _bad(-1128, "Combination of optional parameters invalid.", headers)
        if start is not None and end is not None and end - start > 3_600_000:
            return _bad(-1127, "More than 1 hours between startTime and endTime.", headers)
        visible = [
            a for a in self.aggregates.get(symbol, []) if a.l <= self.emitted.get(symbol, -1)
        ]
        if from_id is not None:
            rows = [a for a in visible if a.a >= from_id][:limit]
        elif start is not None or end is not None:
            lo, hi = start or 0, end or 2**63
            rows = [a for a in visible if lo <= a.T <= hi][:limit]
        else:
            rows = visible[-limit:]
        return web.Response(
            body=orjson.dumps([a.rest() for a in rows]),
            content_type="application/json",
            headers=headers,
        )

    async def _historical_trades(self, request: web.Request) -> web.Response:
        self.rest_calls["historicalTrades"] += 1
        headers = self._weigh(20)
        if request.headers.get("X-MBX-APIKEY") not in self.api_keys:
            return web.json_response(
                {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
                status=401,
                headers=headers,
            )
        refused = self._refuse()
        if refused is not None:
            return refused
        q = request.query
        symbol = q.get("symbol", "")
        limit = min(int(q.get("limit", 100)), 500)
        last = self.emitted.get(symbol, -1)
        trades = [t for t in self.trades.get(symbol, []) if t.t <= last]
        if "fromId" in q:
            trades = [t for t in trades if t.t >= int(q["fromId"])][:limit]
        else:
            trades = trades[-limit:]
        rows = [
            {"id": t.t, "price": t.p, "qty": t.q,
             "quoteQty": format(Decimal(t.p) * Decimal(t.q), "f"), "time": t.T,
             "isBuyerMaker": t.m}
            for t in trades
        ]  # fmt: skip
        return web.Response(
            body=orjson.dumps(rows), content_type="application/json", headers=headers
        )


def _valid_stream(name: object) -> bool:
    if not isinstance(name, str) or "@" not in name:
        return False
    symbol, kind = name.split("@", 1)
    return symbol.isalnum() and symbol == symbol.lower() and kind in ("trade", "aggTrade")


def _raw_data(line: bytes) -> bytes:
    start = line.index(b'"data":') + len(b'"data":')
    return line[start:-1]


def _error(request_id: object, code: int, msg: str) -> str:
    return orjson.dumps({"error": {"code": code, "msg": msg}, "id": request_id}).decode()


def _bad(code: int, msg: str, headers: dict[str, str]) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=400, headers=headers)
