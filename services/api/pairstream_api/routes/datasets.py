"""Uploaded bar datasets (OHLCV CSVs, validated in full, stored in one transaction or not
at all) and ``POST /analyze``: the analytics core over two legs, each a dataset or an
instrument's stored bars, as ``pairstream analyze`` runs it.

An upload whose name exists is a 409 unless ``?replace=true``: then the old dataset is
deleted and the new one stored in the same transaction (readers see one or the other).
Accepted files and the checks: :mod:`pairstream_api.uploads`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, cast

import asyncpg
import orjson
import pandas as pd
from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile

from pairstream.analytics.batch import BAR_COLUMNS, OUTPUT_COLUMNS
from pairstream.analytics.batch import analyze as run_analyze
from pairstream.analytics.pair import PairConfig
from pairstream.instruments import Market, parse_instrument, split_instrument
from pairstream.messages import timeframe_ms

from ..dataset_models import (
    NAME_HELP,
    NAME_PATTERN,
    AnalyzeOptions,
    AnalyzePublic,
    AnalyzeRequest,
    DatasetBarPublic,
    DatasetLeg,
    DatasetPublic,
    InstrumentLeg,
    LegPublic,
)
from ..deps import Conn, ReadKey, State, WriteKey
from ..errors import ApiError, problems
from ..models import Page
from ..openapi import links
from ..query import Cursor, TimeWindow, invalid, maybe_datetime, parse_range, to_ms
from ..uploads import (
    RECORD_COLUMNS,
    ParsedBars,
    UploadInvalidError,
    UploadTooLargeError,
    parse_upload,
    to_datetime,
)
from . import PREFIX
from .market import TF_PATTERN

router = APIRouter(
    prefix=PREFIX,
    tags=["datasets"],
    responses=problems(400, 401, 413, 422, 429, 503, 404),
)

#: window points one analysis may visit (Huber refits, stationarity tests): about a
#: minute of CPU; the defaults over 200,000 bars are well within
MAX_WORK = 100_000_000
CORE_OPTIONS = ("hedge_window", "zscore_window", "flow_window", "stats_window", "tests_every",
                "adf_lag", "entry_z", "exit_z", "price_transform", "intercept", "kalman_delta",
                "kalman_obs_var", "kalman_initial_var")  # fmt: skip
WINDOWS = ("hedge_window", "stats_window", "zscore_window", "flow_window")
DATASET = """
    SELECT name, market, symbol, tf, rows, first_start, last_start, source_format, filename,
           sha256, created_at, created_by FROM datasets
"""

NamePath = Annotated[
    str, Path(pattern=NAME_PATTERN, description=NAME_HELP, examples=["btcusdt-1m-2022-09"])
]


def _described(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    documented = problems(status)
    documented[status]["description"] = description
    return documented


def _dataset(r: asyncpg.Record) -> DatasetPublic:
    market, symbol = r["market"], r["symbol"]
    return DatasetPublic(
        name=r["name"], instrument=f"{market}:{symbol}" if market and symbol else None,
        market=market, symbol=symbol, tf=r["tf"], rows=r["rows"],
        first_start=to_ms(r["first_start"]), last_start=to_ms(r["last_start"]),
        source_format=r["source_format"], filename=r["filename"], sha256=r["sha256"],
        created_at=to_ms(r["created_at"]), created_by=r["created_by"],
    )  # fmt: skip


def _filename(name: str | None) -> str | None:
    """The file's base name, printable, at most 200 characters."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = "".join(c for c in base if c.isprintable())[:200].strip()
    return base or None


def _invalid_file(error: UploadInvalidError, filename: str | None) -> ApiError:
    """A 422 listing each problem with its line and column."""
    where = f"{filename}: " if filename else ""
    return ApiError(
        422, "Invalid file", f"{where}{error}",
        errors=[{"field": p.column or "", "in": "file",
                 "line": "" if p.line is None else str(p.line), "message": p.message}
                for p in error.problems],
    )  # fmt: skip


