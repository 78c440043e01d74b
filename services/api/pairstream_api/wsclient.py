"""A client of ``/api/v1/ws`` (the tests' and ``pairstream bench api``'s): it reads every
message into a list in the background and checks each channel's sequence numbers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.uri import parse_uri


class LiveClient:
    """``async with LiveClient(url) as live``: ``messages`` grows as they arrive (frames
    of one message or an array of them; each
    with ``_received``, ``time.time()`` in ms when read); ``gaps`` counts sequence numbers
    that did not follow the previous one of their channel (a snapshot sets the start)."""

    def __init__(self, url: str, *, token: str | None = None, max_queue: int = 4096) -> None:
        self.url = url
        self.token = token
        self.max_queue = max_queue
        self.messages: list[dict[str, Any]] = []
        self.seq: dict[str, int] = {}
        self.gaps = 0
        self.closed: tuple[int | None, str] | None = None
        self.connection: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        headers = {} if self.token is None else {"Authorization": f"Bearer {self.token}"}
        self.connection = await connect(
            self.url, additional_headers=headers, max_queue=self.max_queue, max_size=None,
            open_timeout=10, ping_interval=None,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.connection is not None:
            await self.connection.close()

    async def _read(self) -> None:
        assert self.connection is not None
        try:
            async for frame in self.connection:
                decoded = orjson.loads(frame)
                received = time.time() * 1000
                for message in decoded if isinstance(decoded, list) else (decoded,):
                    message["_received"] = received
                    kind, channel = message.get("type"), message.get("channel")
                    if kind == "snapshot":
                        self.seq[channel] = message["seq"]
                    elif kind == "update":
                        if message["seq"] != self.seq.get(channel, message["seq"] - 1) + 1:
                            self.gaps += 1
                        self.seq[channel] = message["seq"]
                    self.messages.append(message)
        except Exception:  # the server closed: kept in `closed`
            pass
        self.closed = (self.connection.close_code, self.connection.close_reason or "")

    async def send(self, **request: Any) -> None:
        assert self.connection is not None
        await self.connection.send(orjson.dumps(request).decode())

    async def subscribe(self, *channels: str, snapshot: int | None = None) -> None:
        extra = {} if snapshot is None else {"snapshot": snapshot}
        await self.send(op="subscribe", channels=list(channels), **extra)

    def of(self, kind: str, channel: str | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.messages
            if m.get("type") == kind and (channel is None or m.get("channel") == channel)
        ]  # fmt: skip

    async def wait(
        self, check: Callable[[LiveClient], object], timeout: float = 20.0
    ) -> None:  # fmt: skip
        """Until ``check(self)`` is true (``TimeoutError`` after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while not check(self):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {timeout} s; last: {self.messages[-3:]}")
            await asyncio.sleep(0.01)


class StuckClient:
    """A WebSocket client that subscribes, then stops reading: a raw socket with a 4 kB
    receive buffer and reading paused, so the server's sends block as they would for a
    frozen browser tab. ``drain()`` reads what the server sent after all."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.protocol = ClientProtocol(parse_uri(url))

    async def __aenter__(self) -> StuckClient:
        parts = urlsplit(self.url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock)
        self.protocol.send_request(self.protocol.connect())
        self._flush()
        while self.protocol.state is not State.OPEN:
            self.protocol.receive_data(await self.reader.read(65536))
        return self

    def _flush(self) -> None:
        self.writer.write(b"".join(self.protocol.data_to_send()))

    async def subscribe(self, *channels: str) -> None:
        self.protocol.send_text(orjson.dumps({"op": "subscribe", "channels": list(channels),
                                              "snapshot": 0}))  # fmt: skip
        self._flush()
        await self.writer.drain()
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]

    async def drain(self) -> list[Frame]:
        """Every frame the server sent, up to its close."""
        self.writer.transport.resume_reading()  # type: ignore[attr-defined]
        while data := await self.reader.read(65536):
            self.protocol.receive_data(data)
        return [e for e in self.protocol.events_received() if isinstance(e, Frame)]

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
