"""``/download/{bars,analytics,alerts}.csv`` on the dashboard's own origin: the API's
CSV exports streamed through (the browser may not reach the API, and the key stays on
the server), chunk by chunk, never held in memory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .context import SHOWN_ERRORS, Ui, problem_text

#: what an export takes: anything else is not passed on
PARAMS = {"bars": ("instrument", "tf", "start", "end"),
          "analytics": ("pair", "tf", "method", "start", "end"),
          "alerts": ("start", "end", "rule", "subject")}  # fmt: skip


class _Relayed(StreamingResponse):
    """A streamed body whose upstream answer is closed however the download ends (done,
    failed, or the browser gone before or during it)."""

    def __init__(self, body: AsyncIterator[bytes], close: Callable[[], Awaitable[None]],
                 **kwargs: object) -> None:  # fmt: skip
        super().__init__(body, **kwargs)  # type: ignore[arg-type]
        self._close = close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._close()


def install(server: FastAPI, ui: Ui) -> None:
    @server.get("/download/{kind}.csv")
    async def download(kind: Literal["bars", "analytics", "alerts"], request: Request) -> Response:
        stack = contextlib.AsyncExitStack()
        params = {k: v for k, v in request.query_params.items() if k in PARAMS[kind]}
        try:
            answer = await stack.enter_async_context(
                ui.api.stream(f"/api/v1/export/{kind}.csv", params)
            )
        except SHOWN_ERRORS as error:
            await stack.aclose()
            status = getattr(error, "status", 502)
            return PlainTextResponse(f"No CSV: {problem_text(error)}", status_code=status)

        headers = {"Content-Disposition": answer.headers.get(
            "content-disposition", f'attachment; filename="{kind}.csv"')}  # fmt: skip
        return _Relayed(answer.aiter_bytes(), stack.aclose, media_type="text/csv",
                        headers=headers)  # fmt: skip
