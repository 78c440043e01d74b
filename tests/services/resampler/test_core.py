"""The pure bar builder against the batch reference, on the real recording (no infrastructure)."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterable, Iterator

import msgspec
import pytest

from pairstream.messages import Bar, Trade
from pairstream_resampler.core import BarBuilder, IdRanges, SymbolBars

TIMEFRAMES = ("1s", "1m", "5m")
FAR_FUTURE = 4_000_000_000_000

Runs = list[tuple[str, list[Trade]]]


def runs_of(trades: dict[str, list[Trade]], seed: int, max_len: int = 5) -> Runs:
    """The recording as small runs per symbol (≤ 100 ms each), interleaved by time."""
    rng = random.Random(seed)
    runs: Runs = []
    for symbol, symbol_trades in trades.items():
        i = 0
        while i < len(symbol_trades):
            first = symbol_trades[i].ts_event
            run = [
                t
                for t in symbol_trades[i : i + rng.randint(1, max_len)]
                if t.ts_event - first <= 100
            ]
            runs.append((symbol, run))
            i += len(run)
    runs.sort(key=lambda run: (run[1][0].ts_event, run[0]))
    return runs


def shuffled_within(runs: Runs, lateness_ms: int, seed: int) -> Runs:
    """Reordered so that no trade arrives more than 0.9 × lateness + 100 ms behind the newest."""
    rng = random.Random(seed)
    return sorted(runs, key=lambda run: run[1][0].ts_event + rng.uniform(0, 0.9 * lateness_ms))


def feed(builder: BarBuilder, runs: Iterable[tuple[str, list[Trade]]]) -> Iterator[Bar]:
    states: dict[str, SymbolBars] = {}
    for symbol, trades in runs:
        state = states.setdefault(symbol, builder.new_symbol("binance", "usdm"))
        yield from builder.on_trades(state, symbol, trades, 0).bars
    for symbol, state in states.items():
        yield from builder.advance(state, symbol, FAR_FUTURE, 0).bars


def latest(bars: Iterable[Bar]) -> dict[tuple[str, str, int], Bar]:
    out: dict[tuple[str, str, int], Bar] = {}
    for bar in bars:
        key = (bar.symbol, bar.tf, bar.start)
        held = out.get(key)
        assert held is None or bar.revision == held.revision + 1, (key, held, bar)
        assert held is None or not held.final, f"{key} re-emitted after it was final"
        out[key] = bar
    assert all(bar.final for bar in out.values())
    return out


def test_in_order_runs_give_the_batch_bars_for_every_timeframe(
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
) -> None:
    builder = BarBuilder(TIMEFRAMES, lateness_ms=2_000)
    bars = latest(feed(builder, runs_of(recorded_trades, seed=1)))
    bars_equal(bars, reference_bars())
    assert {tf for _, tf, _ in bars} == set(TIMEFRAMES)


def test_one_minute_bars_equal_the_outside_reference_file(
    recorded_trades: dict[str, list[Trade]],
) -> None:
    builder = BarBuilder(("1m",), lateness_ms=0)
    bars = latest(feed(builder, runs_of(recorded_trades, seed=2)))
    for symbol in recorded_trades:
        path = f"tests/fixtures/binance/usdm_{symbol}_20240718-19_1m.csv"
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == sum(1 for s, _, _ in bars if s == symbol)
        for row in rows:
            bar = bars[(symbol, "1m", int(row["open_time"]))]
            assert (bar.open, bar.high, bar.low, bar.close) == tuple(
                float(row[k]) for k in ("open", "high", "low", "close")
            )
            assert bar.trades == int(row["count"])
            assert bar.volume == pytest.approx(float(row["volume"]), rel=1e-9)
            assert bar.quote_volume == pytest.approx(float(row["quote_volume"]), rel=1e-9)
            assert bar.buy_volume == pytest.approx(float(row["taker_buy_volume"]), rel=1e-9)


def test_runs_shuffled_within_the_lateness_give_the_same_bars(
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
) -> None:
    runs = runs_of(recorded_trades, seed=3)
    shuffled = shuffled_within(runs, 2_000, seed=4)
    assert shuffled != runs
    builder = BarBuilder(TIMEFRAMES, lateness_ms=2_000)
    emitted = list(feed(builder, shuffled))
    bars_equal(latest(emitted), reference_bars())
    assert any(bar.revision >= 2 for bar in emitted), "late trades re-emitted closed bars"


def test_every_trade_delivered_twice_is_counted_once(
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
) -> None:
    runs = runs_of(recorded_trades, seed=5)
    doubled = shuffled_within(runs + [(s, list(t)) for s, t in runs], 2_000, seed=7)
    builder = BarBuilder(TIMEFRAMES, lateness_ms=2_000)
    bars_equal(latest(feed(builder, doubled)), reference_bars())


def test_trades_later_than_the_lateness_are_returned_and_in_no_bar(
    recorded_trades: dict[str, list[Trade]],
    reference_bars: Callable[..., dict],
    bars_equal: Callable[..., None],
) -> None:
    runs = runs_of(recorded_trades, seed=8, max_len=1)
    # hold back every 500th trade of BTCUSDT and deliver it 10 s (event time) later
    held = {i: run for i, run in enumerate(runs) if run[0] == "BTCUSDT" and i % 500 == 0}
    reordered: Runs = []
    waiting = sorted(held.items())
    for i, run in enumerate(runs):
        if i in held:
            continue
        reordered.append(run)
        while waiting and run[1][0].ts_event - waiting[0][1][1][0].ts_event > 10_000:
            reordered.append(waiting.pop(0)[1])
    reordered.extend(run for _, run in waiting)
    builder = BarBuilder(TIMEFRAMES, lateness_ms=2_000)
    states: dict[str, SymbolBars] = {}
    late: list[tuple[str, int]] = []
    bars: list[Bar] = []
    for symbol, trades in reordered:
        state = states.setdefault(symbol, builder.new_symbol("binance", "usdm"))
        out = builder.on_trades(state, symbol, trades, 0)
        bars.extend(out.bars)
        late.extend((symbol, t.trade_id) for t in out.late)
    for symbol, state in states.items():
        bars.extend(builder.advance(state, symbol, FAR_FUTURE, 0).bars)
    expected_late = {(s, t[0].trade_id) for s, t in held.values()}
    assert len(expected_late) > 5
    assert set(late) == expected_late
    bars_equal(latest(bars), reference_bars(exclude=frozenset(expected_late)))


def test_a_backfilled_aggregate_counts_every_trade_id_it_covers() -> None:
    builder = BarBuilder(("1s",), lateness_ms=0)
    state = builder.new_symbol("binance", "usdm")
    trades = [
        Trade(trade_id=10, ts_event=1_000, price=100.0, qty=1.0, is_buyer_maker=False),
        Trade(
            trade_id=11,
            ts_event=1_100,
            price=101.0,
            qty=3.0,
            is_buyer_maker=True,
            first_trade_id=11,
            last_trade_id=14,
        ),
        Trade(trade_id=15, ts_event=1_200, price=99.0, qty=2.0, is_buyer_maker=False),
    ]
    builder.on_trades(state, "BTCUSDT", trades, 0)
    (bar,) = builder.advance(state, "BTCUSDT", 5_000, 0).bars
    assert (bar.trades, bar.first_trade_id, bar.last_trade_id) == (6, 10, 15)
    assert (bar.open, bar.high, bar.low, bar.close) == (100.0, 101.0, 99.0, 99.0)
    assert (bar.volume, bar.buy_volume) == (6.0, 3.0)
    assert bar.vwap == pytest.approx((100 + 303 + 198) / 6)
    again = builder.on_trades(state, "BTCUSDT", [trades[1]], 0)
    assert again.duplicates == 1
    partly = Trade(
        trade_id=14,
        ts_event=1_100,
        price=1.0,
        qty=1.0,
        is_buyer_maker=True,
        first_trade_id=14,
        last_trade_id=16,
    )
    assert builder.on_trades(state, "BTCUSDT", [partly], 0).overlapping == [partly]


def test_empty_intervals_have_no_bar_and_a_late_trade_raises_the_revision() -> None:
    builder = BarBuilder(("1s",), lateness_ms=3_000)
    state = builder.new_symbol("binance", "usdm")

    def trade(tid: int, ts: int, price: float) -> list[Trade]:
        return [Trade(trade_id=tid, ts_event=ts, price=price, qty=1.0, is_buyer_maker=False)]

    assert builder.on_trades(state, "X1", trade(1, 1_500, 10.0), 0).bars == []
    closed = builder.on_trades(state, "X1", trade(2, 4_200, 11.0), 0).bars
    assert [(b.start, b.revision, b.final) for b in closed] == [(1_000, 0, False)]
    # trade 3 belongs to the closed bar at 1 s: it is re-emitted with revision 1
    revised = builder.on_trades(state, "X1", trade(3, 1_900, 12.0), 0).bars
    assert [(b.start, b.revision, b.final, b.close, b.trades) for b in revised] == [
        (1_000, 1, False, 12.0, 2)
    ]
    # clock 5 s: the bar at 1 s is final (watermark 2 s), the bar at 4 s closes
    moved = builder.advance(state, "X1", 5_000, 0).bars
    assert [(b.start, b.revision, b.final) for b in moved] == [(1_000, 2, True), (4_000, 0, False)]
    rest = builder.advance(state, "X1", 9_000, 0).bars
    # nothing ever for the empty seconds 2 and 3
    assert [(b.start, b.revision, b.final) for b in rest] == [(4_000, 1, True)]


def test_zero_lateness_emits_each_bar_once_as_final() -> None:
    builder = BarBuilder(("1s", "1m"), lateness_ms=0)
    state = builder.new_symbol("binance", "usdm")
    out = builder.on_trades(
        state,
        "X1",
        [
            Trade(trade_id=1, ts_event=500, price=1.0, qty=1.0, is_buyer_maker=True),
            Trade(trade_id=2, ts_event=1_500, price=2.0, qty=1.0, is_buyer_maker=True),
        ],
        0,
    )
    assert [(b.tf, b.start, b.revision, b.final) for b in out.bars] == [("1s", 0, 0, True)]
    late = Trade(trade_id=3, ts_event=999, price=3.0, qty=1.0, is_buyer_maker=True)
    assert builder.on_trades(state, "X1", [late], 0).late == [late]


def test_state_restored_from_a_checkpoint_mid_stream_continues_identically(
    recorded_trades: dict[str, list[Trade]],
) -> None:
    runs = shuffled_within(runs_of(recorded_trades, seed=9), 2_000, seed=10)
    builder = BarBuilder(TIMEFRAMES, lateness_ms=2_000)
    whole = list(feed(builder, runs))
    encoder, decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(dict[str, SymbolBars])
    states: dict[str, SymbolBars] = {}
    resumed: list[Bar] = []
    for i, (symbol, trades) in enumerate(runs):
        if i % 997 == 0:  # "crash": carry on from the encoded state only
            states = decoder.decode(encoder.encode(states))
        state = states.setdefault(symbol, builder.new_symbol("binance", "usdm"))
        resumed.extend(builder.on_trades(state, symbol, trades, 0).bars)
    for symbol, state in states.items():
        resumed.extend(builder.advance(state, symbol, FAR_FUTURE, 0).bars)
    assert resumed == whole


def test_seen_trade_ids_are_kept_as_ranges_with_holes() -> None:
    seen = IdRanges()
    assert [seen.add(i, i, 10) for i in (5, 6, 7)] == ["new"] * 3
    assert seen.ranges == [[5, 7]]
    assert seen.add(10, 12, 10) == "new"  # hole 8..9
    assert seen.add(6, 6, 10) == "duplicate"
    assert seen.add(11, 11, 10) == "duplicate"
    assert seen.add(7, 8, 10) == "overlap"
    assert seen.add(9, 9, 10) == "new"
    assert seen.add(8, 8, 10) == "new"
    assert seen.ranges == [[5, 12]]
    assert seen.add(1, 2, 10) == "new"
    assert seen.add(3, 4, 10) == "new"
    assert seen.ranges == [[1, 12]]
    for start in range(20, 60, 2):  # 20 holes: the oldest are forgotten past the limit
        seen.add(start, start, 10)
    assert len(seen.ranges) == 10
    assert seen.add(13, 13, 10) == "duplicate"


def test_timeframes_need_not_divide_each_other() -> None:
    builder = BarBuilder(("2s", "3s"), lateness_ms=0)
    assert builder.base == 1_000
    state = builder.new_symbol("binance", "usdm")
    trades = [
        Trade(trade_id=i, ts_event=i * 500, price=float(i), qty=1.0, is_buyer_maker=False)
        for i in range(1, 13)
    ]
    bars = builder.on_trades(state, "X1", trades, 0).bars
    bars += builder.advance(state, "X1", 60_000, 0).bars
    got = {(b.tf, b.start): b.trades for b in bars}
    assert got == {
        ("2s", 0): 3, ("2s", 2_000): 4, ("2s", 4_000): 4, ("2s", 6_000): 1,
        ("3s", 0): 5, ("3s", 3_000): 6, ("3s", 6_000): 1,
    }  # fmt: skip
