"""The backtest engine against a deliberately naive loop written here (plain floats, no
code shared with the engine), on synthetic cointegrated bars and the recorded July
BTC/ETH bars; no look-ahead; the t → t+1 rule; the stop rule; costs; validation."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pairstream.analytics.backtest import (
    BACKTEST_COLUMNS,
    BacktestParamError,
    BacktestParams,
    BacktestResult,
    analytics_bars,
    backtest,
    backtest_legs,
)
from pairstream.analytics.batch import analyze, join_frames
from pairstream.analytics.pair import PairConfig

pytestmark = pytest.mark.unit

#: the windows of the API tests' analytics (short: the recorded data has ~470 bars)
CONFIG = PairConfig(hedge_window=60, zscore_window=20, flow_window=20, stats_window=60)


def near(a: float | None, b: float | None) -> bool:
    """Equal to 1e-9, or to 1e-12 relative (sums of money near 100,000 round near 1e-10)."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


# ----------------------------------------------------------------------------------------
# The naive reference: one bar at a time, plain Python floats and lists.


Row = tuple[int, float, float, float, float]  # ts, close_y, close_x, hedge_ratio, zscore


def naive(rows: list[Row], p: BacktestParams, tf_ms: int) -> dict[str, Any]:
    """Trades, equity and metrics by the rules of the brief, written out longhand."""
    s = p.slippage_bps / 10000.0
    f = p.fee_bps / 10000.0
    size = p.capital if p.notional is None else p.notional

    # 1. decisions: what we want to hold after each bar
    want, lock = 0, 0
    wants, stopped = [], []
    for _, _, _, _, z in rows:
        was = want
        stop_now = False
        if z == z:  # not NaN
            if lock == 1 and (z <= 0 or abs(z) <= p.exit_z):
                lock = 0
            if lock == -1 and (z >= 0 or abs(z) <= p.exit_z):
                lock = 0
            if p.stop_z is not None and abs(z) >= p.stop_z:
                stop_now = was != 0
                want = 0
                lock = 1 if z > 0 else -1
            elif lock == 0:
                if want == 0:
                    if z >= p.entry_z:
                        want = -1
                    elif z <= -p.entry_z:
                        want = 1
                elif want == 1:
                    if z >= p.entry_z:
                        want = -1
                    elif z >= -p.exit_z:
                        want = 0
                elif z <= -p.entry_z:  # want == -1
                    want = 1
                elif z <= p.exit_z:
                    want = 0
        wants.append(want)
        stopped.append(stop_now)

    # 2. execution at the next bar's close, cash accounting
    cash = p.capital
    turnover = 0.0
    all_fees = 0.0
    side = 0
    qy = qx = 0.0
    trades: list[dict[str, Any]] = []
    equity: list[float] = []
    positions: list[int] = []
    cur: dict[str, Any] = {}

    def trade_leg(qty: float, close: float) -> tuple[float, float]:
        nonlocal cash, turnover, all_fees
        price = close + close * s if qty > 0 else close - close * s
        fee = abs(qty) * price * f
        cash = cash - qty * price - fee
        turnover += abs(qty) * price
        all_fees += fee
        return price, fee

    for i, (ts, y, x, _, _) in enumerate(rows):
        if i >= 1 and wants[i - 1] != side:
            if side != 0:  # close what we hold
                py, fy = trade_leg(-qy, y)
                px, fx = trade_leg(-qx, x)
                cur["exit_decided_ts"] = rows[i - 1][0]
                cur["exit_ts"] = ts
                cur["exit_price_y"], cur["exit_price_x"] = py, px
                cur["fees"] += fy + fx
                cur["pnl"] = cash - cur["cash_before"]
                cur["exit_reason"] = (
                    "stop" if stopped[i - 1] else ("exit" if wants[i - 1] == 0 else "reverse")
                )
                cur["bars_held"] = i - cur["entry_i"]
                trades.append(cur)
                cur = {}
                side, qy, qx = 0, 0.0, 0.0
            if wants[i - 1] != 0:  # open what we want, β of the decision bar
                side = wants[i - 1]
                beta = rows[i - 1][3]
                units = size / y
                qy = side * units
                qx = -side * beta * units
                cur = {"side": "long" if side == 1 else "short", "decided_ts": rows[i - 1][0],
                       "entry_ts": ts, "entry_i": i, "hedge_ratio": beta, "qty_y": qy,
                       "qty_x": qx, "cash_before": cash}  # fmt: skip
                py, fy = trade_leg(qy, y)
                px, fx = trade_leg(qx, x)
                cur["entry_price_y"], cur["entry_price_x"] = py, px
                cur["fees"] = fy + fx
        equity.append(cash + qy * y + qx * x)
        positions.append(side)
    if side != 0:  # still open: marked to market, no exit costs
        last = equity[-1]
        cur.update(exit_decided_ts=None, exit_ts=None, exit_price_y=None, exit_price_x=None,
                   exit_reason=None, pnl=last - cur["cash_before"],
                   bars_held=len(rows) - 1 - cur["entry_i"])  # fmt: skip
        trades.append(cur)
    for t in trades:
        gross = abs(t["qty_y"]) * t["entry_price_y"] + abs(t["qty_x"]) * t["entry_price_x"]
        t["trade_return"] = t["pnl"] / gross

    # 3. metrics
    peak = -math.inf
    drawdowns = []
    for e in equity:
        peak = max(peak, e)
        drawdowns.append(1 - e / peak)
    rets = [equity[i] / equity[i - 1] - 1 for i in range(1, len(equity))]
    sharpe = None
    if len(rets) >= 2:
        mean = sum(rets) / len(rets)
        var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
        if var > 0:
            sharpe = mean / math.sqrt(var) * math.sqrt(365 * 24 * 3600 * 1000 / tf_ms)
    closed = [t for t in trades if t["exit_ts"] is not None]
    wins = len([t for t in closed if t["pnl"] > 0])
    return {
        "trades": trades, "equity": equity, "position": positions, "drawdown": drawdowns,
        "total_return": (equity[-1] if equity else p.capital) / p.capital - 1,
        "sharpe": sharpe, "max_drawdown": max(drawdowns) if drawdowns else 0.0,
        "hit_rate": wins / len(closed) if closed else None,
        "turnover": turnover / p.capital, "n_trades": len(trades), "n_closed": len(closed),
        "fees": all_fees,
    }  # fmt: skip


