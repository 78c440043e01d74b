"""The synthetic market: reproducible, contiguous ids, known hedge ratio, bursty like Binance."""

from __future__ import annotations

import itertools
import math
from collections import Counter

from pairstream.synthetic import SyntheticMarket, trades


def sample(seed: int, n: int = 40_000) -> list:
    market = SyntheticMarket.of(("BTCUSDT", "ETHUSDT"), seed=seed)
    return list(itertools.islice(trades(market, 1_700_000_000_000), n))


def test_same_seed_same_trades_other_seed_other_trades() -> None:
    assert sample(3, 2_000) == sample(3, 2_000)
    assert sample(3, 2_000) != sample(4, 2_000)


def test_ids_are_contiguous_and_time_never_goes_back_per_symbol() -> None:
    last: dict[str, tuple[int, int]] = {}
    for symbol, trade in sample(5):
        if symbol in last:
            prev_id, prev_ts = last[symbol]
            assert trade.trade_id == prev_id + 1
            assert trade.ts_event >= prev_ts
        last[symbol] = (trade.trade_id, trade.ts_event)


def test_ols_on_one_second_closes_recovers_the_known_hedge_ratio() -> None:
    market = SyntheticMarket.of(("BTCUSDT", "ETHUSDT"), seed=9)
    closes: dict[int, dict[str, float]] = {}
    for symbol, trade in itertools.islice(trades(market, 0), 150_000):
        closes.setdefault(trade.ts_event // 1000, {})[symbol] = trade.price
    pairs = [(c["BTCUSDT"], c["ETHUSDT"]) for c in closes.values() if len(c) == 2]
    n = len(pairs)
    my = sum(y for y, _ in pairs) / n
    mx = sum(x for _, x in pairs) / n
    sxy = sum((x - mx) * (y - my) for y, x in pairs)
    sxx = sum((x - mx) ** 2 for _, x in pairs)
    beta, _ = market.hedge_ratio("BTCUSDT", "ETHUSDT")
    assert beta == 20.0
    assert math.isclose(sxy / sxx, beta, rel_tol=0.02), sxy / sxx


def test_arrivals_are_bursty_like_the_recorded_rates() -> None:
    per_second = Counter((symbol, trade.ts_event // 1000) for symbol, trade in sample(2, 150_000))
    btc = [count for (symbol, _), count in per_second.items() if symbol == "BTCUSDT"]
    mean = sum(btc) / len(btc)
    assert 10 <= mean <= 80  # recorded BTCUSDT futures: 20-60 trades/s on average
    assert max(btc) >= 200  # and bursts of hundreds per second
