"""Uploaded bar CSVs (``POST /api/v1/uploads``), parsed and validated: pure, no I/O.

One file holds one instrument's bars, in either form:

* ``bars``: a header row naming pairstream's bar columns (DESIGN §3, what
  ``/export/bars.csv`` writes), in any order: ``start``, ``open``, ``high``,
  ``low``, ``close``, ``volume``, ``quote_volume``, ``buy_volume`` are required
  (the analytics' flow metrics need the last two, as ``pairstream analyze``
  does); ``trades``, ``vwap`` and ``tf`` are optional. Binance names are taken
  too (``open_time``, ``count``, ``taker_buy_volume``, ``quote_asset_volume``…);
  columns pairstream writes but does not keep (``revision``, ``final``,
  ``close_time``…) are ignored, any other column is an error.
* ``klines``: a data.binance.vision klines CSV, 12 columns
  (``open_time,open,high,low,close,volume,close_time,quote_volume,count,
  taker_buy_volume,taker_buy_quote_volume,ignore``), with or without its
  header row (USD-M files have one, older spot files do not).

Either may come as a ``.zip`` holding one CSV (as data.binance.vision serves
them) or gzip-compressed. Times are epoch milliseconds or microseconds (spot
klines from 2025 on), told apart per value (≥ 10¹⁴ is µs; must be whole ms),
or ISO-8601 in ``bars`` files. Without ``vwap`` it is ``quote_volume / volume``
(null for a bar without volume); without ``trades`` it is null.

Every row is checked: numbers finite, prices > 0, ``low ≤ min(open, close)``,
``max(open, close) ≤ high``, volumes ≥ 0 and ``buy_volume ≤ volume``, starts
strictly increasing and multiples of the timeframe, a ``close_time`` inside its
bar. The timeframe is the one given, else the ``tf`` column, else the klines'
``close_time − open_time + 1``, else the smallest step between starts; all of
them must agree. Problems are collected (up to :data:`MAX_PROBLEMS`), each with
its 1-based line number and column.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import math
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pairstream.messages import timeframe_ms

SourceFormat = Literal["bars", "klines"]

#: problems reported at most (parsing stops there)
MAX_PROBLEMS = 20
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MICROS = 10**14  # epoch times from here up are microseconds (10¹⁴ ms is the year 5138)
MAX_TRADES = 2**31 - 1

KLINE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)  # fmt: skip
REQUIRED = ("start", "open", "high", "low", "close", "volume", "quote_volume", "buy_volume")
OPTIONAL = ("trades", "vwap", "tf", "close_time")
ALIASES = {
    "open_time": "start",
    "count": "trades",
    "number_of_trades": "trades",
    "taker_buy_volume": "buy_volume",
    "taker_buy_base_volume": "buy_volume",
    "taker_buy_base_asset_volume": "buy_volume",
    "quote_asset_volume": "quote_volume",
}
#: written by pairstream or Binance, not kept
IGNORED = frozenset({
    "taker_buy_quote_volume", "taker_buy_quote_asset_volume", "ignore", "revision", "final",
    "partial_minute", "instrument", "exchange", "market", "symbol", "first_trade_id",
    "last_trade_id", "ts_event", "ts_init", "stored_at",
})  # fmt: skip
PRICES = ("open", "high", "low", "close")
VOLUMES = ("volume", "quote_volume", "buy_volume")

_INT = re.compile(r"[0-9]{1,19}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_TF = re.compile(r"[1-9][0-9]{0,5}[smh]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong, where: ``line`` is 1-based (None: the whole file)."""

    line: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        where += [f"column {self.column}"] if self.column is not None else []
        return f"{', '.join(where)}: {self.message}" if where else self.message


class UploadInvalidError(ValueError):
    """The file cannot be stored: its :class:`Problem` s (the first :data:`MAX_PROBLEMS`)."""

    def __init__(self, problems: list[Problem], truncated: bool = False) -> None:
        self.problems = problems
        self.truncated = truncated
        more = f" (the first {len(problems)}; parsing stopped there)" if truncated else ""
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        super().__init__(f"{count}{more}: " + "; ".join(str(p) for p in problems))


