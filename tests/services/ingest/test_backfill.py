"""Trimming backfilled aggregates against known trades; the weight budget; sharding."""

from __future__ import annotations

import asyncio
import functools
import operator
from decimal import Decimal

import pytest

from pairstream.clock import FakeClock
from pairstream.messages import Trade
from pairstream_ingest.backfill import RestAggTrade, WeightLimiter, trim_aggregates
from pairstream_ingest.live import shards, stream_names
from pairstream_ingest.sequencer import Sequencer, UnknownQuantityError, decimal_qty, span


def trade(i: int, qty: str = "0.001") -> Trade:
    return Trade(trade_id=i, ts_event=1_000 + i, price=10.0, qty=float(qty), is_buyer_maker=True)


def agg(a: int, f: int, last: int, q: str) -> RestAggTrade:
    return RestAggTrade(a=a, p="10.0", q=q, f=f, l=last, T=1_000 + f, m=True)


def sequencer_with_gap() -> Sequencer:
    """Ids 1..10 released (0.001 each), 15..17 waiting (0.002 each); 11..14 missing."""
    seq = Sequencer("BTCUSDT")
    for i in range(1, 11):
        seq.push(trade(i))
    for i in (15, 16, 17):
        seq.push(trade(i, "0.002"))
    assert seq.gap() == (11, 14)
    return seq


def test_aggregates_overlapping_both_sides_are_trimmed_and_quantity_is_conserved() -> None:
    seq = sequencer_with_gap()
    # 9..12 holds two released trades (0.002) + 11, 12; 13..16 holds 13, 14 + two waiting (0.004)
    aggs = [agg(1, 9, 12, "0.012"), agg(2, 13, 16, "0.010")]
    out = trim_aggregates(aggs, (11, 14), seq.known_qty, seq.waiting_ids)
    assert [span(t) for t in out] == [(11, 12), (13, 14)]
    assert [decimal_qty(t.qty) for t in out] == [Decimal("0.010"), Decimal("0.006")]
    for t in out:
        seq.push(t, "backfill")
    assert seq.gap() is None
    assert seq.next_id == 18


def test_an_aggregate_reaching_into_a_second_gap_keeps_that_range() -> None:
    seq = sequencer_with_gap()
    seq.push(trade(20))  # 18, 19 missing too
    out = trim_aggregates([agg(1, 11, 19, "0.02")], (11, 14), seq.known_qty, seq.waiting_ids)
    assert [span(t) for t in out] == [(11, 19)]
    assert decimal_qty(out[0].qty) == Decimal("0.02")  # waiting 15..17 are dropped as repeats
    seq.push(out[0], "backfill")
    assert seq.next_id == 21
    assert seq.stats.duplicates == 3


def test_quantities_older_than_the_history_are_refused() -> None:
    seq = Sequencer("BTCUSDT", history=3)
    for i in range(1, 11):
        seq.push(trade(i))
    seq.push(trade(12))
    with pytest.raises(UnknownQuantityError):
        trim_aggregates([agg(1, 5, 11, "1")], (11, 11), seq.known_qty, seq.waiting_ids)


def test_hold_start_releases_from_the_lowest_id_seen_in_the_grace() -> None:
    seq = Sequencer("ETHUSDT", hold_start=True)
    for i in (5, 3, 4, 3, 7):
        assert seq.push(trade(i)) == []
    assert [t.trade_id for t, _ in seq.start()] == [3, 4, 5]
    assert seq.gap() == (6, 6)
    assert seq.stats.duplicates == 1


async def test_weight_budget_waits_once_spent_and_obeys_retry_after() -> None:
    clock = FakeClock()
    limiter = WeightLimiter(60, clock)  # 1 weight per second
    await limiter.acquire(40)
    await limiter.acquire(20)
    start = clock.monotonic()

    async def spend() -> None:
        await limiter.acquire(20)

    task = asyncio.create_task(spend())
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(20)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert task.done()
    assert clock.monotonic() - start == pytest.approx(20)
    limiter.block(5)
    assert limiter.tokens == 0


def test_streams_are_sharded_within_the_per_connection_limit() -> None:
    streams = stream_names([f"SYM{i}USDT" for i in range(450)], "aggTrade")
    assert streams[0] == "sym0usdt@aggTrade"
    parts = shards(streams, 200)
    assert [len(p) for p in parts] == [200, 200, 50]
    assert functools.reduce(operator.iadd, parts, []) == streams
