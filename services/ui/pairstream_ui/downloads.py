"""``/download/{bars,analytics,alerts}.csv`` on the dashboard's own origin: the API's
CSV exports streamed through (the browser may not reach the API, and the key stays on
the server), chunk by chunk, never held in memory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse

from .context import SHOWN_ERRORS, Ui, problem_text


def install(server: FastAPI, ui: Ui) -> None:
    @server.get("/download/{kind}.csv")
    async def download(kind: Literal["bars", "analytics", "alerts"], request: Request) -> Response:
        stack = contextlib.AsyncExitStack()
        try:
            answer = await stack.enter_async_context(
                ui.api.stream(f"/api/v1/export/{kind}.csv", dict(request.query_params))
            )
        except SHOWN_ERRORS as error:
            await stack.aclose()
            status = getattr(error, "status", 502)
            return PlainTextResponse(f"No CSV: {problem_text(error)}", status_code=status)

        async def body() -> AsyncIterator[bytes]:
            async with stack:
                async for chunk in answer.aiter_raw():
                    yield chunk

        headers = {"Content-Disposition": answer.headers.get(
            "content-disposition", f'attachment; filename="{kind}.csv"')}  # fmt: skip
        return StreamingResponse(body(), media_type="text/csv", headers=headers)
