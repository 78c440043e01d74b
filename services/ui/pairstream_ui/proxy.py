"""``/live`` on the dashboard's own origin: a relay to the API's ``/api/v1/ws``.

The browser cannot be given the API's address as the server sees it (inside compose or
a cluster it is not the browser's), nor its key; the relay adds the key and passes text
frames both ways unchanged. When the API cannot be reached, the browser gets
``{"type": "status", "api": "down", "detail": …}`` and the socket is closed with 1013
(try again later): ``live.js`` reconnects and resubscribes, and the snapshots resync it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .config import UiSettings

log = logging.getLogger(__name__)


def api_ws_url(settings: UiSettings) -> str:
    return settings.api_url.replace("http", "ws", 1) + "/api/v1/ws"


async def relay(browser: WebSocket, settings: UiSettings) -> None:
    """Serve one browser socket until either side closes."""
    await browser.accept()
    key = settings.api_key
    headers = {} if key is None else {"Authorization": f"Bearer {key.get_secret_value()}"}
    try:
        api = await connect(api_ws_url(settings), additional_headers=headers,
                            open_timeout=settings.api_timeout_s, max_size=None,
                            ping_interval=20)  # fmt: skip
    except (OSError, TimeoutError, ConnectionClosed) as error:
        await _down_and_close(browser, f"the API's WebSocket does not answer "
                              f"({type(error).__name__})")  # fmt: skip
        return
    async with api:
        tasks = [asyncio.create_task(_down(api, browser)), asyncio.create_task(_up(browser, api))]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # which side ended it (an unexpected failure is raised here, not left in a task)
        gone_api = tasks[0] in done and tasks[0].result()
    if gone_api:
        await _down_and_close(browser, "the API closed the feed")


async def _down_and_close(browser: WebSocket, detail: str) -> None:
    """Tell the browser the feed is down, and close (it reconnects by itself)."""
    with contextlib.suppress(Exception):  # the browser may be gone already
        await browser.send_text(orjson.dumps({"type": "status", "api": "down",
                                              "detail": detail}).decode())  # fmt: skip
        await browser.close(1013, "API unavailable")


async def _down(api: ClientConnection, browser: WebSocket) -> bool:
    """API → browser, frame by frame (the API's frames are one message or an array);
    whether the API ended it (``False``: the browser went away)."""
    try:
        async for frame in api:
            await browser.send_text(frame if isinstance(frame, str) else frame.decode())
    except ConnectionClosed:
        return True
    except WebSocketDisconnect:
        return False
    return True


async def _up(browser: WebSocket, api: ClientConnection) -> None:
    """Browser → API (subscribe, unsubscribe, ping)."""
    with contextlib.suppress(WebSocketDisconnect, ConnectionClosed):
        while True:
            await api.send(await browser.receive_text())
