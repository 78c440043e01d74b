"""The pure bar builder: runs of trades in, bars and late trades out (no I/O, no clock).

Semantics (DESIGN §4), per symbol:

* **Buckets** are event-time intervals ``[start, start + tf)`` by trade time. A bar
  covers the exchange trade ids it was built from: ``trades`` counts them (a
  backfilled aggregate covering ids ``f..l`` counts ``l - f + 1``), ``open`` is the
  price of the lowest trade id and ``close`` of the highest (ids follow exchange
  time), VWAP is ``quote_volume / volume`` and ``buy_volume`` the taker-buy quantity
  (``is_buyer_maker`` false).
* **Empty intervals** have no bar, in the topics and in the table: a bar exists
  only where trades happened (``trades >= 1``); nothing is invented.
* **Event clock and watermark**: the event clock is the largest trade time
  accepted (it never goes back; :meth:`SymbolBars.advance` moves it on for an idle
  symbol, see the service). The watermark is ``clock - lateness``; both move once
  per message of trades.
* **Emissions**: a bar is published when the event clock passes its end
  (``final=false``, ``revision 0``); each late trade that lands in it afterwards
  re-publishes it with ``revision + 1``; when the watermark passes its end it is
  published a last time with ``final=true`` (or only then, when it closes and is
  final at once, e.g. with zero lateness). Consumers keep the highest revision.
* **Late trades**: a trade is accepted while every bar it belongs to is open, i.e.
  while its smallest bucket ends after the watermark. Otherwise it is returned as
  late (the service dead-letters it) and is in no bar.
* **Duplicates**: a trade whose id range was seen before is dropped; the seen ids
  are kept as disjoint ranges (one range while nothing is missing).

The state is made of :mod:`msgspec` structs so a checkpoint is one encode call.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from pairstream.messages import Bar, Market, Trade, timeframe_ms


class Acc(msgspec.Struct, kw_only=True):
    """A bar being built (mutable). ``open_id``/``close_id`` order open and close."""

    start: int
    open: float
    high: float
    low: float
    close: float
    open_id: int
    close_id: int
    volume: float
    quote_volume: float
    buy_volume: float
    trades: int
    first_trade_id: int
    last_trade_id: int
    ts_event: int
    revision: int = 0  # revision of the next emission = emissions so far
    emitted: bool = False
    dirty: bool = False  # changed since it was last emitted

    def merge(self, other: Acc) -> None:
        """Fold ``other`` (trades of the same or a smaller bucket, other ids) into this bar."""
        if other.open_id < self.open_id:
            self.open = other.open
            self.open_id = other.open_id
        if other.close_id > self.close_id:
            self.close = other.close
            self.close_id = other.close_id
        if other.high > self.high:
            self.high = other.high
        if other.low < self.low:
            self.low = other.low
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.buy_volume += other.buy_volume
        self.trades += other.trades
        if other.first_trade_id < self.first_trade_id:
            self.first_trade_id = other.first_trade_id
        if other.last_trade_id > self.last_trade_id:
            self.last_trade_id = other.last_trade_id
        if other.ts_event > self.ts_event:
            self.ts_event = other.ts_event
        if self.emitted:
            self.dirty = True

    def copy_at(self, start: int) -> Acc:
        """A fresh bar at ``start`` holding this one's trades."""
        return Acc(
            start=start,
            open=self.open,
            high=self.high,
            low=self.low,
            close=self.close,
            open_id=self.open_id,
            close_id=self.close_id,
            volume=self.volume,
            quote_volume=self.quote_volume,
            buy_volume=self.buy_volume,
            trades=self.trades,
            first_trade_id=self.first_trade_id,
            last_trade_id=self.last_trade_id,
            ts_event=self.ts_event,
        )


def _acc_of(trade: Trade, start: int, lo: int, hi: int) -> Acc:
    price, qty = trade.price, trade.qty
    return Acc(
        start=start,
        open=price,
        high=price,
        low=price,
        close=price,
        open_id=trade.trade_id,
        close_id=trade.trade_id,
        volume=qty,
        quote_volume=price * qty,
        buy_volume=0.0 if trade.is_buyer_maker else qty,
        trades=hi - lo + 1,
        first_trade_id=lo,
        last_trade_id=hi,
        ts_event=trade.ts_event,
    )


