"""Every metric of one pair ``Y-X`` at one timeframe, updated one joined bar at a time.

Definitions (also in the topic schema docs):

* ``ts`` is the **start** of the bar (epoch ms); a joined bar pairs both legs' bars
  with the same start (see :mod:`pairstream.analytics.join` for a missing leg).
* Prices are bar closes, or their natural logs with ``price_transform="log"``.
* Hedge (per method): ``spread_t = y_t − (α_t + β_t·x_t)`` with the hedge of
  bar t — OLS and Huber fitted over the last ``hedge_window`` bars *including*
  t, Kalman the filtered state after bar t.
* z-score: the spreads **as emitted bar by bar** (each with its own hedge), over
  the last ``zscore_window`` of them including t: ``mean``, sample ``std``
  (ddof=1), ``zscore = (spread_t − mean)/std`` (null while std = 0).
* Signals on the z-score: flat → ``short`` when ``z ≥ entry_z``, → ``long`` when
  ``z ≤ −entry_z``; a long position exits when ``z ≥ −exit_z``, a short one
  when ``z ≤ exit_z``; crossing the opposite entry threshold reverses.
* Correlation: Pearson of the legs' log returns ``ln(c_t/c_{t−1})`` over the last
  ``flow_window`` returns; realized volatility ``sqrt(Σ r²)`` over the same
  returns (not annualised); VWAP ``Σ quote_volume / Σ volume`` and taker buy
  share ``Σ buy_volume / Σ volume`` over the last ``flow_window`` bars.
* Half-life: AR(1) by OLS of the emitted spreads over the last ``stats_window``
  of them, ``Δs_t = a + b·s_{t−1}``, half-life ``−ln 2 / ln(1+b)`` bars (null
  unless ``−1 < b < 0``); updated every bar in O(1).
* Every ``tests_every`` bars (bars whose ``ts / tf`` is a multiple of it) and
  once ``stats_window`` spreads exist: ADF with lag ``adf_lag`` and a constant
  on the last ``stats_window`` emitted spreads; Engle–Granger (``coint``,
  same lag) and OLS with Newey–West 95% interval for β on the last
  ``stats_window`` prices. Between runs the last results are repeated with
  ``tests_ts`` saying which bar they were computed at.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

from pairstream.analytics.hedge import HUBER_T, HedgeEstimate, KalmanHedge, RollingHuber, RollingOLS
from pairstream.analytics.rolling import RollingCov, RollingStats, RollingSum
from pairstream.analytics.stationarity import adf, coint, half_life_from_slope, ols_hac

__all__ = [
    "METHODS",
    "LegBar",
    "Method",
    "PairAnalytics",
    "PairConfig",
    "PairOutput",
    "Position",
    "TestResults",
]

Method = Literal["ols", "huber", "kalman"]
Position = Literal["long", "short", "flat"]
METHODS: tuple[Method, ...] = ("ols", "huber", "kalman")


class LegBar(NamedTuple):
    """What the analytics use of one leg's bar."""

    close: float
    volume: float
    quote_volume: float
    buy_volume: float


@dataclass(frozen=True, slots=True)
class PairConfig:
    """Windows (in bars), thresholds and filter parameters of the pair analytics."""

    hedge_window: int = 300
    intercept: bool = True
    price_transform: Literal["price", "log"] = "price"
    zscore_window: int = 60
    flow_window: int = 60
    stats_window: int = 300
    tests_every: int = 10
    adf_lag: int = 1
    entry_z: float = 2.0
    exit_z: float = 0.5
    kalman_delta: float = 1e-7
    kalman_obs_var: float = 1.0
    kalman_initial_var: float = 1e6
    huber_t: float = HUBER_T

    def __post_init__(self) -> None:
        for name in ("hedge_window", "zscore_window", "flow_window", "stats_window"):
            if getattr(self, name) < 3:
                raise ValueError(f"{name} must be >= 3, got {getattr(self, name)}")
        if self.tests_every < 1:
            raise ValueError(f"tests_every must be >= 1, got {self.tests_every}")
        if not 0 <= self.adf_lag <= self.stats_window // 2 - 2:
            raise ValueError(
                f"adf_lag must lie in [0, stats_window/2 - 2], got {self.adf_lag} "
                f"for stats_window {self.stats_window}"
            )
        if not 0.0 <= self.exit_z < self.entry_z:
            raise ValueError(f"need 0 <= exit_z < entry_z, got {self.exit_z}, {self.entry_z}")


