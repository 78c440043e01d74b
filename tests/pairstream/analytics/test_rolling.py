"""The rolling fits when a leg stops trading: a window of one price has no hedge ratio."""

from __future__ import annotations

import numpy as np
import pytest

from pairstream.analytics.hedge import RollingHuber, RollingOLS
from pairstream.analytics.rolling import RollingCov

pytestmark = pytest.mark.unit

WINDOW = 60


def leg_goes_quiet(recorded_bars):  # type: ignore[no-untyped-def]
    """Real ETH (y) and BTC (x) closes, then 150 bars where x carries its last close (no
    trades, as a leg does when its market is quiet or closed) and y moves on."""
    joined = recorded_bars.y.merge(recorded_bars.x, on="start", suffixes=("_x", "_y"))
    y, x = joined["close_y"].to_numpy(), joined["close_x"].to_numpy()
    quiet = 150
    return np.concatenate([y, y[-quiet:][::-1]]), np.concatenate([x, np.full(quiet, x[-1])])


def test_a_window_where_x_is_one_price_has_no_fit_not_a_rounding_artefact(recorded_bars):  # type: ignore[no-untyped-def]
    y, x = leg_goes_quiet(recorded_bars)
    cov, ols, huber = RollingCov(WINDOW), RollingOLS(WINDOW), RollingHuber(WINDOW)
    for i in range(len(y)):
        cov.update(x[i], y[i])
        fits = (cov.ols(True), ols.update(y[i], x[i]), huber.update(y[i], x[i]))
        if i < WINDOW - 1:
            continue
        window_x = x[i - WINDOW + 1 : i + 1]
        design = np.column_stack([np.ones(WINDOW), window_x])
        if np.ptp(window_x) == 0.0:
            assert np.linalg.matrix_rank(design) == 1  # OLS with a constant is undefined
            assert fits == (None, None, None), i
        else:
            assert all(fit is not None for fit in fits), i
