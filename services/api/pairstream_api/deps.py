"""``Annotated[…, Depends()]`` aliases the routes take: state, a database connection,
the caller's API key (read or write access).

Each dependency takes the request itself rather than other dependencies: FastAPI solves
every nested dependency anew per request (about 25 µs each), which made the key check
and rate limit cost more than a cached snapshot; the rate limit is part of the key
check. The OpenAPI security schemes the ``Security()`` helpers would declare are added
by :mod:`.openapi` instead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

import asyncpg
from fastapi import Depends, Request

from .errors import ApiError
from .keys import ApiKey, key_id_of
from .ratelimit import identity_of
from .state import ApiState


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def get_state(request: Request) -> ApiState:
    """The app's state (async: FastAPI runs a plain ``def`` dependency in a thread)."""
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]


async def get_conn(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; waiting longer than ``API_DB_TIMEOUT_S`` answers 503."""
    state: ApiState = request.app.state.api
    async with state.db_pool().acquire(timeout=state.settings.db_timeout_s) as conn:
        yield cast(asyncpg.Connection, conn)  # a pool's proxy of one


Conn = Annotated[asyncpg.Connection, Depends(get_conn)]


async def _current_key(request: Request, state: ApiState) -> ApiKey | None:
    """The caller's key (None without one); an unknown or revoked key is a 401."""
    token = _token(request)
    if token is None:
        return None
    key = await state.keys.check(state.db_pool(), token)
    if key is None:
        raise unauthorized("unknown or revoked API key")
    return key


async def read_access(request: Request) -> ApiKey | None:
    """The caller's key, when reads need one (``API_OPEN_READS`` off) or it gave one;
    rate limited first."""
    state = request.app.state.api
    await _rate_limit(request, state)
    key = await _current_key(request, state)
    if key is None and not state.settings.open_reads:
        raise unauthorized("reads need an API key here (API_OPEN_READS is off)")
    return key


async def write_access(request: Request) -> ApiKey:
    """The caller's key, which must have scope ``write``; rate limited first."""
    state = request.app.state.api
    await _rate_limit(request, state)
    key = await _current_key(request, state)
    if key is None:
        raise unauthorized("writes need an API key with scope write")
    if not key.can_write:
        raise ApiError(403, "Forbidden", f"API key {key.id} has scope read; writes need write")
    return key


async def _rate_limit(request: Request, state: ApiState) -> None:
    """429 with ``Retry-After`` beyond ``API_RATE_LIMIT`` per key (or client address),
    counted before the key is checked, so unknown keys are limited too. Part of the key
    dependencies, not one of its own: every route takes one of them (a test checks)."""
    if state.limiter is None:
        return
    token = _token(request)
    key_id = None if token is None else key_id_of(token)
    client = request.client.host if request.client is not None else "unknown"
    wait = await state.limiter.hit(identity_of(key_id, client))
    if wait:
        state.metrics.limited.inc()
        who = f"API key {key_id}" if key_id is not None else f"client {client}"
        raise ApiError(
            429, "Too many requests",
            f"{who} is over {state.settings.rate_limit}; retry in {wait:.0f} s",
            headers={"Retry-After": str(int(wait))},
        )  # fmt: skip


def _token(request: Request) -> str | None:
    """``Authorization: Bearer …`` or else ``X-API-Key``."""
    auth = request.headers.get("authorization")
    if auth is not None and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


ReadKey = Annotated[ApiKey | None, Depends(read_access)]
WriteKey = Annotated[ApiKey, Depends(write_access)]
