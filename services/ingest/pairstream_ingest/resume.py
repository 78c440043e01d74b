"""Where a restarted ingest resumes: the last trade of each instrument already in ``ticks``.

The topic is the truth (it works for any deployment, no local state): on start
the tail of every partition of ``ticks`` is read backwards, in chunks of
``chunk`` records, until every wanted instrument's last run has been found in
that partition, the partition's start is reached, or ``max_records`` records
of it have been read. Instruments are recognised by the runs' ``market`` and
``symbol`` fields, never by the Kafka key (keys may change between versions,
so one instrument can sit in two partitions: the highest trade id over all
partitions wins). The last id a trade covers is its ``last_trade_id`` when set
(an aggregate), else its ``trade_id``.

A broker may under-report a partition's end offset (Tansu v0.6.0 reports the
last batch's first offset + 1), so the tail is read forward from there until no
more records arrive before the backward scan starts.

The trades found before the last one are kept (:attr:`Resumed.recent`): a
backfilled aggregate that straddles the last published id is trimmed by their
quantity, exactly as after a reconnect.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from pairstream.kafka import create_consumer
from pairstream.settings import KafkaSettings

log = logging.getLogger(__name__)

Instrument = tuple[str, str]  # (market, symbol)
#: the runs a live ingest resumes after: its own (replayed or synthetic ids are other streams)
RESUMABLE_SOURCES = frozenset({"live", "backfill"})


class _TradeIds(msgspec.Struct, forbid_unknown_fields=False):
    trade_id: int
    ts_event: int
    qty: float
    first_trade_id: int | None = None
    last_trade_id: int | None = None


class _RunHead(msgspec.Struct, forbid_unknown_fields=False):
    market: str
    symbol: str
    source: str
    ts_ingest: int
    trades: list[_TradeIds]


_decode_run = msgspec.json.Decoder(_RunHead).decode


@dataclass(slots=True)
class Resumed:
    """The last published trade of one instrument, and the trades published just before it."""

    market: str
    symbol: str
    last_id: int
    last_ts: int
    source: str
    ts_ingest: int
    partition: int
    offset: int
    #: ``(first id, last id, qty)`` of published trades up to ``last_id``, in id order
    recent: list[tuple[int, int, float]] = field(default_factory=list)


@dataclass(slots=True)
class ScanStats:
    """What a startup scan read (for the log and tests)."""

    records: int = 0
    partitions: int = 0
    truncated: list[int] = field(default_factory=list)  # partitions cut by ``max_records``


class _Found:
    """An instrument's runs inside the chunk where its latest one was seen."""

    __slots__ = ("best", "spans")

    def __init__(self) -> None:
        self.best: Resumed | None = None
        self.spans: list[tuple[int, int, float]] = []


def _span(trade: _TradeIds) -> tuple[int, int]:
    if trade.first_trade_id is not None and trade.last_trade_id is not None:
        return trade.first_trade_id, trade.last_trade_id
    return trade.trade_id, trade.trade_id


