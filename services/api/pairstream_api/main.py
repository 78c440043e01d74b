"""The app factory (``create_app``) and ``pairstream api``'s server: wiring only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

from pairstream.cache import create_redis, redis_url
from pairstream.clock import Clock, SystemClock
from pairstream.db import create_pool, through_outages
from pairstream.db.migrate import migrate
from pairstream.settings import (
    DatabaseSettings,
    KafkaSettings,
    MarketSettings,
    RedisSettings,
    TopicSettings,
)
from pairstream.supervisor import Backoff
from pairstream_analytics.config import AnalyticsSettings

from . import errors
from .config import ApiSettings
from .keys import KeyChecker
from .metrics import ApiMetrics
from .ratelimit import RateLimiter
from .routes import alerts, analytics, export, health, market
from .state import ApiState

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, declared or streamed."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(scope, send, self.limit)
            return
        seen = 0

        async def counted() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLargeError:
            await _too_large(scope, send, self.limit)


class _BodyTooLargeError(Exception):
    pass


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    response = errors.problem(
        413, "Request too large", f"the body is over {limit:,} bytes (API_MAX_BODY_BYTES)",
        scope.get("path", ""),
    )  # fmt: skip
    await response(scope, _no_body, send)


async def _no_body() -> MutableMapping[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def create_app(
    settings: ApiSettings | None = None,
    *,
    clock: Clock | None = None,
    db: DatabaseSettings | None = None,
    kafka: KafkaSettings | None = None,
    topics: TopicSettings | None = None,
    redis: RedisSettings | None = None,
    analytics_settings: AnalyticsSettings | None = None,
) -> FastAPI:
    """The API with its routers, error handlers and middleware; connections are opened
    by its lifespan (the database's tables migrated first, through outages)."""
    settings = settings or ApiSettings()
    clock = clock or SystemClock()
    state = ApiState(
        settings=settings, clock=clock, db=db or DatabaseSettings(), kafka=kafka or KafkaSettings(),
        topics=topics or TopicSettings(), redis=redis or RedisSettings(),
        analytics=analytics_settings or AnalyticsSettings(), metrics=ApiMetrics(),
        keys=KeyChecker(clock, settings.key_cache_s, settings.db_timeout_s),
        market=MarketSettings().default,
    )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _open(state)
        try:
            yield
        finally:
            await _close(state)

    app = FastAPI(
        title="pairstream API",
        version="1",
        summary="Bars, pairs analytics, scans and alerts of pairstream.",
        lifespan=lifespan,
    )
    app.state.api = state
    errors.install(app)
    for router in (market.router, analytics.router, alerts.router, export.router, health.router):
        app.include_router(router)

    @app.middleware("http")
    async def timed(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        state.metrics.latency.labels(template, request.method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )  # fmt: skip
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


async def _open(state: ApiState) -> None:
    backoff = Backoff(0.2, 5.0)
    db = state.db.model_copy(update={"pool_min": 0})  # the API starts without a database

    async def migrated() -> None:
        from pairstream.db import connection

        async with connection(db) as conn:
            await migrate(conn, db)

    await through_outages("migrating the database", migrated, backoff.delay)
    state.pool = await create_pool(
        db, command_timeout=state.settings.statement_timeout_s,
        max_inactive_connection_lifetime=60,
    )  # fmt: skip
    state.redis_client = create_redis(state.redis)
    state.limiter = RateLimiter(state.settings.rate_limit, redis_url(state.redis), state.clock)
    try:
        await asyncio.wait_for(state.kafka_metadata(), 5)
    except Exception as error:  # Kafka down: REST works; health retries until it is back
        log.warning("Kafka not reachable at start (%r); REST serves from PostgreSQL", error)


async def _close(state: ApiState) -> None:
    if state.kafka_client is not None:
        with contextlib.suppress(Exception):
            await state.kafka_client.stop()
    if state.redis_client is not None:
        with contextlib.suppress(Exception):
            await state.redis_client.aclose()
    if state.pool is not None:
        with contextlib.suppress(Exception):
            await state.pool.close()
