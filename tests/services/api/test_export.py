"""CSV exports equal the tables, streamed in pieces."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from pairstream.db import connection
from pairstream_api.routes import export

from ..conftest import PAIR, Stocked


async def _csv(client: Any, path: str, **params: Any) -> tuple[list[dict[str, str]], int, Any]:
    async with client.stream("GET", path, params=params) as response:
        pieces = [chunk async for chunk in response.aiter_text()]
        headers = response.headers
        status = response.status_code
    assert status == 200, "".join(pieces)
    return list(csv.DictReader(io.StringIO("".join(pieces)))), len(pieces), headers


async def test_bar_and_analytics_exports_equal_the_tables_streamed_in_pieces(
    api: Callable[..., Any], stocked: Stocked, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "CHUNK", 100)
    async with api() as server, server.client() as client:
        bars, pieces, headers = await _csv(client, "/api/v1/export/bars.csv", instrument="BTCUSDT",
                                      tf="1s")  # fmt: skip
        points, _, _ = await _csv(client, "/api/v1/export/analytics.csv", pair=PAIR, tf="1s",
                                  method="kalman")  # fmt: skip
        alerts, _, _ = await _csv(client, "/api/v1/export/alerts.csv")
        bad = await client.get(
            "/api/v1/export/bars.csv", params={"instrument": "BTCUSDT", "tf": "1s", "start": "soon"}
        )
    assert headers["content-type"].startswith("text/csv")
    assert 'filename="usdm_BTCUSDT_1s.csv"' in headers["content-disposition"]
    async with connection(stocked.db) as conn:
        table = await conn.fetch(
            "SELECT start, close, trades FROM bars WHERE symbol = 'BTCUSDT' AND tf = '1s' "
            "ORDER BY start"
        )
        zscores = await conn.fetch(
            "SELECT ts, zscore FROM analytics_zscore WHERE pair = $1 AND tf = '1s' "
            "AND method = 'kalman' ORDER BY ts",
            PAIR,
        )
    assert len(bars) == len(table)
    assert pieces >= len(table) // 100  # written as the cursor reads
    for row, record in zip(bars, table, strict=True):
        assert int(row["start"]) == int(record["start"].timestamp() * 1000)
        assert float(row["close"]) == record["close"]
        assert int(row["trades"]) == record["trades"]
    assert len(points) >= len(zscores) > 0
    by_ts = {int(p["ts"]): p["zscore"] for p in points}
    for record in zscores:
        want = "" if record["zscore"] is None else record["zscore"]
        got = by_ts[int(record["ts"].timestamp() * 1000)]
        assert (float(got) if got else "") == want
    assert list(alerts) == []  # no alerts stored in this schema: a header only
    assert bad.status_code == 422


async def test_an_export_cut_short_by_the_client_hands_its_connection_back(
    api: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pairstream.testing import eventually

    monkeypatch.setattr(export, "CHUNK", 10)
    async with api() as server:
        pool = server.app.state.api.pool
        for _ in range(12):  # more than the pool holds
            async with (
                server.client() as client,
                client.stream("GET", "/api/v1/export/bars.csv",
                              params={"instrument": "BTCUSDT", "tf": "1s"}) as response,
            ):  # fmt: skip
                async for _chunk in response.aiter_bytes():
                    break  # the client goes away after the first piece

        await eventually(lambda: pool.get_idle_size() == pool.get_size(), timeout=10)
        async with server.client() as client:
            assert (
                await client.get("/api/v1/bars/BTCUSDT", params={"tf": "1s"})
            ).status_code == 200
