"""Replay recorded trades: Binance WebSocket frame files and data.binance.vision CSVs.

Several files are merged by event time and fed through the same validation,
ordering, dedupe and publishing path as the live source. Files of several
markets may be replayed together (spot and USD-M ``BTCUSDT`` are two
instruments): a file's market is given (:class:`ReplayFile`), or read from
each frame (spot payloads carry ``M``, futures trades ``X``), or the default.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pairstream.clock import Clock
from pairstream.instruments import MARKETS, instrument
from pairstream.messages import Market, Trade
from pairstream_ingest.binance import ControlAnswer, FrameError, decode_frame
from pairstream_ingest.sequencer import Sequencer
from pairstream_ingest.sinks import TickSink

log = logging.getLogger(__name__)

_SYMBOL = re.compile(r"(?:^|[_\-.])([A-Z0-9]{5,20})(?=[_\-.])")


@dataclass(frozen=True, slots=True)
class Item:
    """One replayed record: a trade, or a bad record with the reason."""

    ts: int
    source: str
    symbol: str | None
    trade: Trade | None = None
    error: str | None = None
    raw: bytes = b""
    market: Market = "usdm"

    @property
    def instrument(self) -> str | None:
        return None if self.symbol is None else instrument(self.market, self.symbol)


@dataclass(frozen=True, slots=True)
class ReplayFile:
    """A file to replay; ``market`` ``None`` = read from the frames, else the default market."""

    path: Path
    market: Market | None = None

    @classmethod
    def parse(cls, text: str) -> ReplayFile:
        """``PATH`` or ``MARKET:PATH`` (``spot:trades.csv``)."""
        head, sep, rest = text.partition(":")
        if sep and head in MARKETS:
            return cls(Path(rest), head)
        return cls(Path(text))


def _open_text(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is an IO[bytes]
    if path.suffix == ".zip":
        archive = zipfile.ZipFile(path)
        members = [n for n in archive.namelist() if not n.endswith("/")]
        if len(members) != 1:
            raise ValueError(f"{path}: expected one file in the zip, found {members}")
        return archive.open(members[0])
    return path.open("rb")


def frame_items(path: Path, market: Market = "usdm", detect: bool = True) -> Iterator[Item]:
    """Items of a ``.jsonl``/``.jsonl.gz`` file of WebSocket frames (one per line).

    With ``detect``, a frame whose fields tell its market (spot, futures) is of
    that market; ``market`` is used for the others.
    """
    last_ts = 0
    with _open_text(path) as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            try:
                decoded = decode_frame(line)
            except FrameError as error:
                yield Item(
                    last_ts, f"{path.name}:{number}", None, error=error.reason, raw=line,
                    market=market,
                )  # fmt: skip
                continue
            if isinstance(decoded, ControlAnswer):
                continue
            last_ts = decoded.trade.ts_event
            found = (decoded.market if detect else None) or market
            yield Item(last_ts, path.name, decoded.symbol, decoded.trade, market=found)


def symbol_from_name(path: Path) -> str | None:
    """``BTCUSDT`` from ``usdm_BTCUSDT_20240718-19.csv.gz`` or ``BTCUSDT-trades-2024-07-18.zip``."""
    match = _SYMBOL.search(path.name)
    return match.group(1) if match else None


def _is_true(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"is_buyer_maker: expected true/false, got {text!r}")
    return value == "true"


def _ms(value: str) -> int:
    ts = int(value)
    return ts // 1000 if ts > 10**14 else ts  # spot files since 2025 are in microseconds


def _csv_trade(row: list[str], aggregate: bool) -> Trade:
    if aggregate:  # agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,m
        first, last = int(row[3]), int(row[4])
        return Trade(
            trade_id=first,
            ts_event=_ms(row[5]),
            price=float(row[1]),
            qty=float(row[2]),
            is_buyer_maker=_is_true(row[6]),
            first_trade_id=first,
            last_trade_id=last,
        )
    # id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]
    return Trade(
        trade_id=int(row[0]),
        ts_event=_ms(row[4]),
        price=float(row[1]),
        qty=float(row[2]),
        is_buyer_maker=_is_true(row[5]),
    )


def csv_items(path: Path, market: Market, symbol: str | None = None) -> Iterator[Item]:
    """Items of a data.binance.vision trades or aggTrades CSV (``.csv``, ``.csv.gz``, ``.zip``)."""
    symbol = symbol or symbol_from_name(path)
    if symbol is None:
        raise ValueError(f"{path}: cannot tell the symbol from the name; pass it explicitly")
    aggregate = "aggtrades" in path.name.lower()
    last_ts = 0
    with _open_text(path) as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        for number, row in enumerate(reader, 1):
            if not row:
                continue
            if number == 1 and not row[0].strip().isdigit():
                header = [c.strip().lower() for c in row]
                aggregate = aggregate or "first_trade_id" in header
                continue
            if number == 1 and len(row) == 7 and market == "usdm":
                aggregate = True  # headerless USD-M aggTrades (spot trades also have 7)
            try:
                trade = _csv_trade(row, aggregate)
            except (ValueError, IndexError) as error:
                line = ",".join(row).encode()
                yield Item(
                    last_ts,
                    f"{path.name}:{number}",
                    symbol,
                    error=f"bad CSV row: {error}",
                    raw=line,
                    market=market,
                )
                continue
            last_ts = trade.ts_event
            yield Item(last_ts, path.name, symbol, trade, market=market)


def items_of(file: ReplayFile, default_market: Market) -> Iterator[Item]:
    """Items of any supported file, by its name."""
    path, market = file.path, file.market or default_market
    name = path.name.lower()
    if ".jsonl" in name or name.endswith(".json"):
        return frame_items(path, market, detect=file.market is None)
    if ".csv" in name or name.endswith(".zip"):
        return csv_items(path, market)
    raise ValueError(f"{path}: not a .jsonl[.gz] frame file or a .csv[.gz]/.zip trades file")


def _order_key(item: Item) -> tuple[int, str, int]:
    return item.ts, item.instrument or "", item.trade.trade_id if item.trade else -1


def reordered(items: Iterable[Item], window: int = 10_000) -> Iterator[Item]:
    """Items in event-time order, repairing disorder that spans fewer than ``window`` items.

    Recordings are merged in receive order, which can differ from event order;
    the sequencer then only has to deal with what is left (gaps, duplicates).
    """
    heap: list[tuple[tuple[int, str, int], int, Item]] = []
    for seq, item in enumerate(items):
        heapq.heappush(heap, (_order_key(item), seq, item))
        if len(heap) > window:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def merged(
    files: Iterable[ReplayFile | Path], default_market: Market, window: int = 10_000
) -> Iterator[Item]:
    """Every file's items merged by event time (each file read lazily, locally reordered)."""
    chosen = [f if isinstance(f, ReplayFile) else ReplayFile(f) for f in files]
    return heapq.merge(
        *(reordered(items_of(f, default_market), window) for f in chosen), key=_order_key
    )


