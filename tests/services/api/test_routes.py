"""Every read route over real HTTP against the stocked schema: happy paths, pagination
that covers a range exactly once, and errors as problem+json naming the parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from pairstream.db import connection

from ..conftest import PAIR, Stocked

PROBLEM = "application/problem+json"


async def walk(client: httpx.AsyncClient, path: str, **params: Any) -> tuple[list[Any], int]:
    """Every item of every page, and how many pages."""
    items: list[Any] = []
    pages = 0
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


async def test_bar_pages_cover_a_range_exactly_once_and_equal_the_table(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    btc = [b for b in stocked.bars if b.symbol == "BTCUSDT"]
    start, end = btc[100].start, btc[-100].start
    async with api() as server, server.client() as client:
        items, pages = await walk(
            client, "/api/v1/bars/BTCUSDT", tf="1s", start=str(start), end=str(end), limit=997
        )
        iso, _ = await walk(
            client, "/api/v1/bars/usdm:BTCUSDT", tf="1s", limit=10_000,
            start=_iso(start), end=_iso(end),
        )  # fmt: skip
    want = [b for b in btc if start <= b.start < end]
    assert pages == -(-len(want) // 997)
    assert [i["start"] for i in items] == [b.start for b in want]
    assert len({i["start"] for i in items}) == len(items)  # nothing twice
    assert iso == items
    first = items[0]
    assert first["instrument"] == "usdm:BTCUSDT"
    assert first["close"] == want[0].close
    assert first["trades"] == want[0].trades


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


async def test_instruments_and_pairs_describe_what_is_stored_and_configured(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    async with api() as server, server.client() as client:
        instruments = (await client.get("/api/v1/instruments")).json()
        pairs = (await client.get("/api/v1/pairs")).json()
    by_name = {i["instrument"]: i for i in instruments}
    assert set(by_name) == {"usdm:BTCUSDT", "usdm:ETHUSDT"}
    btc = [b.start for b in stocked.bars if b.symbol == "BTCUSDT"]
    assert by_name["usdm:BTCUSDT"]["first_bar"] == btc[0]
    assert by_name["usdm:BTCUSDT"]["last_bar"] == btc[-1]
    assert by_name["usdm:BTCUSDT"]["timeframes"] == ["1s"]
    assert by_name["usdm:BTCUSDT"]["last_trade_age_s"] > 0
    assert [p["pair"] for p in pairs] == [PAIR]
    assert pairs[0]["methods"] == ["ols", "kalman"]
    assert pairs[0]["y"] == "usdm:BTCUSDT"


async def test_analytics_pages_and_latest_equal_the_stored_rows(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    async with api() as server, server.client() as client:
        items, _ = await walk(client, "/api/v1/analytics/BTCUSDT-ETHUSDT", tf="1s",
                              method="ols", limit=250)  # fmt: skip
        latest = await client.get(f"/api/v1/analytics/{PAIR}/latest", params={"tf": "1s"})
    async with connection(stocked.db) as conn:
        rows = await conn.fetch(
            "SELECT s.ts, s.hedge_ratio, z.zscore, t.adf_pvalue FROM analytics_spread s "
            "LEFT JOIN analytics_zscore z USING (pair, tf, ts, method) "
            "LEFT JOIN analytics_stats t USING (pair, tf, ts, method) "
            "WHERE s.pair = $1 AND s.tf = '1s' AND s.method = 'ols' ORDER BY s.ts",
            PAIR,
        )
    assert len(items) == len(rows) >= stocked.outputs
    for item, row in zip(items, rows, strict=True):
        assert item["ts"] == int(row["ts"].timestamp() * 1000)
        assert item["hedge_ratio"] == row["hedge_ratio"]
        assert item["zscore"] == row["zscore"]
        assert item["adf_pvalue"] == row["adf_pvalue"]
    assert latest.status_code == 200
    body = latest.json()
    assert set(body["methods"]) == {"ols", "kalman"}
    assert body["methods"]["ols"]["ts"] == items[-1]["ts"]
    assert body["methods"]["ols"]["hedge_ratio"] == items[-1]["hedge_ratio"]
    assert body["cointegrated"] in (True, False)


async def test_bad_parameters_are_problems_that_name_the_parameter(
    api: Callable[..., Any],
) -> None:
    cases = {
        "/api/v1/bars/BTCUSDT?tf=2x": (422, "tf"),
        "/api/v1/bars/BTCUSDT?tf=1s&start=yesterday": (422, "start"),
        "/api/v1/bars/BTCUSDT?tf=1s&start=2024-07-18&end=2024-07-17": (422, "end"),
        "/api/v1/bars/BTCUSDT?tf=1s&limit=100001": (422, "limit"),
        "/api/v1/bars/BTCUSDT?tf=1s&cursor=!!!": (422, "cursor"),
        "/api/v1/bars/BTC-USDT?tf=1s": (422, "instrument"),
        "/api/v1/analytics/BTCUSDT-BTCUSDT?tf=1s": (422, "pair"),
        "/api/v1/analytics/BTCUSDT-ETHUSDT?tf=1s&method=ridge": (422, "method"),
        "/api/v1/alerts?severity=loud": (422, "severity"),
        "/api/v1/nothing-here": (404, ""),
    }
    async with api() as server, server.client() as client:
        for path, (status, field) in cases.items():
            response = await client.get(path)
            assert response.status_code == status, (path, response.text)
            assert response.headers["content-type"] == PROBLEM, path
            body = response.json()
            assert body["status"] == status
            assert field in body["detail"], (path, body)
            assert "Traceback" not in response.text
        ticks = await client.get("/api/v1/ticks/BTCUSDT")
    assert ticks.status_code == 404
    assert "DB_STORE_TICKS" in ticks.json()["detail"]


async def test_health_is_ready_with_every_check_and_metrics_count_requests(
    api: Callable[..., Any],
) -> None:
    async with api() as server, server.client() as client:
        assert (await client.get("/health/live")).json() == {"status": "ok"}
        ready = (await client.get("/health/ready")).json()
        await client.get("/api/v1/pairs")
        metrics = (await client.get("/metrics")).text
    assert ready["status"] == "ready", ready
    assert set(ready["checks"]) == {"postgres", "redis", "kafka"}
    assert all(c["latency_ms"] is not None for c in ready["checks"].values())
    assert (
        'api_request_seconds_count{method="GET",route="/api/v1/pairs",status="200"} 1.0' in metrics
    )
