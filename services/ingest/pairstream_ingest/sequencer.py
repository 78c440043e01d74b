"""Per-symbol ordering by trade id: drop duplicates, put out-of-order trades back, find gaps.

Pure and synchronous: fed identically by live, replay and synthetic sources.
A trade covers the trade ids ``[lo, hi]`` (one id, or an aggregate's range).
Trades are released strictly in id order, each id at most once. A trade that
arrives ahead of a missing id waits; :meth:`Sequencer.gap` tells the caller
which ids are missing so it can backfill them, or :meth:`Sequencer.skip_gap`
gives up on them (counted, never silent). The quantities of recently released
and of waiting trades stay known (:meth:`Sequencer.known_qty`) so a backfilled
aggregate that overlaps them can be trimmed to its missing part.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from pairstream.messages import TickSource, Trade

Released = tuple[Trade, TickSource]


def span(trade: Trade) -> tuple[int, int]:
    """The trade ids a trade covers."""
    if trade.first_trade_id is not None and trade.last_trade_id is not None:
        return trade.first_trade_id, trade.last_trade_id
    return trade.trade_id, trade.trade_id


def decimal_qty(qty: float) -> Decimal:
    """A float quantity as the decimal it was parsed from (shortest round-trip form)."""
    return Decimal(repr(qty))


class UnknownQuantityError(LookupError):
    """The quantity of some ids in a range is not known (released too long ago, or split)."""


@dataclass(slots=True)
class SequencerStats:
    """Counters for metrics and tests."""

    released: int = 0
    duplicates: int = 0
    reordered: int = 0
    skipped_ids: int = 0
    gaps: int = 0


@dataclass(slots=True)
class Sequencer:
    """Trade-id order for one symbol; remembers the last ``history`` releases."""

    symbol: str
    next_id: int | None = None
    history: int = 100_000
    #: hold the first trades until :meth:`start` (live: frames may arrive out of order)
    hold_start: bool = False
    stats: SequencerStats = field(default_factory=SequencerStats)
    last_ts: int | None = None
    _waiting: list[tuple[int, int, Trade, TickSource]] = field(default_factory=list)
    _waiting_lows: set[int] = field(default_factory=set)
    _released: deque[tuple[int, int, float]] = field(init=False)

    def __post_init__(self) -> None:
        self._released = deque(maxlen=self.history)

    def resume(
        self, last_id: int, last_ts: int, recent: list[tuple[int, int, float]] | None = None
    ) -> None:
        """Continue after ``last_id``, published before a restart (``recent``: its predecessors).

        The next trade expected is ``last_id + 1``: lower ones are duplicates, higher
        ones wait behind a gap that the backfill fills, exactly as after a reconnect.
        ``recent`` (``(first id, last id, qty)`` in id order, up to ``last_id``) are
        remembered as released, so an aggregate overlapping them can be trimmed.
        """
        if self.next_id is not None:
            raise RuntimeError(f"{self.symbol}: already started at {self.next_id}")
        for lo, hi, qty in recent or ():
            if hi <= last_id:
                self._released.append((lo, hi, qty))
        self.next_id = last_id + 1
        self.last_ts = last_ts

    def push(self, trade: Trade, source: TickSource = "live") -> list[Released]:
        """Offer one trade; returns the trades now releasable, in id order."""
        lo, hi = span(trade)
        if self.next_id is None:
            if self.hold_start:
                if lo not in self._waiting_lows:
                    heapq.heappush(self._waiting, (lo, hi, trade, source))
                    self._waiting_lows.add(lo)
                else:
                    self.stats.duplicates += 1
                return []
            self.next_id = lo
        if lo < self.next_id:
            # already released, or (an aggregate) overlapping released ids: trimming it
            # needs the released quantities, which the backfill does before pushing
            self.stats.duplicates += 1
            return []
        if lo > self.next_id:
            if lo in self._waiting_lows:
                self.stats.duplicates += 1
                return []
            if not self._waiting:
                self.stats.gaps += 1
            heapq.heappush(self._waiting, (lo, hi, trade, source))
            self._waiting_lows.add(lo)
            self.stats.reordered += 1
            return []
        released: list[Released] = []
        self._release(trade, source, lo, hi, released)
        self._drain(released)
        return released

    def _release(
        self, trade: Trade, source: TickSource, lo: int, hi: int, out: list[Released]
    ) -> None:
        out.append((trade, source))
        self._released.append((lo, hi, trade.qty))
        self.next_id = hi + 1
        self.last_ts = trade.ts_event
        self.stats.released += 1

    def _drain(self, out: list[Released]) -> None:
        assert self.next_id is not None
        while self._waiting and self._waiting[0][0] <= self.next_id:
            lo, hi, trade, source = heapq.heappop(self._waiting)
            self._waiting_lows.discard(lo)
            if lo < self.next_id:
                self.stats.duplicates += 1
                continue
            self._release(trade, source, lo, hi, out)

    def start(self) -> list[Released]:
        """Start at the lowest id held so far (with ``hold_start``); returns what that releases."""
        if self.next_id is not None or not self._waiting:
            return []
        self.next_id = self._waiting[0][0]
        released: list[Released] = []
        self._drain(released)
        return released

    def gap(self) -> tuple[int, int] | None:
        """The missing ids ``[first, last]`` that hold back waiting trades, if any."""
        if not self._waiting or self.next_id is None:
            return None
        return self.next_id, self._waiting[0][0] - 1

    def first_waiting_ts(self) -> int:
        """Event time of the first trade waiting behind the gap (where the gap ends)."""
        if not self._waiting:
            raise LookupError(f"{self.symbol}: no gap")
        return self._waiting[0][2].ts_event

    @property
    def waiting(self) -> int:
        """How many trades wait for a gap to close."""
        return len(self._waiting)

    def known_qty(self, lo: int, hi: int) -> Decimal:
        """Total quantity of the released and waiting trades inside ids ``[lo, hi]``.

        Raises :class:`UnknownQuantityError` when some of those ids were released
        before the remembered history, or a known trade straddles the range's edge.
        """
        total = Decimal(0)
        if self.next_id is not None and lo < self.next_id:
            if not self._released or self._released[0][0] > lo:
                raise UnknownQuantityError(
                    f"{self.symbol}: ids from {lo} are older than the history"
                )
            for first, last, qty in reversed(self._released):
                if last < lo:
                    break
                if first < lo or last > hi:
                    if first <= hi:
                        raise UnknownQuantityError(
                            f"{self.symbol}: released ids {first}..{last} straddle {lo}..{hi}"
                        )
                    continue
                total += decimal_qty(qty)
        for first, last, trade, _ in self._waiting:
            if last < lo or first > hi:
                continue
            if first < lo or last > hi:
                raise UnknownQuantityError(
                    f"{self.symbol}: waiting ids {first}..{last} straddle {lo}..{hi}"
                )
            total += decimal_qty(trade.qty)
        return total

    def waiting_ids(self, lo: int, hi: int) -> int:
        """How many ids of ``[lo, hi]`` the waiting trades cover."""
        return sum(
            last - first + 1 for first, last, _, _ in self._waiting if first >= lo and last <= hi
        )

    def skip_gap(self) -> list[Released]:
        """Give up on the current gap; returns the trades it released."""
        missing = self.gap()
        if missing is None:
            return []
        self.stats.skipped_ids += missing[1] - missing[0] + 1
        self.next_id = missing[1] + 1
        released: list[Released] = []
        self._drain(released)
        return released
