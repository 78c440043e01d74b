"""Every error as ``application/problem+json`` (RFC 9457), never a stack trace.

A database that cannot be reached answers 503 (the client may retry), validation
errors 422 with each failing field, anything unexpected 500 (logged here with its
traceback, sent without it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pairstream.alerts.store import NotFoundError

log = logging.getLogger(__name__)

#: The database cannot answer now (down, restarting, overloaded, too slow): 503. Other
#: database errors are the server's fault: 500.
UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)

PROBLEM = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = PROBLEM


class ApiError(Exception):
    """An error with its status, raised by routes and dependencies."""

    def __init__(
        self, status: int, title: str, detail: str, headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:  # fmt: skip
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem(
    status: int, title: str, detail: str, instance: str, headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:  # fmt: skip
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail,
            "instance": instance, **extra}  # fmt: skip
    return ProblemResponse(body, status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header"))


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> ProblemResponse:
        return problem(
            error.status, error.title, error.detail, request.url.path, error.headers, **error.extra
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> ProblemResponse:
        errors = [
            {"field": _field(tuple(e["loc"])), "in": str(e["loc"][0]) if e["loc"] else "",
             "message": e["msg"]}
            for e in error.errors()
        ]  # fmt: skip
        detail = "; ".join(f"{e['field'] or e['in']}: {e['message']}" for e in errors)
        return problem(422, "Invalid request", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> ProblemResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(error.status_code, "Error")
        return problem(
            error.status_code, title, str(error.detail), request.url.path,
            dict(error.headers or {}),
        )  # fmt: skip

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> ProblemResponse:
        return problem(404, "Not found", str(error).strip("'\""), request.url.path)

    async def unavailable(request: Request, error: Exception) -> ProblemResponse:
        log.warning("%s %s: database unavailable: %r", request.method, request.url.path, error)
        return problem(
            503, "Database unavailable", "PostgreSQL did not answer; retry shortly.",
            request.url.path, {"Retry-After": "1"},
        )  # fmt: skip

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> ProblemResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem(500, "Internal error", "The server failed; it has been logged.",
                       request.url.path)  # fmt: skip
