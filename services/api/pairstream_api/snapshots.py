"""The newest bar, analytics and scan (hot cache first, else PostgreSQL, which then seeds
the cache), and the recent history a WebSocket subscription starts with."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson

from .hotcache import Part, bar_order
from .live import KIND_FIELDS
from .models import AnalyticsLatest, AnalyticsPoint, BarPublic, ScanCell, ScanPublic
from .query import to_ms
from .state import ApiState

BAR_COLUMNS = ("start, open, high, low, close, volume, quote_volume, trades, vwap, buy_volume, "
               "revision, final")  # fmt: skip
POINT = """
    SELECT s.ts, s.method, s.hedge_ratio, s.intercept, s.spread, z.mean, z.std, z.zscore,
           z."window", z.position, z.signal, t.correlation, t.adf_stat, t.adf_pvalue,
           t.half_life, t.coint_stat, t.coint_pvalue, t.hedge_ratio_ci_low,
           t.hedge_ratio_ci_high, t.vol_y, t.vol_x
    FROM analytics_spread s
    LEFT JOIN analytics_zscore z USING (pair, tf, ts, method)
    LEFT JOIN analytics_stats t USING (pair, tf, ts, method)
"""


def point_of(r: asyncpg.Record) -> AnalyticsPoint:
    values: dict[str, Any] = dict(r)
    values["ts"] = to_ms(values["ts"])
    return AnalyticsPoint(**values)


def bar_of(r: asyncpg.Record, instrument: str, tf: str) -> BarPublic:
    values: dict[str, Any] = dict(r)
    values["start"] = to_ms(values["start"])
    return BarPublic(instrument=instrument, tf=tf, **values)


def alert_of(r: asyncpg.Record) -> dict[str, Any]:
    values = dict(r)
    values["alert_id"] = str(values["alert_id"])
    values["started_ts"] = to_ms(values["started_ts"])
    values["ended_ts"] = None if values["ended_ts"] is None else to_ms(values["ended_ts"])
    values["labels"] = orjson.loads(values["labels"])
    return values


@contextlib.asynccontextmanager
async def _db(state: ApiState, conn: asyncpg.Connection | None) -> AsyncIterator[Any]:
    """``conn``, else one from the pool for this block (a cache hit takes none)."""
    if conn is not None:
        yield conn
        return
    async with state.db_pool().acquire(timeout=state.settings.db_timeout_s) as acquired:
        yield acquired


def methods_of(state: ApiState) -> list[str]:
    return list(state.analytics.methods) or ["ols", "huber", "kalman"]


# -- the newest ---------------------------------------------------------------------


async def latest_bar(
    state: ApiState, instrument: str, market: str, symbol: str, tf: str,
    conn: asyncpg.Connection | None = None,
) -> BarPublic | None:  # fmt: skip
    """The newest bar (forming or final) of an instrument at ``tf``."""
    cache = state.cache
    key = "" if cache is None else cache.key("bar", instrument, tf)
    if cache is not None and (found := await cache.get("bar", key)) is not None:
        return BarPublic(**found["bar"]) if "bar" in found else None
    async with _db(state, conn) as db:
        row = await db.fetchrow(
            f"SELECT {BAR_COLUMNS} FROM bars WHERE symbol = $1 AND market = $2 AND tf = $3 "
            "ORDER BY start DESC LIMIT 1",
            symbol, market, tf,
        )  # fmt: skip
    bar = None if row is None else bar_of(row, instrument, tf)
    if cache is not None:
        parts = [] if bar is None else [
            Part("bar", bar_order(bar.start, bar.revision), bar.model_dump())
        ]  # fmt: skip
        if (found := await cache.seed(key, parts)) is not None and "bar" in found:
            return BarPublic(**found["bar"])
    return bar


def _from_parts(parts: dict[str, Any], methods: list[str]) -> dict[str, AnalyticsPoint]:
    out = {}
    for method in methods:
        spread = parts.get(f"{method}:spread")
        if spread is None:
            continue
        values = {k: v for k, v in spread.items() if k != "kind"}
        for kind in ("zscore", "stats"):
            part = parts.get(f"{method}:{kind}")
            if part is not None and part["ts"] == spread["ts"]:
                values.update({k: part[k] for k in KIND_FIELDS[kind]})
        out[method] = AnalyticsPoint(**values)
    return out


async def latest_analytics(
    state: ApiState, pair: str, tf: str, conn: asyncpg.Connection | None = None
) -> AnalyticsLatest:
    """Every metric's newest value per method (the stats of the newest bar with them)."""
    cache = state.cache
    methods = methods_of(state)
    key = "" if cache is None else cache.key("analytics", pair, tf)
    if cache is not None and (found := await cache.get("analytics", key)) is not None:
        return AnalyticsLatest(pair=pair, tf=tf, methods=_from_parts(found, methods),
                               cointegrated=found.get("verdict"))  # fmt: skip
    async with _db(state, conn) as db:
        rows = await db.fetch(
            """
            SELECT p.* FROM unnest($3::text[]) AS m(name),
            LATERAL (""" + POINT + """
                WHERE s.pair = $1 AND s.tf = $2 AND s.method = m.name
                ORDER BY s.ts DESC LIMIT 1) p
            """,
            pair, tf, methods,
        )  # fmt: skip
        tests = await db.fetchrow(
            "SELECT ts, coint_pvalue FROM analytics_stats WHERE pair = $1 AND tf = $2 "
            "AND coint_pvalue IS NOT NULL ORDER BY ts DESC LIMIT 1",
            pair, tf,
        )  # fmt: skip
    points = {r["method"]: point_of(r) for r in rows}
    verdict = None if tests is None else bool(tests["coint_pvalue"] < 0.05)
    if cache is not None:
        parts = [Part("verdict", -1 if tests is None else to_ms(tests["ts"]), verdict)]
        for method, point in points.items():
            values = point.model_dump()
            for kind, names in KIND_FIELDS.items():
                data = {"kind": kind, "ts": point.ts, "method": method}
                data.update({k: values[k] for k in names})
                parts.append(Part(f"{method}:{kind}", point.ts, data))
        if (found := await cache.seed(key, parts)) is not None:
            return AnalyticsLatest(pair=pair, tf=tf, methods=_from_parts(found, methods),
                                   cointegrated=found.get("verdict"))  # fmt: skip
    return AnalyticsLatest(pair=pair, tf=tf, methods=points, cointegrated=verdict)