def rows_of(bars: pd.DataFrame) -> list[Row]:
    return [
        (int(r.ts), float(r.close_y), float(r.close_x), float(r.hedge_ratio), float(r.zscore))
        for r in bars.itertuples(index=False)
    ]


TRADE_FIELDS = (
    "side", "decided_ts", "entry_ts", "exit_decided_ts", "exit_ts", "exit_reason",
    "hedge_ratio", "qty_y", "qty_x", "entry_price_y", "entry_price_x",
    "exit_price_y", "exit_price_x", "pnl", "fees", "trade_return", "bars_held",
)  # fmt: skip


def assert_equals_naive(result: BacktestResult, want: dict[str, Any]) -> None:
    assert len(result.trades) == len(want["trades"])
    for got, ref in zip(result.trades, want["trades"], strict=True):
        for name in TRADE_FIELDS:
            value, expected = getattr(got, name), ref[name]
            if isinstance(expected, float):
                assert near(value, expected), (name, got, ref)
            else:
                assert value == expected, (name, got, ref)
    assert len(result.equity) == len(want["equity"])
    assert all(near(a, b) for a, b in zip(result.equity.equity, want["equity"], strict=True))
    assert all(near(a, b) for a, b in zip(result.equity.drawdown, want["drawdown"], strict=True))
    assert result.equity.position.tolist() == want["position"]
    m = result.metrics
    for name in ("total_return", "sharpe", "max_drawdown", "hit_rate", "turnover", "fees"):
        assert near(getattr(m, name), want[name]), (name, getattr(m, name), want[name])
    assert (m.n_trades, m.n_closed) == (want["n_trades"], want["n_closed"])


PARAMS = [
    BacktestParams(entry_z=2.0, exit_z=0.5, fee_bps=2.0, slippage_bps=1.5),
    BacktestParams(
        entry_z=1.5,
        exit_z=0.0,
        stop_z=3.0,
        fee_bps=4.0,
        slippage_bps=0.5,
        capital=50_000.0,
        notional=80_000.0,
    ),
    BacktestParams(entry_z=1.0, exit_z=0.25, stop_z=2.2, fee_bps=0.1, slippage_bps=3.0),
]


