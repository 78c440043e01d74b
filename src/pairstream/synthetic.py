"""A seeded synthetic market: cointegrated prices with known hedge ratios and bursty trading.

Every symbol ``k`` prices as ``P_k = a_k + b_k·F + S_k``: ``F`` is a common
stochastic trend (geometric random walk), ``S_k`` a mean-reverting
Ornstein–Uhlenbeck deviation. So for any pair ``Y-X`` the true hedge ratio is
``β = b_Y / b_X`` with intercept ``a_Y − β·a_X``, and ``Y − (α + β·X) =
S_Y − β·S_X`` is stationary. Trades arrive as a Poisson process whose rate
switches between a calm and a market-wide burst regime, like the recorded
Binance rates (mean 20–60 trades/s, bursts of hundreds to ~1,600/s).

Pure: no clock, no I/O. The same seed gives the same trades.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pairstream.messages import Trade

#: default loadings ``b_k`` (F starts at 1,000): prices near today's levels
DEFAULT_LOADINGS = {
    "BTCUSDT": 60.0,
    "ETHUSDT": 3.0,
    "BNBUSDT": 0.6,
    "SOLUSDT": 0.15,
    "XRPUSDT": 0.0006,
    "DOGEUSDT": 0.00015,
}


@dataclass(frozen=True, slots=True)
class SyntheticSymbol:
    """One symbol of the synthetic market."""

    symbol: str
    loading: float
    intercept: float = 0.0
    spread_vol: float = 0.0001  # OU noise per √s, relative to the price level
    reversion: float = 0.05  # OU mean reversion per second (half-life ln2/θ ≈ 14 s)
    tick: float | None = None
    lot: float | None = None
    first_id: int = 1_000_000

    @property
    def level(self) -> float:
        return self.intercept + self.loading * 1_000.0

    @property
    def tick_size(self) -> float:
        return self.tick or 10.0 ** math.floor(math.log10(self.level) - 5)

    @property
    def lot_size(self) -> float:
        return self.lot or 10.0 ** min(0, math.floor(math.log10(100 / self.level)))


@dataclass(frozen=True, slots=True)
class SyntheticMarket:
    """Parameters of the whole market."""

    symbols: tuple[SyntheticSymbol, ...]
    seed: int = 7
    trend_vol: float = 0.0005  # relative volatility of F per √s
    calm_rate: float = 15.0  # trades/s per symbol
    burst_rate: float = 600.0
    burst_per_s: float = 0.01  # chance per second that a burst starts
    burst_s: float = 1.5  # mean burst length
    step_ms: int = 10

    @classmethod
    def of(
        cls, symbols: tuple[str, ...], seed: int = 7, loadings: dict[str, float] | None = None
    ) -> SyntheticMarket:
        """A market of ``symbols`` with the default (or given) loadings.

        Names may be instruments (``spot:BTCUSDT``): the loading is the symbol's.
        """
        table = {**DEFAULT_LOADINGS, **(loadings or {})}
        return cls(
            tuple(
                SyntheticSymbol(
                    s,
                    table.get(s, table.get(s.rpartition(":")[2], 1.0)),
                    first_id=1_000_000 * (i + 1),
                )
                for i, s in enumerate(symbols)
            ),
            seed=seed,
        )

    def hedge_ratio(self, y: str, x: str) -> tuple[float, float]:
        """The true ``(β, α)`` of pair ``y-x`` on prices."""
        by = {s.symbol: s for s in self.symbols}
        beta = by[y].loading / by[x].loading
        return beta, by[y].intercept - beta * by[x].intercept


def _quantize(value: float, step: float) -> float:
    digits = max(0, -math.floor(math.log10(step)))
    return round(round(value / step) * step, digits)


def trades(market: SyntheticMarket, start_ms: int) -> Iterator[tuple[str, Trade]]:
    """Endless ``(symbol, trade)`` in event-time order, from ``start_ms``."""
    rng = random.Random(market.seed)
    dt = market.step_ms / 1000
    trend = 1_000.0
    spreads = [0.0 for _ in market.symbols]
    next_ids = [s.first_id for s in market.symbols]
    burst_left = 0.0
    now = start_ms
    while True:
        shock = market.trend_vol * math.sqrt(dt) * rng.gauss(0, 1)
        trend *= math.exp(shock - market.trend_vol**2 * dt / 2)
        if burst_left > 0:
            burst_left -= dt
        elif rng.random() < market.burst_per_s * dt:
            burst_left = rng.expovariate(1 / market.burst_s)
        rate = market.burst_rate if burst_left > 0 else market.calm_rate
        step: list[tuple[int, int, str, Trade]] = []
        for k, sym in enumerate(market.symbols):
            noise = sym.spread_vol * sym.level * math.sqrt(dt) * rng.gauss(0, 1)
            spreads[k] += -sym.reversion * spreads[k] * dt + noise
            mid = sym.intercept + sym.loading * trend + spreads[k]
            times = sorted(now + int(rng.random() * market.step_ms)
                           for _ in range(_poisson(rng, rate * dt)))  # fmt: skip
            for ts in times:
                maker = rng.random() < 0.5
                half = sym.tick_size * rng.choice((0.5, 0.5, 1.5))
                price = max(mid - half if maker else mid + half, sym.tick_size)
                size = max(sym.lot_size, rng.lognormvariate(0, 1.2) * sym.lot_size * 5)
                trade = Trade(
                    trade_id=next_ids[k],
                    ts_event=ts,
                    price=_quantize(price, sym.tick_size),
                    qty=_quantize(size, sym.lot_size),
                    is_buyer_maker=maker,
                )
                next_ids[k] += 1
                step.append((ts, k, sym.symbol, trade))
        step.sort(key=lambda item: (item[0], item[1]))  # stable: ids stay in order per symbol
        for _, _, symbol, trade in step:
            yield symbol, trade
        now += market.step_ms


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    threshold, count, product = math.exp(-mean), 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def cointegrated_prices(
    n: int,
    rng: np.random.Generator,
    beta: float = 18.5,
    alpha: float = 4_000.0,
    phi: float = 0.8,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Closes ``(y, x)`` of a cointegrated pair with known hedge ``y = alpha + beta·x + u``.

    ``x`` is a random walk near 3,000 (steps N(0, 1.5²)); ``u`` is AR(1) with
    coefficient ``phi`` and shocks N(0, 12²), so ``y`` sits near 60,000 with the
    defaults. Draws ``x`` then the shocks from ``rng``.
    """
    x = 3_000.0 + np.cumsum(rng.normal(0.0, 1.5, n))
    u = np.zeros(n)
    shocks = rng.normal(0.0, 12.0, n)
    for i in range(1, n):
        u[i] = phi * u[i - 1] + shocks[i]
    return alpha + beta * x + u, x