Seen = Literal["new", "duplicate", "overlap"]


class IdRanges(msgspec.Struct):
    """Trade ids seen, as sorted disjoint inclusive ranges ``[lo, hi]``.

    At most ``limit`` ranges are kept: past that the oldest hole is forgotten (its
    ids count as seen; a trade that old is later than any lateness anyway).
    """

    ranges: list[list[int]] = msgspec.field(default_factory=list)

    def add(self, lo: int, hi: int, limit: int) -> Seen:
        """Record ids ``lo..hi``: ``new``, ``duplicate`` (all seen) or ``overlap`` (partly)."""
        ranges = self.ranges
        if ranges:
            last = ranges[-1]
            if lo == last[1] + 1:  # the common case: the next trade in id order
                last[1] = hi
                return "new"
            if lo > last[1] + 1:
                ranges.append([lo, hi])
                if len(ranges) > limit:
                    ranges[0:2] = [[ranges[0][0], ranges[1][1]]]
                return "new"
        else:
            ranges.append([lo, hi])
            return "new"
        # lo is at or below the newest range: find the range starting at or before lo
        index = bisect_right(ranges, lo, key=lambda r: r[0]) - 1
        if index >= 0 and lo <= ranges[index][1]:
            return "duplicate" if hi <= ranges[index][1] else "overlap"
        after = ranges[index + 1]  # exists: lo <= ranges[-1][1]
        if hi >= after[0]:
            return "overlap"
        # inside a hole between ranges[index] and after
        if index >= 0 and lo == ranges[index][1] + 1:
            ranges[index][1] = hi
            if hi + 1 == after[0]:
                ranges[index][1] = after[1]
                del ranges[index + 1]
        elif hi + 1 == after[0]:
            after[0] = lo
        else:
            ranges.insert(index + 1, [lo, hi])
        return "new"


class SymbolBars(msgspec.Struct, kw_only=True):
    """Everything the resampler knows about one symbol (checkpointed as is)."""

    exchange: str
    market: Market
    clock: int = -1  # event clock (ms); -1 before the first trade
    seen: IdRanges = msgspec.field(default_factory=IdRanges)
    bars: dict[str, dict[int, Acc]] = msgspec.field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """What one message (or one clock advance) produced."""

    bars: list[Bar] = field(default_factory=list)
    late: list[Trade] = field(default_factory=list)
    overlapping: list[Trade] = field(default_factory=list)
    accepted: int = 0
    duplicates: int = 0