async def latest_scan(
    state: ApiState, tf: str, conn: asyncpg.Connection | None = None
) -> ScanPublic:
    """The newest scan of every pair of instruments at ``tf`` (empty: none yet)."""
    cache = state.cache
    key = "" if cache is None else cache.key("scan", tf)
    if cache is not None and (found := await cache.get("scan", key)) is not None:
        return ScanPublic(**found["scan"])
    async with _db(state, conn) as db:
        ts = await db.fetchval("SELECT max(ts) FROM pair_scan WHERE tf = $1", tf)
        rows = [] if ts is None else await db.fetch(
            'SELECT y, x, "window", nobs, correlation, hedge_ratio, coint_stat, coint_pvalue '
            "FROM pair_scan WHERE tf = $1 AND ts = $2 ORDER BY y, x",
            tf, ts,
        )  # fmt: skip
    scan = ScanPublic(
        tf=tf, ts=None if ts is None else to_ms(ts),
        window=rows[0]["window"] if rows else None,
        instruments=sorted({r["y"] for r in rows} | {r["x"] for r in rows}),
        cells=[ScanCell(**{k: r[k] for k in ScanCell.model_fields}) for r in rows],
    )  # fmt: skip
    if cache is not None:
        part = Part("scan", -1 if scan.ts is None else scan.ts, scan.model_dump())
        if (found := await cache.seed(key, [part])) is not None:
            return ScanPublic(**found["scan"])
    return scan


# -- what a subscription starts with ------------------------------------------------


async def history(
    state: ApiState, conn: asyncpg.Connection, channel: str, n: int,
    recent: list[dict[str, Any]],
) -> list[dict[str, Any]]:  # fmt: skip
    """The last ``n`` points of a channel, oldest first: PostgreSQL's, overlaid with the
    ``recent`` messages the live consumer read (which PostgreSQL may not hold yet)."""
    kind, _, rest = channel.partition(":")
    if kind == "bars":
        instrument, tf = rest.rsplit(":", 1)
        market, symbol = instrument.split(":")
        rows = await conn.fetch(
            f"SELECT {BAR_COLUMNS} FROM bars WHERE symbol = $1 AND market = $2 AND tf = $3 "
            "ORDER BY start DESC LIMIT $4",
            symbol, market, tf, n,
        )  # fmt: skip
        bars = {b["start"]: b for b in (bar_of(r, instrument, tf).model_dump() for r in rows)}
        for bar in recent:
            old = bars.get(bar["start"])
            if old is None or old["revision"] <= bar["revision"]:
                bars[bar["start"]] = bar
        return [bars[k] for k in sorted(bars)][-n:] if n else []
    if kind == "analytics":
        pair, tf, method = rest.rsplit(":", 2)
        rows = await conn.fetch(
            POINT + " WHERE s.pair = $1 AND s.tf = $2 AND s.method = $3 "
            "ORDER BY s.ts DESC LIMIT $4",
            pair, tf, method, n,
        )  # fmt: skip
        points = {p["ts"]: p for p in (point_of(r).model_dump() for r in rows)}
        for part in recent:
            point = points.setdefault(
                part["ts"], AnalyticsPoint(ts=part["ts"], method=part["method"]).model_dump()
            )
            point.update({k: part[k] for k in KIND_FIELDS[part["kind"]]})
        return [points[k] for k in sorted(points)][-n:] if n else []
    if kind == "scan":
        scan = (await latest_scan(state, rest, conn)).model_dump()
        newer = [s for s in recent if scan["ts"] is None or s["ts"] > scan["ts"]]
        return [newer[-1] if newer else scan] if n and (newer or scan["ts"] is not None) else []
    rows = await conn.fetch(
        """
        SELECT alert_id, rule_id, rule_version, subject, tf, method, severity, kind, state,
               started_ts, ended_ts, value, threshold, message, labels::text AS labels
        FROM alert_history ORDER BY started_ts DESC, alert_id::text DESC LIMIT $1
        """,
        n,
    )
    return [alert_of(r) for r in reversed(rows)]
