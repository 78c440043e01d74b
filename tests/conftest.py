"""Shared fixtures: real infrastructure for the whole session, unique names per test; bars.

The embedded Kafka (Tansu), PostgreSQL and Redis start once per session under a
temporary state directory; any part whose address is given in the environment
(``KAFKA_BOOTSTRAP``, ``DATABASE_URL``, ``REDIS_URL``) is used instead.
Tests that use infrastructure fixtures are marked ``integration``; all others ``unit``.

Bars for the analytics (``recorded_bars``, ``kline_bars``, ``synthetic_pair``):

* ``recorded_bars`` — 1s bars of BTCUSDT and ETHUSDT built here by a plain pandas
  groupby of the recorded trades (2024-07-18/19, ~470 bars, BTC near 64,000).
* ``kline_bars`` — real 1m klines, BTCUSDT (2022-09-05/06) and ETHUSDT
  (2022-08-14/15), 2,880 bars each, paired bar by bar (different dates: a real
  price path for numerical checks, not a tradable pair).
* ``synthetic_pair`` — a cointegrated pair with known β: X a random walk near
  3,000, ``Y = α + β·X + u`` with AR(1) noise u, Y near 60,000.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import numpy as np
import orjson
import pandas as pd
import pytest
import redis.asyncio as aioredis

from pairstream.infra import Endpoints
from pairstream.infra.manager import InfraManager
from pairstream.settings import DatabaseSettings, InfraSettings, KafkaSettings, TopicSettings
from pairstream.synthetic import cointegrated_prices
from pairstream.testing import topics_under, unique

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
    return topics_under(unique("t"))


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


KLINE_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]  # fmt: skip


def bars_from_trades(path: Path, tf_ms: int) -> pd.DataFrame:
    """Bars of ``tf_ms`` by a plain pandas groupby of a recorded trades CSV (every bar column)."""
    trades = pd.read_csv(path).sort_values("id")
    trades["start"] = trades["time"] // tf_ms * tf_ms
    taker_buys = trades["is_buyer_maker"].astype(str).str.lower() == "false"
    trades["buy_qty"] = trades["qty"].where(taker_buys, 0.0)
    grouped = trades.groupby("start")
    table = pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "high": grouped["price"].max(),
            "low": grouped["price"].min(),
            "close": grouped["price"].last(),
            "volume": grouped["qty"].sum(),
            "quote_volume": grouped["quote_qty"].sum(),
            "trades": grouped["id"].count(),
            "buy_volume": grouped["buy_qty"].sum(),
            "first_trade_id": grouped["id"].min(),
            "last_trade_id": grouped["id"].max(),
        }
    ).reset_index()
    table["vwap"] = table["quote_volume"] / table["volume"]
    return table


def read_klines(symbol: str, days: tuple[str, ...]) -> pd.DataFrame:
    frames = []
    for day in days:
        with zipfile.ZipFile(
            FIXTURES / "binance" / "klines_1m" / f"{symbol}-1m-{day}.zip"
        ) as archive:
            raw = archive.read(archive.namelist()[0]).decode()
        has_header = raw.startswith("open_time")
        frames.append(
            pd.read_csv(io.StringIO(raw), header=0 if has_header else None, names=KLINE_COLUMNS)
        )
    table = pd.concat(frames, ignore_index=True)
    return pd.DataFrame(
        {
            "start": table["open_time"].astype("int64"),
            "close": table["close"].astype(float),
            "volume": table["volume"].astype(float),
            "quote_volume": table["quote_volume"].astype(float),
            "buy_volume": table["taker_buy_volume"].astype(float),
        }
    )


@dataclass(frozen=True)
class BarPair:
    y: pd.DataFrame
    x: pd.DataFrame
    tf_ms: int
    beta: float | None = None
    alpha: float | None = None


@pytest.fixture(scope="session")
def recorded_bars() -> BarPair:
    btc = bars_from_trades(FIXTURES / "binance" / "usdm_BTCUSDT_20240718-19.csv.gz", 1_000)
    eth = bars_from_trades(FIXTURES / "binance" / "usdm_ETHUSDT_20240718-19.csv.gz", 1_000)
    return BarPair(btc, eth, 1_000)


@pytest.fixture(scope="session")
def kline_bars() -> BarPair:
    btc = read_klines("BTCUSDT", ("2022-09-05", "2022-09-06"))
    eth = read_klines("ETHUSDT", ("2022-08-14", "2022-08-15"))
    eth["start"] = btc["start"]  # pair bar by bar (see module doc)
    return BarPair(btc, eth, 60_000)


def synthetic_bars(
    n: int, seed: int, beta: float = 18.5, alpha: float = 4_000.0, phi: float = 0.8
) -> BarPair:
    rng = np.random.default_rng(seed)
    y, x = cointegrated_prices(n, rng, beta, alpha, phi)
    start = 1_700_000_000_000 + 60_000 * np.arange(n)

    def table(close: np.ndarray) -> pd.DataFrame:
        volume = rng.uniform(1.0, 50.0, n)
        return pd.DataFrame(
            {
                "start": start,
                "close": close,
                "volume": volume,
                "quote_volume": volume * close,
                "buy_volume": volume * rng.uniform(0.0, 1.0, n),
            }
        )

    return BarPair(table(y), table(x), 60_000, beta, alpha)


@pytest.fixture(scope="session")
def make_synthetic_pair() -> Callable[..., BarPair]:
    return synthetic_bars


@pytest.fixture(scope="session")
def synthetic_pair() -> BarPair:
    return synthetic_bars(1_500, seed=7)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[tuple[InfraManager, str]]:
    """An embedded PostgreSQL of this test's own, on a fixed port, so it can be stopped
    (``manager.down()``) and started again (``manager.up()``) under a running service."""
    from pairstream.infra.manager import free_port
    from pairstream.infra.parts import PostgresPart

    settings = InfraSettings(
        PAIRSTREAM_STATE_DIR=tmp_path / "pg", postgres_port=free_port("127.0.0.1")
    )
    manager = InfraManager(settings, external={}, parts=(PostgresPart(),))
    (report,) = manager.up()
    try:
        yield manager, str(report.url)
    finally:
        manager.down()
