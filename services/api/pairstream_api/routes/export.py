"""CSV exports of bars, analytics and alerts, streamed from a database cursor (never
built in memory)."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from pairstream.messages import HedgeMethod

from ..deps import ReadKey, State
from ..errors import problems
from ..query import EndQuery, StartQuery, maybe_datetime, parse_range, to_ms
from ..snapshots import POINT
from . import PREFIX
from .analytics import PAIR_PATTERN, pair_of
from .market import INSTRUMENT_PATTERN, TfQuery, instrument_of

router = APIRouter(prefix=f"{PREFIX}/export", tags=["export"],
                   responses=problems(400, 401, 413, 422, 429, 503))  # fmt: skip

CHUNK = 2_000  # rows per cursor fetch and per written piece
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "CSV with a header row."}
}

BAR_COLUMNS = ("start", "open", "high", "low", "close", "volume", "quote_volume", "trades",
               "vwap", "buy_volume", "revision", "final")  # fmt: skip
POINT_COLUMNS = ("ts", "method", "hedge_ratio", "intercept", "spread", "mean", "std", "zscore",
                 "window", "position", "signal", "correlation", "adf_stat", "adf_pvalue",
                 "half_life", "coint_stat", "coint_pvalue", "hedge_ratio_ci_low",
                 "hedge_ratio_ci_high", "vol_y", "vol_x")  # fmt: skip
ALERT_COLUMNS = ("alert_id", "rule_id", "rule_version", "subject", "tf", "method",
                 "severity", "kind", "state", "started_ts", "ended_ts", "value", "threshold",
                 "message")  # fmt: skip


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_ms(value)
    if value is None:
        return ""
    return value


def _range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    lo, hi = parse_range(start, end)
    return maybe_datetime(lo), maybe_datetime(hi)


class _Streamed(StreamingResponse):
    """A streamed response that hands its connection back however it ends: sent in
    full, the client gone before or during the body, or the task cancelled."""

    def __init__(self, rows: AsyncIterator[str], release: Callable[[], Awaitable[None]],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(rows, **kwargs)
        self._rows = rows
        self._release = release

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self._rows, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()  # rolls its transaction back if it was cut short
            await self._release()


async def _stream(
    state: State, filename: str, columns: Sequence[str], query: str, *args: Any
) -> StreamingResponse:
    """A CSV response fed by a server-side cursor; the connection is taken here, so a
    database that cannot be reached is a 503 before any byte is sent (an error later
    ends the body early)."""
    pool = state.db_pool()
    conn = await pool.acquire(timeout=state.settings.db_timeout_s)

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        async with conn.transaction(readonly=True):
            batch = 0
            async for record in conn.cursor(query, *args, prefetch=CHUNK):
                writer.writerow([_cell(record[c]) for c in columns])
                batch += 1
                if batch == CHUNK:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
                    batch = 0
        yield buffer.getvalue()

    async def release() -> None:
        await pool.release(conn)

    return _Streamed(
        rows(), release, media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )  # fmt: skip


@router.get("/bars.csv", summary="Bars as CSV", response_class=StreamingResponse, responses=CSV)
async def bars_csv(
    instrument: Annotated[str, Query(pattern=INSTRUMENT_PATTERN, examples=["usdm:BTCUSDT"])],
    tf: TfQuery, state: State, _: ReadKey, start: StartQuery = None, end: EndQuery = None,
) -> StreamingResponse:  # fmt: skip
    """The bars of an instrument over a range, oldest first (`start` in epoch ms)."""
    market, symbol = instrument_of(instrument, state)[1:]
    lo, hi = _range(start, end)
    return await _stream(
        state, f"{market}_{symbol}_{tf}.csv", BAR_COLUMNS,
        f"SELECT {', '.join(BAR_COLUMNS)} FROM bars WHERE symbol = $1 AND market = $2 "
        "AND tf = $3 AND ($4::timestamptz IS NULL OR start >= $4) "
        "AND ($5::timestamptz IS NULL OR start < $5) ORDER BY start",
        symbol, market, tf, lo, hi,
    )  # fmt: skip


@router.get(
    "/analytics.csv", summary="Analytics of a pair as CSV", response_class=StreamingResponse,
    responses=CSV,
)  # fmt: skip
async def analytics_csv(
    pair: Annotated[str, Query(pattern=PAIR_PATTERN, examples=["BTCUSDT-ETHUSDT"])],
    tf: TfQuery, state: State, _: ReadKey, start: StartQuery = None, end: EndQuery = None,
    method: HedgeMethod = "ols",
) -> StreamingResponse:  # fmt: skip
    """Every metric of a pair per bar over a range, oldest first (`ts` in epoch ms)."""
    name = pair_of(pair, state)
    lo, hi = _range(start, end)
    return await _stream(
        state, f"{name.replace(':', '_')}_{tf}_{method}.csv", POINT_COLUMNS,
        POINT + " WHERE s.pair = $1 AND s.tf = $2 AND s.method = $3 "
        "AND ($4::timestamptz IS NULL OR s.ts >= $4) AND ($5::timestamptz IS NULL OR s.ts < $5) "
        "ORDER BY s.ts",
        name, tf, method, lo, hi,
    )  # fmt: skip


@router.get("/alerts.csv", summary="Alert history as CSV", response_class=StreamingResponse,
            responses=CSV)  # fmt: skip
async def alerts_csv(
    state: State, _: ReadKey, start: StartQuery = None, end: EndQuery = None,
    rule: Annotated[str | None, Query(max_length=100)] = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
) -> StreamingResponse:  # fmt: skip
    """Alert episodes by the bar where they started firing, oldest first."""
    lo, hi = _range(start, end)
    return await _stream(
        state, "alerts.csv", ALERT_COLUMNS,
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM alert_history "
        "WHERE ($1::text IS NULL OR rule_id = $1) AND ($2::text IS NULL OR subject = $2) "
        "AND ($3::timestamptz IS NULL OR started_ts >= $3) "
        "AND ($4::timestamptz IS NULL OR started_ts < $4) ORDER BY started_ts, alert_id",
        rule, subject, lo, hi,
    )  # fmt: skip