def scan_chunk(
    records: Iterable[tuple[int, bytes | None]],
    partition: int,
    wanted: Collection[Instrument],
    sources: Collection[str] | None = None,
) -> dict[Instrument, Resumed]:
    """The last trade of each wanted instrument among ``(offset, value)`` records of one chunk.

    "Last" is the highest id covered (a resent run may sit after newer ones);
    undecodable records are skipped. ``sources`` limits which runs count.
    """
    found: dict[Instrument, _Found] = {}
    for offset, value in records:
        if value is None:
            continue
        try:
            run = _decode_run(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        instrument = (run.market, run.symbol)
        if instrument not in wanted or not run.trades or (sources and run.source not in sources):
            continue
        entry = found.setdefault(instrument, _Found())
        for trade in run.trades:
            entry.spans.append((*_span(trade), trade.qty))
        last = run.trades[-1]
        last_id = _span(last)[1]
        if entry.best is None or last_id > entry.best.last_id:
            entry.best = Resumed(
                run.market, run.symbol, last_id, last.ts_event, run.source, run.ts_ingest,
                partition, offset,
            )  # fmt: skip
    out: dict[Instrument, Resumed] = {}
    for instrument, entry in found.items():
        assert entry.best is not None
        entry.best.recent = _contiguous(entry.spans, entry.best.last_id)
        out[instrument] = entry.best
    return out


def _contiguous(spans: list[tuple[int, int, float]], last_id: int) -> list[tuple[int, int, float]]:
    """Distinct non-overlapping spans up to ``last_id``, in id order (repeats dropped)."""
    out: list[tuple[int, int, float]] = []
    for lo, hi, qty in sorted(set(spans)):
        if hi > last_id:
            break
        if out and lo <= out[-1][1]:
            continue  # a repeat, or overlapping what is already kept
        out.append((lo, hi, qty))
    return out


def _merge(into: dict[Instrument, Resumed], found: dict[Instrument, Resumed]) -> None:
    for instrument, resumed in found.items():
        have = into.get(instrument)
        if have is None or resumed.last_id > have.last_id:
            into[instrument] = resumed


class TailReader:
    """Reads partitions of one topic by offset ranges, trusting no end offset.

    A range's records are known to exist, so their first fetch may take up to
    ``wait_ms`` (a fresh assignment is slow to fetch); past the reported end,
    ``idle_ms`` without a record means the partition's true end.
    """

    def __init__(self, consumer: AIOKafkaConsumer, idle_ms: int = 300, wait_ms: int = 10_000):
        self.consumer = consumer
        self.idle_ms = idle_ms
        self.wait_ms = wait_ms

    async def read(
        self, tp: TopicPartition, start: int, stop: int | None
    ) -> list[tuple[int, bytes | None]]:
        """Records of ``tp`` at offsets ``[start, stop)`` (``None``: until none arrive)."""
        self.consumer.seek(tp, start)
        out: list[tuple[int, bytes | None]] = []
        while True:
            waiting = self.wait_ms if stop is not None or not out else self.idle_ms
            batch = await self.consumer.getmany(tp, timeout_ms=waiting)
            records = batch.get(tp, [])
            if not records:
                return out  # nothing more arrives: the true end (or offsets gone)
            for record in records:
                if record.offset < start:
                    continue
                if stop is not None and record.offset >= stop:
                    return out
                out.append((record.offset, record.value))
            if stop is not None and records[-1].offset >= stop - 1:
                return out


async def last_published(
    kafka: KafkaSettings,
    topic: str,
    wanted: Collection[Instrument],
    max_records: int = 200_000,
    chunk: int = 5_000,
    sources: Collection[str] | None = None,
    stats: ScanStats | None = None,
) -> dict[Instrument, Resumed]:
    """The last trade of each wanted instrument in ``topic`` (absent: none within the bound).

    ``max_records`` bounds the records read per partition (0 = no scan).
    """
    stats = stats if stats is not None else ScanStats()
    if not wanted or max_records <= 0:
        return {}
    consumer = create_consumer([], None, kafka)
    await consumer.start()
    result: dict[Instrument, Resumed] = {}
    try:
        if topic not in await consumer.topics():  # (fetches the metadata)
            return {}
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return {}
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        reader = TailReader(consumer)
        for tp in tps:
            stats.partitions += 1
            if ends[tp] <= begins[tp]:
                continue  # empty (an under-reported end is still past the first record)
            consumer.assign([tp])
            found = await _scan_partition(
                reader, tp, begins[tp], ends[tp], wanted, max_records, chunk, sources, stats
            )
            _merge(result, found)
    finally:
        await consumer.stop()
    return result


async def _scan_partition(
    reader: TailReader,
    tp: TopicPartition,
    begin: int,
    reported_end: int,
    wanted: Collection[Instrument],
    max_records: int,
    chunk: int,
    sources: Collection[str] | None,
    stats: ScanStats,
) -> dict[Instrument, Resumed]:
    found: dict[Instrument, Resumed] = {}
    # the reported end may be short: read on from a chunk before it until nothing more arrives
    tail_start = max(begin, reported_end - chunk)
    tail = await reader.read(tp, tail_start, None)
    end = tail[-1][0] + 1 if tail else max(begin, reported_end)
    read = len(tail)
    _merge(found, scan_chunk(tail, tp.partition, wanted, sources))
    hi = tail_start
    while hi > begin and len(found) < len(wanted):
        if read >= max_records:
            stats.truncated.append(tp.partition)
            log.warning(
                "%s[%d]: resume scan stopped after %d records (INGEST_RESUME_SCAN_MAX_RECORDS) "
                "at offset %d of %d..%d", tp.topic, tp.partition, read, hi, begin, end,
            )  # fmt: skip
            break
        lo = max(begin, hi - min(chunk, max_records - read))
        records = await reader.read(tp, lo, hi)
        read += len(records)
        chunk_found = scan_chunk(records, tp.partition, wanted, sources)
        for instrument, older in chunk_found.items():
            newer = found.setdefault(instrument, older)  # newer chunks were read first
            if newer is not older:  # read anyway: more history for trimming aggregates
                newer.recent = _contiguous(older.recent + newer.recent, newer.last_id)
        hi = lo
    stats.records += read
    return found
