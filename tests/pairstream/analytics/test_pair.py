"""The pair analytics bar by bar against pandas and statsmodels on the same windows."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller
from statsmodels.tsa.stattools import coint as sm_coint

from pairstream.analytics.batch import (
    analyze,
    join_frames,
    realized_volatility,
    rolling_buy_share,
    rolling_correlation,
    rolling_half_life,
    rolling_vwap,
    rolling_zscore,
)
from pairstream.analytics.join import PairJoiner
from pairstream.analytics.pair import LegBar, PairAnalytics, PairConfig
from pairstream.analytics.stationarity import newey_west_lags, ols_hac

pytestmark = pytest.mark.unit

CONFIG = PairConfig(
    hedge_window=120, zscore_window=30, flow_window=30, stats_window=120, tests_every=10
)


def joined_frame(pair) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rows = join_frames(pair.y, pair.x)
    return pd.DataFrame(
        {
            "ts": [j.ts for j in rows],
            "y": [j.y.close for j in rows],
            "x": [j.x.close for j in rows],
            "vol_y": [j.y.volume for j in rows],
            "quote_y": [j.y.quote_volume for j in rows],
            "buy_y": [j.y.buy_volume for j in rows],
        }
    )


@pytest.fixture(scope="module", params=["recorded_bars", "synthetic_pair"])
def case(request):  # type: ignore[no-untyped-def]
    pair = request.getfixturevalue(request.param)
    out = analyze(pair.y, pair.x, pair.tf_ms, CONFIG)
    return pair, joined_frame(pair), out


def by_method(out: pd.DataFrame, method: str, joined: pd.DataFrame) -> pd.DataFrame:
    """One method's rows aligned on every joined bar (NaN where the method had no output)."""
    rows = out[out["method"] == method].set_index("ts")
    return rows.reindex(joined["ts"]).reset_index()


@pytest.mark.parametrize("method", ["ols", "huber", "kalman"])
def test_zscore_matches_pandas_on_the_emitted_spreads(case, method):  # type: ignore[no-untyped-def]
    _, _joined, out = case
    rows = out[out["method"] == method].reset_index(drop=True)
    reference = rolling_zscore(rows["spread"], CONFIG.zscore_window)
    spreads = rows["spread"]
    direct_mean = spreads.rolling(CONFIG.zscore_window).mean()
    direct_std = spreads.rolling(CONFIG.zscore_window).std(ddof=1)
    direct_z = (spreads - direct_mean) / direct_std
    full = direct_z.notna()
    assert full.sum() == len(rows) - CONFIG.zscore_window + 1
    np.testing.assert_allclose(
        rows["zscore"][full].astype(float), direct_z[full], rtol=0, atol=1e-8
    )
    np.testing.assert_allclose(
        rows["mean"][full].astype(float), direct_mean[full], rtol=1e-10, atol=1e-8
    )
    np.testing.assert_allclose(rows["std"][full].astype(float), direct_std[full], rtol=1e-8)
    np.testing.assert_allclose(reference["zscore"][full], direct_z[full], atol=1e-12)
    assert rows["zscore"][~full].isna().all()


def test_flow_metrics_match_pandas(case):  # type: ignore[no-untyped-def]
    _, joined, out = case
    rows = by_method(out, "kalman", joined)  # kalman emits from the first bar
    w = CONFIG.flow_window
    pairs = [
        (rows["correlation"], rolling_correlation(joined["y"], joined["x"], w)),
        (rows["vol_y"], realized_volatility(joined["y"], w)),
        (rows["vwap_y"], rolling_vwap(joined["quote_y"], joined["vol_y"], w)),
        (rows["buy_share_y"], rolling_buy_share(joined["buy_y"], joined["vol_y"], w)),
    ]
    # an independent check of the correlation: numpy on each window
    r_y = np.diff(np.log(joined["y"].to_numpy()))
    r_x = np.diff(np.log(joined["x"].to_numpy()))
    i = len(joined) - 1
    assert rows["correlation"][i] == pytest.approx(np.corrcoef(r_y[-w:], r_x[-w:])[0, 1], abs=1e-10)
    for got, want in pairs:
        got = got.astype(float)
        assert got.notna().sum() > 100
        np.testing.assert_array_equal(got.isna(), want.isna())
        np.testing.assert_allclose(got[got.notna()], want[want.notna()], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["ols", "kalman"])