@pytest.mark.parametrize("seed", [7, 11])
@pytest.mark.parametrize("params", PARAMS)
def test_equals_the_naive_loop_on_synthetic_cointegrated_bars(
    make_synthetic_pair: Callable[..., Any], seed: int, params: BacktestParams
) -> None:
    pair = make_synthetic_pair(1_200, seed)
    bars = analytics_bars(pair.y, pair.x, pair.tf_ms, CONFIG, "ols")
    result = backtest(bars, params, pair.tf_ms)
    assert result.metrics.n_closed >= 5  # the comparison covers real round trips
    assert_equals_naive(result, naive(rows_of(bars), params, pair.tf_ms))


@pytest.mark.parametrize("method", ["ols", "kalman"])
@pytest.mark.parametrize("params", PARAMS)
def test_equals_the_naive_loop_on_the_recorded_july_btc_eth_bars(
    recorded_bars: Any, method: Any, params: BacktestParams
) -> None:
    bars = analytics_bars(recorded_bars.y, recorded_bars.x, 1_000, CONFIG, method)
    result = backtest(bars, params, 1_000)
    assert result.metrics.n_trades >= 3
    assert result.metrics.fees > 0
    assert_equals_naive(result, naive(rows_of(bars), params, 1_000))
    # the books balance: the final equity is the capital plus every trade's pnl
    total = params.capital + sum(t.pnl for t in result.trades)
    assert near(result.metrics.final_equity, total)


def test_analytics_bars_are_the_cores_numbers_with_the_joined_closes(recorded_bars: Any) -> None:
    bars = analytics_bars(recorded_bars.y, recorded_bars.x, 1_000, CONFIG, "kalman")
    reference = analyze(recorded_bars.y, recorded_bars.x, 1_000, CONFIG, ("kalman",))
    assert list(bars.columns) == list(BACKTEST_COLUMNS)
    assert bars["ts"].tolist() == reference["ts"].tolist()
    assert bars["hedge_ratio"].tolist() == reference["hedge_ratio"].tolist()
    z = reference["zscore"].astype(float)
    assert np.array_equal(bars["zscore"].to_numpy(), z.to_numpy(), equal_nan=True)
    closes = {j.ts: (j.y.close, j.x.close) for j in join_frames(recorded_bars.y, recorded_bars.x)}
    assert list(zip(bars["close_y"], bars["close_x"], strict=True)) == [
        closes[t] for t in bars["ts"]
    ]
    direct = backtest_legs(recorded_bars.y, recorded_bars.x, 1_000, PARAMS[1], CONFIG, "kalman")
    assert direct == backtest(bars, PARAMS[1], 1_000)


# ----------------------------------------------------------------------------------------
# No look-ahead


def perturbed_after(frame: pd.DataFrame, cut: int, rng: np.random.Generator) -> pd.DataFrame:
    out = frame.copy()
    later = out["start"] > cut
    out.loc[later, "close"] = out.loc[later, "close"] * rng.uniform(0.97, 1.03, int(later.sum()))
    return out


