"""The pair scan: correlation and cointegration of every pair of symbols (pure, batch).

Input: each symbol's bars over the same trailing window, as a table of closes
indexed by bar start (one column per symbol). Bar starts missing for a symbol
carry its previous close forward (the rule of :mod:`pairstream.analytics.join`);
rows before every symbol has a first bar are dropped. For each unordered pair
(``y`` the alphabetically first symbol): the Pearson correlation of log returns
(all pairs in one matrix product), the OLS hedge ratio of y on x with a
constant, and Engle–Granger (:func:`pairstream.analytics.stationarity.coint`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pairstream.analytics.stationarity import coint

__all__ = ["ScanRow", "align_closes", "scan_pairs"]


@dataclass(frozen=True, slots=True)
class ScanRow:
    """One pair of the scan."""

    y: str
    x: str
    nobs: int
    correlation: float | None
    hedge_ratio: float | None
    coint_stat: float | None
    coint_pvalue: float | None


def align_closes(closes: pd.DataFrame, window: int) -> pd.DataFrame:
    """The last ``window`` rows on which every symbol has a price (carried forward)."""
    table = closes.sort_index().ffill().dropna(how="any")
    return table.iloc[-window:]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def scan_pairs(closes: pd.DataFrame, adf_lag: int = 1) -> list[ScanRow]:
    """Scan every pair of the columns of ``closes`` (aligned closes, oldest first)."""
    symbols = sorted(str(c) for c in closes.columns)
    prices = closes[symbols].to_numpy(dtype=np.float64)
    n = prices.shape[0]
    rows: list[ScanRow] = []
    if n < 3:
        return [
            ScanRow(y, x, n, None, None, None, None) for y, x in itertools.combinations(symbols, 2)
        ]
    returns = np.diff(np.log(prices), axis=0)
    centred = returns - returns.mean(axis=0)
    norms = np.sqrt((centred * centred).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (centred.T @ centred) / np.outer(norms, norms)
    levels = prices - prices.mean(axis=0)
    sxx = (levels * levels).sum(axis=0)
    lag_ok = adf_lag <= n // 2 - 1
    for i, j in itertools.combinations(range(len(symbols)), 2):
        c = float(corr[i, j])
        beta = float(levels[:, j] @ levels[:, i]) / float(sxx[j]) if sxx[j] > 0 else math.nan
        test = coint(prices[:, i], prices[:, j], adf_lag) if lag_ok else None
        rows.append(
            ScanRow(
                symbols[i],
                symbols[j],
                n,
                None if not math.isfinite(c) else max(-1.0, min(1.0, c)),
                _finite(beta),
                None if test is None else test.stat,
                None if test is None else test.pvalue,
            )
        )
    return rows
