"""Redis connections (the API's hot cache and rate-limit counters)."""

from __future__ import annotations

import redis.asyncio as aioredis

from pairstream.infra import resolve_endpoint
from pairstream.settings import RedisSettings


def redis_url(settings: RedisSettings | None = None) -> str:
    """``REDIS_URL``, else the embedded server of ``pairstream infra up``."""
    settings = settings or RedisSettings()
    return settings.url or resolve_endpoint("redis")


def create_redis(settings: RedisSettings | None = None, timeout_s: float = 0.5) -> aioredis.Redis:
    """A client (connections are made on first use) that gives up after ``timeout_s``."""
    return aioredis.Redis.from_url(
        redis_url(settings), socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
