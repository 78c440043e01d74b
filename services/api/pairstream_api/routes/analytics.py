"""Configured pairs, their analytics over time and now, and the pair scan."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from pairstream.instruments import pair_legs, parse_pair
from pairstream.messages import HedgeMethod

from ..deps import Conn, ReadKey, State
from ..errors import problems
from ..models import (
    AnalyticsLatest,
    AnalyticsPoint,
    Candidate,
    Page,
    PairPublic,
    ScanCell,
    ScanPublic,
)
from ..openapi import links
from ..query import Cursor, TimeWindow, invalid
from ..snapshots import POINT, latest_analytics, latest_scan, point_of
from . import PREFIX
from .market import TF_PATTERN, TfQuery

router = APIRouter(
    prefix=PREFIX,
    tags=["analytics"],
    responses=problems(400, 401, 413, 422, 429, 503),
)

TfPath = Annotated[str, Path(pattern=TF_PATTERN, description="Timeframe.", examples=["1m"])]
PAIR_PATTERN = r"^([a-z]+:)?[A-Za-z0-9]{2,30}-([a-z]+:)?[A-Za-z0-9]{2,30}$"
PairPath = Annotated[
    str,
    Path(
        description="`Y-X`: `BTCUSDT-ETHUSDT` (default market) or `usdm:BTCUSDT-usdm:ETHUSDT`.",
        pattern=PAIR_PATTERN,
        examples=["BTCUSDT-ETHUSDT"],
    ),
]


def pair_of(text: str, state: State) -> str:
    try:
        return parse_pair(text, state.market)
    except ValueError as error:
        raise invalid("pair", str(error)) from None


@router.get(
    "/pairs", summary="Configured pairs",
    responses=links(200, "pair=$response.body#/0/pair", "analytics", "analytics_latest"),
)  # fmt: skip
async def pairs(state: State, _: ReadKey) -> list[PairPublic]:
    """The pairs the analytics service computes (`ANALYTICS_PAIRS`), with its settings."""
    a = state.analytics
    out = []
    for pair in a.pair_names:
        y, x = pair_legs(pair)
        out.append(
            PairPublic(
                pair=pair, y=y, x=x, timeframes=list(a.timeframes), methods=list(a.methods),
                price_transform=a.price_transform, hedge_window=a.hedge_window,
                zscore_window=a.zscore_window, stats_window=a.stats_window,
                entry_z=a.entry_z, exit_z=a.exit_z,
            )
        )  # fmt: skip
    return out


@router.get("/analytics/{pair}", summary="Analytics of a pair over time")
async def analytics(
    pair: PairPath, tf: TfQuery, window: TimeWindow, conn: Conn, state: State, _: ReadKey,
    method: Annotated[HedgeMethod, Query(description="Hedge-ratio method.")] = "ols",
) -> Page[AnalyticsPoint]:  # fmt: skip
    """Hedge ratio, spread, z-score and stats per bar, oldest first."""
    name = pair_of(pair, state)
    rows = await conn.fetch(
        POINT + """
        WHERE s.pair = $1 AND s.tf = $2 AND s.method = $3
          AND ($4::timestamptz IS NULL OR s.ts >= $4)
          AND ($5::timestamptz IS NULL OR s.ts < $5)
          AND ($6::timestamptz IS NULL OR s.ts > $6)
        ORDER BY s.ts LIMIT $7
        """,
        name, tf, method, window.start_at, window.end_at, window.after_at, window.limit + 1,
    )  # fmt: skip
    items = [point_of(r) for r in rows[: window.limit]]
    more = len(rows) > window.limit
    return Page(items=items, next_cursor=Cursor(items[-1].ts).encode() if more else None)


@router.get("/analytics/{pair}/latest", summary="The newest analytics of a pair")
async def analytics_latest(
    pair: PairPath, tf: TfQuery, state: State, _: ReadKey
) -> AnalyticsLatest:
    """Every metric's newest value per method (the stats of the newest bar that has them).

    From the hot cache when it is trusted, else from PostgreSQL."""
    return await latest_analytics(state, pair_of(pair, state), tf)


@router.get("/scan/{tf}/latest", summary="The newest pair scan")
async def scan_latest(
    tf: TfPath, state: State, _: ReadKey
) -> ScanPublic:  # fmt: skip
    """Correlation and Engle–Granger cointegration of every scanned pair of instruments."""
    return await latest_scan(state, tf)


@router.get("/scan/{tf}/candidates", summary="Pairs ranked for trading")
async def candidates(
    tf: TfPath,
    conn: Conn, state: State, _: ReadKey,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many.")] = 20,
) -> list[Candidate]:  # fmt: skip
    """The newest scan's pairs by Engle–Granger p-value (lowest first), then half-life
    (shortest first, from the pair's stats when it is analysed), then |correlation|."""
    cells = (await latest_scan(state, tf, conn)).cells
    lives = {
        r["pair"]: r["half_life"]
        for r in await conn.fetch(
            "SELECT DISTINCT ON (pair) pair, half_life FROM analytics_stats "
            "WHERE pair = ANY($1::text[]) AND tf = $2 AND half_life IS NOT NULL "
            "ORDER BY pair, ts DESC",
            [f"{c.y}-{c.x}" for c in cells],
            tf,
        )
    }

    def order(c: ScanCell) -> tuple[float, float, float]:
        life = lives.get(f"{c.y}-{c.x}")
        return (1.0 if c.coint_pvalue is None else c.coint_pvalue,
                float("inf") if life is None else life,
                -abs(c.correlation) if c.correlation is not None else 0.0)  # fmt: skip

    ranked = sorted(cells, key=order)[:limit]
    return [
        Candidate(rank=i + 1, pair=f"{c.y}-{c.x}", half_life=lives.get(f"{c.y}-{c.x}"),
                  **c.model_dump())
        for i, c in enumerate(ranked)
    ]  # fmt: skip
