"""``POST /api/v1/backtest`` over real HTTP against the stocked schema (the recorded July
BTC/ETH 1s bars): the engine's numbers on the same bars, the analytics service's hedge
ratios, the range, errors as problem+json naming the field, keys, the bar cap, and the
computation off the event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from pairstream.analytics.backtest import BacktestParams, BacktestResult, backtest_legs
from pairstream.db import connection
from pairstream.testing import unique
from pairstream_api.routes import backtest as route

from ..conftest import PAIR, Stocked

PROBLEM = "application/problem+json"
URL = "/api/v1/backtest"
BODY = {
    "pair": PAIR, "tf": "1s", "method": "ols", "entry_z": 1.5, "exit_z": 0.3, "stop_z": 3.5,
    "fee_bps": 2.0, "slippage_bps": 1.0, "capital": 50_000.0, "notional": 40_000.0,
}  # fmt: skip


def engine(
    recorded_bars: Any, stocked: Stocked, body: dict[str, Any], method: Any = "ols",
    start: int | None = None, end: int | None = None,
) -> BacktestResult:  # fmt: skip
    """The engine run directly on the recorded bars (what the schema was stocked with)."""

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        keep = (frame["start"] >= (start or 0)) & (frame["start"] < (end or 2**62))
        return frame[keep]

    names = {f.name for f in dataclasses.fields(BacktestParams)}
    params = BacktestParams(**{k: v for k, v in body.items() if k in names})
    return backtest_legs(
        cut(recorded_bars.y), cut(recorded_bars.x), 1_000, params,
        stocked.analytics.pair_config(), method,
    )  # fmt: skip


def assert_same(got: dict[str, Any], want: BacktestResult) -> None:
    assert got["trades"] == [dataclasses.asdict(t) for t in want.trades]
    assert got["metrics"] == dataclasses.asdict(want.metrics)
    curve = want.equity
    assert got["equity"] == {
        "ts": curve.ts.tolist(), "equity": curve.equity.tolist(),
        "position": curve.position.tolist(), "drawdown": curve.drawdown.tolist(),
    }  # fmt: skip
    assert got["bars"] == len(curve)
    assert (got["first_ts"], got["last_ts"]) == (int(curve.ts[0]), int(curve.ts[-1]))


async def test_a_backtest_is_the_engine_on_the_stored_bars_with_the_services_hedge_ratios(
    api: Callable[..., Any], stocked: Stocked, recorded_bars: Any
) -> None:
    async with api() as server, server.client() as client:
        response = await client.post(URL, json=BODY)
        kalman = await client.post(
            URL, json={**BODY, "method": "kalman", "pair": "BTCUSDT-ETHUSDT"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    want = engine(recorded_bars, stocked, BODY)
    assert want.metrics.n_trades >= 5
    assert want.metrics.fees > 0
    assert_same(body, want)
    assert body["pair"] == PAIR
    assert body["params"] == {
        "entry_z": 1.5, "exit_z": 0.3, "stop_z": 3.5, "fee_bps": 2.0, "slippage_bps": 1.0,
        "capital": 50_000.0, "notional": 40_000.0, "hedge_window": 60, "zscore_window": 20,
        "price_transform": "price",
    }  # fmt: skip
    assert kalman.status_code == 200, kalman.text
    assert_same(kalman.json(), engine(recorded_bars, stocked, BODY, "kalman"))
    # each trade's β and decision z are what the analytics service stored for that bar
    async with connection(stocked.db) as conn:
        rows = await conn.fetch(
            "SELECT s.ts, s.hedge_ratio, z.zscore FROM analytics_spread s "
            "JOIN analytics_zscore z USING (pair, tf, ts, method) "
            "WHERE s.pair = $1 AND s.tf = '1s' AND s.method = 'ols'",
            PAIR,
        )
    stored = {int(r["ts"].timestamp() * 1000): (r["hedge_ratio"], r["zscore"]) for r in rows}
    for trade in body["trades"]:
        beta, z = stored[trade["decided_ts"]]
        assert trade["hedge_ratio"] == beta
        assert abs(z) >= 1.5
        assert (z <= -1.5) == (trade["side"] == "long")


async def test_the_range_defaults_and_the_equity_switch(
    api: Callable[..., Any], stocked: Stocked, recorded_bars: Any
) -> None:
    ts = sorted({b.start for b in stocked.bars})
    start, end = ts[40], ts[-40]
    iso = pd.Timestamp(start, unit="ms", tz="UTC").isoformat()
    async with api() as server, server.client() as client:
        ranged = await client.post(URL, json={**BODY, "start": iso, "end": str(end)})
        defaults = await client.post(URL, json={"pair": PAIR, "tf": "1s", "include_equity": False})
    assert ranged.status_code == 200, ranged.text
    assert_same(ranged.json(), engine(recorded_bars, stocked, BODY, start=start, end=end))
    assert ranged.json()["first_ts"] >= start
    assert ranged.json()["last_ts"] < end
    assert defaults.status_code == 200, defaults.text
    got = defaults.json()
    assert got["equity"] is None
    settings = stocked.analytics
    params = got["params"]
    assert (params["entry_z"], params["exit_z"]) == (settings.entry_z, settings.exit_z)
    assert (params["stop_z"], params["fee_bps"], params["slippage_bps"]) == (None, 0.0, 0.0)
    assert (params["capital"], params["notional"]) == (100_000.0, 100_000.0)
    plain = {"entry_z": settings.entry_z, "exit_z": settings.exit_z}
    assert got["metrics"] == dataclasses.asdict(engine(recorded_bars, stocked, plain).metrics)


async def test_bad_parameters_are_problems_that_name_the_field(api: Callable[..., Any]) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"exit_z": 1.5}, "exit_z", "below entry_z"),
        ({"entry_z": 0.4, "exit_z": None}, "exit_z", "below entry_z (0.4)"),  # default 0.5
        ({"stop_z": 1.0}, "stop_z", "above entry_z"),
        ({"fee_bps": -1}, "fee_bps", "greater than or equal to 0"),
        ({"slippage_bps": "1"}, "slippage_bps", "number"),  # strict JSON types
        ({"capital": 0}, "capital", "greater than or equal to 1"),
        ({"entry_z": 0}, "entry_z", "greater than 0"),
        ({"tf": "2x"}, "tf", "pattern"),
        ({"method": "ridge"}, "method", "ols"),
        ({"pair": "BTCUSDT-BTCUSDT"}, "pair", "BTCUSDT"),
        ({"pair": "BTCUSDT"}, "pair", "pattern"),
        ({"start": "yesterday"}, "start", "pattern"),
        ({"start": "2024-02-30"}, "start", "ISO-8601"),
        ({"start": "2024-07-19", "end": "2024-07-18"}, "end", "before start"),
        ({"windows": 3}, "windows", "Extra inputs"),
    ]
    async with api() as server, server.client() as client:
        for change, field, words in cases:
            response = await client.post(URL, json={**BODY, **change})
            assert response.status_code == 422, (change, response.text)
            assert response.headers["content-type"] == PROBLEM
            problem = response.json()
            assert problem["status"] == 422
            assert f"{field}: " in problem["detail"], (change, problem)
            assert words in problem["detail"], (change, problem)
            assert [e["field"] for e in problem["errors"]] == [field], problem
            assert problem["errors"][0]["in"] == "body"
        missing = await client.post(URL, json={"pair": PAIR})
        not_json = await client.post(
            URL, content=b"{", headers={"content-type": "application/json"}
        )
    assert missing.status_code == 422
    assert "tf" in missing.json()["detail"]
    assert not_json.status_code == 422
    assert not_json.headers["content-type"] == PROBLEM


async def test_missing_bars_are_a_404_and_too_few_a_422_that_say_which(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    first = min(b.start for b in stocked.bars)
    async with api() as server, server.client() as client:
        unknown = await client.post(URL, json={**BODY, "pair": "BTCUSDT-SOLUSDT"})
        other_tf = await client.post(URL, json={**BODY, "tf": "1m"})
        before = await client.post(URL, json={**BODY, "end": str(first)})
        few = await client.post(URL, json={**BODY, "end": str(first + 30_000)})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM
    assert unknown.json()["detail"] == "no stored final 1s bars of usdm:SOLUSDT"
    assert other_tf.status_code == 404
    assert "1m bars of usdm:BTCUSDT" in other_tf.json()["detail"]
    assert before.status_code == 404
    assert before.json()["detail"].endswith("in the range")
    assert few.status_code == 422
    assert "give no z-score" in few.json()["detail"]
    assert "ANALYTICS_HEDGE_WINDOW 60" in few.json()["detail"]


async def test_reads_need_a_key_when_reads_are_closed(
    api: Callable[..., Any], keys: dict[str, str]
) -> None:
    async with api(open_reads=False) as server:
        async with server.client() as anonymous:
            refused = await anonymous.post(URL, json=BODY)
        async with server.client("ps_unknown") as unknown:
            bad_key = await unknown.post(URL, json=BODY)
        async with server.client(keys["read"]) as reader:
            allowed = await reader.post(URL, json=BODY)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == PROBLEM
    assert "API key" in refused.json()["detail"]
    assert bad_key.status_code == 401
    assert allowed.status_code == 200, allowed.text  # a read key: a backtest only reads


async def test_more_bars_than_the_cap_are_refused(
    api: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(route, "MAX_BARS", 100)
    async with api() as server, server.client() as client:
        response = await client.post(URL, json=BODY)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "more than 100 final 1s bars of usdm:BTCUSDT" in detail
    assert "narrow" in detail
    assert {e["field"] for e in response.json()["errors"]} == {"start", "end"}


async def test_the_computation_runs_off_the_event_loop(
    api: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    compute = route._compute

    def slow(*args: Any) -> Any:
        time.sleep(1.5)  # blocks its thread only
        return compute(*args)

    monkeypatch.setattr(route, "_compute", slow)
    async with api() as server, server.client() as client:
        running = asyncio.create_task(client.post(URL, json=BODY))
        await asyncio.sleep(0.3)
        started = time.perf_counter()
        pairs = await client.get("/api/v1/pairs")
        waited = time.perf_counter() - started
        assert not running.done()
        response = await running
    assert pairs.status_code == 200
    assert waited < 1.0
    assert response.status_code == 200


def bars_csv(stocked: Stocked, symbol: str) -> bytes:
    """The stocked bars of one leg in the bar columns an upload takes."""
    columns = ("start", "open", "high", "low", "close", "volume", "quote_volume",
               "buy_volume", "trades", "vwap")  # fmt: skip
    lines = [",".join(columns)]
    lines += [",".join(repr(getattr(b, c)) for c in columns)
              for b in stocked.bars if b.symbol == symbol]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


async def test_a_backtest_over_uploaded_datasets_equals_the_one_over_the_same_stored_bars(
    api: Callable[..., Any], stocked: Stocked, keys: dict[str, str]
) -> None:
    y, x = unique("bt-y"), unique("bt-x")
    async with api() as server, server.client(keys["write"]) as client:
        for name, symbol in ((y, "BTCUSDT"), (x, "ETHUSDT")):
            uploaded = await client.post(
                "/api/v1/uploads", data={"name": name, "tf": "1s"},
                files={"file": (f"{symbol}.csv", bars_csv(stocked, symbol), "text/csv")},
            )  # fmt: skip
            assert uploaded.status_code == 201, uploaded.text
        stored = await client.post(URL, json=BODY)
        from_uploads = await client.post(URL, json={**BODY, "datasets": {"y": y, "x": x}})
        wrong_tf = await client.post(URL, json={**BODY, "tf": "1m", "datasets": {"y": y, "x": x}})
        missing = await client.post(URL, json={**BODY, "datasets": {"y": y, "x": "nope"}})
    assert stored.status_code == 200, stored.text
    assert from_uploads.status_code == 200, from_uploads.text
    assert from_uploads.json() == stored.json()
    assert wrong_tf.status_code == 422
    assert "holds 1s bars, not 1m" in wrong_tf.json()["detail"]
    assert missing.status_code == 404
    assert "no dataset 'nope'" in missing.json()["detail"]
