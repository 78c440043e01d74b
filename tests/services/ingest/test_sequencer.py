"""Per-symbol trade-id order: duplicates dropped, reordering, gaps reported and given up."""

from __future__ import annotations

import random

from pairstream.messages import Trade
from pairstream_ingest.sequencer import Released, Sequencer


def trade(i: int, last: int | None = None) -> Trade:
    if last is None:
        return Trade(trade_id=i, ts_event=i, price=1.0, qty=1.0, is_buyer_maker=False)
    return Trade(
        trade_id=i,
        ts_event=i,
        price=1.0,
        qty=float(last - i + 1),
        is_buyer_maker=False,
        first_trade_id=i,
        last_trade_id=last,
    )


def ids(released: list[Released]) -> list[int]:
    return [t.trade_id for t, _ in released]


def test_duplicates_are_dropped_and_counted() -> None:
    seq = Sequencer("BTCUSDT")
    out = [t for i in (1, 2, 2, 3, 1, 3) for t in seq.push(trade(i))]
    assert ids(out) == [1, 2, 3]
    assert seq.stats.duplicates == 3


def test_shuffled_and_duplicated_input_comes_out_once_in_order() -> None:
    rng = random.Random(7)
    stream = [trade(i) for i in range(100, 1100)] * 2
    window = [stream[i : i + 20] for i in range(0, len(stream), 20)]
    for chunk in window:
        rng.shuffle(chunk)
    seq = Sequencer("ETHUSDT")
    seq.push(trade(100))  # the first trade seen fixes where the symbol starts
    out = [t for chunk in window for item in chunk for t in seq.push(item)]
    assert ids(out) == list(range(101, 1100))
    assert seq.gap() is None


def test_gap_holds_later_trades_until_given_up() -> None:
    seq = Sequencer("BTCUSDT")
    assert ids(seq.push(trade(1))) == [1]
    assert seq.push(trade(4)) == []
    assert seq.push(trade(5)) == []
    assert seq.gap() == (2, 3)
    assert seq.waiting == 2
    assert ids(seq.push(trade(2))) == [2]
    assert seq.gap() == (3, 3)
    assert ids(seq.skip_gap()) == [4, 5]
    assert seq.stats.skipped_ids == 1
    assert seq.gap() is None


def test_aggregates_advance_by_their_whole_id_range() -> None:
    seq = Sequencer("BTCUSDT")
    assert ids(seq.push(trade(10, last=14))) == [10]
    assert seq.push(trade(12)) == []  # inside the aggregate: already covered
    assert ids(seq.push(trade(15))) == [15]
    assert seq.stats.duplicates == 1
