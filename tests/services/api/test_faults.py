"""Faults over real HTTP: PostgreSQL stopped → 503 problem+json within a second (no
hang) and health `unavailable`, then recovery without a restart."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pairstream.infra import Endpoints
from pairstream.settings import DatabaseSettings, RedisSettings
from pairstream.testing import eventually, unique

from .conftest import Stocked, serving


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
