"""The app factory (``create_app``) and ``pairstream api``'s server: wiring only."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from fastapi import FastAPI, HTTPException
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
from .hotcache import HotCache
from .keys import KeyChecker
from .live import LiveHub
from .metrics import ApiMetrics
from .openapi import document_security, operation_id
from .ratelimit import RateLimiter
from .routes import PREFIX, alerts, analytics, backtest, datasets, export, health, market, ws
from .state import ApiState

log = logging.getLogger(__name__)


class BodyLimit:
    """Bodies over ``limit`` bytes are a 413 problem: a declared length before anything
    is read, a streamed body as soon as it passes the limit."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"the body is over {self.limit:,} bytes (API_MAX_BODY_BYTES)"
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = errors.problem(413, "Request too large", detail, scope.get("path", ""))
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # FastAPI passes an HTTPException on to the handlers
                raise HTTPException(413, detail)
            return message

        await self.app(scope, counted, send)


class Timed:
    """Request latency by route template, method and status (500s and whole streamed
    bodies included: a plain ASGI middleware, no task group around the app)."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - started
            )


#: every router of the app, in the order included
ROUTERS = (
    market.router,
    analytics.router,
    backtest.router,
    alerts.router,
    export.router,
    health.router,
    health.versioned,
    ws.router,
    datasets.router,
)


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
        generate_unique_id_function=operation_id,
        redirect_slashes=False,  # `/rules/` is not `/rules`: a 404, not a redirect elsewhere
    )
    app.state.api = state
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    document_security(app, PREFIX)

    app.add_middleware(Timed, metrics=state.metrics)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )  # fmt: skip
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
    state.cache = HotCache(state.redis_client, state.db.schema_name, state.clock, state.metrics)
    state.hub = LiveHub(state)
    state.hub_task = asyncio.create_task(state.hub.run(), name="api-live")
    state.hub_task.add_done_callback(_hub_ended)
    # what start-up made lives as long as the process: keep it out of the collector's
    # full passes, which otherwise pause long responses (a 10,000-bar page) by ~30 ms
    gc.collect()
    gc.freeze()
    # and collect the young generation after 100,000 net allocations, not 700: a page's
    # rows then mostly die before a pass traverses them (bench api: range p99 47 → 42 ms)
    gc.set_threshold(100_000, 10, 10)


def _hub_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("the live consumer died; WebSocket clients get no updates",
                     exc_info=task.exception())  # fmt: skip


CLOSE_TIMEOUT_S = 5.0  # per part: a shutdown never waits on one for longer


async def _close(state: ApiState) -> None:
    """Stop the live consumer, then close Kafka, Redis and the pool, each within
    ``CLOSE_TIMEOUT_S`` (a connection still held by a request is terminated after it)."""
    if state.hub_task is not None:
        state.hub_task.cancel()
        await _closed("the live consumer", asyncio.gather(state.hub_task, return_exceptions=True))
    if state.kafka_client is not None:
        await _closed("the Kafka client", state.kafka_client.stop())
    if state.redis_client is not None:
        await _closed("the Redis client", state.redis_client.aclose())
    if state.pool is not None and not await _closed("the database pool", state.pool.close()):
        state.pool.terminate()  # connections still held by requests


async def _closed(what: str, closing: Awaitable[object]) -> bool:
    """Whether ``closing`` ended within ``CLOSE_TIMEOUT_S``, well or not (a failure is
    logged)."""
    try:
        await asyncio.wait_for(closing, CLOSE_TIMEOUT_S)
    except TimeoutError:
        log.warning("closing %s took over %.0f s: given up", what, CLOSE_TIMEOUT_S)
        return False
    except Exception as error:
        log.warning("closing %s: %r", what, error)
    return True
