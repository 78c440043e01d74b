"""The API over real HTTP, for its tests and the dashboard's: a uvicorn server in this
process on a free socket, over a database stocked once per session with the recorded
July BTC/ETH 1s bars and what the real analytics worker computed from them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from pairstream.analytics.batch import analyze
from pairstream.clock import SystemClock
from pairstream.db import connection
from pairstream.db.migrate import migrate
from pairstream.infra import Endpoints
from pairstream.kafka import MessageProducer, contract_topics, ensure_topics
from pairstream.messages import Bar
from pairstream.settings import DatabaseSettings, KafkaSettings, RedisSettings, TopicSettings
from pairstream.testing import bar_messages, eventually, served, topics_under, unique
from pairstream_analytics.config import AnalyticsSettings
from pairstream_analytics.worker import AnalyticsWorker
from pairstream_api.config import ApiSettings
from pairstream_api.keys import create_key
from pairstream_api.main import create_app

PAIR = "usdm:BTCUSDT-usdm:ETHUSDT"


@dataclass(frozen=True)
class Stocked:
    """A schema holding the recorded pair's bars and analytics."""

    db: DatabaseSettings
    kafka: KafkaSettings
    topics: TopicSettings
    analytics: AnalyticsSettings
    bars: list[Bar]
    outputs: int  # analytics rows per method


def analytics_settings() -> AnalyticsSettings:
    return AnalyticsSettings(
        group_id=unique("analytics"), metrics_port=0, pairs=PAIR, timeframes="1s",  # type: ignore[arg-type]
        methods="ols,kalman", scan_interval_s=0, rebuild_wait_s=5, session_timeout_s=3.0,  # type: ignore[arg-type]
        heartbeat_interval_s=0.5, tests_every=10, hedge_window=60, zscore_window=20,
        flow_window=20, stats_window=60,
    )  # fmt: skip


@pytest.fixture(scope="session")
async def stocked(endpoints: Endpoints, recorded_bars: Any) -> AsyncIterator[Stocked]:
    from pairstream_resampler.store import BAR_COLUMNS, bar_record

    db = DatabaseSettings(DATABASE_URL=endpoints.database_url, DB_SCHEMA=unique("api_s"))
    kafka = KafkaSettings(bootstrap=endpoints.kafka_bootstrap, client_id=unique("api"))
    topics = topics_under(unique("api"))
    settings = analytics_settings()
    bars = sorted(
        bar_messages(recorded_bars.y, "BTCUSDT") + bar_messages(recorded_bars.x, "ETHUSDT"),
        key=lambda b: (b.start, b.symbol),
    )
    outputs = len(analyze(recorded_bars.y, recorded_bars.x, 1_000, settings.pair_config(),
                          ("ols",)))  # fmt: skip
    async with connection(db) as conn:
        await migrate(conn, db)
        await conn.copy_records_to_table(
            "bars", records=[bar_record(b) for b in bars], columns=list(BAR_COLUMNS)
        )
    await ensure_topics(contract_topics(topics), kafka)
    worker = AnalyticsWorker(settings, SystemClock(), kafka=kafka, topics=topics, db=db)
    task = asyncio.create_task(worker.run())
    try:
        await eventually(lambda: worker.ready or task.done(), timeout=60)
        async with MessageProducer(kafka) as producer:
            await asyncio.gather(*[await producer.send(topics.bars("1s"), b) for b in bars])

        async def analysed() -> bool:
            async with connection(db) as conn:
                n = await conn.fetchval("SELECT count(*) FROM analytics_stats WHERE method='ols'")
                return bool(n >= outputs)

        await eventually(analysed, timeout=180)
    finally:
        if task.done():
            task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    yield Stocked(db, kafka, topics, settings, bars, outputs)
    conn = await asyncpg.connect(endpoints.database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{db.schema_name}" CASCADE')
    finally:
        await conn.close()


@dataclass
class Server:
    """A running API: its URL and app."""

    url: str
    app: Any

    def client(
        self, token: str | None = None, headers: dict[str, str] | None = None
    ) -> httpx.AsyncClient:
        """A client; ``token`` as ``Authorization: Bearer``, or ``headers`` as given."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(base_url=self.url, headers=sent, timeout=10)


@asynccontextmanager
async def serving(
    db: DatabaseSettings, kafka: KafkaSettings, topics: TopicSettings,
    analytics: AnalyticsSettings, redis: RedisSettings, **settings: Any,
) -> AsyncIterator[Server]:  # fmt: skip
    """The API on a socket of its own (``port`` 0: chosen by the kernel), until the block
    ends."""
    values = {"port": 0, **settings}
    app = create_app(ApiSettings(**values), db=db, kafka=kafka, topics=topics, redis=redis,
                     analytics_settings=analytics)  # fmt: skip
    async with served(app, values["port"]) as url:
        yield Server(url, app)


@pytest.fixture
def api(
    stocked: Stocked, endpoints: Endpoints
) -> Callable[..., AbstractAsyncContextManager[Server]]:
    """``async with api(**API_settings) as server``: the API over the stocked schema."""
    redis = RedisSettings(REDIS_URL=endpoints.redis_url)

    def start(**settings: Any) -> AbstractAsyncContextManager[Server]:
        return serving(stocked.db, stocked.kafka, stocked.topics, stocked.analytics, redis,
                       **settings)  # fmt: skip

    return start


@pytest.fixture(scope="session")
async def keys(stocked: Stocked) -> dict[str, str]:
    """A read and a write key in the stocked schema."""
    async with connection(stocked.db) as conn:
        _, read = await create_key(conn, "tests", "read")
        _, write = await create_key(conn, "tests", "write")
    return {"read": read, "write": write}