@dataclass(frozen=True, slots=True)
class TestResults:
    """The O(window) tests of the last cadence bar (``ts`` = that bar's start)."""

    ts: int
    adf_stat: float | None = None
    adf_pvalue: float | None = None
    coint_stat: float | None = None
    coint_pvalue: float | None = None
    hedge_ratio_ci_low: float | None = None
    hedge_ratio_ci_high: float | None = None


@dataclass(frozen=True, slots=True)
class PairOutput:
    """One method's metrics for one joined bar; the z-score block is null until its window fills."""

    ts: int
    method: Method
    hedge: HedgeEstimate
    mean: float | None
    std: float | None
    zscore: float | None
    position: Position
    signal: Literal["long", "short", "exit"] | None
    correlation: float | None
    vol_y: float | None
    vol_x: float | None
    vwap_y: float | None
    vwap_x: float | None
    buy_share_y: float | None
    buy_share_x: float | None
    half_life: float | None
    tests: TestResults | None


class _Flow:
    """Rolling VWAP and taker buy share of one leg."""

    __slots__ = ("buy", "quote", "volume")

    def __init__(self, window: int) -> None:
        self.volume = RollingSum(window)
        self.quote = RollingSum(window)
        self.buy = RollingSum(window)

    def update(self, bar: LegBar) -> tuple[float | None, float | None]:
        self.volume.update(bar.volume)
        self.quote.update(bar.quote_volume)
        self.buy.update(bar.buy_volume)
        volume = self.volume.sum
        if not self.volume.full or volume <= 0.0:
            return None, None
        return self.quote.sum / volume, min(max(self.buy.sum / volume, 0.0), 1.0)


@dataclass(slots=True)
class _MethodState:
    hedge: RollingOLS | RollingHuber | KalmanHedge
    z: RollingStats
    ar1: RollingCov
    spreads: deque[float]
    previous_spread: float | None = None
    position: Position = "flat"
    adf: tuple[float | None, float | None] = (None, None)


def _signal(
    position: Position, z: float | None, entry: float, exit_: float
) -> tuple[Position, Literal["long", "short", "exit"] | None]:
    if z is None:
        return position, None
    if z >= entry and position != "short":
        return "short", "short"
    if z <= -entry and position != "long":
        return "long", "long"
    if (position == "long" and z >= -exit_) or (position == "short" and z <= exit_):
        return "flat", "exit"
    return position, None


