"""Per-symbol ordering by trade id: drop duplicates, put out-of-order trades back, find gaps.

Pure and synchronous: fed identically by live, replay and synthetic sources.
A trade covers the trade ids ``[lo, hi]`` (one id, or an aggregate's range).
Trades are released strictly in id order, each id at most once. A trade that
arrives ahead of a missing id waits; :meth:`Sequencer.gap` tells the caller
which ids are missing so it can backfill them, or :meth:`Sequencer.skip_gap`
gives up on them (counted, never silent).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from pairstream.messages import Trade


def span(trade: Trade) -> tuple[int, int]:
    """The trade ids a trade covers."""
    if trade.first_trade_id is not None and trade.last_trade_id is not None:
        return trade.first_trade_id, trade.last_trade_id
    return trade.trade_id, trade.trade_id


@dataclass(slots=True)
class SequencerStats:
    """Counters for metrics and tests."""

    released: int = 0
    duplicates: int = 0
    reordered: int = 0
    skipped_ids: int = 0


@dataclass(slots=True)
class Sequencer:
    """Trade-id order for one symbol."""

    symbol: str
    next_id: int | None = None
    stats: SequencerStats = field(default_factory=SequencerStats)
    _waiting: list[tuple[int, int, Trade]] = field(default_factory=list)
    _waiting_lows: set[int] = field(default_factory=set)

    def push(self, trade: Trade) -> list[Trade]:
        """Offer one trade; returns the trades now releasable, in id order."""
        lo, hi = span(trade)
        if self.next_id is None:
            self.next_id = lo
        if hi < self.next_id:
            self.stats.duplicates += 1
            return []
        if lo < self.next_id:
            # overlaps ids already released: only an aggregate can do that, and trimming
            # it needs the released quantities (backfill reconciles those before pushing)
            self.stats.duplicates += 1
            return []
        if lo > self.next_id:
            if lo in self._waiting_lows:
                self.stats.duplicates += 1
                return []
            heapq.heappush(self._waiting, (lo, hi, trade))
            self._waiting_lows.add(lo)
            self.stats.reordered += 1
            return []
        released = [trade]
        self.next_id = hi + 1
        self._drain(released)
        self.stats.released += len(released)
        return released

    def _drain(self, out: list[Trade]) -> None:
        assert self.next_id is not None
        while self._waiting and self._waiting[0][0] <= self.next_id:
            lo, hi, trade = heapq.heappop(self._waiting)
            self._waiting_lows.discard(lo)
            if hi < self.next_id or lo < self.next_id:
                self.stats.duplicates += 1
                continue
            out.append(trade)
            self.next_id = hi + 1

    def gap(self) -> tuple[int, int] | None:
        """The missing ids ``[first, last]`` that hold back waiting trades, if any."""
        if not self._waiting or self.next_id is None:
            return None
        return self.next_id, self._waiting[0][0] - 1

    @property
    def waiting(self) -> int:
        """How many trades wait for a gap to close."""
        return len(self._waiting)

    def skip_gap(self) -> list[Trade]:
        """Give up on the current gap; returns the trades it released."""
        missing = self.gap()
        if missing is None:
            return []
        self.stats.skipped_ids += missing[1] - missing[0] + 1
        self.next_id = missing[1] + 1
        released: list[Trade] = []
        self._drain(released)
        self.stats.released += len(released)
        return released
