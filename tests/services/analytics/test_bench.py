"""`pairstream bench analytics` reports every figure and its targets (untimed)."""

from __future__ import annotations

import orjson
import pytest

from pairstream.analytics.pair import PairConfig
from pairstream_analytics.bench import bench_analytics

pytestmark = pytest.mark.unit


def test_bench_analytics_reports_update_cost_ols_speedup_adf_and_scan() -> None:
    config = PairConfig(hedge_window=100, stats_window=100, tests_every=5)
    result = bench_analytics(
        bars=2_000, ols_window=100, ols_bars=300, scan_symbols=6, scan_bars=200, config=config
    )
    assert set(result.update_us) == {"ols", "kalman", "huber", "all three methods"}
    assert all(us > 0 for us in result.update_us.values())
    assert result.update_us["all three methods"] > result.update_us["ols"]
    assert 0 < result.ols_incremental_us < result.ols_statsmodels_us
    assert result.ols_speedup == round(
        round(result.ols_statsmodels_us, 3) / round(result.ols_incremental_us, 3), 1
    )
    assert result.ols_max_rel_diff < 1e-8  # the same numbers as statsmodels
    assert result.adf_per_bar_us == pytest.approx(result.adf_ms * 1e3 / 5, rel=1e-3, abs=1e-3)
    assert result.scan_pairs == 15
    assert result.scan_s > 0
    figures = orjson.loads(result.as_json())
    assert set(figures["targets"]) == set(result.targets)
    assert figures["update_us"] == result.update_us
