"""Every error as ``application/problem+json`` (RFC 9457), never a stack trace.

A database that cannot be reached answers 503 (the client may retry), validation
errors 422 with each failing field, anything unexpected 500 (logged here with its
traceback, sent without it).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
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


class Problem(BaseModel):
    """An error (RFC 9457); validation errors also list each failing field."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    errors: list[dict[str, str]] | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting these error statuses as problem+json."""
    text = {400: "The body is not valid JSON.", 401: "No API key, or an unknown or revoked one.",
            403: "The key may not write.",
            404: "No such resource.", 409: "It exists already.", 413: "The body is too large.",
            422: "Invalid parameters or body; each failing field is named.",
            429: "Over the rate limit; see Retry-After.",
            503: "PostgreSQL did not answer; see Retry-After."}  # fmt: skip
    schema = {"$ref": "#/components/schemas/Problem"}
    return {
        s: {"description": text.get(s, "Error."), "model": Problem,
            "content": {PROBLEM: {"schema": schema}}}
        for s in statuses
    }  # fmt: skip


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


def invalid_fields(errors: Sequence[Mapping[str, Any]], where: str | None = None) -> ApiError:
    """A 422 naming each failing field of pydantic ``errors``; ``where`` (``body``) for
    errors of a model validated by hand, whose locations do not start with it."""
    fields = []
    for e in errors:
        loc = tuple(e["loc"]) if where is None else (where, *e["loc"])
        fields.append({"field": _field(loc), "in": str(loc[0]) if loc else "",
                       "message": e["msg"]})  # fmt: skip
    detail = "; ".join(f"{f['field'] or f['in']}: {f['message']}" for f in fields)
    return ApiError(422, "Invalid request", detail, errors=fields)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for ``path``."""
    found: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            found |= {m.upper() for m in operations}
    return sorted(found)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> ProblemResponse:
        return problem(
            error.status, error.title, error.detail, request.url.path, error.headers, **error.extra
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> ProblemResponse:
        return await api_error(request, invalid_fields(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> ProblemResponse:
        title = {
            400: "Bad request",
            404: "Not found",
            405: "Method not allowed",
            413: "Request too large",
        }.get(error.status_code, "Error")
        headers = dict(error.headers or {})
        if error.status_code == 405:  # every method of the path, not just the first route's
            headers["Allow"] = ", ".join(allowed_methods(app, request.url.path))
        return problem(error.status_code, title, str(error.detail), request.url.path, headers)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, error: NotFoundError) -> ProblemResponse:
        return problem(404, "Not found", str(error), request.url.path)

    async def unavailable(request: Request, error: Exception) -> ProblemResponse:
        log.warning("%s %s: database unavailable: %r", request.method, request.url.path, error)
        return problem(
            503, "Database unavailable", "PostgreSQL did not answer; retry shortly.",
            request.url.path, {"Retry-After": "1"},
        )  # fmt: skip

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)

    @app.exception_handler(asyncpg.DataError)
    async def unstorable(request: Request, error: asyncpg.DataError) -> ProblemResponse:
        # class 22 (data exception): a value the database refuses, e.g. a NUL character
        return problem(
            422, "Invalid request", f"a value the database cannot take: {error}",
            request.url.path,
        )  # fmt: skip

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> ProblemResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return problem(500, "Internal error", "The server failed; it has been logged.",
                       request.url.path)  # fmt: skip