class UploadTooLargeError(ValueError):
    """Over the byte or row limit."""


@dataclass(frozen=True, slots=True)
class ParsedBars:
    """One instrument's bars, column by column, oldest first (``start`` in epoch ms)."""

    source_format: SourceFormat
    tf: str
    tf_ms: int
    start: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    quote_volume: list[float]
    trades: list[int | None]
    vwap: list[float | None]
    buy_volume: list[float]

    def __len__(self) -> int:
        return len(self.start)

    def records(self, dataset: str) -> Iterator[tuple[Any, ...]]:
        """Rows of ``dataset_bars`` (:data:`RECORD_COLUMNS`)."""
        for i, start in enumerate(self.start):
            yield (
                dataset, to_datetime(start), self.open[i], self.high[i], self.low[i],
                self.close[i], self.volume[i], self.quote_volume[i], self.trades[i],
                self.vwap[i], self.buy_volume[i],
            )  # fmt: skip


RECORD_COLUMNS = ("dataset", "start", "open", "high", "low", "close", "volume", "quote_volume",
                  "trades", "vwap", "buy_volume")  # fmt: skip


def to_datetime(ms: int) -> datetime:
    """Epoch ms as an exact timestamptz value."""
    return _EPOCH + timedelta(milliseconds=ms)


def tf_name(ms: int) -> str | None:
    """The timeframe of ``ms`` in its largest whole unit (``60000`` → ``1m``), or None."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms > 0 and ms % size == 0:
            name = f"{ms // size}{unit}"
            return name if _TF.fullmatch(name) else None
    return None


@dataclass
class _Row:
    line: int
    start: int | None = None
    close_time: int | None = None  # in ms, rounded down
    tf: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    trades: int | None = None
    vwap: float | None = None


class _Problems:
    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, line: int | None, column: str | None, message: str) -> None:
        self.found.append(Problem(line, column, message))
        if len(self.found) >= MAX_PROBLEMS:
            raise UploadInvalidError(self.found, truncated=True)

    def fail(self, line: int | None, column: str | None, message: str) -> UploadInvalidError:
        return UploadInvalidError([*self.found, Problem(line, column, message)])


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"


def _unpacked(data: bytes, max_bytes: int) -> bytes:
    """The CSV of a zip (one member) or gzip upload; plain bytes as they are."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.infolist() if not m.is_dir()]
                if len(members) == 1:
                    with archive.open(members[0]) as member:
                        raw = member.read(max_bytes + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
                OSError, ValueError) as error:  # fmt: skip
            problem = Problem(None, None, f"not a readable zip archive: {error}")
            raise UploadInvalidError([problem]) from None
        if len(members) != 1:
            names = ", ".join(m.filename for m in members[:5]) or "none"
            raise UploadInvalidError([Problem(None, None, (
                f"a zip upload must hold exactly one CSV; this one holds {len(members)} "
                f"files ({names})"))])  # fmt: skip
        what = f"the CSV in the zip ({members[0].filename})"
    elif data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
                raw = unzipped.read(max_bytes + 1)
        except (OSError, EOFError, zlib.error) as error:
            problem = Problem(None, None, f"not readable gzip data: {error}")
            raise UploadInvalidError([problem]) from None
        what = "the gzip-compressed CSV"
    else:
        raw, what = data, "the file"
    if len(raw) > max_bytes:
        raise UploadTooLargeError(f"{what} is over {max_bytes:,} bytes (API_UPLOAD_MAX_BYTES)")
    return raw


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise UploadInvalidError(
            [Problem(line, None, f"not UTF-8 text (byte 0x{raw[error.start]:02x}); "
                     "upload the CSV as UTF-8 (or plain ASCII)")]
        ) from None  # fmt: skip