def test_half_life_equals_an_ols_ar1_fit_of_the_emitted_spreads(case, method):  # type: ignore[no-untyped-def]
    _, _, out = case
    rows = out[out["method"] == method].reset_index(drop=True)
    spreads = rows["spread"].to_numpy()
    n = CONFIG.stats_window
    batch = rolling_half_life(spreads, n)
    checked = 0
    for i in range(n - 1, len(rows), 7):
        window = spreads[i - n + 1 : i + 1]
        fit = sm.OLS(np.diff(window), sm.add_constant(window[:-1])).fit()
        b = fit.params[1]
        want = -math.log(2) / math.log(1 + b) if -1 < b < 0 else None
        got = rows["half_life"][i]
        if want is None:
            assert pd.isna(got)
            assert np.isnan(batch[i])
        else:
            assert got == pytest.approx(want, rel=1e-8)
            assert batch[i] == pytest.approx(want, rel=1e-8)
            checked += 1
    assert checked > 5


@pytest.mark.parametrize("method", ["ols", "huber", "kalman"])
def test_adf_at_the_cadence_equals_adfuller_with_the_same_lag(case, method):  # type: ignore[no-untyped-def]
    pair, _, out = case
    rows = out[out["method"] == method].reset_index(drop=True)
    n = CONFIG.stats_window
    cadence = (rows["ts"] // pair.tf_ms) % CONFIG.tests_every == 0
    checked = 0
    for i in rows.index[cadence]:
        if i < n - 1:
            assert pd.isna(rows["adf_stat"][i])
            continue
        window = rows["spread"].to_numpy()[i - n + 1 : i + 1]
        stat, pvalue, *_ = adfuller(
            window, maxlag=CONFIG.adf_lag, autolag=None, result_object=False
        )
        assert rows["adf_stat"][i] == pytest.approx(stat, rel=1e-9)
        assert rows["adf_pvalue"][i] == pytest.approx(pvalue, rel=1e-9, abs=1e-15)
        assert rows["tests_ts"][i] == rows["ts"][i]
        checked += 1
    assert checked >= 5
    # between cadence bars the last results are carried, saying when they were computed
    later = rows[~cadence & rows["adf_stat"].notna()]
    assert len(later)
    assert (later["tests_ts"] < later["ts"]).all()


def test_cointegration_and_hac_interval_at_the_cadence(case):  # type: ignore[no-untyped-def]
    pair, joined, out = case
    rows = by_method(out, "kalman", joined)
    n = CONFIG.stats_window
    checked = 0
    for i in range(n - 1, len(joined)):
        if (joined["ts"][i] // pair.tf_ms) % CONFIG.tests_every:
            continue
        y = joined["y"].to_numpy()[i - n + 1 : i + 1]
        x = joined["x"].to_numpy()[i - n + 1 : i + 1]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no collinearity warning expected here
            stat, pvalue, _ = sm_coint(y, x, maxlag=CONFIG.adf_lag, autolag=None)
            # the same test on centred prices (OLS with a constant is shift-invariant):
            # statsmodels' first stage on raw prices near 64,000 loses ~1e-8 to conditioning
            centred, centred_p, _ = sm_coint(
                y - y.mean(), x - x.mean(), maxlag=CONFIG.adf_lag, autolag=None
            )
        assert rows["coint_stat"][i] == pytest.approx(centred, rel=1e-9)
        assert rows["coint_pvalue"][i] == pytest.approx(centred_p, rel=1e-9, abs=1e-15)
        assert rows["coint_stat"][i] == pytest.approx(stat, rel=1e-6, abs=1e-6)
        assert rows["coint_pvalue"][i] == pytest.approx(pvalue, rel=1e-6, abs=1e-9)
        for shift, tolerance in ((x.mean(), 1e-9), (0.0, 1e-5)):  # centred, then raw
            hac = sm.OLS(y, sm.add_constant(x - shift)).fit(
                cov_type="HAC", cov_kwds={"maxlags": newey_west_lags(n)}
            )
            low, high = hac.conf_int(alpha=0.05)[1]
            assert rows["hedge_ratio_ci_low"][i] == pytest.approx(low, rel=tolerance)
            assert rows["hedge_ratio_ci_high"][i] == pytest.approx(high, rel=tolerance)
        checked += 1
    assert checked >= 5


def test_known_beta_lies_in_its_hac_95_interval_on_synthetic_pairs(make_synthetic_pair):  # type: ignore[no-untyped-def]
    inside = 0
    trials = 200
    for seed in range(trials):
        pair = make_synthetic_pair(1_000, seed=seed, phi=0.5)
        fit = ols_hac(pair.y["close"].to_numpy(), pair.x["close"].to_numpy())
        assert fit is not None
        inside += fit.ci_low <= pair.beta <= fit.ci_high
    # nominal 95%; measured 87.5%: with an I(1) regressor and AR(1) errors the Bartlett
    # bandwidth floor(4(n/100)^(2/9)) = 6 under-covers in finite samples (77.5% at φ = 0.8)
    assert inside >= 0.85 * trials
    seeded = make_synthetic_pair(1_500, seed=7)
    fit = ols_hac(seeded.y["close"].to_numpy(), seeded.x["close"].to_numpy())
    assert fit is not None
    assert fit.ci_low <= seeded.beta <= fit.ci_high


def test_signals_follow_entry_and_exit_thresholds():
    config = PairConfig(
        hedge_window=3, zscore_window=3, flow_window=3, stats_window=8, entry_z=1.0, exit_z=0.2
    )
    core = PairAnalytics(1_000, config, ("ols",))
    rng = np.random.default_rng(5)
    seen = []
    for i in range(400):
        x = 10.0 + 0.01 * i
        y = 2 * x + 5 + rng.normal(0.0, 1.0)
        outputs = core.update(i * 1_000, LegBar(y, 1.0, y, 0.5), LegBar(x, 1.0, x, 0.5))
        if outputs:
            seen.append((outputs[0].zscore, outputs[0].position, outputs[0].signal))
    previous = "flat"
    for z, position, signal in seen:
        if z is None:
            assert (position, signal) == ("flat", None)
            continue
        if z >= 1.0:
            assert position == "short"
        elif z <= -1.0:
            assert position == "long"
        elif (previous == "long" and z >= -0.2) or (previous == "short" and z <= 0.2):
            assert (position, signal) == ("flat", "exit")
        else:
            assert position == previous
        expected = None if position == previous else ("exit" if position == "flat" else position)
        assert signal == expected
        previous = position
    assert {s for _, _, s in seen} >= {"long", "short", "exit", None}


def test_outputs_are_deterministic_and_bars_must_increase(recorded_bars):  # type: ignore[no-untyped-def]
    first = analyze(recorded_bars.y, recorded_bars.x, 1_000, CONFIG)
    second = analyze(
        recorded_bars.y.sample(frac=1.0, random_state=1), recorded_bars.x, 1_000, CONFIG
    )
    pd.testing.assert_frame_equal(first, second)
    core = PairAnalytics(1_000, CONFIG)
    bar = LegBar(1.0, 1.0, 1.0, 0.0)
    core.update(5_000, bar, bar)
    with pytest.raises(ValueError, match="increasing ts"):
        core.update(5_000, bar, bar)


def test_join_carries_the_previous_close_of_a_missing_leg():
    joiner = PairJoiner()
    a, b, c = (
        LegBar(10.0, 1.0, 10.0, 0.5),
        LegBar(11.0, 2.0, 22.0, 1.0),
        LegBar(12.0, 1.0, 12.0, 1.0),
    )
    assert joiner.add(0, 1_000, a) == []  # X has no bar yet
    assert joiner.add(1, 2_000, b) == []  # 1_000 is before X's first bar: skipped once decided
    joined = joiner.add(0, 3_000, c)
    assert joined is not None
    assert [j.ts for j in joined] == [2_000]
    assert joined[0].y == LegBar(10.0, 0.0, 0.0, 0.0)
    assert joined[0].carried_y
    assert joined[0].x == b
    assert not joined[0].carried_x
    assert joiner.add(1, 3_000, a) is not None  # decides 3_000 with both legs present
    assert joiner.frontier == 3_000
    assert joiner.add(0, 3_000, a) is None  # already decided: a duplicate or a revision
    assert joiner.add(1, 5_000, a) == []
    assert joiner.add(1, 5_000, b) == []  # a newer revision of an undecided bar replaces it
    joined = joiner.add(0, 6_000, c)
    assert joined is not None
    assert [(j.ts, j.x.close, j.carried_y) for j in joined] == [(5_000, 11.0, True)]
    with pytest.raises(ValueError, match="out of order"):
        joiner.add(0, 5_500, c)


def test_analyze_rejects_broken_bar_tables(recorded_bars):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="lacks column"):
        analyze(recorded_bars.y.drop(columns=["buy_volume"]), recorded_bars.x, 1_000, CONFIG)
    doubled = pd.concat([recorded_bars.y, recorded_bars.y.iloc[:1]])
    with pytest.raises(ValueError, match="more than one bar starts"):
        analyze(doubled, recorded_bars.x, 1_000, CONFIG)
    bad = recorded_bars.y.copy()
    bad.loc[5, "close"] = float("nan")
    with pytest.raises(ValueError, match="bad price"):
        analyze(bad, recorded_bars.x, 1_000, CONFIG)
