"""PostgreSQL/TimescaleDB access: connections bound to pairstream's schema, and migrations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg

from pairstream.infra import resolve_endpoint
from pairstream.settings import DatabaseSettings


def database_url(settings: DatabaseSettings | None = None) -> str:
    """``DATABASE_URL``, else the embedded server of ``pairstream infra up``."""
    settings = settings or DatabaseSettings()
    return settings.url or resolve_endpoint("postgres")


def _server_settings(settings: DatabaseSettings) -> dict[str, str]:
    return {"search_path": f"{settings.schema_name}, public", "timezone": "UTC"}


async def connect(settings: DatabaseSettings | None = None, **kwargs: Any) -> asyncpg.Connection:
    """One connection whose ``search_path`` is pairstream's schema."""
    settings = settings or DatabaseSettings()
    return await asyncpg.connect(
        database_url(settings), server_settings=_server_settings(settings), **kwargs
    )


@asynccontextmanager
async def connection(
    settings: DatabaseSettings | None = None, **kwargs: Any
) -> AsyncIterator[asyncpg.Connection]:
    """``async with connection() as conn``: :func:`connect`, closed on exit."""
    conn = await connect(settings, **kwargs)
    try:
        yield conn
    finally:
        await conn.close()


async def create_pool(settings: DatabaseSettings | None = None, **kwargs: Any) -> asyncpg.Pool:
    """A connection pool whose connections use pairstream's schema."""
    settings = settings or DatabaseSettings()
    pool = await asyncpg.create_pool(
        database_url(settings),
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        server_settings=_server_settings(settings),
        **kwargs,
    )
    assert pool is not None
    return pool


T = TypeVar("T")

#: what a database outage raises (connection refused or dropped, timeouts, server errors)
# InternalClientError ("cannot switch to state N; another operation (2) is in progress"):
# a pooled connection the server terminated in the middle of an operation (a restart),
# asyncpg issue #784; SQLAlchemy also treats it as a disconnect (issue #13241).
DB_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

_log = logging.getLogger(__name__)


async def through_outages(
    what: str,
    operation: Callable[[], Awaitable[T]],
    delay: Callable[[int], float],
    on_failure: Callable[[], None] | None = None,
) -> T:
    """``operation``, retried forever through database outages.

    ``delay(failures)`` gives the pause before the next attempt (e.g.
    :meth:`pairstream.supervisor.Backoff.delay`); ``on_failure`` is called for
    every failed attempt (a metric). Errors other than :data:`DB_ERRORS` propagate.
    """
    failures = 0
    while True:
        try:
            return await operation()
        except DB_ERRORS as error:
            failures += 1
            if on_failure is not None:
                on_failure()
            _log.warning("%s failed (%r); retrying", what, error)
            await asyncio.sleep(delay(failures))