def _epoch_ms(
    text: str, column: str, line: int, problems: _Problems, floor: bool = False
) -> int | None:
    """Epoch ms of digits in ms or µs (told apart by size; µs must be whole ms unless
    ``floor``, as a close time ``…999999`` is), else None (a problem noted)."""
    if not _INT.fullmatch(text):
        problems.add(line, column, f"{_shown(text)} is not an epoch time in ms or µs")
        return None
    value = int(text)
    if value >= MICROS:
        if value % 1000 and not floor:
            problems.add(line, column, f"{text} µs is not a whole millisecond")
            return None
        value //= 1000
    if value > MAX_MS:
        problems.add(line, column, f"{text} is after 9999-12-31")
        return None
    return value


def _start_ms(text: str, column: str, line: int, problems: _Problems, iso: bool) -> int | None:
    if not iso or _INT.fullmatch(text):
        return _epoch_ms(text, column, line, problems)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        problems.add(line, column, f"{_shown(text)} is not epoch ms, µs or ISO-8601")
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    ms, rest = divmod(delta, timedelta(milliseconds=1))
    if rest or ms < 0:
        problems.add(line, column, f"{text} is before 1970 or not a whole millisecond")
        return None
    return int(ms)


def _number(text: str, column: str, line: int, problems: _Problems) -> float | None:
    if not _NUMBER.fullmatch(text):
        message = "empty (a number is needed)" if not text else f"{_shown(text)} is not a number"
        problems.add(line, column, message)
        return None
    value = float(text)
    if not math.isfinite(value):
        problems.add(line, column, f"{text} is not a finite number")
        return None
    return value


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each canonical column is, and what the file calls it."""

    index: dict[str, int]
    names: tuple[str, ...]
    source: SourceFormat

    def name(self, canonical: str) -> str:
        return self.names[self.index[canonical]]


def _header(row: list[str], line: int) -> _Columns:
    names = tuple(cell.strip() for cell in row)
    found: dict[str, int] = {}
    problems = []
    for i, name in enumerate(names):
        lower = name.lower()
        canonical = ALIASES.get(lower, lower)
        if not name:
            problems.append(Problem(line, f"#{i + 1}", "the header names no column here"))
        elif canonical in found:
            where = f"columns {found[canonical] + 1} and {i + 1}"
            problems.append(Problem(line, name[:40], f"a second {canonical} column ({where})"))
        elif canonical in REQUIRED or canonical in OPTIONAL:
            found[canonical] = i
        elif lower not in IGNORED:
            message = "unknown column"
            if not any(p.message.startswith(message) for p in problems):  # the list once
                accepted = ", ".join((*REQUIRED, *OPTIONAL))
                message += f" (accepted: {accepted}; or the 12 Binance klines columns)"
            problems.append(Problem(line, name[:40], message))
    missing = [c for c in REQUIRED if c not in found]
    if missing:
        problems.append(Problem(line, None, f"the header lacks column(s) {', '.join(missing)}"))
    if problems:
        raise UploadInvalidError(problems[:MAX_PROBLEMS], truncated=len(problems) > MAX_PROBLEMS)
    klines = tuple(n.lower() for n in names) == KLINE_COLUMNS
    return _Columns(found, names, "klines" if klines else "bars")


def _rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with the line each starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problem = Problem(reader.line_num, None, f"not valid CSV: {error}")
            raise UploadInvalidError([problem]) from None
        if any(cell.strip() for cell in row):
            yield line, row
        line = reader.line_num + 1


def parse_upload(
    data: bytes, *, tf: str | None = None, max_rows: int, max_bytes: int
) -> ParsedBars:
    """The bars of an uploaded file (plain, zip or gzip CSV); raises :class:`UploadInvalidError`
    with every problem found (up to :data:`MAX_PROBLEMS`), :class:`UploadTooLargeError` over
    ``max_bytes`` (of the CSV, once unpacked) or ``max_rows``."""
    if len(data) > max_bytes:
        raise UploadTooLargeError(f"the file is over {max_bytes:,} bytes (API_UPLOAD_MAX_BYTES)")
    given_ms = None
    if tf is not None:
        if not _TF.fullmatch(tf):
            raise UploadInvalidError(
                [Problem(None, "tf", f"{tf!r} is not a timeframe like 1s, 1m, 1h")]
            )
        given_ms = timeframe_ms(tf)
    text = _text(_unpacked(data, max_bytes)) if data.strip() else ""
    rows = _rows(text)
    first = next(rows, None)
    if first is None:
        raise UploadInvalidError([Problem(None, None, "the file is empty")])
    line, cells = first
    width = len(cells)
    if _INT.fullmatch(cells[0].strip()):  # no header row: Binance klines
        if width != len(KLINE_COLUMNS):
            raise UploadInvalidError([Problem(line, None, (
                f"no header row, and {width} fields: a file without a header must be a "
                f"Binance klines CSV ({len(KLINE_COLUMNS)} fields); else start with a header "
                f"row naming the columns ({','.join(REQUIRED)}…)"))])  # fmt: skip
        columns = _header(list(KLINE_COLUMNS), line)
        data_rows: Iterator[tuple[int, list[str]]] = itertools.chain([first], rows)
    else:
        columns = _header(cells, line)
        data_rows = rows

    problems = _Problems()
    parsed: list[_Row] = []
    previous: _Row | None = None
    start = columns.name("start")
    for line, cells in data_rows:
        if len(parsed) >= max_rows:
            raise UploadTooLargeError(
                f"the file holds more than {max_rows:,} bars (API_UPLOAD_MAX_ROWS)"
            )
        if len(cells) != width:
            problems.add(line, None, f"{len(cells)} fields, the header has {width}")
            continue
        row = _row(line, cells, columns, problems)
        parsed.append(row)
        if row.start is None:
            continue
        if previous is not None and row.start <= previous.start:  # type: ignore[operator]
            text_start = cells[columns.index["start"]].strip()
            if row.start == previous.start:
                problems.add(line, start, f"{text_start} is a second bar at this start "
                                          f"(also on line {previous.line})")  # fmt: skip
            else:
                problems.add(line, start, f"{text_start} is before the start on line "
                                          f"{previous.line} (bars go oldest first)")  # fmt: skip
            continue
        previous = row
    if not parsed and not problems.found:
        raise UploadInvalidError([Problem(None, None, "the file has a header row but no bars")])

    tf_ms, tf_text = _timeframe(tf, given_ms, parsed, columns, problems)
    if tf_ms is not None:
        for row in parsed:
            if row.start is None:
                continue
            if row.start % tf_ms:
                problems.add(row.line, start, f"{row.start} is not a multiple of the timeframe "
                                              f"{tf_text} ({tf_ms:,} ms)")  # fmt: skip
            inside = row.close_time is None or row.start <= row.close_time < row.start + tf_ms
            if not inside:
                problems.add(row.line, columns.name("close_time"),
                             f"{row.close_time} (ms) is not inside the {tf_text} bar starting "
                             f"at {row.start}")  # fmt: skip
            if row.tf is not None and _TF.fullmatch(row.tf) and timeframe_ms(row.tf) != tf_ms:
                problems.add(row.line, columns.name("tf"),
                             f"{row.tf} is not the file's timeframe {tf_text}")  # fmt: skip
    if problems.found:
        raise UploadInvalidError(problems.found)
    assert tf_ms is not None
    assert tf_text is not None
    return ParsedBars(
        source_format=columns.source, tf=tf_text, tf_ms=tf_ms,
        start=[r.start for r in parsed if r.start is not None],
        open=[r.values["open"] for r in parsed], high=[r.values["high"] for r in parsed],
        low=[r.values["low"] for r in parsed], close=[r.values["close"] for r in parsed],
        volume=[r.values["volume"] for r in parsed],
        quote_volume=[r.values["quote_volume"] for r in parsed],
        trades=[r.trades for r in parsed], vwap=[r.vwap for r in parsed],
        buy_volume=[r.values["buy_volume"] for r in parsed],
    )  # fmt: skip


def _row(line: int, cells: list[str], columns: _Columns, problems: _Problems) -> _Row:
    """One data row's values, each problem noted."""
    row = _Row(line)
    cell = {c: cells[i].strip() for c, i in columns.index.items()}
    name = {c: columns.name(c) for c in columns.index}
    iso = columns.source == "bars"
    row.start = _start_ms(cell["start"], name["start"], line, problems, iso)
    v = row.values
    for column in (*PRICES, *VOLUMES):
        value = _number(cell[column], name[column], line, problems)
        if value is None:
            continue
        if column in PRICES and value <= 0:
            problems.add(line, name[column], f"{cell[column]} is not a positive price")
        elif column in VOLUMES and value < 0:
            problems.add(line, name[column], f"{cell[column]} is negative")
        else:
            v[column] = value
    for other in ("open", "close"):
        if {"high", other} <= v.keys() and v["high"] < v[other]:
            problems.add(line, name["high"], f"{cell['high']} is below {other} {cell[other]}")
            break
    for other in ("open", "close"):
        if {"low", other} <= v.keys() and v["low"] > v[other]:
            problems.add(line, name["low"], f"{cell['low']} is above {other} {cell[other]}")
            break
    if {"buy_volume", "volume"} <= v.keys() and v["buy_volume"] > v["volume"]:
        problems.add(line, name["buy_volume"],
                     f"{cell['buy_volume']} is above volume {cell['volume']}")  # fmt: skip
    if cell.get("trades"):  # empty: not known
        text = cell["trades"]
        if _INT.fullmatch(text) and int(text) <= MAX_TRADES:
            row.trades = int(text)
        else:
            problems.add(line, name["trades"], f"{_shown(text)} is not a trade count")
    if cell.get("vwap"):  # empty: not given
        vwap = _number(cell["vwap"], name["vwap"], line, problems)
        if vwap is not None and vwap <= 0:
            problems.add(line, name["vwap"], f"{cell['vwap']} is not a positive price")
        row.vwap = vwap
    elif {"quote_volume", "volume"} <= v.keys() and v["volume"] > 0:
        vwap = v["quote_volume"] / v["volume"]
        row.vwap = vwap if math.isfinite(vwap) and vwap > 0 else None
    if "close_time" in cell:
        close = _epoch_ms(cell["close_time"], name["close_time"], line, problems, floor=True)
        row.close_time = close
    if "tf" in cell:
        row.tf = cell["tf"]
        if not _TF.fullmatch(row.tf):
            problems.add(line, name["tf"], f"{_shown(row.tf)} is not a timeframe like 1s, 1m, 1h")
    return row


