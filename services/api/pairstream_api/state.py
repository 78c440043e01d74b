"""What every request of one API process shares (``app.state.api``)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from pairstream.clock import Clock
from pairstream.instruments import Market
from pairstream.kafka import create_consumer
from pairstream.settings import DatabaseSettings, KafkaSettings, RedisSettings, TopicSettings
from pairstream_analytics.config import AnalyticsSettings

from .config import ApiSettings
from .hotcache import HotCache
from .keys import KeyChecker
from .metrics import ApiMetrics
from .ratelimit import RateLimiter

if TYPE_CHECKING:
    from .live import LiveHub


@dataclass
class ApiState:
    """Settings, connections and caches of one API process."""

    settings: ApiSettings
    clock: Clock
    db: DatabaseSettings
    kafka: KafkaSettings
    topics: TopicSettings
    redis: RedisSettings
    analytics: AnalyticsSettings
    metrics: ApiMetrics
    keys: KeyChecker
    market: Market = "usdm"  # of bare symbols
    pool: asyncpg.Pool | None = None
    redis_client: aioredis.Redis | None = None
    kafka_client: AIOKafkaConsumer | None = None  # metadata only (health)
    limiter: RateLimiter | None = None
    cache: HotCache | None = None
    #: backtests, and analyses or rule tests, computing at once (others wait their turn)
    backtests: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    analyses: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))
    hub: LiveHub | None = None
    hub_task: asyncio.Task[None] | None = None

    def cache_following(self, following: bool) -> None:
        """The live consumer does (or no longer does) follow Kafka: the hot cache is kept
        fresh only meanwhile."""
        if self.cache is None:
            return
        if not following and self.cache.following:
            self.cache.distrust("the live consumer stopped following Kafka")
        self.cache.following = following

    async def kafka_metadata(self) -> None:
        """Topic metadata from the broker; the client is made on first success, so a
        broker that was down at start is found once it is up."""
        if self.kafka_client is None:
            client = create_consumer([], None, self.kafka, request_timeout_ms=5_000)
            try:
                await client.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await client.stop()
                raise
            self.kafka_client = client
        await self.kafka_client.topics()

    def db_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise OSError("the database pool is not open yet")
        return self.pool