@router.post(
    "/uploads", status_code=201, summary="Upload a bar CSV as a dataset",
    responses={
        **problems(403),
        **links(201, "name=$response.body#/name", "dataset", "dataset_bars", "delete_dataset"),
        **_described(409, "A dataset of that name exists (`?replace=true` replaces it)."),
        **_described(413, "Over `API_UPLOAD_MAX_BYTES` or `API_UPLOAD_MAX_ROWS` (or the "
                          "body over `API_MAX_BODY_BYTES`)."),
        **_described(422, "Invalid form fields, or a file that is not valid bars: each "
                          "problem with its line and column (`errors`); nothing stored."),
    },
)  # fmt: skip
async def upload(
    response: Response, state: State, key: WriteKey,
    file: Annotated[UploadFile, File(
        description="One instrument's bars, CSV (plain, `.zip` holding one CSV, or gzip): "
        "pairstream's bar columns with a header row (start, open, high, low, close, volume, "
        "quote_volume, buy_volume; optional trades, vwap, tf), or a data.binance.vision "
        "klines CSV (12 columns, header row or not; ms or µs times).")],
    name: Annotated[str, Form(pattern=NAME_PATTERN, description=NAME_HELP,
                              examples=["btcusdt-1m-2022-09"])],
    tf: Annotated[str | None, Form(
        pattern=TF_PATTERN, examples=["1m"],
        description="Timeframe of the bars (default: the file's `tf` column, klines' close "
        "times, else the smallest step between starts); must agree with the file.")] = None,
    market: Annotated[Market | None, Form(description="Label: the bars' market.")] = None,
    symbol: Annotated[str | None, Form(
        pattern=r"^[A-Za-z0-9]{2,30}$", examples=["BTCUSDT"],
        description="Label: the bars' symbol (stored upper-case).")] = None,
    replace: Annotated[bool, Query(
        description="Replace a dataset of that name (in one transaction) instead of a 409."
    )] = False,
) -> DatasetPublic:  # fmt: skip
    """Validate every row (numbers finite, prices > 0, low ≤ min(open, close),
    max(open, close) ≤ high, volumes ≥ 0, starts strictly increasing and on the timeframe)
    and store the bars as a dataset, all or nothing. Problems are listed with their line
    and column (the first 20)."""
    limit = state.settings.upload_max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "Request too large",
                       f"the file is over {limit:,} bytes (API_UPLOAD_MAX_BYTES)")  # fmt: skip
    filename = _filename(file.filename)
    if not replace:
        async with state.db_pool().acquire(timeout=state.settings.db_timeout_s) as conn:
            if await conn.fetchval("SELECT 1 FROM datasets WHERE name = $1", name):
                raise _exists(name)
    try:
        parsed = await asyncio.to_thread(
            parse_upload, data, tf=tf, max_rows=state.settings.upload_max_rows, max_bytes=limit
        )
    except UploadTooLargeError as error:
        raise ApiError(413, "Request too large", str(error)) from None
    except UploadInvalidError as error:
        raise _invalid_file(error, filename) from None
    row = await _store(state, parsed, name, market, symbol and symbol.upper(), filename,
                       hashlib.sha256(data).hexdigest(), key.id, replace)  # fmt: skip
    response.headers["Location"] = f"{PREFIX}/uploads/{name}"
    return _dataset(row)


def _exists(name: str) -> ApiError:
    detail = f"dataset {name!r} exists: DELETE it first, or upload with ?replace=true"
    return ApiError(409, "Conflict", detail)


