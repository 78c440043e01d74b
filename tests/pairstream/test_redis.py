"""The Redis fixture is a real server: commands, expiry and pub/sub over a real connection."""

from __future__ import annotations

import redis.asyncio as aioredis

from pairstream.testing import eventually, unique


async def test_redis_stores_expires_and_publishes(redis_client: aioredis.Redis) -> None:
    key = unique("latest")
    await redis_client.set(key, b'{"zscore": -1.66}', px=200)
    assert await redis_client.get(key) == b'{"zscore": -1.66}'

    async def expired() -> bool:
        return await redis_client.exists(key) == 0

    await eventually(expired, timeout=5)
    channel = unique("alerts")
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel)
    try:
        await redis_client.publish(channel, b"hello")
        messages: list[bytes] = []

        async def delivered() -> bool:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                messages.append(message["data"])
            return bool(messages)

        await eventually(delivered, timeout=5)
        assert messages == [b"hello"]
    finally:
        await pubsub.unsubscribe(channel)
        await pubsub.aclose()
