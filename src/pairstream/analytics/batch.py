"""Batch forms of the pair analytics over whole NumPy/pandas series.

Each function computes, for every bar, what the incremental objects of
:mod:`pairstream.analytics.pair` give bar by bar (same windows, same
definitions; values are NaN where the incremental form gives null), by direct
whole-window formulas. :func:`analyze` runs the incremental core itself over
two bar tables: it is what ``pairstream analyze`` prints, and what the
streaming workers emit for the same bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from pairstream.analytics.hedge import HUBER_T, KalmanHedge, huber_fit
from pairstream.analytics.join import JoinedBar, PairJoiner
from pairstream.analytics.pair import METHODS, LegBar, Method, PairAnalytics, PairConfig, PairOutput
from pairstream.analytics.stationarity import half_life_from_slope

__all__ = [
    "BAR_COLUMNS",
    "OUTPUT_COLUMNS",
    "analyze",
    "join_frames",
    "kalman_hedge",
    "output_row",
    "realized_volatility",
    "rolling_buy_share",
    "rolling_correlation",
    "rolling_half_life",
    "rolling_huber",
    "rolling_ols",
    "rolling_vwap",
    "rolling_zscore",
]

Array = npt.NDArray[np.float64]

#: the bar columns (DESIGN §3) the analytics read; ``start`` is the bar start in epoch ms
BAR_COLUMNS = ("start", "close", "volume", "quote_volume", "buy_volume")

#: columns of :func:`analyze`'s output, one row per (ts, method)
OUTPUT_COLUMNS = (
    "ts",
    "method",
    "hedge_ratio",
    "intercept",
    "spread",
    "forecast_error",
    "forecast_variance",
    "mean",
    "std",
    "zscore",
    "position",
    "signal",
    "correlation",
    "vol_y",
    "vol_x",
    "vwap_y",
    "vwap_x",
    "buy_share_y",
    "buy_share_x",
    "half_life",
    "adf_stat",
    "adf_pvalue",
    "coint_stat",
    "coint_pvalue",
    "hedge_ratio_ci_low",
    "hedge_ratio_ci_high",
    "tests_ts",
)


def _windows(values: Array, window: int) -> Array:
    return sliding_window_view(np.asarray(values, dtype=np.float64), window)


def _pad(values: Array, n: int) -> Array:
    out = np.full(n, np.nan)
    out[n - values.shape[0] :] = values
    return out


def rolling_ols(y: Array, x: Array, window: int, intercept: bool = True) -> tuple[Array, Array]:
    """``(β, α)`` per bar of the least-squares fit over the ``window`` bars ending there."""
    n = len(y)
    wy, wx = _windows(y, window), _windows(x, window)
    if intercept:
        dx = wx - wx.mean(axis=1, keepdims=True)
        dy = wy - wy.mean(axis=1, keepdims=True)
        beta = (dx * dy).sum(axis=1) / (dx * dx).sum(axis=1)
        alpha = wy.mean(axis=1) - beta * wx.mean(axis=1)
    else:
        beta = (wx * wy).sum(axis=1) / (wx * wx).sum(axis=1)
        alpha = np.zeros_like(beta)
    return _pad(beta, n), _pad(alpha, n)


def rolling_huber(
    y: Array,
    x: Array,
    window: int,
    intercept: bool = True,
    t: float = HUBER_T,
    tol: float = 1e-8,
    maxiter: int = 50,
) -> tuple[Array, Array]:
    """``(β, α)`` per bar of the Huber fit (RLM conventions) over the trailing window.

    ``tol`` and ``maxiter`` are :func:`~pairstream.analytics.hedge.huber_fit`'s (RLM's defaults).
    """
    n = len(y)
    beta, alpha = np.full(n, np.nan), np.full(n, np.nan)
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    for end in range(window, n + 1):
        fit = huber_fit(
            y[end - window : end],
            x[end - window : end],
            intercept=intercept,
            t=t,
            tol=tol,
            maxiter=maxiter,
        )
        beta[end - 1], alpha[end - 1] = fit.hedge_ratio, fit.intercept
    return beta, alpha


def kalman_hedge(
    y: Array, x: Array, delta: float = 1e-5, obs_var: float = 1.0, initial_var: float = 1.0
) -> pd.DataFrame:
    """The Kalman hedge per bar: hedge_ratio, intercept, forecast_error, forecast_variance."""
    kf = KalmanHedge(delta, obs_var, initial_var)
    rows = [kf.update(float(a), float(b)) for a, b in zip(y, x, strict=True)]
    return pd.DataFrame(
        {
            "hedge_ratio": [r.hedge_ratio for r in rows],
            "intercept": [r.intercept for r in rows],
            "forecast_error": [r.forecast_error for r in rows],
            "forecast_variance": [r.forecast_variance for r in rows],
        }
    )


def rolling_zscore(spread: pd.Series, window: int) -> pd.DataFrame:
    """``mean``, sample ``std`` and ``zscore`` of the spread over the trailing window."""
    rolling = spread.rolling(window)
    mean = rolling.mean()
    std = rolling.std(ddof=1)
    return pd.DataFrame({"mean": mean, "std": std, "zscore": (spread - mean) / std})


def rolling_correlation(close_y: pd.Series, close_x: pd.Series, window: int) -> pd.Series:
    """Pearson correlation of the log returns over the last ``window`` returns."""
    return np.log(close_y).diff().rolling(window).corr(np.log(close_x).diff())


def realized_volatility(close: pd.Series, window: int) -> pd.Series:
    """``sqrt(Σ r²)`` of the log returns over the last ``window`` returns (not annualised)."""
    r = np.log(close).diff()
    return np.sqrt((r * r).rolling(window).sum())


def rolling_vwap(quote_volume: pd.Series, volume: pd.Series, window: int) -> pd.Series:
    """``Σ quote_volume / Σ volume`` over the last ``window`` bars."""
    return quote_volume.rolling(window).sum() / volume.rolling(window).sum()


def rolling_buy_share(buy_volume: pd.Series, volume: pd.Series, window: int) -> pd.Series:
    """Taker buy share ``Σ buy_volume / Σ volume`` over the last ``window`` bars."""
    return buy_volume.rolling(window).sum() / volume.rolling(window).sum()


def rolling_half_life(spread: Array, window: int) -> Array:
    """Half-life (bars) of the AR(1) fit over the last ``window`` spreads; NaN where undefined."""
    s = np.asarray(spread, dtype=np.float64)
    beta, _ = rolling_ols(np.diff(s), s[:-1], window - 1)
    out = np.full(len(s), np.nan)
    for i, b in enumerate(beta, start=1):
        if not math.isnan(b):
            hl = half_life_from_slope(float(b))
            out[i] = math.nan if hl is None else hl
    return out


def _leg_rows(frame: pd.DataFrame, leg: str) -> list[tuple[int, LegBar]]:
    missing = [c for c in BAR_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"leg {leg}: bar table lacks column(s) {', '.join(missing)}")
    table = frame[list(BAR_COLUMNS)].sort_values("start", kind="stable")
    duplicated = table["start"][table["start"].duplicated()]
    if len(duplicated):
        raise ValueError(f"leg {leg}: more than one bar starts at {int(duplicated.iloc[0])}")
    rows = []
    for start, close, volume, quote, buy in table.itertuples(index=False):
        bar = LegBar(float(close), float(volume), float(quote), float(buy))
        if not (math.isfinite(bar.close) and bar.close > 0.0) or not all(
            math.isfinite(v) and v >= 0.0 for v in bar[1:]
        ):
            raise ValueError(f"leg {leg}: bar {int(start)} has a bad price or volume: {bar}")
        rows.append((int(start), bar))
    return rows


def join_frames(frame_y: pd.DataFrame, frame_x: pd.DataFrame) -> list[JoinedBar]:
    """Join two legs' bar tables (any row order) by the rule of :mod:`.join`.

    As in the stream, bars after the end of the shorter leg are not decided (the
    stream would wait for that leg's next bar), so they give no rows.
    """
    rows = sorted(
        [(ts, 0, bar) for ts, bar in _leg_rows(frame_y, "Y")]
        + [(ts, 1, bar) for ts, bar in _leg_rows(frame_x, "X")],
        key=lambda r: (r[0], r[1]),
    )
    joiner = PairJoiner()
    joined: list[JoinedBar] = []
    for ts, leg, bar in rows:
        joined += joiner.add(leg, ts, bar) or []
    return joined


def output_row(out: PairOutput) -> dict[str, Any]:
    """One :class:`PairOutput` as a flat record (the columns of :data:`OUTPUT_COLUMNS`)."""
    tests = out.tests
    h = out.hedge
    return {
        "ts": out.ts,
        "method": out.method,
        "hedge_ratio": h.hedge_ratio,
        "intercept": h.intercept,
        "spread": h.spread,
        "forecast_error": h.forecast_error,
        "forecast_variance": h.forecast_variance,
        "mean": out.mean,
        "std": out.std,
        "zscore": out.zscore,
        "position": out.position,
        "signal": out.signal,
        "correlation": out.correlation,
        "vol_y": out.vol_y,
        "vol_x": out.vol_x,
        "vwap_y": out.vwap_y,
        "vwap_x": out.vwap_x,
        "buy_share_y": out.buy_share_y,
        "buy_share_x": out.buy_share_x,
        "half_life": out.half_life,
        "adf_stat": None if tests is None else tests.adf_stat,
        "adf_pvalue": None if tests is None else tests.adf_pvalue,
        "coint_stat": None if tests is None else tests.coint_stat,
        "coint_pvalue": None if tests is None else tests.coint_pvalue,
        "hedge_ratio_ci_low": None if tests is None else tests.hedge_ratio_ci_low,
        "hedge_ratio_ci_high": None if tests is None else tests.hedge_ratio_ci_high,
        "tests_ts": None if tests is None else tests.ts,
    }


def analyze(
    frame_y: pd.DataFrame,
    frame_x: pd.DataFrame,
    tf_ms: int,
    config: PairConfig | None = None,
    methods: Sequence[Method] = METHODS,
) -> pd.DataFrame:
    """Every metric per ``(ts, method)`` for two legs' bar tables, by the incremental core."""
    core = PairAnalytics(tf_ms, config or PairConfig(), tuple(methods))
    records = [
        output_row(out)
        for joined in join_frames(frame_y, frame_x)
        for out in core.update(joined.ts, joined.y, joined.x)
    ]
    return pd.DataFrame.from_records(records, columns=list(OUTPUT_COLUMNS))