@pytest.mark.parametrize("source", ["synthetic_pair", "recorded_bars"])
def test_bars_after_t_never_change_what_was_decided_by_t(
    request: pytest.FixtureRequest, source: str
) -> None:
    pair = request.getfixturevalue(source)
    params = BacktestParams(entry_z=1.5, exit_z=0.3, stop_z=3.0, fee_bps=2.0, slippage_bps=1.0)
    base_bars = analytics_bars(pair.y, pair.x, pair.tf_ms, CONFIG)
    base = backtest(base_bars, params, pair.tf_ms)
    ts = base_bars["ts"].tolist()
    rng = np.random.default_rng(3)
    decided = sorted(
        {t.decided_ts for t in base.trades}
        | {t.exit_decided_ts for t in base.trades if t.exit_decided_ts is not None}
    )
    assert len(decided) >= 6
    # cuts at bars that decided something, at the bars before them, and at random bars
    cuts = {decided[1], decided[len(decided) // 2], decided[-2]}
    cuts |= {ts[ts.index(decided[3]) - 1], ts[ts.index(decided[-3]) - 1]}
    cuts |= {int(t) for t in rng.choice(ts[5:-5], 4, replace=False)}
    for cut in sorted(cuts):
        k = ts.index(cut)
        y, x = perturbed_after(pair.y, cut, rng), perturbed_after(pair.x, cut, rng)
        bars = analytics_bars(y, x, pair.tf_ms, CONFIG)
        assert bars.iloc[: k + 1].equals(base_bars.iloc[: k + 1])  # the core is causal
        assert not bars.iloc[k + 1 :].equals(base_bars.iloc[k + 1 :])
        other = backtest(bars, params, pair.tf_ms)
        _same_up_to(base, other, cut, k)
        # and on the engine's own input: everything after t replaced by noise
        noisy = base_bars.copy()
        for column in ("close_y", "close_x", "hedge_ratio"):
            noisy.loc[k + 1 :, column] *= rng.uniform(0.9, 1.1, len(ts) - k - 1)
        noisy.loc[k + 1 :, "zscore"] = rng.normal(0.0, 3.0, len(ts) - k - 1)
        _same_up_to(base, backtest(noisy, params, pair.tf_ms), cut, k)


def _same_up_to(base: BacktestResult, other: BacktestResult, cut: int, k: int) -> None:
    """Decisions at or before ``cut`` (bar ``k``) and fills at or before it are unchanged."""
    assert np.array_equal(base.equity.equity[: k + 1], other.equity.equity[: k + 1])
    assert np.array_equal(base.equity.position[: k + 1], other.equity.position[: k + 1])
    entered = [t for t in base.trades if t.decided_ts <= cut]
    others = [t for t in other.trades if t.decided_ts <= cut]
    assert len(entered) == len(others)
    for a, b in zip(entered, others, strict=True):
        assert (a.side, a.decided_ts, a.entry_ts, a.hedge_ratio) == (
            b.side, b.decided_ts, b.entry_ts, b.hedge_ratio,
        )  # fmt: skip
        if a.entry_ts <= cut:  # filled by then: the fill too
            assert (a.qty_y, a.qty_x, a.entry_price_y, a.entry_price_x) == (
                b.qty_y, b.qty_x, b.entry_price_y, b.entry_price_x,
            )  # fmt: skip
        if a.exit_decided_ts is not None and a.exit_decided_ts <= cut:
            assert a.exit_decided_ts == b.exit_decided_ts
            assert a.exit_reason == b.exit_reason
        if a.exit_ts is not None and a.exit_ts <= cut:  # closed by then: all of it
            assert a == b


# ----------------------------------------------------------------------------------------
# Hand-made bars: the t → t+1 rule, units, costs, the stop rule


def hand(
    zs: list[float],
    ys: list[float] | None = None,
    xs: list[float] | None = None,
    betas: list[float] | None = None,
) -> pd.DataFrame:
    n = len(zs)
    return pd.DataFrame(
        {
            "ts": [1_000 * (i + 1) for i in range(n)],
            "close_y": ys or [100.0] * n,
            "close_x": xs or [50.0] * n,
            "hedge_ratio": betas or [2.0] * n,
            "zscore": zs,
        }
    )


def test_a_signal_on_the_last_bar_is_not_traded() -> None:
    result = backtest(hand([0.0, 0.5, -1.0, 2.5]), BacktestParams(fee_bps=5), 1_000)
    assert result.trades == ()
    assert result.equity.equity.tolist() == [100_000.0] * 4
    assert result.equity.position.tolist() == [0, 0, 0, 0]
    assert result.metrics.turnover == 0.0
    assert result.metrics.sharpe is None  # no variation
    assert result.metrics.hit_rate is None


def test_a_decision_is_filled_at_the_next_close_with_the_decision_bars_beta() -> None:
    bars = hand(
        [math.nan, 2.5, 1.0, 0.2, 0.0],
        ys=[100.0, 100.0, 110.0, 104.0, 90.0],
        xs=[50.0, 50.0, 52.0, 51.0, 40.0],
        betas=[1.0, 2.0, 3.0, 4.0, 5.0],
    )
    p = BacktestParams(fee_bps=10.0, slippage_bps=100.0, capital=10_000.0, notional=11_000.0)
    result = backtest(bars, p, 1_000)
    (trade,) = result.trades
    # decided short at bar 2 (z 2.5), filled at bar 3; exit decided at bar 4 (z 0.2 ≤ 0.5),
    # filled at bar 5
    assert (trade.side, trade.decided_ts, trade.entry_ts) == ("short", 2_000, 3_000)
    assert (trade.exit_decided_ts, trade.exit_ts, trade.exit_reason) == (4_000, 5_000, "exit")
    assert trade.hedge_ratio == 2.0
    q = 11_000.0 / 110.0  # = 100 units of Y
    assert trade.qty_y == pytest.approx(-q)
    assert trade.qty_x == pytest.approx(2.0 * q)
    assert trade.entry_price_y == pytest.approx(110.0 * 0.99)  # sold: 1% below
    assert trade.entry_price_x == pytest.approx(52.0 * 1.01)  # bought: 1% above
    assert trade.exit_price_y == pytest.approx(90.0 * 1.01)
    assert trade.exit_price_x == pytest.approx(40.0 * 0.99)
    legs = [q * 108.9, 2 * q * 52.52, q * 90.9, 2 * q * 39.6]
    assert trade.fees == pytest.approx(0.001 * sum(legs))
    pnl = -q * (90.9 - 108.9) + 2 * q * (39.6 - 52.52) - trade.fees
    assert trade.pnl == pytest.approx(pnl)
    assert trade.trade_return == pytest.approx(pnl / (legs[0] + legs[1]))
    assert trade.bars_held == 2
    assert result.equity.position.tolist() == [0, 0, -1, -1, 0]
    assert result.equity.equity[-1] == pytest.approx(10_000.0 + pnl)
    assert result.metrics.turnover == pytest.approx(sum(legs) / 10_000.0)
    assert result.metrics.hit_rate == (1.0 if pnl > 0 else 0.0)


def test_a_reversal_closes_and_opens_at_the_same_bar_and_the_last_position_stays_open() -> None:
    result = backtest(hand([-2.1, -1.0, 2.2, 2.0, 1.0]), BacktestParams(fee_bps=1), 1_000)
    first, second = result.trades
    assert (first.side, first.entry_ts, first.exit_ts, first.exit_reason) == (
        "long", 2_000, 4_000, "reverse",
    )  # fmt: skip
    assert (second.side, second.decided_ts, second.entry_ts) == ("short", 3_000, 4_000)
    assert second.is_open
    assert second.exit_price_y is None
    assert second.exit_reason is None
    assert second.pnl == pytest.approx(-second.fees)  # flat prices: only the entry fees
    assert (result.metrics.n_trades, result.metrics.n_closed) == (2, 1)
    assert result.metrics.turnover == pytest.approx(6.0)  # 3 fills x 2 legs of 100,000


@pytest.mark.parametrize(
    ("zs", "positions", "stops"),
    [
        # long at −2.5, stopped at −4.2 (held until filled), locked while z stays negative
        # outside the exit band: −2.5 again is not entered until z came back to −0.4
        ([-2.5, -3.0, -4.2, -2.5, -2.6, -0.4, -2.5, 0.0], [0, 1, 1, 0, 0, 0, 0, 1], 1),
        # stopped, released by crossing zero (0.8, outside the exit band): +2.5 is entered
        ([-2.5, -4.0, -2.6, 0.8, 2.5, 1.0], [0, 1, 0, 0, 0, -1], 1),
        # a jump from beyond +stop to ≤ −entry releases and enters long on that bar
        ([2.5, 4.5, -2.5, -2.4, -2.3], [0, -1, 0, 1, 1], 1),
        # |z| ≥ stop while flat: not entered, and locked until inside the exit band
        ([0.0, 5.0, 2.5, 2.1, 0.4, 2.1, 2.1], [0, 0, 0, 0, 0, 0, -1], 0),
        # exactly at the stop: stops
        ([2.0, 4.0, 3.0], [0, -1, 0], 1),
    ],
)
def test_the_stop_rule(zs: list[float], positions: list[int], stops: int) -> None:
    result = backtest(hand(zs), BacktestParams(entry_z=2.0, exit_z=0.5, stop_z=4.0), 1_000)
    assert result.equity.position.tolist() == positions
    assert_equals_naive(result, naive(rows_of(hand(zs)), result.params, 1_000))
    assert [t.exit_reason for t in result.trades].count("stop") == stops


def test_more_cost_gives_less_return_and_the_same_decisions(recorded_bars: Any) -> None:
    bars = analytics_bars(recorded_bars.y, recorded_bars.x, 1_000, CONFIG)
    base = dict(entry_z=1.5, exit_z=0.3, stop_z=3.5)

    def run(fee: float, slippage: float) -> BacktestResult:
        return backtest(bars, BacktestParams(**base, fee_bps=fee, slippage_bps=slippage), 1_000)

    free = run(0.0, 0.0)
    assert free.metrics.n_trades >= 3
    assert free.metrics.fees == 0.0
    for costs in ([(0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (2.0, 0.0), (5.0, 0.0)],
                  [(0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (0.0, 2.0), (0.0, 5.0)],
                  [(1.0, 0.0), (1.0, 1.0), (1.0, 3.0)]):  # fmt: skip
        results = [run(f, s) for f, s in costs]
        returns = [r.metrics.total_return for r in results]
        assert all(a > b for a, b in itertools.pairwise(returns)), (costs, returns)
        for cheap, dear in itertools.pairwise(results):
            assert [(t.side, t.decided_ts, t.exit_decided_ts) for t in dear.trades] == [
                (t.side, t.decided_ts, t.exit_decided_ts) for t in free.trades
            ]
            assert all(a.pnl > b.pnl for a, b in zip(cheap.trades, dear.trades, strict=True))
            assert dear.metrics.final_equity < cheap.metrics.final_equity


# ----------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"entry_z": 0.0}, "entry_z", "> 0"),
        ({"exit_z": -0.1}, "exit_z", ">= 0"),
        ({"entry_z": 1.0, "exit_z": 1.0}, "exit_z", "below entry_z"),
        ({"entry_z": 1.0, "exit_z": 1.5}, "exit_z", "below entry_z"),
        ({"stop_z": 2.0}, "stop_z", "above entry_z"),
        ({"stop_z": 1.0}, "stop_z", "above entry_z"),
        ({"fee_bps": -1.0}, "fee_bps", ">= 0"),
        ({"slippage_bps": -0.5}, "slippage_bps", ">= 0"),
        ({"capital": 0.0}, "capital", "> 0"),
        ({"notional": -5.0}, "notional", "> 0"),
        ({"fee_bps": math.nan}, "fee_bps", "finite"),
        ({"entry_z": math.inf}, "entry_z", "finite"),
    ],
)
def test_invalid_parameters_say_what_is_wrong(
    changes: dict[str, float], field: str, words: str
) -> None:
    with pytest.raises(BacktestParamError) as caught:
        BacktestParams(**changes)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_malformed_bars_are_refused() -> None:
    p = BacktestParams()
    with pytest.raises(ValueError, match="missing column"):
        backtest(hand([0.0]).drop(columns="zscore"), p, 1_000)
    with pytest.raises(ValueError, match="must increase"):
        backtest(hand([0.0, 0.0]).assign(ts=[5, 5]), p, 1_000)
    with pytest.raises(ValueError, match="close_x at ts 2000"):
        backtest(hand([0.0, 0.0]).assign(close_x=[1.0, 0.0]), p, 1_000)
    with pytest.raises(ValueError, match="finite hedge_ratio"):
        backtest(hand([0.0, 1.0]).assign(hedge_ratio=[1.0, math.nan]), p, 1_000)
    with pytest.raises(ValueError, match="tf_ms"):
        backtest(hand([0.0]), p, 0)


def test_no_bars_give_an_empty_run() -> None:
    result = backtest(hand([]), BacktestParams(), 60_000)
    assert result.trades == ()
    assert len(result.equity) == 0
    assert result.metrics.total_return == 0.0
    assert result.metrics.final_equity == 100_000.0
    assert result.metrics.sharpe is None
    assert result.equity.frame().empty
    assert result.trades_frame().empty