class BarBuilder:
    """Builds bars for several timeframes; one instance serves every symbol of a worker."""

    def __init__(
        self, timeframes: tuple[str, ...], lateness_ms: int, max_id_ranges: int = 10_000
    ) -> None:
        if not timeframes:
            raise ValueError("at least one timeframe is needed")
        if lateness_ms < 0:
            raise ValueError("lateness must be >= 0")
        self.timeframes = tuple(sorted(set(timeframes), key=timeframe_ms))
        self.spans = {tf: timeframe_ms(tf) for tf in self.timeframes}
        #: every timeframe is a multiple of the base bucket, so trades are folded once
        self.base = math.gcd(*self.spans.values())
        self.lateness_ms = lateness_ms
        self.max_id_ranges = max_id_ranges

    def new_symbol(self, exchange: str, market: Market) -> SymbolBars:
        return SymbolBars(exchange=exchange, market=market, bars={tf: {} for tf in self.timeframes})

    def watermark(self, state: SymbolBars) -> int:
        return state.clock - self.lateness_ms if state.clock >= 0 else -1

    def on_trades(
        self, state: SymbolBars, symbol: str, trades: list[Trade], now_ms: int
    ) -> Outcome:
        """Fold one message's trades into ``state``; return the bars to publish now."""
        out = Outcome()
        base = self.base
        watermark = self.watermark(state)
        # late iff the trade's smallest bucket ends at or before the watermark
        cutoff = (watermark // base) * base if watermark >= 0 else -1
        seen_add = state.seen.add
        limit = self.max_id_ranges
        partials: dict[int, Acc] = {}
        current: Acc | None = None
        current_start = -1
        clock = state.clock
        for trade in trades:
            if trade.first_trade_id is None or trade.last_trade_id is None:
                lo = hi = trade.trade_id
            else:  # a backfilled aggregate
                lo, hi = trade.first_trade_id, trade.last_trade_id
            seen = seen_add(lo, hi, limit)
            if seen != "new":
                if seen == "duplicate":
                    out.duplicates += 1
                else:
                    out.overlapping.append(trade)
                continue
            ts = trade.ts_event
            if ts < cutoff:
                out.late.append(trade)
                continue
            out.accepted += 1
            if ts > clock:
                clock = ts
            start = ts - ts % base
            if start == current_start and current is not None:
                price, qty = trade.price, trade.qty
                tid = trade.trade_id
                if tid < current.open_id:
                    current.open, current.open_id = price, tid
                if tid > current.close_id:
                    current.close, current.close_id = price, tid
                if price > current.high:
                    current.high = price
                elif price < current.low:
                    current.low = price
                current.volume += qty
                current.quote_volume += price * qty
                if not trade.is_buyer_maker:
                    current.buy_volume += qty
                current.trades += hi - lo + 1
                if lo < current.first_trade_id:
                    current.first_trade_id = lo
                if hi > current.last_trade_id:
                    current.last_trade_id = hi
                if ts > current.ts_event:
                    current.ts_event = ts
                continue
            current = partials.get(start)
            if current is None:
                current = partials[start] = _acc_of(trade, start, lo, hi)
                current_start = start
                continue
            current_start = start
            current.merge(_acc_of(trade, start, lo, hi))
        for tf, span in self.spans.items():
            open_bars = state.bars[tf]
            for start, partial in partials.items():
                bucket = start - start % span
                bar = open_bars.get(bucket)
                if bar is None:
                    open_bars[bucket] = partial.copy_at(bucket)
                else:
                    bar.merge(partial)
        state.clock = clock
        self._emit(state, symbol, now_ms, out)
        return out

    def advance(self, state: SymbolBars, symbol: str, clock: int, now_ms: int) -> Outcome:
        """Move the event clock on to ``clock`` (never back) and emit what that closes."""
        out = Outcome()
        if clock > state.clock and state.clock >= 0:
            state.clock = clock
            self._emit(state, symbol, now_ms, out)
        return out

    def _emit(self, state: SymbolBars, symbol: str, now_ms: int, out: Outcome) -> None:
        clock = state.clock
        watermark = self.watermark(state)
        for tf, span in self.spans.items():
            open_bars = state.bars[tf]
            done: list[int] = []
            for start, bar in open_bars.items():
                end = start + span
                if end <= watermark:
                    out.bars.append(self._bar(state, symbol, tf, bar, True, now_ms))
                    done.append(start)
                elif end <= clock and (bar.dirty or not bar.emitted):
                    out.bars.append(self._bar(state, symbol, tf, bar, False, now_ms))
                    bar.revision += 1
                    bar.emitted = True
                    bar.dirty = False
            for start in done:
                del open_bars[start]
        if len(out.bars) > 1:
            out.bars.sort(key=lambda b: (self.spans[b.tf], b.start))

    @staticmethod
    def _bar(state: SymbolBars, symbol: str, tf: str, acc: Acc, final: bool, now_ms: int) -> Bar:
        return Bar(
            exchange=state.exchange,
            market=state.market,
            symbol=symbol,
            tf=tf,
            start=acc.start,
            open=acc.open,
            high=acc.high,
            low=acc.low,
            close=acc.close,
            volume=acc.volume,
            quote_volume=acc.quote_volume,
            trades=acc.trades,
            vwap=acc.quote_volume / acc.volume,
            buy_volume=acc.buy_volume,
            first_trade_id=acc.first_trade_id,
            last_trade_id=acc.last_trade_id,
            revision=acc.revision,
            final=final,
            ts_event=acc.ts_event,
            ts_init=now_ms,
        )
