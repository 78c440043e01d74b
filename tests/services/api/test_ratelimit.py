"""Rate limits leased from the shared Redis window: never past the limit across
processes, at most a lease per process short of it, exact for small limits."""

from __future__ import annotations

import asyncio
import time

from pairstream.clock import SystemClock
from pairstream.infra import Endpoints
from pairstream.testing import unique
from pairstream_api.ratelimit import RateLimiter


async def test_two_processes_leasing_from_redis_never_pass_the_limit_and_lose_at_most_a_lease_each(
    endpoints: Endpoints,
) -> None:
    first, second = (RateLimiter("2000/hour", endpoints.redis_url, SystemClock()) for _ in "ab")
    identity = unique("ip:")
    assert first.lease == 20
    waits = await asyncio.gather(*((first if i % 3 else second).hit(identity)
                                   for i in range(2_300)))  # fmt: skip
    allowed = waits.count(0.0)
    assert 2_000 - 2 * (first.lease - 1) <= allowed <= 2_000
    assert all(w >= 1 for w in waits if w)  # Retry-After: when the window ends
    assert not first.redis_down
    assert not second.redis_down


async def test_a_small_limit_leases_one_request_at_a_time_so_is_exact_across_processes(
    endpoints: Endpoints,
) -> None:
    first, second = (RateLimiter("7/minute", endpoints.redis_url, SystemClock()) for _ in "ab")
    identity = unique("key:")
    waits = [await (first if i % 2 else second).hit(identity) for i in range(9)]
    assert first.lease == 1
    assert [w == 0 for w in waits] == [True] * 7 + [False] * 2


async def test_without_redis_the_limit_counts_in_memory() -> None:
    limiter = RateLimiter("3/minute", "redis://127.0.0.1:9/0", SystemClock())
    waits = [await limiter.hit("ip:x") for _ in range(4)]
    assert waits[:3] == [0.0] * 3
    assert waits[3] >= 1
    assert limiter.redis_down


class CeilingClock(SystemClock):
    def now_ms(self) -> int:
        return -(-time.time_ns() // 1_000_000)


async def test_requests_under_the_limit_are_allowed_up_to_the_end_of_each_window(
    endpoints: Endpoints,
) -> None:
    # a lease of one: every request counts in Redis, also in a window's last half second,
    # where Redis's TTL (whole seconds, rounded) already says 0; read in milliseconds rounded
    # up, the clock is past that reset time at once (rounded down, only mostly not)
    limiter = RateLimiter("100/second", endpoints.redis_url, CeilingClock())
    identity = unique("ip:")
    waits = []
    for _ in range(40):  # 3 s of windows, about 13 requests in each
        waits.append(await limiter.hit(identity))
        await asyncio.sleep(0.075)
    assert limiter.lease == 1
    assert waits == [0.0] * 40
