"""The independent reference: bars by plain batch aggregation of the recorded trades.

It reads the data.binance.vision CSV form of the recording (the resampler is fed
the WebSocket frames or runs built from them), groups trades by ``time // tf`` and
aggregates each group sorted by trade id, with exactly rounded sums (``fsum``).
It shares no code with the resampler.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pairstream.messages import Trade

FIXTURES = Path(__file__).parents[2] / "fixtures" / "binance"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
TF_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}


@dataclass(frozen=True)
class RefBar:
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    vwap: float
    buy_volume: float
    first_trade_id: int
    last_trade_id: int


def load_csv_trades(symbol: str) -> list[Trade]:
    path = FIXTURES / f"usdm_{symbol}_20240718-19.csv.gz"
    with gzip.open(path, "rt", newline="") as handle:
        return [
            Trade(
                trade_id=int(row["id"]),
                ts_event=int(row["time"]),
                price=float(row["price"]),
                qty=float(row["qty"]),
                is_buyer_maker=row["is_buyer_maker"] == "true",
            )
            for row in csv.DictReader(handle)
        ]


def batch_bars(trades: Iterable[Trade], tf_ms: int) -> dict[int, RefBar]:
    """Bars by bucket start: the plain batch aggregation the resampler must equal."""
    groups: dict[int, list[Trade]] = defaultdict(list)
    for trade in trades:
        groups[trade.ts_event // tf_ms * tf_ms].append(trade)
    bars = {}
    for start, group in groups.items():
        group.sort(key=lambda t: t.trade_id)
        volume = math.fsum(t.qty for t in group)
        quote = math.fsum(t.price * t.qty for t in group)
        bars[start] = RefBar(
            open=group[0].price,
            high=max(t.price for t in group),
            low=min(t.price for t in group),
            close=group[-1].price,
            volume=volume,
            quote_volume=quote,
            trades=len(group),
            vwap=quote / volume,
            buy_volume=math.fsum(t.qty for t in group if not t.is_buyer_maker),
            first_trade_id=group[0].trade_id,
            last_trade_id=group[-1].trade_id,
        )
    return bars


def assert_bars_equal(
    got: Mapping[tuple[str, str, int], Any], expected: Mapping[tuple[str, str, int], RefBar]
) -> None:
    """Same keys; OHLC, trades and ids exactly; volumes and VWAP to 1e-9 relative."""
    missing, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    assert (missing[:5], extra[:5]) == ([], []), "bars missing, bars extra"
    for key, ref in expected.items():
        bar = got[key]
        exact = ("open", "high", "low", "close", "trades", "first_trade_id", "last_trade_id")
        for name in exact:
            assert getattr(bar, name) == getattr(ref, name), (key, name)
        for name in ("volume", "quote_volume", "vwap", "buy_volume"):
            assert math.isclose(getattr(bar, name), getattr(ref, name), rel_tol=1e-9), (key, name)


@pytest.fixture(scope="session")
def recorded_trades() -> dict[str, list[Trade]]:
    """Every recorded trade per symbol, in trade-id order (from the CSV form)."""
    return {symbol: load_csv_trades(symbol) for symbol in SYMBOLS}


@pytest.fixture(scope="session")
def reference_bars(
    recorded_trades: dict[str, list[Trade]],
) -> Callable[..., dict[tuple[str, str, int], RefBar]]:
    """``reference_bars(exclude=ids)`` → ``{(symbol, tf, start): RefBar}`` for 1s, 1m and 5m."""

    def build(
        exclude: frozenset[tuple[str, int]] = frozenset(),
    ) -> dict[tuple[str, str, int], RefBar]:
        out = {}
        for symbol, trades in recorded_trades.items():
            kept = [t for t in trades if (symbol, t.trade_id) not in exclude]
            for tf, span in TF_MS.items():
                for start, bar in batch_bars(kept, span).items():
                    out[(symbol, tf, start)] = bar
        return out

    return build


@pytest.fixture(scope="session")
def bars_equal() -> Callable[..., None]:
    """:func:`assert_bars_equal`, for the tests."""
    return assert_bars_equal


@pytest.fixture(scope="session")
def hourly_reference(recorded_trades: dict[str, list[Trade]]) -> dict[tuple[str, int], RefBar]:
    """``{(symbol, hour start): RefBar}``: what the ``bars_1h`` view must show."""
    return {
        (symbol, start): bar
        for symbol, trades in recorded_trades.items()
        for start, bar in batch_bars(trades, 3_600_000).items()
    }


@pytest.fixture(scope="session")
def batch() -> Callable[[Iterable[Trade], int], dict[int, RefBar]]:
    """:func:`batch_bars`, for references built from other recordings."""
    return batch_bars