def _timeframe(
    tf: str | None, given_ms: int | None, parsed: list[_Row], columns: _Columns,
    problems: _Problems,
) -> tuple[int | None, str | None]:  # fmt: skip
    """The file's timeframe: given, else its ``tf`` column, else its klines' close times,
    else the smallest step between starts (None, a problem noted, when none tells)."""
    if given_ms is not None:
        return given_ms, tf
    for row in parsed:
        if row.tf is not None and _TF.fullmatch(row.tf):
            return timeframe_ms(row.tf), row.tf
    for row in parsed:
        if row.start is not None and row.close_time is not None:
            span = row.close_time - row.start + 1
            name = tf_name(span)
            if name is None:
                problems.add(row.line, columns.name("close_time"),
                             f"close_time − open_time + 1 = {span} ms is not a whole "
                             "timeframe of s, m or h; give tf")  # fmt: skip
            return (span, name) if name is not None else (None, None)
    starts = [(r.line, r.start) for r in parsed if r.start is not None]
    steps = [(b - a, line) for (_, a), (line, b) in itertools.pairwise(starts) if b > a]
    if not steps:
        if not problems.found:
            problems.add(None, "tf", "a single bar does not tell its timeframe: give tf")
        return None, None
    step, line = min(steps)
    name = tf_name(step)
    if name is None:
        problems.add(line, columns.name("start"),
                     f"the smallest step between starts, {step} ms, is not a whole timeframe "
                     "of s, m or h; give tf")  # fmt: skip
    return (step, name) if name is not None else (None, None)
