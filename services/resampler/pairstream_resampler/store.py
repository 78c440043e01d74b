"""The storage sink: bars and the resampler's checkpoints, written in one transaction.

Bars are copied into a session-local staging table and upserted by
``(market, symbol, tf, start)``; a row only replaces one of the same or a lower revision,
so re-writing after a restart, or a stale writer after a rebalance, never moves a
bar backwards. A checkpoint (a partition's next offset and its builder state) only
replaces one at the same or an earlier offset; it is stored with the anchor of the
last input record it covers (:mod:`pairstream.checkpoints`), and a checkpoint whose
anchor does not match the log any more is deleted (:meth:`BarStore.discard`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import asyncpg

from pairstream.checkpoints import Anchor
from pairstream.messages import Bar

#: columns copied for every bar (the table adds ``stored_at``)
BAR_COLUMNS = (
    "exchange", "market", "symbol", "tf", "start", "open", "high", "low", "close", "volume",
    "quote_volume", "trades", "vwap", "buy_volume", "first_trade_id", "last_trade_id",
    "revision", "final", "ts_event", "ts_init",
)  # fmt: skip

_UPSERT = f"""
INSERT INTO bars ({", ".join(BAR_COLUMNS)})
SELECT {", ".join(BAR_COLUMNS)} FROM pairstream_bars_staging
ON CONFLICT (market, symbol, tf, start) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in (*BAR_COLUMNS[5:], "exchange"))},
    stored_at = now()
WHERE bars.revision <= EXCLUDED.revision
"""

_CHECKPOINT = """
INSERT INTO resampler_checkpoints (group_id, topic, partition, next_offset, state,
    anchor_offset, anchor_fingerprint)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (group_id, topic, partition) DO UPDATE SET
    next_offset = EXCLUDED.next_offset, state = EXCLUDED.state,
    anchor_offset = EXCLUDED.anchor_offset, anchor_fingerprint = EXCLUDED.anchor_fingerprint,
    updated_at = now()
WHERE resampler_checkpoints.next_offset <= EXCLUDED.next_offset
"""


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def bar_record(bar: Bar) -> tuple[object, ...]:
    """A bar as a row of :data:`BAR_COLUMNS`."""
    return (
        bar.exchange, bar.market, bar.symbol, bar.tf, _ts(bar.start), bar.open, bar.high,
        bar.low, bar.close, bar.volume, bar.quote_volume, bar.trades, bar.vwap, bar.buy_volume,
        bar.first_trade_id, bar.last_trade_id, bar.revision, bar.final, _ts(bar.ts_event),
        _ts(bar.ts_init),
    )  # fmt: skip


class BarStore:
    """Bars and checkpoints of one consumer group and input topic."""

    def __init__(self, pool: asyncpg.Pool, group_id: str, topic: str) -> None:
        self.pool = pool
        self.group_id = group_id
        self.topic = topic

    async def load(self, partition: int) -> tuple[int, bytes, Anchor | None] | None:
        """The stored ``(next_offset, state, anchor)`` of ``partition``, if any."""
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT next_offset, state, anchor_offset, anchor_fingerprint "
                "FROM resampler_checkpoints "
                "WHERE group_id = $1 AND topic = $2 AND partition = $3",
                self.group_id,
                self.topic,
                partition,
            )
        if row is None:
            return None
        anchor = None
        if row["anchor_offset"] is not None and row["anchor_fingerprint"] is not None:
            anchor = Anchor(
                self.topic, partition, int(row["anchor_offset"]), bytes(row["anchor_fingerprint"])
            )
        return int(row["next_offset"]), bytes(row["state"]), anchor

    async def discard(self, partition: int, next_offset: int) -> None:
        """Delete the checkpoint of ``partition`` found stale (only if still at ``next_offset``).

        Deleting, not overwriting: the upsert only moves a checkpoint forward, and
        the new log's first checkpoint is at a lower offset.
        """
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM resampler_checkpoints "
                "WHERE group_id = $1 AND topic = $2 AND partition = $3 AND next_offset = $4",
                self.group_id,
                self.topic,
                partition,
                next_offset,
            )

    async def write(
        self,
        bars: Iterable[Bar],
        checkpoints: Mapping[int, tuple[int, bytes, Anchor | None]],
    ) -> int:
        """Upsert ``bars`` and store ``checkpoints`` (partition → offset, state, anchor)."""
        records = [bar_record(bar) for bar in bars]
        async with self.pool.acquire() as conn, conn.transaction():
            if records:
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS pairstream_bars_staging "
                    "(LIKE bars INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                await conn.copy_records_to_table(
                    "pairstream_bars_staging", records=records, columns=BAR_COLUMNS
                )
                await conn.execute(_UPSERT)
            if checkpoints:
                await conn.executemany(
                    _CHECKPOINT,
                    [
                        (
                            self.group_id,
                            self.topic,
                            partition,
                            offset,
                            state,
                            None if anchor is None else anchor.offset,
                            None if anchor is None else anchor.fingerprint,
                        )
                        for partition, (offset, state, anchor) in checkpoints.items()
                    ],
                )
        return len(records)
