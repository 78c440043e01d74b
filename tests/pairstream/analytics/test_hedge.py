"""Hedge ratios window by window against statsmodels and an independent Kalman filter."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from pairstream.analytics.batch import kalman_hedge, rolling_huber, rolling_ols
from pairstream.analytics.hedge import KalmanHedge, RollingHuber, RollingOLS, huber_fit

pytestmark = pytest.mark.unit


def relative_error(got: float, want: float) -> float:
    return abs(got - want) / abs(want)


def closes(pair) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    joined = pair.y.merge(pair.x, on="start", suffixes=("_y", "_x"))
    return joined["close_y"].to_numpy(), joined["close_x"].to_numpy()


@pytest.mark.parametrize("intercept", [True, False], ids=["with-intercept", "through-origin"])
@pytest.mark.parametrize(
    ("data", "window"), [("recorded_bars", 120), ("kline_bars", 500), ("synthetic_pair", 300)]
)
def test_rolling_ols_matches_statsmodels_in_every_window(request, data, window, intercept):  # type: ignore[no-untyped-def]
    y, x = closes(request.getfixturevalue(data))
    ols = RollingOLS(window, intercept)
    batch_beta, batch_alpha = rolling_ols(y, x, window, intercept)
    worst = 0.0
    checked = 0
    for i in range(len(y)):
        estimate = ols.update(y[i], x[i])
        if i < window - 1:
            assert estimate is None
            continue
        design = x[i - window + 1 : i + 1, None]
        if intercept:
            design = sm.add_constant(design)
        params = sm.OLS(y[i - window + 1 : i + 1], design).fit().params
        beta, alpha = (params[1], params[0]) if intercept else (params[0], 0.0)
        assert estimate is not None
        worst = max(worst, relative_error(estimate.hedge_ratio, beta))
        if intercept:
            worst = max(worst, relative_error(estimate.intercept, alpha))
        assert estimate.spread == pytest.approx(y[i] - (alpha + beta * x[i]), abs=1e-8 * y[i])
        assert batch_beta[i] == pytest.approx(beta, rel=1e-8)
        assert batch_alpha[i] == pytest.approx(alpha, rel=1e-8, abs=0.0 if intercept else 1e-300)
        checked += 1
    assert checked == len(y) - window + 1
    assert worst < 1e-8


def test_rolling_ols_stays_accurate_over_a_long_run_near_60000():
    """200,000 updates of a random walk near 60,000: naive Σx² would have lost the fit."""
    rng = np.random.default_rng(3)
    n, window = 200_000, 500
    x = 60_000.0 + np.cumsum(rng.normal(0.0, 0.5, n))
    y = 1_000.0 + 0.98 * x + rng.normal(0.0, 0.4, n)
    ols = RollingOLS(window)
    for i in range(n):
        estimate = ols.update(y[i], x[i])
        if i >= window - 1 and (i % 20_000 == 0 or i == n - 1):
            params = (
                sm.OLS(y[i - window + 1 : i + 1], sm.add_constant(x[i - window + 1 : i + 1]))
                .fit()
                .params
            )
            assert estimate is not None
            assert relative_error(estimate.hedge_ratio, params[1]) < 1e-8
            assert relative_error(estimate.intercept, params[0]) < 1e-8


@pytest.mark.parametrize(
    ("data", "window", "every"), [("recorded_bars", 120, 3), ("synthetic_pair", 300, 25)]
)
def test_rolling_huber_matches_statsmodels_rlm_huber_t(request, data, window, every):  # type: ignore[no-untyped-def]
    y, x = closes(request.getfixturevalue(data))
    huber = RollingHuber(window)
    worst = 0.0
    for i in range(len(y)):
        estimate = huber.update(y[i], x[i])
        if i < window - 1 or (i - window + 1) % every:
            continue
        fit = sm.RLM(
            y[i - window + 1 : i + 1],
            sm.add_constant(x[i - window + 1 : i + 1]),
            M=sm.robust.norms.HuberT(),
        ).fit()
        assert estimate is not None
        worst = max(
            worst,
            relative_error(estimate.hedge_ratio, fit.params[1]),
            relative_error(estimate.intercept, fit.params[0]),
        )
    assert worst < 1e-5


def test_huber_fit_counts_the_same_irls_iterations_as_statsmodels(synthetic_pair):  # type: ignore[no-untyped-def]
    y, x = closes(synthetic_pair)
    y = y.copy()
    y[::37] += 400.0  # outliers: Huber weights them down, OLS does not
    fit = huber_fit(y[:400], x[:400])
    reference = sm.RLM(y[:400], sm.add_constant(x[:400]), M=sm.robust.norms.HuberT()).fit()
    assert fit.iterations == reference.fit_history["iteration"]
    assert fit.scale == pytest.approx(reference.scale, rel=1e-9)
    assert fit.hedge_ratio == pytest.approx(reference.params[1], rel=1e-9)
    ols_beta = sm.OLS(y[:400], sm.add_constant(x[:400])).fit().params[1]
    assert abs(fit.hedge_ratio - synthetic_pair.beta) < abs(ols_beta - synthetic_pair.beta)


def test_batch_huber_equals_the_rolling_one(recorded_bars):  # type: ignore[no-untyped-def]
    y, x = closes(recorded_bars)
    beta, alpha = rolling_huber(y, x, 120)
    rolling = RollingHuber(120)
    for i in range(len(y)):
        estimate = rolling.update(y[i], x[i])
        if estimate is None:
            assert np.isnan(beta[i])
        else:
            assert estimate.hedge_ratio == pytest.approx(beta[i], rel=1e-9)
            assert estimate.intercept == pytest.approx(alpha[i], rel=1e-9)


def reference_kalman(
    y: np.ndarray, x: np.ndarray, delta: float, obs_var: float, initial_var: float
):  # type: ignore[no-untyped-def]
    """Textbook matrix Kalman filter on [β, α], written independently of the core."""
    state = np.zeros(2)
    cov = np.eye(2) * initial_var
    noise = np.eye(2) * delta / (1.0 - delta)
    rows = []
    for yt, xt in zip(y, x, strict=True):
        cov = cov + noise
        h = np.array([xt, 1.0])
        error = yt - h @ state
        variance = h @ cov @ h + obs_var
        gain = cov @ h / variance
        state = state + gain * error
        cov = (np.eye(2) - np.outer(gain, h)) @ cov
        rows.append((state[0], state[1], error, variance))
    return np.array(rows)


@pytest.mark.parametrize("data", ["recorded_bars", "kline_bars", "synthetic_pair"])
@pytest.mark.parametrize(("delta", "obs_var"), [(1e-5, 1.0), (1e-3, 25.0)])
def test_kalman_matches_an_independent_batch_filter(request, data, delta, obs_var):  # type: ignore[no-untyped-def]
    y, x = closes(request.getfixturevalue(data))
    reference = reference_kalman(y, x, delta, obs_var, 1.0)
    kf = KalmanHedge(delta, obs_var, 1.0)
    for i in range(len(y)):
        estimate = kf.update(y[i], x[i])
        want = reference[i]
        assert estimate.hedge_ratio == pytest.approx(want[0], rel=1e-9)
        assert estimate.intercept == pytest.approx(want[1], rel=1e-9, abs=1e-9)
        assert estimate.forecast_error == pytest.approx(want[2], rel=1e-9, abs=1e-9 * y[i])
        assert estimate.forecast_variance == pytest.approx(want[3], rel=1e-9)
    batch = kalman_hedge(y, x, delta, obs_var, 1.0)
    np.testing.assert_allclose(batch["hedge_ratio"], reference[:, 0], rtol=1e-9)


def test_kalman_tracks_a_known_hedge_ratio(synthetic_pair):  # type: ignore[no-untyped-def]
    y, x = closes(synthetic_pair)
    kf = KalmanHedge(delta=1e-9, obs_var=144.0, initial_var=1e6)
    estimates = [kf.update(a, b) for a, b in zip(y, x, strict=True)]
    assert estimates[-1].hedge_ratio == pytest.approx(synthetic_pair.beta, rel=0.01)
