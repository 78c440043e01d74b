"""Per-key (or per-client-address) rate limits: counters in Redis while it answers (all
API processes share them), in this process's memory when it does not."""

from __future__ import annotations

import logging
import math

import limits
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from pairstream.clock import Clock

log = logging.getLogger(__name__)

REDIS_RETRY_S = 5.0  # a request does not wait for a Redis that just failed


class RateLimiter:
    """``hit(identity)`` → seconds to wait (0 = allowed)."""

    def __init__(self, spec: str, redis_url: str | None, clock: Clock) -> None:
        self.item = limits.parse(spec)
        self.clock = clock
        self._memory = FixedWindowRateLimiter(MemoryStorage())
        self._redis = (
            None
            if redis_url is None
            else FixedWindowRateLimiter(
                RedisStorage(
                    "async+" + redis_url, implementation="redispy", key_prefix="pairstream-api",
                    socket_timeout=0.5, socket_connect_timeout=0.5,
                )
            )
        )  # fmt: skip
        self.redis_down = False
        self._retry_at = 0.0  # after a Redis failure, memory only until then

    async def hit(self, identity: str) -> float:
        """Count one request of ``identity``; how long it must wait when over its limit."""
        if self._redis is not None and self.clock.monotonic() >= self._retry_at:
            try:
                return await self._hit(self._redis, identity)
            except (RedisError, OSError) as error:
                if not self.redis_down:
                    log.warning("rate limits: Redis unavailable (%r); counting in memory", error)
                self.redis_down = True
                self._retry_at = self.clock.monotonic() + REDIS_RETRY_S
        return await self._hit(self._memory, identity)

    async def _hit(self, limiter: FixedWindowRateLimiter, identity: str) -> float:
        allowed = await limiter.hit(self.item, identity)
        if limiter is self._redis and self.redis_down:
            self.redis_down = False
            log.info("rate limits: Redis back; counting there again")
        if allowed:
            return 0.0
        stats = await limiter.get_window_stats(self.item, identity)
        return max(1.0, math.ceil(stats.reset_time - self.clock.now_ms() / 1000))
