"""Configured pairs, their analytics over time and now, and the pair scan."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Query

from pairstream.instruments import pair_legs, parse_pair
from pairstream.messages import HedgeMethod

from ..deps import Conn, ReadKey, State, rate_limited
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
from ..query import Cursor, TimeWindow, invalid, to_ms
from . import PREFIX
from .market import TF_PATTERN, TfQuery

router = APIRouter(
    prefix=PREFIX,
    tags=["analytics"],
    dependencies=[Depends(rate_limited)],
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
POINT = """
    SELECT s.ts, s.method, s.hedge_ratio, s.intercept, s.spread, z.mean, z.std, z.zscore,
           z."window", z.position, z.signal, t.correlation, t.adf_stat, t.adf_pvalue,
           t.half_life, t.coint_stat, t.coint_pvalue, t.hedge_ratio_ci_low,
           t.hedge_ratio_ci_high, t.vol_y, t.vol_x
    FROM analytics_spread s
    LEFT JOIN analytics_zscore z USING (pair, tf, ts, method)
    LEFT JOIN analytics_stats t USING (pair, tf, ts, method)
"""


def pair_of(text: str, state: State) -> str:
    try:
        return parse_pair(text, state.market)
    except ValueError as error:
        raise invalid("pair", str(error)) from None


def _point(r: asyncpg.Record) -> AnalyticsPoint:
    values: dict[str, Any] = dict(r)
    values["ts"] = to_ms(values["ts"])
    return AnalyticsPoint(**values)


@router.get("/pairs", summary="Configured pairs")
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
    items = [_point(r) for r in rows[: window.limit]]
    more = len(rows) > window.limit
    return Page(items=items, next_cursor=Cursor(items[-1].ts).encode() if more else None)


@router.get("/analytics/{pair}/latest", summary="The newest analytics of a pair")
async def latest(
    pair: PairPath, tf: TfQuery, conn: Conn, state: State, _: ReadKey
) -> AnalyticsLatest:
    """Every metric's newest value per method (the stats of the newest bar that has them)."""
    name = pair_of(pair, state)
    rows = await conn.fetch(
        """
        SELECT p.* FROM unnest($3::text[]) AS m(name),
        LATERAL (""" + POINT + """
            WHERE s.pair = $1 AND s.tf = $2 AND s.method = m.name
            ORDER BY s.ts DESC LIMIT 1) p
        """,
        name, tf, list(state.analytics.methods) or ["ols", "huber", "kalman"],
    )  # fmt: skip
    methods = {r["method"]: _point(r) for r in rows}
    tests = await conn.fetchrow(
        "SELECT coint_pvalue FROM analytics_stats WHERE pair = $1 AND tf = $2 "
        "AND coint_pvalue IS NOT NULL ORDER BY ts DESC LIMIT 1",
        name, tf,
    )  # fmt: skip
    verdict = None if tests is None else bool(tests["coint_pvalue"] < 0.05)
    return AnalyticsLatest(pair=name, tf=tf, methods=methods, cointegrated=verdict)


async def _scan(conn: asyncpg.Connection, tf: str) -> tuple[Any, list[asyncpg.Record]]:
    ts = await conn.fetchval("SELECT max(ts) FROM pair_scan WHERE tf = $1", tf)
    if ts is None:
        return None, []
    rows = await conn.fetch(
        'SELECT y, x, "window", nobs, correlation, hedge_ratio, coint_stat, coint_pvalue '
        "FROM pair_scan WHERE tf = $1 AND ts = $2 ORDER BY y, x",
        tf, ts,
    )  # fmt: skip
    return ts, rows


def _cell(r: asyncpg.Record) -> dict[str, Any]:
    return {k: r[k] for k in ("y", "x", "correlation", "hedge_ratio", "coint_stat",
                              "coint_pvalue", "nobs")}  # fmt: skip


@router.get("/scan/{tf}/latest", summary="The newest pair scan")
async def scan_latest(
    tf: TfPath,
    conn: Conn, _: ReadKey,
) -> ScanPublic:  # fmt: skip
    """Correlation and Engle–Granger cointegration of every scanned pair of instruments."""
    ts, rows = await _scan(conn, tf)
    instruments = sorted({r["y"] for r in rows} | {r["x"] for r in rows})
    return ScanPublic(
        tf=tf, ts=None if ts is None else to_ms(ts),
        window=rows[0]["window"] if rows else None, instruments=instruments,
        cells=[ScanCell(**_cell(r)) for r in rows],
    )  # fmt: skip


@router.get("/scan/{tf}/candidates", summary="Pairs ranked for trading")
async def candidates(
    tf: TfPath,
    conn: Conn, _: ReadKey,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many.")] = 20,
) -> list[Candidate]:  # fmt: skip
    """The newest scan's pairs by Engle–Granger p-value (lowest first), then half-life
    (shortest first, from the pair's stats when it is analysed), then |correlation|."""
    _, rows = await _scan(conn, tf)
    pairs = [f"{r['y']}-{r['x']}" for r in rows]
    lives = {
        r["pair"]: r["half_life"]
        for r in await conn.fetch(
            "SELECT DISTINCT ON (pair) pair, half_life FROM analytics_stats "
            "WHERE pair = ANY($1::text[]) AND tf = $2 AND half_life IS NOT NULL "
            "ORDER BY pair, ts DESC",
            pairs,
            tf,
        )
    }

    def order(r: asyncpg.Record) -> tuple[float, float, float]:
        p = r["coint_pvalue"]
        life = lives.get(f"{r['y']}-{r['x']}")
        corr = r["correlation"]
        return (1.0 if p is None else p, float("inf") if life is None else life,
                -abs(corr) if corr is not None else 0.0)  # fmt: skip

    ranked = sorted(rows, key=order)[:limit]
    return [
        Candidate(rank=i + 1, pair=f"{r['y']}-{r['x']}",
                  half_life=lives.get(f"{r['y']}-{r['x']}"), **_cell(r))
        for i, r in enumerate(ranked)
    ]  # fmt: skip
