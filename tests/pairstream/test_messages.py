"""Validation rules of the topic messages (DESIGN §3)."""

from __future__ import annotations

import math

import msgspec
import pytest

from pairstream.messages import (
    Bar,
    StatsUpdate,
    TickRun,
    Trade,
    ZScoreUpdate,
    timeframe_ms,
)
from pairstream.testing import example_messages


def trade(trade_id: int, price: float = 100.0, qty: float = 1.0) -> Trade:
    return Trade(trade_id=trade_id, ts_event=1, price=price, qty=qty, is_buyer_maker=False)


@pytest.mark.parametrize("price", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_trade_rejects_non_finite_or_non_positive_price(price: float) -> None:
    with pytest.raises(ValueError, match="price"):
        trade(1, price=price)


@pytest.mark.parametrize("qty", [math.nan, 0.0, -0.5])
def test_trade_rejects_non_finite_or_non_positive_qty(qty: float) -> None:
    with pytest.raises(ValueError, match="qty"):
        trade(1, qty=qty)


def test_run_requires_strictly_increasing_trade_ids() -> None:
    with pytest.raises(ValueError, match=r"trades\[1\]\.trade_id: 7 does not follow 7"):
        TickRun(
            market="usdm", symbol="BTCUSDT", source="live", ts_ingest=1, trades=[trade(7), trade(7)]
        )


def test_run_after_an_aggregate_must_start_past_its_range() -> None:
    aggregate = Trade(
        trade_id=10,
        ts_event=1,
        price=1.0,
        qty=1.0,
        is_buyer_maker=True,
        first_trade_id=10,
        last_trade_id=14,
    )
    with pytest.raises(ValueError, match="does not follow 14"):
        TickRun(
            market="usdm",
            symbol="BTCUSDT",
            source="backfill",
            ts_ingest=1,
            trades=[aggregate, trade(12)],
        )


def test_run_rejects_empty_trade_list_unknown_market_and_bad_symbol() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TickRun(market="usdm", symbol="BTCUSDT", source="live", ts_ingest=1, trades=[])
    with pytest.raises(msgspec.ValidationError, match="market"):
        msgspec.convert(
            {
                "market": "coinm",
                "symbol": "BTCUSDT",
                "source": "live",
                "ts_ingest": 1,
                "trades": [msgspec.to_builtins(trade(1))],
            },
            TickRun,
        )
    with pytest.raises(msgspec.ValidationError, match="symbol"):
        msgspec.convert(
            {
                "market": "usdm",
                "symbol": "btc/usdt",
                "source": "live",
                "ts_ingest": 1,
                "trades": [msgspec.to_builtins(trade(1))],
            },
            TickRun,
        )


def test_aggregate_trade_needs_both_range_ends_around_its_id() -> None:
    with pytest.raises(ValueError, match="set both or neither"):
        Trade(trade_id=1, ts_event=1, price=1.0, qty=1.0, is_buyer_maker=True, first_trade_id=1)
    with pytest.raises(ValueError, match="outside its aggregate"):
        Trade(
            trade_id=9,
            ts_event=1,
            price=1.0,
            qty=1.0,
            is_buyer_maker=True,
            first_trade_id=1,
            last_trade_id=3,
        )


def bar(**changes: object) -> Bar:
    example = example_messages()[Bar]
    assert isinstance(example, Bar)
    return msgspec.structs.replace(example, **changes)


def test_bar_ohlc_must_be_consistent() -> None:
    with pytest.raises(ValueError, match="within"):
        bar(high=63_000.0)
    with pytest.raises(ValueError, match="within"):
        bar(low=64_000.0)


def test_bar_start_must_align_with_its_timeframe() -> None:
    with pytest.raises(ValueError, match="aligned"):
        bar(start=1_721_347_200_500)


def test_bar_buy_volume_cannot_exceed_volume_and_ids_follow_trade_count() -> None:
    with pytest.raises(ValueError, match="buy_volume"):
        bar(buy_volume=200.0)
    with pytest.raises(ValueError, match="empty bar"):
        bar(trades=0)
    with pytest.raises(ValueError, match="required when trades > 0"):
        bar(first_trade_id=None)
    with pytest.raises(ValueError, match="first_trade_id"):
        bar(first_trade_id=9_999_999_999)


def test_empty_bar_is_valid_without_trade_ids() -> None:
    empty = bar(
        trades=0,
        volume=0.0,
        quote_volume=0.0,
        buy_volume=0.0,
        first_trade_id=None,
        last_trade_id=None,
    )
    assert empty.trades == 0


def test_undefined_metrics_are_null_and_out_of_range_ones_rejected() -> None:
    z = example_messages()[ZScoreUpdate]
    assert msgspec.structs.replace(z, std=0.0, zscore=None).zscore is None
    with pytest.raises(ValueError, match="zscore"):
        msgspec.structs.replace(z, zscore=math.nan)
    s = example_messages()[StatsUpdate]
    with pytest.raises(ValueError, match="correlation"):
        msgspec.structs.replace(s, correlation=1.5)
    with pytest.raises(ValueError, match="half_life"):
        msgspec.structs.replace(s, half_life=-3.0)


@pytest.mark.parametrize(
    ("tf", "ms"),
    [("1s", 1_000), ("1m", 60_000), ("5m", 300_000), ("4h", 14_400_000), ("15s", 15_000)],
)
def test_timeframe_lengths(tf: str, ms: int) -> None:
    assert timeframe_ms(tf) == ms


@pytest.mark.parametrize("tf", ["0s", "1d", "m", "1.5m", ""])
def test_timeframe_rejects_what_is_not_whole_s_m_h(tf: str) -> None:
    with pytest.raises(ValueError, match="timeframe"):
        timeframe_ms(tf)
