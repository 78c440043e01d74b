"""Per-key (or per-client-address) rate limits: counters in Redis while it answers (all
API processes share them), in this process's memory when it does not.

A Redis round trip per request cost about a quarter of a cached snapshot's time, so each
process takes its allowance from the shared window in **leases**: one ``INCRBY`` takes
up to 1% of the limit (at most 64 requests, at least 1), served from memory until used
or the window ends. The window's count in Redis is what was leased, so all processes
together never pass the limit; a process can hold up to one unused lease, so near the
end of a window a client may be refused up to (lease − 1) × processes requests early.
Limits under 200 per window lease one request at a time: exact, as without leases.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import limits
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from pairstream.clock import Clock

log = logging.getLogger(__name__)

REDIS_RETRY_S = 5.0  # a request does not wait for a Redis that just failed
LEASE_FRACTION = 0.01
MAX_LEASE = 64
TTL_ROUNDING_S = 0.5
MAX_IDENTITIES = 10_000  # leases kept (least recently used dropped: they hold < a lease)


@dataclass(slots=True)
class _Lease:
    """Requests this process may still serve in the shared window ending at ``until``."""

    left: int = 0
    until: float = 0.0  # epoch seconds
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def take(self, now_s: float) -> bool:
        if self.left > 0 and now_s < self.until:
            self.left -= 1
            return True
        return False


def identity_of(key_id: str | None, host: str) -> str:
    """What a request is counted under: its API key's id, else its client address."""
    return f"key:{key_id}" if key_id is not None else f"ip:{host}"


class RateLimiter:
    """``hit(identity)`` → seconds to wait (0 = allowed)."""

    def __init__(self, spec: str, redis_url: str | None, clock: Clock) -> None:
        self.item = limits.parse(spec)
        self.clock = clock
        self.lease = max(1, min(MAX_LEASE, int(self.item.amount * LEASE_FRACTION)))
        self._memory = FixedWindowRateLimiter(MemoryStorage())
        self._storage = (
            None
            if redis_url is None
            else RedisStorage(
                "async+" + redis_url, implementation="redispy", key_prefix="pairstream-api",
                socket_timeout=0.5, socket_connect_timeout=0.5,
            )
        )  # fmt: skip
        self._redis = None if self._storage is None else FixedWindowRateLimiter(self._storage)
        self._leases: OrderedDict[str, _Lease] = OrderedDict()
        self.redis_down = False
        self._retry_at = 0.0  # after a Redis failure, memory only until then

    async def hit(self, identity: str) -> float:
        """Count one request of ``identity``; how long it must wait when over its limit."""
        if self._redis is not None and self.clock.monotonic() >= self._retry_at:
            try:
                return await self._leased(identity)
            except (RedisError, OSError) as error:
                if not self.redis_down:
                    log.warning("rate limits: Redis unavailable (%r); counting in memory", error)
                self.redis_down = True
                self._retry_at = self.clock.monotonic() + REDIS_RETRY_S
        if await self._memory.hit(self.item, identity):
            return 0.0
        stats = await self._memory.get_window_stats(self.item, identity)
        return self._wait(stats.reset_time)

    async def _leased(self, identity: str) -> float:
        lease = self._leases.get(identity)
        if lease is None:
            lease = self._leases[identity] = _Lease()
            if len(self._leases) > MAX_IDENTITIES:
                self._leases.popitem(last=False)
        else:
            self._leases.move_to_end(identity)
        if lease.take(self.clock.now_ms() / 1000):
            return 0.0
        async with lease.lock:  # one refill at a time; the others wait and take from it
            if lease.take(self.clock.now_ms() / 1000):
                return 0.0
            await self._refill(lease, identity)
            if lease.left > 0:  # leased in a live window, though it may end any moment
                lease.left -= 1
                return 0.0
            return self._wait(lease.until)

    async def _refill(self, lease: _Lease, identity: str) -> None:
        assert self._storage is not None
        assert self._redis is not None
        total = await self._storage.incr(
            self.item.key_for(identity), self.item.get_expiry(), amount=self.lease
        )
        stats = await self._redis.get_window_stats(self.item, identity)
        lease.left = max(0, min(self.lease, self.item.amount - (total - self.lease)))
        # Redis's TTL is in whole seconds rounded to the nearest: the window may end half a
        # second before the reset time reported, and the rest of a lease is not used then
        lease.until = stats.reset_time - TTL_ROUNDING_S
        if self.redis_down:
            self.redis_down = False
            log.info("rate limits: Redis back; counting there again")

    def _wait(self, reset_s: float) -> float:
        return max(1.0, math.ceil(reset_s - self.clock.now_ms() / 1000))