@dataclass(slots=True)
class PairAnalytics:
    """The incremental analytics of one pair at one timeframe (no I/O, no clock).

    ``update(ts, y, x)`` takes the joined bar starting at ``ts`` and returns one
    :class:`PairOutput` per method whose hedge is defined at that bar. Bars
    must come in increasing ``ts``; the same sequence of bars always gives the
    same outputs, bit for bit.
    """

    tf_ms: int
    config: PairConfig = field(default_factory=PairConfig)
    methods: tuple[Method, ...] = METHODS
    _states: dict[Method, _MethodState] = field(init=False)
    _returns: RollingCov = field(init=False)
    _flow_y: _Flow = field(init=False)
    _flow_x: _Flow = field(init=False)
    _prices: deque[tuple[float, float]] = field(init=False)
    _last: tuple[float, float] | None = field(init=False, default=None)
    _last_ts: int | None = field(init=False, default=None)
    _tests: TestResults | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must be distinct and non-empty, got {self.methods}")
        c = self.config
        self._states = {method: self._new_state(method) for method in self.methods}
        self._returns = RollingCov(c.flow_window)
        self._flow_y = _Flow(c.flow_window)
        self._flow_x = _Flow(c.flow_window)
        self._prices = deque(maxlen=c.stats_window)

    def _new_state(self, method: Method) -> _MethodState:
        c = self.config
        hedge: RollingOLS | RollingHuber | KalmanHedge
        if method == "ols":
            hedge = RollingOLS(c.hedge_window, c.intercept)
        elif method == "huber":
            hedge = RollingHuber(c.hedge_window, c.intercept, c.huber_t)
        else:
            hedge = KalmanHedge(c.kalman_delta, c.kalman_obs_var, c.kalman_initial_var)
        return _MethodState(
            hedge=hedge,
            z=RollingStats(c.zscore_window),
            ar1=RollingCov(c.stats_window - 1),
            spreads=deque(maxlen=c.stats_window),
        )

    def update(self, ts: int, y_bar: LegBar, x_bar: LegBar) -> list[PairOutput]:
        """Take the joined bar starting at ``ts``; return each method's outputs for it."""
        if self._last_ts is not None and ts <= self._last_ts:
            raise ValueError(f"bars must come in increasing ts: {ts} after {self._last_ts}")
        c = self.config
        self._last_ts = ts
        if c.price_transform == "log":
            y, x = math.log(y_bar.close), math.log(x_bar.close)
        else:
            y, x = y_bar.close, x_bar.close

        correlation = vol_y = vol_x = None
        last = self._last
        if last is not None:
            returns = self._returns
            returns.update(math.log(x_bar.close / last[1]), math.log(y_bar.close / last[0]))
            if returns.full:
                correlation = returns.corr()
                vol_y = math.sqrt(returns.sum_squares_y())
                vol_x = math.sqrt(returns.sum_squares_x())
        self._last = (y_bar.close, x_bar.close)
        vwap_y, buy_share_y = self._flow_y.update(y_bar)
        vwap_x, buy_share_x = self._flow_x.update(x_bar)

        self._prices.append((y, x))
        cadence = (ts // self.tf_ms) % c.tests_every == 0
        if cadence and len(self._prices) == c.stats_window:
            self._tests = self._price_tests(ts)

        outputs = []
        for method, state in self._states.items():
            hedge = state.hedge.update(y, x)
            if hedge is None:
                continue
            spread = hedge.spread
            z = state.z
            z.update(spread)
            mean = std = zscore = None
            if z.full:
                mean = z.mean
                std = math.sqrt(z.var)
                zscore = (spread - mean) / std if std > 0.0 else None
            state.position, signal = _signal(state.position, zscore, c.entry_z, c.exit_z)
            half_life = None
            if state.previous_spread is not None:
                state.ar1.update(state.previous_spread, spread - state.previous_spread)
                if state.ar1.full:
                    fit = state.ar1.ols(intercept=True)
                    half_life = None if fit is None else half_life_from_slope(fit[0])
            state.previous_spread = spread
            state.spreads.append(spread)
            tests = self._tests
            if tests is not None and cadence and len(state.spreads) == c.stats_window:
                result = adf(np.fromiter(state.spreads, float, c.stats_window), c.adf_lag)
                state.adf = (None, None) if result is None else (result.stat, result.pvalue)
            if tests is not None:
                tests = TestResults(
                    tests.ts,
                    state.adf[0],
                    state.adf[1],
                    tests.coint_stat,
                    tests.coint_pvalue,
                    tests.hedge_ratio_ci_low,
                    tests.hedge_ratio_ci_high,
                )
            outputs.append(
                PairOutput(
                    ts=ts,
                    method=method,
                    hedge=hedge,
                    mean=mean,
                    std=std,
                    zscore=zscore,
                    position=state.position,
                    signal=signal,
                    correlation=correlation,
                    vol_y=vol_y,
                    vol_x=vol_x,
                    vwap_y=vwap_y,
                    vwap_x=vwap_x,
                    buy_share_y=buy_share_y,
                    buy_share_x=buy_share_x,
                    half_life=half_life,
                    tests=tests,
                )
            )
        return outputs

    def _price_tests(self, ts: int) -> TestResults:
        n = self.config.stats_window
        prices = np.fromiter((v for pair in self._prices for v in pair), float, 2 * n)
        y, x = prices[0::2], prices[1::2]
        eg = coint(y, x, self.config.adf_lag)
        hac = ols_hac(y, x)
        return TestResults(
            ts,
            coint_stat=None if eg is None else eg.stat,
            coint_pvalue=None if eg is None else eg.pvalue,
            hedge_ratio_ci_low=None if hac is None else hac.ci_low,
            hedge_ratio_ci_high=None if hac is None else hac.ci_high,
        )
