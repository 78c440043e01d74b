"""Shared fixtures: real infrastructure for the whole session, unique names per test.

The embedded Kafka (Tansu), PostgreSQL and Redis start once per session under a
temporary state directory; any part whose address is given in the environment
(``KAFKA_BOOTSTRAP``, ``DATABASE_URL``, ``REDIS_URL``) is used instead.
Tests that use infrastructure fixtures are marked ``integration``; all others ``unit``.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis

from pairstream.infra import Endpoints, InfraManager
from pairstream.settings import DatabaseSettings, InfraSettings, KafkaSettings, TopicSettings
from pairstream.testing import unique

FIXTURES = Path(__file__).parent / "fixtures"
INTEGRATION_FIXTURES = {"endpoints", "kafka_settings", "db_settings", "db", "redis_client"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses_infra = INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses_infra or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """Kafka, PostgreSQL and Redis addresses: the environment's, or embedded ones."""
    state = tmp_path_factory.mktemp("infra")
    manager = InfraManager(InfraSettings(PAIRSTREAM_STATE_DIR=state))
    reports = manager.up()
    started = [r.name for r in reports if r.state == "started"]
    urls = {r.name: r.url for r in reports}
    assert all(urls.values()), reports
    try:
        yield Endpoints(str(urls["kafka"]), str(urls["postgres"]), str(urls["redis"]))
    finally:
        manager.down(only=started)


@pytest.fixture
def kafka_settings(endpoints: Endpoints) -> KafkaSettings:
    return KafkaSettings(bootstrap=endpoints.kafka_bootstrap, client_id=unique("test"))


@pytest.fixture
def topic_settings() -> TopicSettings:
    """Contract topics under unique names, so tests never share a topic."""
    tag = unique("t")
    return TopicSettings(
        ticks=f"{tag}.ticks",
        bars_template=f"{tag}.bars.{{tf}}",
        spread=f"{tag}.spread",
        zscore=f"{tag}.zscore",
        stats=f"{tag}.stats",
        alerts=f"{tag}.alerts",
        dead_letter=f"{tag}.dead-letter",
    )


@pytest.fixture
async def db_settings(endpoints: Endpoints) -> AsyncIterator[DatabaseSettings]:
    """Database settings with a schema of this test's own, dropped afterwards."""
    settings = DatabaseSettings(DATABASE_URL=endpoints.database_url, DB_SCHEMA=unique("test_s"))
    yield settings
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{settings.schema_name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def db(db_settings: DatabaseSettings) -> AsyncIterator[asyncpg.Connection]:
    """A connection whose search_path is the test's schema (not migrated)."""
    from pairstream.db import connection

    async with connection(db_settings) as conn:
        yield conn


@pytest.fixture
async def redis_client(endpoints: Endpoints) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(endpoints.redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def recorded_frames() -> list[dict[str, object]]:
    """Real Binance futures trade frames (BTCUSDT+ETHUSDT), see fixtures/binance/PROVENANCE.md."""
    path = FIXTURES / "binance" / "usdm_BTC+ETH_20240718-19.first2000.jsonl.gz"
    with gzip.open(path, "rb") as f:
        return [orjson.loads(line) for line in f]
