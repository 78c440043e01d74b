"""Instruments, their bars and (where stored) their ticks."""

from __future__ import annotations

import re
from typing import Annotated

import asyncpg
import msgspec
from fastapi import APIRouter, Path, Query, Response

from pairstream.instruments import parse_instrument, split_instrument
from pairstream.messages import timeframe_ms

from ..deps import Conn, ReadKey, State
from ..errors import ApiError, problems
from ..models import BarPublic, BarRow, BarRows, InstrumentPublic, Page, TickPublic
from ..openapi import links
from ..query import Cursor, TimeWindow, invalid, to_ms
from ..snapshots import latest_bar
from . import PREFIX

router = APIRouter(
    prefix=PREFIX,
    tags=["market"],
    responses=problems(400, 401, 413, 422, 429, 503, 404),
)

INSTRUMENT_PATTERN = r"^([a-z]+:)?[A-Za-z0-9]{2,30}$"
TF_PATTERN = r"^[1-9][0-9]{0,5}[smh]$"
InstrumentPath = Annotated[
    str,
    Path(
        description="`usdm:BTCUSDT`, `spot:ETHUSDT`, or a bare symbol (the default market).",
        pattern=INSTRUMENT_PATTERN,
        examples=["usdm:BTCUSDT"],
    ),
]
TfQuery = Annotated[str, Query(pattern=TF_PATTERN, description="Timeframe.", examples=["1s"])]


def instrument_of(text: str, state: State) -> tuple[str, str, str]:
    """(instrument, market, symbol) of a path parameter; 422 when malformed."""
    try:
        name = parse_instrument(text, state.market)
    except ValueError as error:
        raise invalid("instrument", str(error)) from None
    market, symbol = split_instrument(name)
    return name, market, symbol


@router.get(
    "/instruments", summary="Instruments with stored bars",
    responses=links(
        200, "instrument=$response.body#/0/instrument", "bars", "latest_bar_of", "ticks"
    ),
)  # fmt: skip
async def instruments(conn: Conn, state: State, _: ReadKey) -> list[InstrumentPublic]:
    """Every instrument with bars: its timeframes, first and last bar of its smallest
    timeframe, and the age of its newest trade."""
    rows = await conn.fetch(
        """
        WITH RECURSIVE k AS (
            (SELECT market, symbol, tf FROM bars ORDER BY market, symbol, tf LIMIT 1)
            UNION ALL
            SELECT n.market, n.symbol, n.tf FROM k, LATERAL (
                SELECT market, symbol, tf FROM bars
                WHERE (market, symbol, tf) > (k.market, k.symbol, k.tf)
                ORDER BY market, symbol, tf LIMIT 1) n
        )
        SELECT k.market, k.symbol, k.tf, f.start AS first, l.start AS last, l.ts_event
        FROM k,
        LATERAL (SELECT start FROM bars b
                 WHERE (b.market, b.symbol, b.tf) = (k.market, k.symbol, k.tf)
                 ORDER BY start LIMIT 1) f,
        LATERAL (SELECT start, ts_event FROM bars b
                 WHERE (b.market, b.symbol, b.tf) = (k.market, k.symbol, k.tf)
                 ORDER BY start DESC LIMIT 1) l
        """
    )
    now_s = state.clock.now_ms() / 1000
    found: dict[tuple[str, str], list[asyncpg.Record]] = {}
    for r in rows:
        found.setdefault((r["market"], r["symbol"]), []).append(r)
    out = []
    for (market, symbol), tfs in sorted(found.items()):
        tfs.sort(key=lambda r: timeframe_ms(r["tf"]))
        smallest = tfs[0]
        out.append(
            InstrumentPublic(
                instrument=f"{market}:{symbol}", market=market, symbol=symbol,
                timeframes=[r["tf"] for r in tfs], first_bar=to_ms(smallest["first"]),
                last_bar=to_ms(smallest["last"]),
                last_trade_age_s=round(now_s - smallest["ts_event"].timestamp(), 3),
            )
        )  # fmt: skip
    return out


