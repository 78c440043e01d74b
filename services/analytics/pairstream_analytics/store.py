"""The analytics tables: outputs upserted by ``(pair, tf, ts, method)`` with the checkpoints.

Outputs and the checkpoints of the pairs they advance are written in one
transaction, so a checkpoint never claims a bar whose outputs are not stored.
Checkpoints only move forward (a stale writer after a rebalance cannot move one
back); each is anchored to the ``analytics.bars`` record that last advanced it
(:mod:`pairstream.checkpoints`), and one whose anchor no longer matches the log is
deleted (:meth:`AnalyticsStore.discard`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from pairstream.analytics.pair import LegBar
from pairstream.analytics.scan import ScanRow
from pairstream.checkpoints import Anchor
from pairstream.instruments import split_instrument
from pairstream.messages import SpreadUpdate, StatsUpdate, ZScoreUpdate


def ts(ms: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def ms(value: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return round(value.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where one pair's analytics stand (see the migration's comment)."""

    pair: str
    tf: str
    first_ts: int | None
    frontier: int
    joined: int
    anchor: Anchor | None = None


_SPREAD = """
INSERT INTO analytics_spread (pair, tf, ts, method, price_transform, hedge_ratio, intercept,
    spread, forecast_error, forecast_variance, ts_init)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (pair, tf, ts, method) DO UPDATE SET
    price_transform = EXCLUDED.price_transform, hedge_ratio = EXCLUDED.hedge_ratio,
    intercept = EXCLUDED.intercept, spread = EXCLUDED.spread,
    forecast_error = EXCLUDED.forecast_error, forecast_variance = EXCLUDED.forecast_variance,
    ts_init = EXCLUDED.ts_init
"""

_ZSCORE = """
INSERT INTO analytics_zscore (pair, tf, ts, method, "window", spread, mean, std, zscore,
    position, signal, ts_init)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (pair, tf, ts, method) DO UPDATE SET
    "window" = EXCLUDED."window", spread = EXCLUDED.spread, mean = EXCLUDED.mean,
    std = EXCLUDED.std, zscore = EXCLUDED.zscore, position = EXCLUDED.position,
    signal = EXCLUDED.signal, ts_init = EXCLUDED.ts_init
"""

STATS_FIELDS = (
    "correlation", "adf_stat", "adf_pvalue", "half_life", "vol_y", "vol_x", "vwap_y", "vwap_x",
    "buy_share_y", "buy_share_x", "coint_stat", "coint_pvalue", "hedge_ratio_ci_low",
    "hedge_ratio_ci_high",
)  # fmt: skip

_STATS = f"""
INSERT INTO analytics_stats (pair, tf, ts, method, {", ".join(STATS_FIELDS)}, tests_ts, ts_init)
VALUES ({", ".join(f"${i}" for i in range(1, len(STATS_FIELDS) + 7))})
ON CONFLICT (pair, tf, ts, method) DO UPDATE SET
    {", ".join(f"{f} = EXCLUDED.{f}" for f in (*STATS_FIELDS, "tests_ts", "ts_init"))}
"""

_CHECKPOINT = """
INSERT INTO analytics_checkpoints (group_id, pair, tf, first_ts, frontier, joined,
    anchor_topic, anchor_partition, anchor_offset, anchor_fingerprint)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (group_id, pair, tf) DO UPDATE SET
    first_ts = EXCLUDED.first_ts, frontier = EXCLUDED.frontier, joined = EXCLUDED.joined,
    anchor_topic = EXCLUDED.anchor_topic, anchor_partition = EXCLUDED.anchor_partition,
    anchor_offset = EXCLUDED.anchor_offset, anchor_fingerprint = EXCLUDED.anchor_fingerprint,
    updated_at = now()
WHERE analytics_checkpoints.frontier <= EXCLUDED.frontier
"""

_SCAN = """
INSERT INTO pair_scan (tf, ts, y, x, "window", nobs, correlation, hedge_ratio, coint_stat,
    coint_pvalue, ts_init)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (tf, ts, y, x) DO UPDATE SET
    "window" = EXCLUDED."window", nobs = EXCLUDED.nobs, correlation = EXCLUDED.correlation,
    hedge_ratio = EXCLUDED.hedge_ratio, coint_stat = EXCLUDED.coint_stat,
    coint_pvalue = EXCLUDED.coint_pvalue, ts_init = EXCLUDED.ts_init
"""


#: bars of the instruments given as two arrays ($1 markets, $2 symbols)
_OF_INSTRUMENTS = (
    "JOIN unnest($1::text[], $2::text[]) AS wanted(market, symbol) USING (market, symbol)"
)
_INSTRUMENT = "market || ':' || symbol AS instrument"


def _columns(instruments: Sequence[str]) -> tuple[list[str], list[str]]:
    legs = [split_instrument(name) for name in instruments]
    return [market for market, _ in legs], [symbol for _, symbol in legs]