@dataclass(slots=True)
class ReplayStats:
    """What a replay did."""

    read: int = 0
    bad: int = 0
    not_subscribed: int = 0
    duplicates: int = 0
    skipped_ids: int = 0
    per_symbol: dict[str, int] = field(default_factory=dict)  # by instrument


async def replay(
    items: Iterable[Item],
    sink: TickSink,
    clock: Clock,
    speed: float | None = None,
    symbols: frozenset[str] | None = None,
    max_waiting: int = 10_000,
    chunk: int = 2_000,
    progress: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Publish ``items`` through ``sink``; ``speed`` ``None`` = as fast as possible.

    With a speed, event time is replayed ``speed`` times faster than it passed;
    whatever was read is flushed before each wait. ``symbols`` (instruments
    ``market:SYMBOL``) keeps only those; the others are dead-lettered.
    """
    stats = ReplayStats()
    sequencers: dict[str, Sequencer] = {}  # by instrument
    markets: dict[str, Market] = {}
    first_ts: int | None = None
    started = clock.monotonic()
    since_flush = 0
    for item in items:
        stats.read += 1
        if speed is not None:
            if first_ts is None:
                first_ts = item.ts
            due = started + (item.ts - first_ts) / 1000 / speed
            wait = due - clock.monotonic()
            if wait > 0:
                await sink.flush()
                since_flush = 0
                await clock.sleep(wait)
        name = item.instrument
        if item.error is not None or item.trade is None or item.symbol is None or name is None:
            stats.bad += 1
            sink.dead_letter(item.source, item.error or "unusable record", item.raw, key=name)
            continue
        if symbols is not None and name not in symbols:
            stats.not_subscribed += 1
            sink.dead_letter(
                item.source,
                f"instrument {name} not subscribed",
                item.raw or repr(item.trade).encode(),
                key=name,
            )
            continue
        sequencer = sequencers.get(name)
        if sequencer is None:
            sequencer = sequencers[name] = Sequencer(item.symbol)
            markets[name] = item.market
        sink.add(item.symbol, sequencer.push(item.trade, "replay"), item.market)
        if sequencer.waiting > max_waiting:
            gap = sequencer.gap()
            log.warning(
                "%s: trade ids %s missing from the replay; going on without them", name, gap
            )
            sink.add(item.symbol, sequencer.skip_gap(), item.market)
        since_flush += 1
        if since_flush >= chunk:
            await sink.flush()
            await sink.drain()
            since_flush = 0
            if progress is not None:
                progress(stats.read)
    for name, sequencer in sequencers.items():
        while sequencer.gap() is not None:
            log.warning("%s: trade ids %s missing at the end of the replay", name, sequencer.gap())
            sink.add(sequencer.symbol, sequencer.skip_gap(), markets[name])
        stats.duplicates += sequencer.stats.duplicates
        stats.skipped_ids += sequencer.stats.skipped_ids
        stats.per_symbol[name] = sequencer.stats.released
    await sink.flush()
    await sink.drain()
    if progress is not None:
        progress(stats.read)
    return stats
