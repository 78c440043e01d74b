"""``/api/v1/ws``: one WebSocket for every live channel (see :mod:`..live`).

Client → server (JSON text frames)::

    {"op": "subscribe", "channels": ["bars:usdm:BTCUSDT:1s", "analytics:BTCUSDT-ETHUSDT:1s:ols"],
     "snapshot": 300}
    {"op": "unsubscribe", "channels": ["scan:1m"]}
    {"op": "ping"}

Server → client: ``hello`` (with the Kafka status), per channel ``subscribed`` then
``snapshot`` (``seq``: the channel's sequence number it is current to; ``data``: the last
points, oldest first), ``update`` (``seq`` contiguous per channel, ``kafka_ts``, ``data``),
``dropped`` (``count`` messages lost since the last notice: resubscribe to resync),
``status`` (``kafka``: ``up`` or ``down``), ``heartbeat``, ``pong``, ``error``. A frame
holds one message (a JSON object) or, when several are waiting for the client, a JSON
array of them in order (one frame per burst instead of one per message).

Auth: ``Authorization: Bearer``, ``X-API-Key`` or ``?api_key=`` (browsers cannot set
headers on a WebSocket); without a key only while reads are open. Refusals are an
``error`` then close codes 4401 (no or bad key), 4429 (rate limit), 4503 (database down);
a client slower than ``API_WS_SEND_TIMEOUT_S`` to take a message is closed with 4408.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..errors import UNAVAILABLE
from ..keys import key_id_of
from ..live import Client, LiveHub, dumps
from ..ratelimit import identity_of
from ..snapshots import history
from ..state import ApiState
from . import PREFIX

log = logging.getLogger(__name__)

router = APIRouter(prefix=PREFIX, tags=["live"])

SNAPSHOT_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 1.0
BATCH = 500  # messages at most in one frame


class RefusedError(Exception):
    def __init__(self, code: int, status: int, detail: str) -> None:
        super().__init__(detail)
        self.code, self.status, self.detail = code, status, detail


async def _admit(websocket: WebSocket, state: ApiState) -> None:
    """Rate limit and key check of a connection; :class:`RefusedError` says why not."""
    auth = websocket.headers.get("authorization") or ""
    token = (
        auth[7:].strip() if auth[:7].lower() == "bearer " else None
    ) or websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")  # fmt: skip
    if state.limiter is not None:
        key_id = None if token is None else key_id_of(token)
        client = websocket.client.host if websocket.client is not None else "unknown"
        wait = await state.limiter.hit(identity_of(key_id, client))
        if wait:
            raise RefusedError(
                4429, 429, f"over {state.settings.rate_limit}; retry in {wait:.0f} s"
            )
    if not token:
        if not state.settings.open_reads:
            raise RefusedError(4401, 401, "this API needs a key (API_OPEN_READS is off)")
        return
    try:
        key = await state.keys.check(state.db_pool(), token)
    except UNAVAILABLE as error:
        detail = f"cannot check the key: the database is unavailable ({error!r})"
        raise RefusedError(4503, 503, detail) from None
    if key is None:
        raise RefusedError(4401, 401, "unknown or revoked API key")


@router.websocket("/ws", name="live")
async def live(websocket: WebSocket) -> None:
    """Live bars, analytics, scans and alerts by channel (protocol in the module doc)."""
    state: ApiState = websocket.app.state.api
    hub = state.hub
    await websocket.accept()
    if hub is None:
        await _refuse(websocket, RefusedError(4503, 503, "the live feed is not running"))
        return
    try:
        await _admit(websocket, state)
    except RefusedError as refused:
        await _refuse(websocket, refused)
        return
    s = state.settings
    client = Client(s.ws_queue, state.metrics.ws_dropped.inc, state.clock.monotonic())
    hub.add(client)
    client.push(dumps({"type": "hello", "heartbeat_s": s.ws_heartbeat_s,
                       "kafka": hub.status()["kafka"]}))  # fmt: skip
    try:
        async with asyncio.TaskGroup() as tasks:
            client.sender = tasks.create_task(_send(websocket, client, state))
            await _receive(websocket, client, hub, state)
            client.sender.cancel()
    except* WebSocketDisconnect:
        pass
    except* _TooSlowError:
        hub.remove(client)
        state.metrics.ws_disconnected.labels("slow").inc()
        await _close(websocket, 4408, "too slow to take messages")
    finally:
        hub.remove(client)


class _TooSlowError(Exception):
    pass


async def _refuse(websocket: WebSocket, refused: RefusedError) -> None:
    state: ApiState = websocket.app.state.api
    state.metrics.ws_disconnected.labels(str(refused.status)).inc()
    try:
        await websocket.send_text(
            dumps({"type": "error", "status": refused.status, "detail": refused.detail})
        )
    except Exception:  # the peer is gone already: nothing to tell
        return
    await _close(websocket, refused.code, refused.detail[:120])


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Send a close frame, unless the peer does not take it within a second (a stuck
    client): then the server closes its socket once what is buffered is sent."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason)
    except Exception as error:  # the peer is gone, or does not read
        log.debug("closing a WebSocket: %r", error)


async def _send(websocket: WebSocket, client: Client, state: ApiState) -> None:
    """Send what is queued, as it comes (heartbeats and the send timeout are the hub's
    keeper's: no timer per frame)."""
    sent, clock = state.metrics.ws_sent, state.clock
    while True:
        if not client.queue and not client.dropped:
            await client.wake.wait()
        client.wake.clear()
        if client.dropped:
            client.queue.appendleft(dumps({"type": "dropped", "count": client.dropped}))
            client.dropped = 0
        while client.queue:
            n = min(len(client.queue), BATCH)
            batch = [client.queue.popleft() for _ in range(n)]
            client.sending_since = clock.monotonic()
            try:
                await websocket.send_text(batch[0] if n == 1 else f"[{','.join(batch)}]")
            except asyncio.CancelledError:
                if client.too_slow:
                    raise _TooSlowError from None
                raise
            client.last_sent, client.sending_since = client.sending_since, None
            sent.inc(n)


def _error(client: Client, detail: str, **about: Any) -> None:
    client.push(dumps({"type": "error", **about, "detail": detail}))


async def _receive(websocket: WebSocket, client: Client, hub: LiveHub, state: ApiState) -> None:
    while True:
        try:
            request = orjson.loads(await websocket.receive_text())
        except orjson.JSONDecodeError as error:
            _error(client, f"not JSON: {error}")
            continue
        except KeyError:  # a binary frame
            _error(client, "send JSON text frames")
            continue
        op = request.get("op") if isinstance(request, dict) else None
        if op == "ping":
            client.push(dumps({"type": "pong", "ts": state.clock.now_ms()}))
            continue
        if op not in ("subscribe", "unsubscribe"):
            _error(client, "`op` must be subscribe, unsubscribe or ping")
            continue
        channels = request.get("channels")
        n = request.get("snapshot", state.settings.ws_snapshot)
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            _error(client, "`channels` must be a list of channel names", op=op)
        elif type(n) is not int or not 0 <= n <= 10_000:
            _error(client, "`snapshot` must be an integer in [0, 10000]", op=op)
        elif op == "subscribe":
            await _subscribe(client, hub, state, channels, n)
        else:
            for text in channels:
                try:
                    hub.unsubscribe(client, hub.canonical(text))
                except ValueError as error:
                    _error(client, str(error), channel=text)


async def _subscribe(
    client: Client, hub: LiveHub, state: ApiState, channels: list[str], n: int
) -> None:
    for text in channels:
        try:
            name = hub.canonical(text)
        except ValueError as error:
            _error(client, str(error), channel=text)
            continue
        if name not in client.channels and len(client.channels) >= state.settings.ws_max_channels:
            limit = state.settings.ws_max_channels
            _error(client, f"over {limit} channels (API_WS_MAX_CHANNELS)", channel=name)
            continue
        seq, recent = hub.subscribe(client, name)
        client.push(dumps({"type": "subscribed", "channel": name, "seq": seq}))
        snapshot: dict[str, Any] = {"type": "snapshot", "channel": name, "seq": seq}
        try:
            async with asyncio.timeout(SNAPSHOT_TIMEOUT_S):
                pool = state.db_pool()
                async with pool.acquire(timeout=state.settings.db_timeout_s) as conn:
                    snapshot["data"] = await history(state, conn, name, n, recent)  # type: ignore[arg-type]
            snapshot["complete"] = True
        except UNAVAILABLE as error:
            log.warning("no snapshot of %s: %r", name, error)
            snapshot["data"] = []
            snapshot["complete"] = False
            snapshot["detail"] = f"the database is unavailable ({type(error).__name__})"
        client.release(name, dumps(snapshot))