async def _store(
    state: State, parsed: ParsedBars, name: str, market: str | None, symbol: str | None,
    filename: str | None, sha256: str, key_id: str, replace: bool,
) -> asyncpg.Record:  # fmt: skip
    """The dataset and its bars in one transaction (the old one deleted first on replace)."""
    async with state.db_pool().acquire(timeout=state.settings.db_timeout_s) as pooled:
        conn = cast(asyncpg.Connection, pooled)  # a pool's proxy of one
        async with conn.transaction():
            if replace:
                await conn.execute("DELETE FROM datasets WHERE name = $1", name)
            row = await conn.fetchrow(
                """
                INSERT INTO datasets (name, market, symbol, tf, rows, first_start, last_start,
                                      source_format, filename, sha256, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                ON CONFLICT (name) DO NOTHING
                RETURNING name, market, symbol, tf, rows, first_start, last_start,
                          source_format, filename, sha256, created_at, created_by
                """,
                name, market, symbol, parsed.tf, len(parsed),
                to_datetime(parsed.start[0]), to_datetime(parsed.start[-1]),
                parsed.source_format, filename, sha256, key_id,
            )  # fmt: skip
            if row is None:  # stored meanwhile by another request
                raise _exists(name)
            await conn.copy_records_to_table(
                "dataset_bars", records=parsed.records(name), columns=list(RECORD_COLUMNS)
            )
    return row


@router.get("/uploads", summary="Uploaded datasets")
async def datasets(conn: Conn, _: ReadKey) -> list[DatasetPublic]:
    """Every dataset, by name."""
    return [_dataset(r) for r in await conn.fetch(DATASET + " ORDER BY name")]


@router.get("/uploads/{name}", summary="One uploaded dataset")
async def dataset(name: NamePath, conn: Conn, _: ReadKey) -> DatasetPublic:
    """A dataset's summary: labels, timeframe, rows, first and last bar, provenance."""
    row = await conn.fetchrow(DATASET + " WHERE name = $1", name)
    if row is None:
        raise _missing(name)
    return _dataset(row)


def _missing(name: str) -> ApiError:
    return ApiError(404, "Not found", f"no dataset {name!r}")


@router.get("/uploads/{name}/bars", summary="Bars of an uploaded dataset")
async def dataset_bars(
    name: NamePath, window: TimeWindow, conn: Conn, _: ReadKey
) -> Page[DatasetBarPublic]:
    """A dataset's bars over a time range, oldest first."""
    if not await conn.fetchval("SELECT 1 FROM datasets WHERE name = $1", name):
        raise _missing(name)
    rows = await conn.fetch(
        """
        SELECT start, open, high, low, close, volume, quote_volume, trades, vwap, buy_volume
        FROM dataset_bars
        WHERE dataset = $1
          AND ($2::timestamptz IS NULL OR start >= $2)
          AND ($3::timestamptz IS NULL OR start < $3)
          AND ($4::timestamptz IS NULL OR start > $4)
        ORDER BY start LIMIT $5
        """,
        name, window.start_at, window.end_at, window.after_at, window.limit + 1,
    )  # fmt: skip
    items = [
        DatasetBarPublic(**{**dict(r), "start": to_ms(r["start"])}) for r in rows[: window.limit]
    ]
    more = len(rows) > window.limit
    return Page(items=items, next_cursor=Cursor(items[-1].start).encode() if more else None)


@router.delete(
    "/uploads/{name}", status_code=204, summary="Delete an uploaded dataset",
    responses=problems(403),
)  # fmt: skip
async def delete_dataset(name: NamePath, conn: Conn, _: WriteKey) -> Response:
    """Delete a dataset and its bars."""
    done = await conn.execute("DELETE FROM datasets WHERE name = $1", name)
    if not done.endswith(" 1"):
        raise _missing(name)
    return Response(status_code=204)


@dataclasses.dataclass(frozen=True, slots=True)
class _Read:
    """A leg's bars (the columns of :data:`~pairstream.analytics.batch.BAR_COLUMNS`)."""

    public: LegPublic
    frame: pd.DataFrame


def _range(leg: DatasetLeg | InstrumentLeg, label: str) -> tuple[int | None, int | None]:
    try:
        return parse_range(leg.start, leg.end)
    except ApiError as error:  # the range is in the body here, not the query
        found = error.extra.get("errors", [])
        error.extra["errors"] = [{**e, "field": f"{label}.{e['field']}", "in": "body"}
                                 for e in found]  # fmt: skip
        error.detail = f"{label}.{error.detail}"
        raise


