"""Stationarity and cointegration tests on whole windows (O(window), run at a cadence).

* :func:`adf` — augmented Dickey–Fuller with a *fixed* lag, the regression of
  ``statsmodels.tsa.stattools.adfuller(x, maxlag=lag, autolag=None)``:
  ``Δx_t = γ·x_{t−1} + Σ_{i=1..lag} φ_i·Δx_{t−i} (+ c)``; the statistic is the
  t-value of γ, the p-value MacKinnon's (1994) approximation.
* :func:`coint` — Engle–Granger: OLS of y on ``[x, 1]``, then :func:`adf` on the
  residuals without a constant, p-value for two variables (``coint``'s numbers).
* :func:`half_life` — AR(1) of a series by OLS, ``Δs_t = a + b·s_{t−1} + ε``;
  half-life ``= −ln 2 / ln(1 + b)`` bars, defined only when ``−1 < b < 0``.
* :func:`ols_hac` — OLS with Newey–West (Bartlett kernel) standard errors, the
  numbers of ``OLS(...).fit(cov_type="HAC", cov_kwds={"maxlags": L})``.

Autolag is never used: its cost grows with the window (DESIGN §9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from statsmodels.tsa.adfvalues import mackinnonp

__all__ = [
    "AdfResult",
    "HacFit",
    "adf",
    "coint",
    "half_life",
    "half_life_from_slope",
    "newey_west_lags",
    "ols_hac",
]

Array = npt.NDArray[np.float64]

#: two-sided 95% normal quantile (statsmodels' HAC confidence intervals use the normal)
Z_975 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class AdfResult:
    """A unit-root test: statistic, MacKinnon p-value, lag and observations used."""

    stat: float
    pvalue: float
    lag: int
    nobs: int


def _t_first(y: Array, design: Array) -> float:
    """t-value of the first coefficient of the OLS of ``y`` on ``design``."""
    params, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < design.shape[1]:
        return math.nan
    resid = y - design @ params
    dof = design.shape[0] - design.shape[1]
    sigma2 = float(resid @ resid) / dof
    cov00 = float(np.linalg.inv(design.T @ design)[0, 0])
    return float(params[0]) / math.sqrt(sigma2 * cov00)


def _adf_stat(x: Array, lag: int, constant: bool) -> tuple[float, int]:
    dx = np.diff(x)
    nobs = dx.shape[0] - lag
    columns = [x[lag:-1]]
    columns += [dx[lag - i : lag - i + nobs] for i in range(1, lag + 1)]
    if constant:
        columns.append(np.ones(nobs))
    return _t_first(dx[lag:], np.column_stack(columns)), nobs


def _check_lag(n: int, lag: int, ntrend: int) -> None:
    if lag < 0:
        raise ValueError(f"lag must be >= 0, got {lag}")
    if lag > n // 2 - ntrend - 1:
        raise ValueError(f"lag {lag} too large for {n} observations (at most n/2 - 1 - {ntrend})")


def adf(x: Array, lag: int = 1, regression: Literal["c", "n"] = "c") -> AdfResult | None:
    """ADF test of ``x`` with a fixed ``lag``; ``None`` if ``x`` is constant."""
    x = np.asarray(x, dtype=np.float64)
    _check_lag(x.shape[0], lag, 1 if regression == "c" else 0)
    if float(x.max()) == float(x.min()):
        return None
    stat, nobs = _adf_stat(x, lag, regression == "c")
    if not math.isfinite(stat):
        return None
    return AdfResult(stat, float(mackinnonp(stat, regression=regression, N=1)), lag, nobs)


def coint(y: Array, x: Array, lag: int = 1) -> AdfResult | None:
    """Engle–Granger test that ``y`` and ``x`` are cointegrated (constant in the first stage).

    ``None`` when the first-stage fit is (almost) perfect or degenerate, where
    statsmodels warns and reports −inf.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    _check_lag(y.shape[0], lag, 0)
    # the first stage on centred data: the same residuals as OLS on [x, 1], without
    # the conditioning loss of a constant column next to prices near 60,000
    xc = x - x.mean()
    yc = y - y.mean()
    sxx = float(xc @ xc)
    if sxx <= 0.0:
        return None
    resid = yc - (float(xc @ yc) / sxx) * xc
    rsquared = 1.0 - float(resid @ resid) / float(yc @ yc)
    if not rsquared < 1.0 - 100.0 * math.sqrt(np.finfo(float).eps):
        return None
    stat, nobs = _adf_stat(resid, lag, constant=False)
    if not math.isfinite(stat):
        return None
    return AdfResult(stat, float(mackinnonp(stat, regression="c", N=2)), lag, nobs)


def half_life_from_slope(b: float) -> float | None:
    """Half-life in bars of ``Δs_t = a + b·s_{t−1}``: ``−ln 2 / ln(1 + b)`` for ``−1 < b < 0``."""
    if not -1.0 < b < 0.0:
        return None
    return -math.log(2.0) / math.log1p(b)


def half_life(spread: Array) -> float | None:
    """Half-life of mean reversion of ``spread`` from its AR(1) OLS fit (see module doc)."""
    s = np.asarray(spread, dtype=np.float64)
    lagged = s[:-1]
    ds = np.diff(s)
    dl = lagged - lagged.mean()
    sxx = float(dl @ dl)
    if sxx <= 0.0:
        return None
    return half_life_from_slope(float(dl @ (ds - ds.mean())) / sxx)


@dataclass(frozen=True, slots=True)
class HacFit:
    """OLS of ``y = α + βx`` with Newey–West standard errors and 95% intervals for β."""

    hedge_ratio: float
    intercept: float
    hedge_ratio_se: float
    ci_low: float
    ci_high: float
    maxlags: int


def newey_west_lags(n: int) -> int:
    """The usual automatic bandwidth ``floor(4·(n/100)^(2/9))``."""
    return int(4.0 * (n / 100.0) ** (2.0 / 9.0))


def ols_hac(y: Array, x: Array, maxlags: int | None = None) -> HacFit | None:
    """OLS of y on ``[1, x]`` with HAC (Bartlett kernel) covariance, no small-sample factor.

    Matches ``OLS(y, add_constant(x)).fit(cov_type="HAC", cov_kwds={"maxlags": L})``
    (statsmodels' default ``use_correction=False``); ``L`` defaults to
    :func:`newey_west_lags`.
    """
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    n = y.shape[0]
    lags = newey_west_lags(n) if maxlags is None else maxlags
    # centred x: the same slope, residuals and slope variance, better conditioned
    x_mean = float(x.mean())
    design = np.column_stack([np.ones(n), x - x_mean])
    params, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < 2:
        return None
    resid = y - design @ params
    scores = design * resid[:, None]
    meat = scores.T @ scores
    for lag in range(1, lags + 1):
        gamma = scores[lag:].T @ scores[:-lag]
        meat += (1.0 - lag / (lags + 1.0)) * (gamma + gamma.T)
    bread = np.linalg.inv(design.T @ design)
    cov = bread @ meat @ bread
    se = math.sqrt(float(cov[1, 1]))
    beta = float(params[1])
    alpha = float(params[0]) - beta * x_mean
    return HacFit(beta, alpha, se, beta - Z_975 * se, beta + Z_975 * se, lags)