class AnalyticsStore:
    """Reads bars and checkpoints, writes outputs and checkpoints."""

    def __init__(self, pool: asyncpg.Pool, group_id: str) -> None:
        self.pool = pool
        self.group_id = group_id

    async def checkpoint(self, pair: str, tf: str) -> Checkpoint | None:
        """The stored checkpoint of a pair, if any."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT first_ts, frontier, joined, anchor_topic, anchor_partition, anchor_offset, "
                "anchor_fingerprint FROM analytics_checkpoints "
                "WHERE group_id = $1 AND pair = $2 AND tf = $3",
                self.group_id,
                pair,
                tf,
            )
        if row is None:
            return None
        first = row["first_ts"]
        anchor = None
        if None not in (
            row["anchor_topic"],
            row["anchor_partition"],
            row["anchor_offset"],
            row["anchor_fingerprint"],
        ):
            anchor = Anchor(
                row["anchor_topic"],
                int(row["anchor_partition"]),
                int(row["anchor_offset"]),
                bytes(row["anchor_fingerprint"]),
            )
        return Checkpoint(
            pair,
            tf,
            None if first is None else ms(first),
            ms(row["frontier"]),
            row["joined"],
            anchor,
        )

    async def discard(self, checkpoint: Checkpoint) -> None:
        """Delete a checkpoint found stale (only if it is still the one read).

        Deleting, not overwriting: the upsert only moves a frontier forward, and
        the new log's first checkpoint has an earlier one.
        """
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM analytics_checkpoints WHERE group_id = $1 AND pair = $2 AND tf = $3 "
                "AND frontier = $4",
                self.group_id,
                checkpoint.pair,
                checkpoint.tf,
                ts(checkpoint.frontier),
            )

    async def final_bars(
        self, instruments: Sequence[str], tf: str, first: int, last: int
    ) -> list[tuple[str, int, LegBar]]:
        """Stored final bars of ``instruments`` with ``first <= start <= last``, by start."""
        markets, symbols = _columns(instruments)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_INSTRUMENT}, start, close, volume, quote_volume, buy_volume "
                f"FROM bars {_OF_INSTRUMENTS} "
                "WHERE tf = $3 AND final AND start BETWEEN $4 AND $5 ORDER BY start, instrument",
                markets,
                symbols,
                tf,
                ts(first),
                ts(last),
            )
        return [
            (
                r["instrument"],
                ms(r["start"]),
                LegBar(r["close"], r["volume"], r["quote_volume"], r["buy_volume"]),
            )
            for r in rows
        ]

    async def latest_closes(
        self, instruments: Sequence[str], tf: str, tf_ms: int, window: int
    ) -> list[tuple[str, int, float]]:
        """The final closes of the last ``window`` bar intervals up to the newest stored bar."""
        markets, symbols = _columns(instruments)
        async with self.pool.acquire() as conn:
            newest = await conn.fetchval(
                f"SELECT max(start) FROM bars {_OF_INSTRUMENTS} WHERE tf = $3 AND final",
                markets,
                symbols,
                tf,
            )
            if newest is None:
                return []
            rows = await conn.fetch(
                f"SELECT {_INSTRUMENT}, start, close FROM bars {_OF_INSTRUMENTS} "
                "WHERE tf = $3 AND final AND start > $4 ORDER BY start",
                markets,
                symbols,
                tf,
                ts(ms(newest) - 2 * window * tf_ms),
            )
        return [(r["instrument"], ms(r["start"]), r["close"]) for r in rows]

    async def write(
        self,
        spreads: Iterable[SpreadUpdate],
        zscores: Iterable[ZScoreUpdate],
        stats: Iterable[StatsUpdate],
        checkpoints: Iterable[Checkpoint],
    ) -> None:
        """Upsert outputs and move checkpoints forward, in one transaction."""
        spread_rows = [
            (
                s.pair, s.tf, ts(s.ts), s.method, s.price_transform, s.hedge_ratio, s.intercept,
                s.spread, s.forecast_error, s.forecast_variance, ts(s.ts_init),
            )
            for s in spreads
        ]  # fmt: skip
        zscore_rows = [
            (
                z.pair, z.tf, ts(z.ts), z.method, z.window, z.spread, z.mean, z.std, z.zscore,
                z.position, z.signal, ts(z.ts_init),
            )
            for z in zscores
        ]  # fmt: skip
        stats_rows = [
            (
                s.pair,
                s.tf,
                ts(s.ts),
                s.method,
                *(getattr(s, f) for f in STATS_FIELDS),
                None if s.tests_ts is None else ts(s.tests_ts),
                ts(s.ts_init),
            )
            for s in stats
        ]
        checkpoint_rows = [
            (
                self.group_id,
                c.pair,
                c.tf,
                None if c.first_ts is None else ts(c.first_ts),
                ts(c.frontier),
                c.joined,
                None if c.anchor is None else c.anchor.topic,
                None if c.anchor is None else c.anchor.partition,
                None if c.anchor is None else c.anchor.offset,
                None if c.anchor is None else c.anchor.fingerprint,
            )
            for c in checkpoints
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            for sql, rows in (
                (_SPREAD, spread_rows),
                (_ZSCORE, zscore_rows),
                (_STATS, stats_rows),
                (_CHECKPOINT, checkpoint_rows),
            ):
                if rows:
                    await conn.executemany(sql, rows)

    async def write_scan(
        self, tf: str, at: int, window: int, rows: Sequence[ScanRow], ts_init: int
    ) -> None:
        """Store one scan."""
        records = [
            (
                tf, ts(at), r.y, r.x, window, r.nobs, r.correlation, r.hedge_ratio, r.coint_stat,
                r.coint_pvalue, ts(ts_init),
            )
            for r in rows
        ]  # fmt: skip
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(_SCAN, records)