async def read_leg(
    conn: asyncpg.Connection, leg: DatasetLeg | InstrumentLeg, label: str, state: State
) -> _Read:
    """The leg's bars in its range: a dataset's, or an instrument's final stored ones."""
    start, end = _range(leg, label)
    cap = state.settings.upload_max_rows
    if isinstance(leg, DatasetLeg):
        name, source = leg.dataset, "dataset"
        tf = await conn.fetchval("SELECT tf FROM datasets WHERE name = $1", name)
        if tf is None:
            raise ApiError(404, "Not found", f"{label}.dataset: no dataset {leg.dataset!r}")
        rows = await conn.fetch(
            """
            SELECT start, close, volume, quote_volume, buy_volume FROM dataset_bars
            WHERE dataset = $1 AND ($2::timestamptz IS NULL OR start >= $2)
              AND ($3::timestamptz IS NULL OR start < $3)
            ORDER BY start LIMIT $4
            """,
            leg.dataset, maybe_datetime(start), maybe_datetime(end), cap + 1,
        )  # fmt: skip
    else:
        try:
            name = parse_instrument(leg.instrument, state.market)
        except ValueError as error:
            raise invalid(f"{label}.instrument", str(error), "body") from None
        market, symbol = split_instrument(name)
        tf, source = leg.tf, "instrument"
        rows = await conn.fetch(
            """
            SELECT start, close, volume, quote_volume, buy_volume FROM bars
            WHERE market = $1 AND symbol = $2 AND tf = $3 AND final
              AND ($4::timestamptz IS NULL OR start >= $4)
              AND ($5::timestamptz IS NULL OR start < $5)
            ORDER BY start LIMIT $6
            """,
            market, symbol, tf, maybe_datetime(start), maybe_datetime(end), cap + 1,
        )  # fmt: skip
    if len(rows) > cap:
        raise ApiError(
            422, "Invalid request",
            f"{label}: more than {cap:,} bars of {name} (API_UPLOAD_MAX_ROWS); narrow "
            f"{label}.start and {label}.end",
            errors=[{"field": f"{label}.{f}", "in": "body", "message": f"over {cap:,} bars"}
                    for f in ("start", "end")],
        )  # fmt: skip
    if not rows:
        what = f"bars of dataset {name!r}" if source == "dataset" else f"stored final {tf} bars"
        where = "" if start is None and end is None else " in the range"
        of = "" if source == "dataset" else f" of {name}"
        raise ApiError(404, "No bars", f"{label}: no {what}{of}{where}")
    frame = pd.DataFrame.from_records(
        [(to_ms(r["start"]), r["close"], r["volume"], r["quote_volume"], r["buy_volume"])
         for r in rows],
        columns=list(BAR_COLUMNS),
    )  # fmt: skip
    public = LegPublic(
        source=source, name=name, tf=tf, bars=len(rows),
        first_start=int(frame["start"].iloc[0]), last_start=int(frame["start"].iloc[-1]),
    )  # fmt: skip
    return _Read(public, frame)


def _options(body: AnalyzeRequest, state: State) -> tuple[PairConfig, AnalyzeOptions]:
    """The core's configuration: the body's options over `ANALYTICS_*`, as the CLI's."""
    a = state.analytics
    given: dict[str, Any] = dict.fromkeys(WINDOWS, body.window) if body.window else {}
    given |= {k: getattr(body, k) for k in CORE_OPTIONS if getattr(body, k) is not None}
    try:
        config = dataclasses.replace(a.pair_config(), **given)
    except ValueError as error:  # the core's own checks (adf_lag, exit_z < entry_z)
        message = str(error)
        fields = [f for f in CORE_OPTIONS if f in message] or ["body"]
        raise ApiError(
            422, "Invalid request", f"{', '.join(fields)}: {message}",
            errors=[{"field": f, "in": "body", "message": message} for f in fields],
        ) from None  # fmt: skip
    methods = list(dict.fromkeys(body.methods)) if body.methods else list(a.methods)
    options = AnalyzeOptions(methods=methods, **{k: getattr(config, k) for k in CORE_OPTIONS})
    return config, options


