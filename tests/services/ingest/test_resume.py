"""Where a restarted ingest resumes: the tail of ``ticks`` read back, the sequencer seeded."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from pairstream.kafka import MessageProducer, TopicRequest, ensure_topics
from pairstream.messages import TickRun, Trade
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream_ingest.backfill import RestAggTrade, trim_aggregates
from pairstream_ingest.resume import ScanStats, last_published, scan_chunk
from pairstream_ingest.sequencer import Sequencer

WANTED = {("usdm", "BTCUSDT"), ("usdm", "ETHUSDT")}


def trade(tid: int, qty: float = 1.0, last: int | None = None) -> Trade:
    return Trade(
        trade_id=tid, ts_event=1_721_260_800_000 + tid, price=64_000.0, qty=qty,
        is_buyer_maker=False, first_trade_id=tid if last else None, last_trade_id=last,
    )  # fmt: skip


def run(symbol: str, trades: list[Trade], market: str = "usdm", source: str = "live") -> TickRun:
    return TickRun(
        market=market,  # type: ignore[arg-type]
        symbol=symbol,
        source=source,  # type: ignore[arg-type]
        ts_ingest=1_721_260_900_000,
        trades=trades,
    )


def encoded(*runs: TickRun) -> list[tuple[int, bytes | None]]:
    return [(offset, msgspec.json.encode(r)) for offset, r in enumerate(runs)]


def test_the_last_run_of_each_instrument_is_found_by_its_market_and_symbol_fields() -> None:
    records = encoded(
        run("BTCUSDT", [trade(10), trade(11)]),
        run("ETHUSDT", [trade(500, last=510)], source="backfill"),  # an aggregate: up to 510
        run("BTCUSDT", [trade(12)]),
        run("BTCUSDT", [trade(90_000)], market="spot"),  # another instrument
        run("ETHUSDT", [trade(9_999_999)], source="replay"),  # not what live published
        run("BTCUSDT", [trade(11)]),  # a resent older run after the newest
    )
    records.insert(2, (99, b"{not json"))
    found = scan_chunk(records, 3, WANTED, sources={"live", "backfill"})
    btc, eth = found[("usdm", "BTCUSDT")], found[("usdm", "ETHUSDT")]
    assert (btc.last_id, btc.offset, btc.partition, btc.source) == (12, 2, 3, "live")
    assert btc.recent == [(10, 10, 1.0), (11, 11, 1.0), (12, 12, 1.0)]
    assert (eth.last_id, eth.source, eth.recent) == (510, "backfill", [(500, 510, 1.0)])
    assert ("spot", "BTCUSDT") not in found


def test_a_resumed_sequencer_drops_what_was_published_and_gaps_up_to_the_first_live_trade() -> None:
    seq = Sequencer("BTCUSDT", hold_start=True)
    seq.resume(100, 1_000, recent=[(98, 98, 0.5), (99, 99, 0.25), (100, 100, 1.0)])
    assert seq.push(trade(100)) == []  # published before the restart
    assert seq.push(trade(95)) == []
    assert seq.stats.duplicates == 2
    assert seq.push(trade(105)) == []  # not held: resuming is a start
    assert seq.gap() == (101, 104)
    assert seq.last_ts == 1_000
    released = seq.push(trade(101)) + seq.push(trade(102)) + seq.push(trade(103))
    released += seq.push(trade(104))
    assert [t.trade_id for t, _ in released] == [101, 102, 103, 104, 105]


def test_an_aggregate_straddling_the_resume_point_is_trimmed_by_what_was_published() -> None:
    seq = Sequencer("BTCUSDT")
    seq.resume(100, 1_000, recent=[(98, 98, 0.5), (99, 99, 0.25), (100, 100, 1.0)])
    seq.push(trade(104))
    aggregate = RestAggTrade(a=7, p="64000", q="3.75", f=99, l=102, T=1_000, m=False)
    after = RestAggTrade(a=8, p="64001", q="2", f=103, l=103, T=1_001, m=True)
    gap = seq.gap()
    assert gap == (101, 103)
    trades = trim_aggregates([aggregate, after], gap, seq.known_qty, seq.waiting_ids)
    assert [(t.first_trade_id, t.last_trade_id) for t in trades] == [(101, 102), (103, 103)]
    assert Decimal(repr(trades[0].qty)) == Decimal("3.75") - Decimal("0.25") - Decimal("1.0")


async def _produce(kafka: KafkaSettings, topic: str, items: list[tuple[str, TickRun]]) -> None:
    async with MessageProducer(kafka) as producer:
        for key, message in items:
            await producer.send(topic, message, key=key)
        await producer.flush()


async def test_the_tail_of_every_partition_is_read_back_in_chunks(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    topic = topic_settings.ticks
    await ensure_topics([TopicRequest(topic, 3)], kafka_settings)
    items: list[tuple[str, TickRun]] = []
    # an older version keyed by symbol, then (say) a newer one keyed by instrument: the same
    # instrument in two partitions; many ETH runs after the last BTC one
    items += [("BTCUSDT", run("BTCUSDT", [trade(i)])) for i in range(1, 301)]
    items += [("usdm:BTCUSDT", run("BTCUSDT", [trade(i)])) for i in range(301, 401)]
    items += [(k, run("ETHUSDT", [trade(i)])) for i in range(1, 2_001) for k in ["usdm:ETHUSDT"]]
    items += [("usdm:BTCUSDT", run("BTCUSDT", [trade(401)], market="spot"))]
    await _produce(kafka_settings, topic, items)

    stats = ScanStats()
    found = await last_published(kafka_settings, topic, WANTED, chunk=64, stats=stats)
    assert found[("usdm", "BTCUSDT")].last_id == 400
    assert found[("usdm", "ETHUSDT")].last_id == 2_000
    assert stats.partitions == 3
    assert stats.truncated == []
    assert len(found[("usdm", "BTCUSDT")].recent) >= 64

    # the bound: too few records for a partition's last run is "nothing found", and says so
    bounded = ScanStats()
    more = [("usdm:ETHUSDT", run("ETHUSDT", [trade(i)])) for i in range(2_001, 2_101)]
    await _produce(kafka_settings, topic, more)
    little = await last_published(
        kafka_settings, topic, {("usdm", "SOLUSDT"), ("usdm", "ETHUSDT")}, max_records=50,
        chunk=16, stats=bounded,
    )  # fmt: skip
    assert little[("usdm", "ETHUSDT")].last_id == 2_100
    assert ("usdm", "SOLUSDT") not in little
    assert bounded.truncated  # some partition was cut short looking for SOLUSDT


async def test_an_empty_or_missing_topic_resumes_nothing(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    await ensure_topics([TopicRequest(topic_settings.ticks, 2)], kafka_settings)
    assert await last_published(kafka_settings, topic_settings.ticks, WANTED) == {}
    assert await last_published(kafka_settings, topic_settings.ticks + ".none", WANTED) == {}