@router.get("/bars/{instrument}", summary="Bars of an instrument", response_model=Page[BarPublic])
async def bars(
    instrument: InstrumentPath, tf: TfQuery, window: TimeWindow, conn: Conn, state: State,
    _: ReadKey,
    final: Annotated[bool | None, Query(description="Only final (or only forming) bars.")] = None,
) -> Response:  # fmt: skip
    """Bars over a time range, oldest first (`tf=1h`: hourly bars from the 1m bars)."""
    name, market, symbol = instrument_of(instrument, state)
    hourly = tf == "1h" and "1h" not in state.topics.timeframes
    # `bars_1h` (from the final 1m bars) has no tf, revision or final columns
    source = (
        "SELECT start, open, high, low, close, volume, quote_volume, trades, vwap, buy_volume, "
        "0 AS revision, start + interval '1 hour' <= now() AS final FROM bars_1h "
        "WHERE symbol = $1 AND market = $2 AND $3::text IS NOT NULL"
        if hourly
        else "SELECT start, open, high, low, close, volume, quote_volume, trades, vwap, "
        "buy_volume, revision, final FROM bars WHERE symbol = $1 AND market = $2 AND tf = $3"
    )
    rows = await conn.fetch(
        f"""
        SELECT {_BAR_COLUMNS}
        FROM ({source}) b
        WHERE ($4::timestamptz IS NULL OR b.start >= $4)
          AND ($5::timestamptz IS NULL OR b.start < $5)
          AND ($6::timestamptz IS NULL OR b.start > $6)
          AND ($7::boolean IS NULL OR final = $7)
        ORDER BY b.start LIMIT $8
        """,
        symbol, market, tf, window.start_at, window.end_at, window.after_at, final,
        window.limit + 1,
    )  # fmt: skip
    items = [BarRow(name, tf, *r) for r in rows[: window.limit]]
    more = len(rows) > window.limit
    page = BarRows(items, Cursor(items[-1].start).encode() if more else None)
    return Response(_ENCODER.encode(page), media_type="application/json")


@router.get("/bars/{instrument}/latest", summary="The newest bar of an instrument")
async def latest_bar_of(
    instrument: InstrumentPath, tf: TfQuery, state: State, _: ReadKey
) -> BarPublic:
    """The newest bar at `tf`, forming or final (from the hot cache when it is trusted)."""
    name, market, symbol = instrument_of(instrument, state)
    bar = await latest_bar(state, name, market, symbol, tf)
    if bar is None:
        raise ApiError(404, "No bars", f"no {tf} bars of {name} are stored")
    return bar


# the columns of BarRow after (instrument, tf), in its order
_BAR_COLUMNS = ", ".join(
    # date_part is double precision (extract is numeric, ~1 ms slower per 10,000 rows);
    # rounded to bigint it is exact for millisecond timestamps
    "(date_part('epoch', b.start) * 1000)::bigint AS start" if name == "start" else name
    for name in BarRow.__struct_fields__[2:]
)
_ENCODER = msgspec.json.Encoder()


@router.get(
    "/ticks/{instrument}",
    summary="Raw trades of an instrument (when stored)",
    responses={404: {"description": "Ticks are not stored (DB_STORE_TICKS is off)."}},
)
async def ticks(
    instrument: InstrumentPath, window: TimeWindow, conn: Conn, state: State, _: ReadKey
) -> Page[TickPublic]:
    """Trades over a time range, oldest first (kept `DB_TICKS_RETENTION_DAYS`)."""
    if not state.db.store_ticks:
        raise ApiError(
            404, "Ticks not stored",
            "ticks are not stored: set DB_STORE_TICKS=true for the resampler (and this API) "
            "to keep raw trades, for DB_TICKS_RETENTION_DAYS days",
        )  # fmt: skip
    name, market, symbol = instrument_of(instrument, state)
    after = window.cursor
    if after is not None and re.fullmatch(r"[0-9]{1,19}", after.key) is None:
        raise invalid("cursor", "not a cursor of this route (use next_cursor)")
    rows = await conn.fetch(
        """
        SELECT trade_id, ts_event, price, qty, is_buyer_maker FROM ticks
        WHERE market = $1 AND symbol = $2
          AND ($3::timestamptz IS NULL OR ts_event >= $3)
          AND ($4::timestamptz IS NULL OR ts_event < $4)
          AND ($5::timestamptz IS NULL OR (ts_event, trade_id) > ($5, $6::bigint))
        ORDER BY ts_event, trade_id LIMIT $7
        """,
        market, symbol, window.start_at, window.end_at,
        window.after_at, 0 if after is None else int(after.key),
        window.limit + 1,
    )  # fmt: skip
    items = [
        TickPublic(instrument=name, trade_id=r["trade_id"], ts_event=to_ms(r["ts_event"]),
                   price=r["price"], qty=r["qty"], is_buyer_maker=r["is_buyer_maker"])
        for r in rows[: window.limit]
    ]  # fmt: skip
    more = len(rows) > window.limit
    cursor = Cursor(items[-1].ts_event, str(items[-1].trade_id)).encode() if more else None
    return Page(items=items, next_cursor=cursor)
