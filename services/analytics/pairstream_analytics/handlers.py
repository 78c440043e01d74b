"""One pair at one timeframe: joined bars in, topic messages out (no I/O).

:class:`PairStream` holds the join and the core for a ``(pair, tf)`` and turns
each final bar into the :class:`SpreadUpdate`, :class:`ZScoreUpdate` and
:class:`StatsUpdate` of every method. ``ts_event`` of an output is the end of
its bar (``ts + tf``), so outputs are the same whenever they are computed;
only ``ts_init`` (when they were produced) differs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pairstream.analytics.join import JoinedBar, PairJoiner
from pairstream.analytics.pair import LegBar, Method, PairAnalytics, PairConfig, PairOutput
from pairstream.instruments import pair_legs
from pairstream.messages import Bar, SpreadUpdate, StatsUpdate, ZScoreUpdate

from .store import Checkpoint

#: how many (leg, bar start) → revision entries a pair remembers to spot revised bars
REVISIONS_KEPT = 100_000


def leg_bar(bar: Bar) -> LegBar:
    """The part of a bar the analytics use."""
    return LegBar(bar.close, bar.volume, bar.quote_volume, bar.buy_volume)


@dataclass(slots=True)
class Outputs:
    """Messages produced by a batch of bars."""

    spreads: list[SpreadUpdate] = field(default_factory=list)
    zscores: list[ZScoreUpdate] = field(default_factory=list)
    stats: list[StatsUpdate] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spreads) + len(self.zscores) + len(self.stats)

    def extend(self, other: Outputs) -> None:
        self.spreads += other.spreads
        self.zscores += other.zscores
        self.stats += other.stats


def to_messages(
    pair: str, tf: str, tf_ms: int, config: PairConfig, out: PairOutput, ts_init: int
) -> tuple[SpreadUpdate, ZScoreUpdate | None, StatsUpdate]:
    """The three topic messages of one :class:`PairOutput`."""
    h = out.hedge
    ts_event = out.ts + tf_ms
    windowed = out.method != "kalman"
    spread = SpreadUpdate(
        pair=pair,
        tf=tf,
        ts=out.ts,
        method=out.method,
        price_transform=config.price_transform,
        window=config.hedge_window if windowed else None,
        hedge_ratio=h.hedge_ratio,
        intercept=h.intercept,
        spread=h.spread,
        forecast_error=h.forecast_error,
        forecast_variance=h.forecast_variance,
        ts_event=ts_event,
        ts_init=ts_init,
    )
    zscore = None
    if out.mean is not None and out.std is not None:
        zscore = ZScoreUpdate(
            pair=pair,
            tf=tf,
            ts=out.ts,
            method=out.method,
            window=config.zscore_window,
            spread=h.spread,
            mean=out.mean,
            std=out.std,
            zscore=out.zscore,
            position=out.position,
            signal=out.signal,
            entry_z=config.entry_z,
            exit_z=config.exit_z,
            ts_event=ts_event,
            ts_init=ts_init,
        )
    t = out.tests
    stats = StatsUpdate(
        pair=pair,
        tf=tf,
        ts=out.ts,
        method=out.method,
        correlation=out.correlation,
        adf_stat=None if t is None else t.adf_stat,
        adf_pvalue=None if t is None else t.adf_pvalue,
        half_life=out.half_life,
        vol_y=out.vol_y,
        vol_x=out.vol_x,
        vwap_y=out.vwap_y,
        vwap_x=out.vwap_x,
        buy_share_y=out.buy_share_y,
        buy_share_x=out.buy_share_x,
        coint_stat=None if t is None else t.coint_stat,
        coint_pvalue=None if t is None else t.coint_pvalue,
        hedge_ratio_ci_low=None if t is None else t.hedge_ratio_ci_low,
        hedge_ratio_ci_high=None if t is None else t.hedge_ratio_ci_high,
        tests_ts=None if t is None else t.ts,
        flow_window=config.flow_window,
        stats_window=config.stats_window,
        adf_lag=config.adf_lag,
        ts_event=ts_event,
        ts_init=ts_init,
    )
    return spread, zscore, stats


class PairStream:
    """The join and the incremental core of one ``(pair, tf)``."""

    def __init__(
        self,
        pair: str,
        tf: str,
        tf_ms: int,
        config: PairConfig,
        methods: tuple[Method, ...],
    ) -> None:
        self.pair = pair
        self.tf = tf
        self.tf_ms = tf_ms
        self.config = config
        self.methods = methods
        self.legs = pair_legs(pair)
        self.joiner = PairJoiner()
        self.core = PairAnalytics(tf_ms, config, methods)
        self.first_ts: int | None = None
        self.joined = 0
        self._revisions: OrderedDict[tuple[int, int], int] = OrderedDict()
        self.held: list[tuple[int, int]] = []

    def _emit(self, joined: Iterable[JoinedBar], ts_init: int | None, out: Outputs) -> None:
        for j in joined:
            if self.first_ts is None:
                self.first_ts = j.ts
            self.joined += 1
            results = self.core.update(j.ts, j.y, j.x)
            if ts_init is None:
                continue
            for result in results:
                spread, zscore, stats = to_messages(
                    self.pair, self.tf, self.tf_ms, self.config, result, ts_init
                )
                out.spreads.append(spread)
                if zscore is not None:
                    out.zscores.append(zscore)
                out.stats.append(stats)

    def _remember(self, leg: int, start: int, revision: int) -> None:
        revisions = self._revisions
        revisions[(leg, start)] = revision
        if len(revisions) > REVISIONS_KEPT:
            revisions.popitem(last=False)

    def add(self, leg: int, bar: Bar, ts_init: int) -> Outputs | Bar | None:
        """Take a final bar of leg ``leg`` (0 = Y, 1 = X).

        Returns the outputs it decides; ``None`` for a bar already taken (a
        duplicate); the bar itself when it revises a bar already joined (the
        caller rebuilds the pair with it, see :meth:`replay`).
        """
        joined = self.joiner.add(leg, bar.start, leg_bar(bar))
        if joined is None:
            used = self._revisions.get((leg, bar.start))
            return bar if used is not None and bar.revision > used else None
        self._remember(leg, bar.start, bar.revision)
        out = Outputs()
        self._emit(joined, ts_init, out)
        return out

    def replay(
        self,
        bars: Iterable[tuple[int, int, LegBar]],
        frontier: int,
        emit_from: int | None = None,
        ts_init: int = 0,
    ) -> Outputs:
        """Rebuild from stored bars ``(leg, start, bar)`` (by start) up to ``frontier``.

        Outputs are returned only for bars starting at or after ``emit_from``.
        """
        out = Outputs()
        for leg, start, bar in bars:
            joined = self.joiner.add(leg, start, bar) or []
            self._emit_split(joined, emit_from, ts_init, out)
        self._emit_split(self.joiner.decide_through(frontier), emit_from, ts_init, out)
        return out

    def _emit_split(
        self, joined: list[JoinedBar], emit_from: int | None, ts_init: int, out: Outputs
    ) -> None:
        for j in joined:
            emit = emit_from is not None and j.ts >= emit_from
            self._emit([j], ts_init if emit else None, out)

    def hold(self, start: int, offset: int) -> None:
        """Remember the input offset of a bar taken at ``start`` until it is decided.

        Bars up to the frontier are decided (in the next checkpoint); later ones
        wait for the other leg, and their offsets must not be committed yet.
        """
        frontier = self.joiner.frontier
        if frontier is None or start > frontier:
            self.held.append((start, offset))

    def oldest_held(self) -> int | None:
        """The smallest input offset of a bar not decided yet, if any."""
        frontier = self.joiner.frontier
        self.held = [(t, o) for t, o in self.held if frontier is None or t > frontier]
        return min((o for _, o in self.held), default=None)

    def checkpoint(self) -> Checkpoint | None:
        """Where this pair stands, once anything was decided."""
        frontier = self.joiner.frontier
        if frontier is None:
            return None
        return Checkpoint(self.pair, self.tf, self.first_ts, frontier, self.joined)
