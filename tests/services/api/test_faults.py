"""Faults over real HTTP: PostgreSQL stopped → 503 problem+json within a second (no
hang) and health `unavailable`; Redis and Kafka stopped → REST still answers and health
says `degraded`, WebSocket clients are told Kafka is down and the hot cache is bypassed;
each time recovery without a restart (the cache refills)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pairstream.infra import Endpoints
from pairstream.infra.manager import InfraManager, free_port
from pairstream.infra.parts import KafkaPart, RedisPart
from pairstream.settings import DatabaseSettings, InfraSettings, KafkaSettings, RedisSettings
from pairstream.testing import eventually, unique
from pairstream_api.metrics import cache_hits
from pairstream_api.wsclient import LiveClient

from ..conftest import PAIR, Stocked, serving


async def test_postgres_stopped_answers_503_within_a_second_then_recovers(
    own_postgres: tuple[Any, str], stocked: Stocked, endpoints: Endpoints
) -> None:
    manager, url = own_postgres
    db = DatabaseSettings(DATABASE_URL=url, DB_SCHEMA=unique("api_f"))
    redis = RedisSettings(REDIS_URL=endpoints.redis_url)
    path = "/api/v1/bars/BTCUSDT?tf=1s"
    async with (
        serving(db, stocked.kafka, stocked.topics, stocked.analytics, redis) as server,
        server.client() as client,
    ):
        assert (await client.get(path)).status_code == 200
        await asyncio.to_thread(manager.down)
        for _ in range(3):
            started = time.monotonic()
            response = await client.get(path)
            took = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert took < 1.0, f"503 after {took:.2f} s"
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "1"
        health = await client.get("/health/ready")
        assert health.status_code == 503
        assert health.json()["checks"]["postgres"]["status"] == "down"
        await asyncio.to_thread(manager.up)

        async def back() -> bool:
            return (await client.get(path)).status_code == 200

        await eventually(back, timeout=30)
        assert (await client.get("/health/ready")).json()["status"] == "ready"


def kafka_status(live: LiveClient) -> str | None:
    """The broker's status as the API last told the client (``hello``, then ``status``)."""
    told = [m["kafka"] for m in live.messages if m["type"] in ("hello", "status")]
    return told[-1] if told else None


@pytest.fixture
def own_kafka_and_redis(tmp_path: Path) -> Iterator[tuple[InfraManager, str, str]]:
    """A broker and a Redis of this test's own, on fixed ports, so they can be stopped."""
    settings = InfraSettings(
        PAIRSTREAM_STATE_DIR=tmp_path / "infra", kafka_port=free_port("127.0.0.1"),
        redis_port=free_port("127.0.0.1"),
    )  # fmt: skip
    manager = InfraManager(settings, external={}, parts=(KafkaPart(), RedisPart()))
    urls = {r.name: str(r.url) for r in manager.up()}
    try:
        yield manager, urls["kafka"], urls["redis"]
    finally:
        manager.down()


async def test_redis_and_kafka_stopped_leave_rest_answering_and_health_degraded_then_back(
    own_kafka_and_redis: tuple[InfraManager, str, str], stocked: Stocked
) -> None:
    manager, kafka_url, redis_url = own_kafka_and_redis
    kafka = KafkaSettings(bootstrap=kafka_url, client_id=unique("api"))
    redis = RedisSettings(REDIS_URL=redis_url)
    latest = f"/api/v1/analytics/{PAIR}/latest"
    async with (
        serving(stocked.db, kafka, stocked.topics, stocked.analytics, redis,
                rate_limit="100000/minute") as server,
        server.client() as client,
    ):  # fmt: skip
        url = server.url.replace("http://", "ws://") + "/api/v1/ws"
        async with LiveClient(url) as live:
            await live.subscribe(f"analytics:{PAIR}:1s:ols", snapshot=5)
            await live.wait(lambda c: kafka_status(c) == "up")
            assert (await client.get("/health/ready")).json()["status"] == "ready"
            want = (await client.get(latest, params={"tf": "1s"})).json()

            async def cached() -> bool:  # once the live consumer follows Kafka
                assert (await client.get(latest, params={"tf": "1s"})).json() == want
                return bool(cache_hits(server.app.state.api.metrics) >= 1)

            await eventually(cached, timeout=30)
            hits = cache_hits(server.app.state.api.metrics)
            await asyncio.to_thread(manager.down)
            # WebSocket clients are told; REST answers from PostgreSQL, rate limits in memory
            await live.wait(lambda c: kafka_status(c) == "down", timeout=15)
            for _ in range(3):
                got = await client.get(latest, params={"tf": "1s"})
                assert got.status_code == 200
                assert got.json() == want
                bars = await client.get("/api/v1/bars/BTCUSDT", params={"tf": "1s"})
                assert bars.status_code == 200
            assert cache_hits(server.app.state.api.metrics) == hits
            ready = (await client.get("/health/ready")).json()
            assert ready["status"] == "degraded"
            assert ready["checks"]["redis"]["status"] == "down"
            assert ready["checks"]["kafka"]["status"] == "down"
            assert ready["checks"]["postgres"]["status"] == "ok"
            await asyncio.to_thread(manager.up)

            async def recovered() -> bool:
                return bool((await client.get("/health/ready")).json()["status"] == "ready")

            await eventually(recovered, timeout=60)
            await live.wait(lambda c: kafka_status(c) == "up", timeout=30)

            async def cached_again() -> bool:  # the cache refills without a restart
                assert (await client.get(latest, params={"tf": "1s"})).json() == want
                return bool(cache_hits(server.app.state.api.metrics) > hits)

            await eventually(cached_again, timeout=30)
            assert live.closed is None