@router.post(
    "/analyze", summary="Pair analytics over datasets or stored bars",
    response_model=AnalyzePublic,
    responses={
        200: {"content": {"text/csv": {}},
              "description": "JSON, or CSV (what `pairstream analyze --out` writes)."},
        **_described(404, "No such dataset, or no bars of a leg (in its range)."),
    },
)  # fmt: skip
async def analyze(body: AnalyzeRequest, request: Request, state: State, _: ReadKey) -> Response:
    """Every metric per bar and method for Y regressed on X, by the analytics core
    (`pairstream.analytics.batch.analyze`): what `pairstream analyze --bars Y --bars X`
    prints for the same bars and options, and what the analytics service emits. Each leg
    is a dataset or an instrument's stored final bars, at most `API_UPLOAD_MAX_ROWS`."""
    config, options = _options(body, state)
    async with state.db_pool().acquire(timeout=state.settings.db_timeout_s) as pooled:
        conn = cast(asyncpg.Connection, pooled)  # a connection only while reading
        y = await read_leg(conn, body.y, "y", state)
        x = await read_leg(conn, body.x, "x", state)
    tf_ms = timeframe_ms(y.public.tf)
    if timeframe_ms(x.public.tf) != tf_ms:
        raise invalid("x", f"its timeframe {x.public.tf} is not y's {y.public.tf}", "body")
    _within_work(config, options.methods, max(y.public.bars, x.public.bars))
    accept = request.headers.get("accept", "")
    csv = body.format == "csv" or (
        body.format is None and "text/csv" in accept and "application/json" not in accept
    )
    async with state.analyses:
        try:
            content = await asyncio.to_thread(_run, y, x, tf_ms, config, options, csv)
        except (ValueError, ArithmeticError) as error:  # bars or options the core refuses
            raise ApiError(422, "Invalid request", f"the analytics core failed: {error}") from None
    if csv:
        disposition = 'attachment; filename="analyze.csv"'
        return Response(content, media_type="text/csv",
                        headers={"Content-Disposition": disposition})  # fmt: skip
    return Response(content, media_type="application/json")


def _within_work(config: PairConfig, methods: Sequence[str], bars: int) -> None:
    """A 422 when the windows over this many bars are more work than :data:`MAX_WORK`."""
    costs = {
        "hedge_window": bars * config.hedge_window if "huber" in methods else 0,
        "stats_window": bars // config.tests_every * config.stats_window * len(methods),
    }
    for field, work in costs.items():
        if work > MAX_WORK:
            why = (
                f"{bars:,} bars with {field} {getattr(config, field):,} are about {work:,} "
                f"window points, over the {MAX_WORK:,} one analysis may compute: narrow the "
                "legs' ranges, or use a smaller window (or a larger tests_every)"
            )
            raise invalid(field, why, "body")


def _run(
    y: _Read, x: _Read, tf_ms: int, config: PairConfig, options: AnalyzeOptions, csv: bool
) -> bytes:
    """The core over both legs, written as the CLI writes it or as JSON (in a thread)."""
    table = run_analyze(y.frame, x.frame, tf_ms, config, tuple(options.methods))
    if csv:
        return cast(str, table.to_csv(index=False, float_format="%.17g")).encode()
    columns = []
    for column in OUTPUT_COLUMNS:
        values = table[column].tolist()
        if column in ("ts", "tests_ts"):
            columns.append([None if _null(v) else int(v) for v in values])
        else:
            columns.append([None if _null(v) else v for v in values])
    rows = [dict(zip(OUTPUT_COLUMNS, values, strict=True)) for values in zip(*columns, strict=True)]
    return orjson.dumps({
        "tf": y.public.tf, "y": y.public.model_dump(), "x": x.public.model_dump(),
        "options": options.model_dump(), "count": len(rows), "rows": rows,
    })  # fmt: skip


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))
