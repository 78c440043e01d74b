"""Hedge ratios of a pair ``Y = α + β·X``: rolling OLS, rolling Huber and a Kalman filter.

Each estimator takes one joined bar at a time (``update(y, x)``) and has no I/O;
the batch functions in :mod:`pairstream.analytics.batch` give the same numbers
over whole arrays.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from pairstream.analytics.rolling import CONSTANT_X, RollingCov, anchored_sums

__all__ = [
    "HUBER_T",
    "MAD_NORMALISER",
    "HedgeEstimate",
    "HuberFit",
    "KalmanHedge",
    "RollingHuber",
    "RollingOLS",
    "huber_fit",
]

Array = npt.NDArray[np.float64]

#: statsmodels' ``HuberT()`` tuning constant (95% efficiency under normal errors)
HUBER_T = 1.345
#: ``scipy.stats.norm.ppf(0.75)``: statsmodels' ``mad`` divides the median |residual| by it
MAD_NORMALISER = 0.6744897501960817


class HedgeEstimate(NamedTuple):
    """One bar's hedge: ``spread = y − (intercept + hedge_ratio·x)``.

    ``forecast_error`` and ``forecast_variance`` are the Kalman filter's one-step
    prediction error ``y − (α⁻ + β⁻·x)`` (with the state *before* this bar) and
    its variance; ``None`` for the windowed regressions.
    """

    hedge_ratio: float
    intercept: float
    spread: float
    forecast_error: float | None = None
    forecast_variance: float | None = None


class RollingOLS:
    """Least squares of y on x over the last ``window`` bars, O(1) per bar.

    The anchored sums of :class:`~pairstream.analytics.rolling.RollingCov`
    (deviations from the window mean at the last exact re-summation) over a ring
    buffer, re-summed exactly every ``8·window`` bars. This runs for every pair
    on every bar, so the state lives in the locals of a generator
    (:func:`_rolling_ols`) rather than in attributes.
    Returns ``None`` until the window is full (or while x is constant in it).
    """

    __slots__ = ("_send", "intercept", "window")

    def __init__(self, window: int, intercept: bool = True) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        self.window = window
        self.intercept = intercept
        loop = _rolling_ols(window, intercept)
        next(loop)
        self._send = loop.send

    def update(self, y: float, x: float) -> HedgeEstimate | None:
        """Add one bar and return the fit over the window that ends with it."""
        return self._send((y, x))


def _rolling_ols(
    window: int, intercept: bool
) -> Generator[HedgeEstimate | None, tuple[float, float], None]:
    xs = [0.0] * window
    ys = [0.0] * window
    i = n = since = 0
    resum_every = 8 * window
    kx = ky = sx = sy = sxx = sxy = 0.0
    result: HedgeEstimate | None = None
    while True:
        y, x = yield result
        if n == 0:
            kx = x
            ky = y
        dx = x - kx
        dy = y - ky
        if n == window:
            ox = xs[i] - kx
            oy = ys[i] - ky
            sx += dx - ox
            sy += dy - oy
            sxx += dx * dx - ox * ox
            sxy += dx * dy - ox * oy
        else:
            n += 1
            sx += dx
            sy += dy
            sxx += dx * dx
            sxy += dx * dy
        xs[i] = x
        ys[i] = y
        i += 1
        if i == window:
            i = 0
        since += 1
        if since == resum_every:
            since = 0
            kx, ky, sx, sy, sxx, _, sxy = anchored_sums(xs, ys)  # n == window here
        if n < window:
            result = None
        elif intercept:
            cxx = sxx - sx * sx / n
            if cxx <= CONSTANT_X * sxx or cxx <= 1e-24 * (sxx + n * kx * kx):  # x constant
                result = None
            else:
                beta = (sxy - sx * sy / n) / cxx
                alpha = (ky + sy / n) - beta * (kx + sx / n)
                result = HedgeEstimate(beta, alpha, y - (alpha + beta * x))
        else:
            raw_xx = sxx + 2.0 * kx * sx + n * kx * kx
            if raw_xx <= 0.0:
                result = None
            else:
                beta = (sxy + kx * sy + ky * sx + n * kx * ky) / raw_xx
                result = HedgeEstimate(beta, 0.0, y - beta * x)


@dataclass(frozen=True, slots=True)
class HuberFit:
    """Result of :func:`huber_fit`: coefficients, MAD scale and IRLS iterations."""

    hedge_ratio: float
    intercept: float
    scale: float
    iterations: int


def _deviance(resid: Array, w: Array, k: int, t: float) -> float:
    # RLM's convergence criterion: Huber ρ summed over the residuals divided by the
    # weighted fit's *variance* Σw·r²/(n−k) (statsmodels' WLS ``scale``), not by the MAD
    z = resid / (float(w @ (resid * resid)) / (resid.shape[0] - k))
    a = np.abs(z)
    return float(np.sum(np.where(a <= t, 0.5 * z * z, t * a - 0.5 * t * t)))


def _wls(y: Array, x: Array, w: Array, intercept: bool) -> tuple[float, float]:
    sw = float(w.sum())
    if intercept:
        xm = float(w @ x) / sw
        ym = float(w @ y) / sw
        dx = x - xm
        wdx = w * dx
        beta = float(wdx @ (y - ym)) / float(wdx @ dx)
        return beta, ym - beta * xm
    wx = w * x
    return float(wx @ y) / float(wx @ x), 0.0


def huber_fit(
    y: Array,
    x: Array,
    *,
    intercept: bool = True,
    t: float = HUBER_T,
    tol: float = 1e-8,
    maxiter: int = 50,
    start: tuple[float, float] | None = None,
) -> HuberFit:
    """Huber M-estimate of ``y = α + βx`` by IRLS, following statsmodels' ``RLM`` exactly.

    Conventions of ``RLM(y, X, M=HuberT(t)).fit()``: start from OLS (or
    ``start``), scale = MAD of the residuals about 0 (``median|r| / 0.6745``),
    re-estimated after every weighted fit; weights ``min(1, t/|r/scale|)``; stop
    when RLM's deviance criterion changes by at most ``tol`` or after ``maxiter``
    iterations (at least one weighted fit is always made).
    """
    k = 2 if intercept else 1
    w = np.ones_like(y)
    if start is None:
        beta, alpha = _wls(y, x, w, intercept)
    else:
        beta, alpha = start
    resid = y - (alpha + beta * x)
    scale = float(np.median(np.abs(resid))) / MAD_NORMALISER
    deviance = _deviance(resid, w, k, t)
    iteration = 1
    while scale > 0.0:
        w = np.minimum(1.0, t / np.maximum(np.abs(resid) / scale, t))
        beta, alpha = _wls(y, x, w, intercept)
        resid = y - (alpha + beta * x)
        scale = float(np.median(np.abs(resid))) / MAD_NORMALISER
        previous, deviance = deviance, _deviance(resid, w, k, t)
        iteration += 1
        if not (abs(deviance - previous) > tol and iteration < maxiter):
            break
    return HuberFit(beta, alpha, scale, iteration)


class RollingHuber:
    """Huber robust regression refitted over the last ``window`` bars, O(window) per bar.

    The window lives in a NumPy ring buffer (a regression does not depend on the
    order of its rows); each fit starts from the window's OLS solution, exactly
    as ``RLM`` does, which the O(1) rolling sums provide for free.
    """

    __slots__ = ("_cov", "_i", "_x", "_y", "intercept", "maxiter", "t", "tol", "window")

    def __init__(
        self,
        window: int,
        intercept: bool = True,
        t: float = HUBER_T,
        tol: float = 1e-8,
        maxiter: int = 50,
    ) -> None:
        self.window = window
        self.intercept = intercept
        self.t = t
        self.tol = tol
        self.maxiter = maxiter
        self._cov = RollingCov(window)
        self._x = np.empty(window)
        self._y = np.empty(window)
        self._i = 0

    def update(self, y: float, x: float) -> HedgeEstimate | None:
        """Add one bar and return the Huber fit over the window that ends with it."""
        self._x[self._i] = x
        self._y[self._i] = y
        self._i = (self._i + 1) % self.window
        cov = self._cov
        cov.update(x, y)
        if not cov.full:
            return None
        start = cov.ols(self.intercept)
        if start is None:
            return None
        fit = huber_fit(
            self._y,
            self._x,
            intercept=self.intercept,
            t=self.t,
            tol=self.tol,
            maxiter=self.maxiter,
            start=start,
        )
        return HedgeEstimate(
            fit.hedge_ratio, fit.intercept, y - (fit.intercept + fit.hedge_ratio * x)
        )


class KalmanHedge:
    """Kalman filter on the state ``[β, α]`` of ``y = β·x + α + v``.

    State transition is the identity plus noise ``w ~ N(0, q·I)`` with
    ``q = delta / (1 − delta)``; observation noise ``v ~ N(0, obs_var)``. The
    filter starts at ``[β, α] = [0, 0]`` with covariance ``initial_var·I``.
    Per bar: predict ``P ← P + qI``; forecast ``e = y − (βx + α)`` with variance
    ``S = HPHᵀ + obs_var`` (``H = [x, 1]``); gain ``K = PHᵀ/S``; update
    ``[β, α] ← [β, α] + K·e`` and ``P ← P − K·S·Kᵀ``. The emitted hedge is the
    updated state and ``spread = y − (α + β·x)`` with it.
    """

    __slots__ = ("alpha", "beta", "obs_var", "p00", "p01", "p11", "q")

    def __init__(self, delta: float = 1e-5, obs_var: float = 1.0, initial_var: float = 1.0) -> None:
        if not 0.0 < delta < 1.0:
            raise ValueError(f"delta must lie in (0, 1), got {delta}")
        if obs_var <= 0.0 or initial_var <= 0.0:
            raise ValueError("obs_var and initial_var must be > 0")
        self.q = delta / (1.0 - delta)
        self.obs_var = obs_var
        self.beta = 0.0
        self.alpha = 0.0
        self.p00 = initial_var
        self.p01 = 0.0
        self.p11 = initial_var

    def update(self, y: float, x: float) -> HedgeEstimate:
        """Filter one bar and return the updated hedge with its forecast error."""
        q = self.q
        p00 = self.p00 + q
        p01 = self.p01
        p11 = self.p11 + q
        error = y - (self.beta * x + self.alpha)
        # P·Hᵀ with H = [x, 1]
        ph0 = p00 * x + p01
        ph1 = p01 * x + p11
        variance = ph0 * x + ph1 + self.obs_var
        k0 = ph0 / variance
        k1 = ph1 / variance
        self.beta += k0 * error
        self.alpha += k1 * error
        self.p00 = p00 - k0 * ph0
        self.p01 = p01 - k0 * ph1
        self.p11 = p11 - k1 * ph1
        return HedgeEstimate(
            self.beta,
            self.alpha,
            y - (self.alpha + self.beta * x),
            forecast_error=error,
            forecast_variance=variance,
        )
