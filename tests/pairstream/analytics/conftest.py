"""Bars for the analytics tests: real ones from the Binance recordings and synthetic pairs.

* ``recorded_bars`` — 1s bars of BTCUSDT and ETHUSDT built here by a plain pandas
  groupby of the recorded trades (2024-07-18/19, ~480 bars, BTC near 64,000).
* ``kline_bars`` — real 1m klines, BTCUSDT (2022-09-05/06) and ETHUSDT
  (2022-08-14/15), 2,880 bars each, paired bar by bar (different dates: a real
  price path for numerical checks, not a tradable pair).
* ``synthetic_pair`` — a cointegrated pair with known β: X a random walk near
  3,000, ``Y = α + β·X + u`` with AR(1) noise u, Y near 60,000.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).parents[2] / "fixtures" / "binance"
KLINE_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time",
    "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
]  # fmt: skip


def bars_from_trades(path: Path, tf_ms: int) -> pd.DataFrame:
    trades = pd.read_csv(path).sort_values("id")
    trades["start"] = trades["time"] // tf_ms * tf_ms
    taker_buys = trades["is_buyer_maker"].astype(str).str.lower() == "false"
    trades["buy_qty"] = trades["qty"].where(taker_buys, 0.0)
    grouped = trades.groupby("start")
    return pd.DataFrame(
        {
            "close": grouped["price"].last(),
            "volume": grouped["qty"].sum(),
            "quote_volume": grouped["quote_qty"].sum(),
            "buy_volume": grouped["buy_qty"].sum(),
        }
    ).reset_index()


def read_klines(symbol: str, days: tuple[str, ...]) -> pd.DataFrame:
    frames = []
    for day in days:
        with zipfile.ZipFile(FIXTURES / "klines_1m" / f"{symbol}-1m-{day}.zip") as archive:
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
    btc = bars_from_trades(FIXTURES / "usdm_BTCUSDT_20240718-19.csv.gz", 1_000)
    eth = bars_from_trades(FIXTURES / "usdm_ETHUSDT_20240718-19.csv.gz", 1_000)
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
    x = 3_000.0 + np.cumsum(rng.normal(0.0, 1.5, n))
    u = np.zeros(n)
    shocks = rng.normal(0.0, 12.0, n)
    for i in range(1, n):
        u[i] = phi * u[i - 1] + shocks[i]
    y = alpha + beta * x + u
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
