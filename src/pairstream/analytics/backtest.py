"""Backtest of the z-score strategy of the pair analytics on a pair ``Y-X`` (pure, no clock).

Input, one row per bar (:data:`BACKTEST_COLUMNS`, oldest first): the bar start ``ts``
(epoch ms), both legs' raw closes ``close_y`` and ``close_x``, and one hedge method's
``hedge_ratio`` (β) and ``zscore`` of that bar, as :func:`analytics_bars` computes them
with the analytics core from two legs' bar tables (or as stored by the analytics
service). A null/NaN z-score (window not full, std = 0) decides nothing.

Decisions (the signal rule of :mod:`pairstream.analytics.pair`, with the thresholds of
:class:`BacktestParams`), bar by bar from ``z_t`` and the position decided before:

* flat → ``short`` when ``z ≥ entry_z``, → ``long`` when ``z ≤ −entry_z``; a long
  exits when ``z ≥ −exit_z``, a short when ``z ≤ exit_z``; crossing the opposite
  entry threshold reverses (long → short or short → long).
* Stop (only with ``stop_z``): a bar with ``|z| ≥ stop_z`` decides flat (whatever the
  position, and in place of every rule above) and *locks* the side of that z
  (sign(z)). While locked nothing is entered; the lock is released on the first bar
  with ``|z| ≤ exit_z`` (back inside the exit band) or with z of the other sign or
  zero (z crossed zero), and that bar's z is then decided by the rules above (a jump
  from ``+stop_z`` to ``≤ −entry_z`` enters long at once). So entries happen only at
  ``entry_z ≤ |z| < stop_z``.

Execution: a decision on bar t is filled at bar t+1's close (no look-ahead); a
decision on the last bar is not executed. A reversal closes the position and opens
the new one at the same bar (two fills per leg, each paying costs).

Units: ``N`` = :attr:`BacktestParams.leg_notional` (default: the capital), the same
for every trade (no compounding). Entering at bar t+1 with the β of the decision bar
t (frozen for the trade), ``q = N / close_y[t+1]`` and the held quantities are
``qty_y = side·q`` and ``qty_x = −side·β·q`` (side +1 long, −1 short): ``q`` units of
the analytics' price spread ``Y − β·X`` — long spread is long ``N`` worth of Y and
short ``β·q`` units of X (about ``β·N·close_x/close_y`` worth). (With
``price_transform="log"`` the β is an elasticity and this is not the log spread's
hedge; the engine trades raw closes either way.)

Costs, per leg and fill, in bps of the traded notional: a fill of ``d`` units at
close ``c`` happens at ``c·(1 + sign(d)·slippage_bps/10⁴)`` (against you) and pays
``fee_bps/10⁴·|d|·fill price``.

Accounting: cash starts at ``capital``; a fill of ``d`` at ``p`` takes ``d·p + fee``
from it; ``equity_t = cash_t + qty_y·close_y[t] + qty_x·close_x[t]`` (marked to the
raw closes, after the fills of bar t). A trade's ``pnl`` is
``Σ_legs qty·(exit fill − entry fill) − fees`` (entry and exit fees), its
``trade_return`` the pnl over the gross entry notional ``Σ_legs |qty|·entry fill``.
A position still open after the last bar is marked to the last closes in the equity
and listed as a trade with ``exit_*`` null, its pnl the mark-to-market less the
entry fees (no exit costs).

Metrics: ``total_return = equity_last / capital − 1``; ``sharpe`` from the per-bar
returns ``equity_t / equity_{t−1} − 1``: mean / sample std (ddof 1) ·
``sqrt(365·86400·1000 / tf_ms)`` (null with < 2 returns, zero std, or equity ≤ 0);
``drawdown_t = 1 − equity_t / max_{s≤t} equity_s`` and ``max_drawdown`` its maximum
(fractions ≥ 0); ``hit_rate`` the share of *closed* trades with pnl > 0 (null
without any); ``turnover`` Σ |d|·fill price over every fill / capital;
``n_trades`` the trades entered (an open one included), ``n_closed`` those closed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from pairstream.analytics.batch import join_frames
from pairstream.analytics.pair import Method, PairAnalytics, PairConfig

__all__ = [
    "BACKTEST_COLUMNS",
    "BacktestMetrics",
    "BacktestParamError",
    "BacktestParams",
    "BacktestResult",
    "EquityCurve",
    "ExitReason",
    "Side",
    "Trade",
    "analytics_bars",
    "backtest",
    "backtest_legs",
    "bars_per_year",
]

Side = Literal["long", "short"]
ExitReason = Literal["exit", "reverse", "stop"]
Array = npt.NDArray[np.float64]

#: the input columns of :func:`backtest`, one row per bar
BACKTEST_COLUMNS = ("ts", "close_y", "close_x", "hedge_ratio", "zscore")

_YEAR_MS = 365 * 86_400 * 1_000
_NO_TESTS = 2**62  # a tests_every no bar after 1970 meets: the signals do not use the tests


class BacktestParamError(ValueError):
    """An invalid :class:`BacktestParams` value; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class BacktestParams:
    """Thresholds, costs and size of the strategy (see the module docstring).

    ``entry_z > 0``, ``0 ≤ exit_z < entry_z``, ``stop_z > entry_z`` (or None: no stop),
    ``fee_bps`` and ``slippage_bps`` ≥ 0 (per leg and fill), ``capital`` > 0 (starting
    equity), ``notional`` > 0 (the Y leg's notional at each entry; None = ``capital``).
    """

    entry_z: float = 2.0
    exit_z: float = 0.5
    stop_z: float | None = None
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    capital: float = 100_000.0
    notional: float | None = None

    def __post_init__(self) -> None:
        for name in ("entry_z", "exit_z", "stop_z", "fee_bps", "slippage_bps", "capital",
                     "notional"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise BacktestParamError(name, f"must be a finite number, got {value!r}")
        if self.entry_z <= 0:
            raise BacktestParamError("entry_z", f"must be > 0, got {self.entry_z}")
        if self.exit_z < 0:
            raise BacktestParamError("exit_z", f"must be >= 0, got {self.exit_z}")
        if self.exit_z >= self.entry_z:
            raise BacktestParamError(
                "exit_z", f"must be below entry_z ({self.entry_z}), got {self.exit_z}"
            )
        if self.stop_z is not None and self.stop_z <= self.entry_z:
            raise BacktestParamError(
                "stop_z", f"must be above entry_z ({self.entry_z}), got {self.stop_z}"
            )
        for name in ("fee_bps", "slippage_bps"):
            if getattr(self, name) < 0:
                raise BacktestParamError(name, f"must be >= 0 bps, got {getattr(self, name)}")
        if self.capital <= 0:
            raise BacktestParamError("capital", f"must be > 0, got {self.capital}")
        if self.notional is not None and self.notional <= 0:
            raise BacktestParamError("notional", f"must be > 0, got {self.notional}")

    @property
    def leg_notional(self) -> float:
        """The Y leg's notional at each entry: ``notional``, or the capital."""
        return self.capital if self.notional is None else self.notional


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip (``exit_*`` null while still open after the last bar).

    ``decided_ts``/``exit_decided_ts``: bars whose z decided the entry/exit;
    ``entry_ts``/``exit_ts``: the next bars, where the fills happened. Quantities are
    signed (positive = held long); prices are fill prices (slippage included).
    """

    side: Side
    decided_ts: int
    entry_ts: int
    exit_decided_ts: int | None
    exit_ts: int | None
    exit_reason: ExitReason | None
    hedge_ratio: float
    qty_y: float
    qty_x: float
    entry_price_y: float
    entry_price_x: float
    exit_price_y: float | None
    exit_price_x: float | None
    pnl: float
    fees: float
    trade_return: float
    bars_held: int

    @property
    def is_open(self) -> bool:
        """Still open after the last bar (marked to market)."""
        return self.exit_ts is None


@dataclass(frozen=True, slots=True, eq=False)
class EquityCurve:
    """Per bar, after its fills: ``equity``, ``position`` (+1 long spread, −1 short,
    0 flat) and ``drawdown`` (``1 − equity / running peak``); read-only arrays."""

    ts: npt.NDArray[np.int64]
    equity: Array
    position: npt.NDArray[np.int8]
    drawdown: Array

    def __len__(self) -> int:
        return len(self.ts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EquityCurve):
            return NotImplemented
        return (
            np.array_equal(self.ts, other.ts)
            and np.array_equal(self.equity, other.equity)
            and np.array_equal(self.position, other.position)
            and np.array_equal(self.drawdown, other.drawdown)
        )

    def frame(self) -> pd.DataFrame:
        """The curve as a DataFrame (columns ts, equity, position, drawdown)."""
        return pd.DataFrame(
            {"ts": self.ts, "equity": self.equity, "position": self.position,
             "drawdown": self.drawdown}
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BacktestMetrics:
    """Summary of a run (definitions in the module docstring); null where undefined."""

    total_return: float
    sharpe: float | None
    max_drawdown: float
    hit_rate: float | None
    turnover: float
    n_trades: int
    n_closed: int
    fees: float
    final_equity: float


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Trades (oldest first), the equity curve (one point per input bar) and metrics."""

    params: BacktestParams
    tf_ms: int
    trades: tuple[Trade, ...]
    equity: EquityCurve
    metrics: BacktestMetrics

    def trades_frame(self) -> pd.DataFrame:
        """The trades as a DataFrame, one column per :class:`Trade` field."""
        columns = [f.name for f in dataclasses.fields(Trade)]
        return pd.DataFrame.from_records(
            [dataclasses.astuple(t) for t in self.trades], columns=columns
        )


def bars_per_year(tf_ms: int) -> float:
    """Bars of ``tf_ms`` in a 365-day year (the Sharpe ratio's annualisation)."""
    if tf_ms <= 0:
        raise ValueError(f"tf_ms must be > 0, got {tf_ms}")
    return _YEAR_MS / tf_ms


def analytics_bars(
    frame_y: pd.DataFrame,
    frame_x: pd.DataFrame,
    tf_ms: int,
    config: PairConfig | None = None,
    method: Method = "ols",
) -> pd.DataFrame:
    """The input of :func:`backtest` from two legs' bar tables (columns of
    :data:`~pairstream.analytics.batch.BAR_COLUMNS`), by the analytics core.

    Joined as :func:`~pairstream.analytics.batch.join_frames` does (a leg without a bar
    carries its close forward), then :class:`~pairstream.analytics.pair.PairAnalytics`
    with ``config``: the hedge ratio and z-score of :func:`~.batch.analyze` and of the
    analytics service for the same bars, bit for bit. The stationarity tests are not
    run (the signals do not use them). Rows start where the method's hedge is defined.
    """
    core = PairAnalytics(
        tf_ms, dataclasses.replace(config or PairConfig(), tests_every=_NO_TESTS), (method,)
    )
    ts: list[int] = []
    close_y: list[float] = []
    close_x: list[float] = []
    beta: list[float] = []
    zscore: list[float] = []
    for joined in join_frames(frame_y, frame_x):
        for out in core.update(joined.ts, joined.y, joined.x):
            ts.append(out.ts)
            close_y.append(joined.y.close)
            close_x.append(joined.x.close)
            beta.append(out.hedge.hedge_ratio)
            zscore.append(math.nan if out.zscore is None else out.zscore)
    return pd.DataFrame(
        {
            "ts": np.array(ts, dtype=np.int64),
            "close_y": np.array(close_y, dtype=np.float64),
            "close_x": np.array(close_x, dtype=np.float64),
            "hedge_ratio": np.array(beta, dtype=np.float64),
            "zscore": np.array(zscore, dtype=np.float64),
        }
    )


def backtest_legs(
    frame_y: pd.DataFrame,
    frame_x: pd.DataFrame,
    tf_ms: int,
    params: BacktestParams,
    config: PairConfig | None = None,
    method: Method = "ols",
) -> BacktestResult:
    """:func:`backtest` of :func:`analytics_bars` of two legs' bar tables."""
    return backtest(analytics_bars(frame_y, frame_x, tf_ms, config, method), params, tf_ms)


def _column(bars: pd.DataFrame, name: str) -> Array:
    try:
        return np.asarray(pd.to_numeric(bars[name]), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"bars: column {name} is not numeric") from None


def _inputs(bars: pd.DataFrame) -> tuple[list[int], Array, Array, Array, Array]:
    missing = [c for c in BACKTEST_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars: missing column(s) {', '.join(missing)}")
    ts_values = _column(bars, "ts")
    if not np.all(np.isfinite(ts_values)) or np.any(ts_values != np.floor(ts_values)):
        raise ValueError("bars: ts must be whole epoch milliseconds")
    ts = [int(v) for v in bars["ts"]]
    for a, b in itertools.pairwise(ts):
        if b <= a:
            raise ValueError(f"bars: ts must increase, got {b} after {a}")
    close_y, close_x = _column(bars, "close_y"), _column(bars, "close_x")
    for name, close in (("close_y", close_y), ("close_x", close_x)):
        bad = ~(np.isfinite(close) & (close > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"bars: {name} at ts {ts[i]} is not a positive price: {close[i]}")
    beta, zscore = _column(bars, "hedge_ratio"), _column(bars, "zscore")
    bad = np.isinf(zscore) | (np.isfinite(zscore) & ~np.isfinite(beta))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"bars: at ts {ts[i]} zscore {zscore[i]} needs a finite hedge_ratio, got {beta[i]}"
        )
    return ts, close_y, close_x, beta, zscore


def _decisions(zscore: Array, params: BacktestParams) -> tuple[list[int], list[bool]]:
    """The position decided after each bar (+1, −1, 0) and whether a stop decided it."""
    entry, exit_, stop = params.entry_z, params.exit_z, params.stop_z
    position = 0
    lock = 0  # sign of the z that stopped us; 0 = not locked
    targets: list[int] = []
    stops: list[bool] = []
    for z in zscore.tolist():
        stopped = False
        if not math.isnan(z):
            if lock and (abs(z) <= exit_ or z * lock <= 0.0):
                lock = 0
            if stop is not None and abs(z) >= stop:
                stopped = position != 0
                position, lock = 0, (1 if z > 0 else -1)
            elif not lock:
                if z >= entry and position != -1:
                    position = -1
                elif z <= -entry and position != 1:
                    position = 1
                elif (position == 1 and z >= -exit_) or (position == -1 and z <= exit_):
                    position = 0
        targets.append(position)
        stops.append(stopped)
    return targets, stops


@dataclass(slots=True)
class _Open:
    side: int
    decided: int
    entry: int  # bar index of the fill
    beta: float
    qty_y: float
    qty_x: float
    price_y: float
    price_x: float
    fees: float


def backtest(bars: pd.DataFrame, params: BacktestParams, tf_ms: int) -> BacktestResult:
    """Run the strategy over ``bars`` (:data:`BACKTEST_COLUMNS`; ``tf_ms`` the bar length).

    Raises ValueError for malformed bars (missing columns, ts not increasing, a price
    that is not positive, a z-score without a finite hedge ratio).
    """
    bars_per_year(tf_ms)  # validates tf_ms
    ts, close_y, close_x, beta, zscore = _inputs(bars)
    n = len(ts)
    targets, stops = _decisions(zscore, params)
    slip = params.slippage_bps / 10_000.0
    fee_rate = params.fee_bps / 10_000.0
    leg_notional = params.leg_notional
    ys, xs, betas = close_y.tolist(), close_x.tolist(), beta.tolist()

    cash = params.capital
    traded = 0.0
    fees_total = 0.0
    held: _Open | None = None
    trades: list[Trade] = []
    equity = np.empty(n, dtype=np.float64)
    position = np.zeros(n, dtype=np.int8)

    def fill(qty: float, close: float) -> tuple[float, float]:
        """Fill price and fee of trading ``qty`` (signed) at ``close``; moves the cash."""
        nonlocal cash, traded, fees_total
        price = close * (1.0 + slip) if qty > 0 else close * (1.0 - slip)
        notional = abs(qty) * price
        fee = fee_rate * notional
        cash -= qty * price + fee
        traded += notional
        fees_total += fee
        return price, fee

    for i in range(n):
        y, x = ys[i], xs[i]
        if i > 0 and held is not None and targets[i - 1] != held.side:
            reason: ExitReason = (
                "stop" if stops[i - 1] else "reverse" if targets[i - 1] != 0 else "exit"
            )
            exit_y, fee_y = fill(-held.qty_y, y)
            exit_x, fee_x = fill(-held.qty_x, x)
            fees = held.fees + fee_y + fee_x
            pnl = held.qty_y * (exit_y - held.price_y) + held.qty_x * (exit_x - held.price_x) - fees
            trades.append(_trade(held, ts, pnl, fees, i - 1, i, reason, exit_y, exit_x))
            held = None
        if i > 0 and held is None and targets[i - 1] != 0:
            side, b = targets[i - 1], betas[i - 1]
            q = leg_notional / y
            qty_y, qty_x = side * q, -side * b * q
            price_y, fee_y = fill(qty_y, y)
            price_x, fee_x = fill(qty_x, x)
            held = _Open(side, i - 1, i, b, qty_y, qty_x, price_y, price_x, fee_y + fee_x)
        if held is not None:
            equity[i] = cash + held.qty_y * y + held.qty_x * x
            position[i] = held.side
        else:
            equity[i] = cash

    if held is not None:
        y, x = ys[-1], xs[-1]
        pnl = held.qty_y * (y - held.price_y) + held.qty_x * (x - held.price_x) - held.fees
        trades.append(_trade(held, ts, pnl, held.fees, None, None, None, None, None))

    peak = np.maximum.accumulate(equity) if n else equity
    drawdown = 1.0 - equity / peak if n else equity.copy()
    curve_ts = np.array(ts, dtype=np.int64)
    for array in (curve_ts, equity, position, drawdown):
        array.setflags(write=False)
    curve = EquityCurve(curve_ts, equity, position, drawdown)
    metrics = _metrics(curve, trades, params, tf_ms, traded, fees_total)
    return BacktestResult(params, tf_ms, tuple(trades), curve, metrics)


def _trade(
    held: _Open,
    ts: Sequence[int],
    pnl: float,
    fees: float,
    exit_decided: int | None,
    exit_at: int | None,
    reason: ExitReason | None,
    exit_y: float | None,
    exit_x: float | None,
) -> Trade:
    gross = abs(held.qty_y) * held.price_y + abs(held.qty_x) * held.price_x
    end = len(ts) - 1 if exit_at is None else exit_at
    return Trade(
        side="long" if held.side > 0 else "short",
        decided_ts=ts[held.decided],
        entry_ts=ts[held.entry],
        exit_decided_ts=None if exit_decided is None else ts[exit_decided],
        exit_ts=None if exit_at is None else ts[exit_at],
        exit_reason=reason,
        hedge_ratio=held.beta,
        qty_y=held.qty_y,
        qty_x=held.qty_x,
        entry_price_y=held.price_y,
        entry_price_x=held.price_x,
        exit_price_y=exit_y,
        exit_price_x=exit_x,
        pnl=pnl,
        fees=fees,
        trade_return=pnl / gross,
        bars_held=end - held.entry,
    )


def _metrics(
    curve: EquityCurve,
    trades: Sequence[Trade],
    params: BacktestParams,
    tf_ms: int,
    traded: float,
    fees: float,
) -> BacktestMetrics:
    equity = curve.equity
    final = float(equity[-1]) if len(equity) else params.capital
    sharpe = None
    if len(equity) >= 3 and bool(np.all(equity[:-1] > 0)):
        returns = equity[1:] / equity[:-1] - 1.0
        std = float(np.std(returns, ddof=1))
        if std > 0 and math.isfinite(std):
            sharpe = float(np.mean(returns)) / std * math.sqrt(bars_per_year(tf_ms))
    closed = [t for t in trades if not t.is_open]
    return BacktestMetrics(
        total_return=final / params.capital - 1.0,
        sharpe=sharpe,
        max_drawdown=float(curve.drawdown.max()) if len(curve) else 0.0,
        hit_rate=sum(t.pnl > 0 for t in closed) / len(closed) if closed else None,
        turnover=traded / params.capital,
        n_trades=len(trades),
        n_closed=len(closed),
        fees=fees,
        final_equity=final,
    )
