"""Every page in the browser against the real API over the recorded pair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pairstream.db import connection
from pairstream.infra import Endpoints
from pairstream.messages import Bar
from pairstream.settings import RedisSettings
from pairstream_analytics.config import AnalyticsSettings

from ..conftest import PAIR, Stocked, serving
from .conftest import dashboard

# the points of a chart's first trace
POINTS = """(id) => { const g = document.querySelector(id + ' .js-plotly-plot');
    return g && g.data && g.data[0] && g.data[0].x ? g.data[0].x.length : 0; }"""


async def in_url(page: Any, part: str) -> None:
    """Waits until the page's URL holds ``part`` (the controls' state is written to it
    after the view it names is drawn)."""
    await page.wait_for_function("(part) => location.href.includes(part)", arg=part,
                                 polling=50, timeout=10_000)  # fmt: skip


async def points(page: Any, chart: str) -> int:
    return int(await page.evaluate(POINTS, chart))


async def drawn(page: Any, chart: str, at_least: int = 1, timeout_s: float = 20) -> int:
    """Once ``chart`` (a dcc.Graph's id, ``#…``) draws ``at_least`` points: how many."""
    await page.wait_for_function(f"(id) => ({POINTS})(id) >= {at_least}", arg=chart,
                                 polling=50, timeout=timeout_s * 1000)  # fmt: skip
    return await points(page, chart)


async def test_every_page_draws_the_recorded_pair_without_console_errors(
    ui: tuple[Any, str], new_page: Any, artifacts: Path
) -> None:
    _, url = ui
    async with new_page(url) as p:
        await p.open("/?instrument=usdm:BTCUSDT&tf=1s")
        assert await drawn(p.page, "#market-candles") > 100
        await p.shot(artifacts, "market")
        await p.open(f"/pair?pair={PAIR}&tf=1s&method=ols")
        assert await drawn(p.page, "#pair-zscore") > 100
        await p.shot(artifacts, "pair")
        await p.open("/scan?tf=1s")
        await p.page.wait_for_timeout(1500)
        await p.shot(artifacts, "scan")
        for path, selector in (("/alerts", "#alerts-rules"), ("/backtest", "#backtest-run"),
                               ("/data", "#data-alerts-csv")):  # fmt: skip
            await p.open(path)
            await p.page.wait_for_selector(selector, timeout=10_000)
            await p.page.wait_for_timeout(500)
            await p.shot(artifacts, path.strip("/"))
        await p.open("/system")
        await p.page.wait_for_selector("#system-table", timeout=10_000)
        await p.shot(artifacts, "system")
        assert p.errors == []


# a chart's trace ``i`` as drawn
TRACE = """([id, i]) => { const g = document.querySelector(id + ' .js-plotly-plot');
    return g && g.data && g.data[i] ? {x: g.data[i].x, y: g.data[i].y, close: g.data[i].close}
        : null; }"""


def minute_bars(bars: list[Bar], symbol: str) -> list[Bar]:
    """The 1m bars of ``symbol``'s 1s bars (what the resampler would write)."""
    out: dict[int, list[Bar]] = {}
    for b in bars:
        if b.symbol == symbol:
            out.setdefault(b.start - b.start % 60_000, []).append(b)
    return [msgspec.structs.replace(
        g[0], tf="1m", start=start, open=g[0].open, high=max(b.high for b in g),
        low=min(b.low for b in g), close=g[-1].close, volume=sum(b.volume for b in g),
        quote_volume=sum(b.quote_volume for b in g), trades=sum(b.trades for b in g),
        buy_volume=sum(b.buy_volume for b in g), last_trade_id=g[-1].last_trade_id,
        ts_event=g[-1].ts_event, ts_init=g[-1].ts_init,
    ) for start, g in sorted(out.items())]  # fmt: skip


@pytest.fixture
async def minute(stocked: Stocked) -> AsyncIterator[list[Bar]]:
    """ETHUSDT's 1m bars in the stocked schema for one test (deleted after)."""
    from pairstream_resampler.store import BAR_COLUMNS, bar_record

    bars = minute_bars(stocked.bars, "ETHUSDT")
    async with connection(stocked.db) as conn:
        await conn.copy_records_to_table("bars", records=[bar_record(b) for b in bars],
                                         columns=list(BAR_COLUMNS))  # fmt: skip
    starts = [datetime.fromtimestamp(b.start / 1000, UTC) for b in bars]
    try:
        yield bars
    finally:
        async with connection(stocked.db) as conn:
            await conn.execute("DELETE FROM bars WHERE tf = '1m' AND symbol = 'ETHUSDT' "
                               "AND start = ANY($1::timestamptz[])", starts)  # fmt: skip


async def choose(page: Any, dropdown: str, label: str) -> None:
    """Picks the option ``label`` of a Dash dropdown."""
    await page.click(dropdown)
    await page.get_by_role("option", name=label, exact=True).click(timeout=10_000)


PAIR2 = "usdm:ETHUSDT-usdm:BTCUSDT"


@pytest.fixture
async def second_pair(stocked: Stocked) -> AsyncIterator[AnalyticsSettings]:
    """A second configured pair for one test: the stocked pair's analytics copied under
    ``PAIR2`` with the z-score negated (deleted after); the analytics settings naming both."""
    tables = ("analytics_spread", "analytics_zscore", "analytics_stats")
    async with connection(stocked.db) as conn:
        for table in tables:
            await conn.execute(f"CREATE TEMP TABLE copied AS SELECT * FROM {table} "
                               "WHERE pair = $1", PAIR)  # fmt: skip
            await conn.execute("UPDATE copied SET pair = $1", PAIR2)
            if table == "analytics_zscore":
                await conn.execute("UPDATE copied SET zscore = -zscore")
            await conn.execute(f"INSERT INTO {table} SELECT * FROM copied")
            await conn.execute("DROP TABLE copied")
    try:
        yield stocked.analytics.model_copy(update={"pairs": (PAIR, PAIR2)})
    finally:
        async with connection(stocked.db) as conn:
            for table in tables:
                await conn.execute(f"DELETE FROM {table} WHERE pair = $1", PAIR2)


async def test_changing_instrument_tf_method_and_pair_redraws_what_they_name_and_the_url(
    new_page: Any, stocked: Stocked, minute: list[Bar], second_pair: AnalyticsSettings,
    endpoints: Endpoints,
) -> None:  # fmt: skip
    redis = RedisSettings(REDIS_URL=endpoints.redis_url)
    async with (
        serving(stocked.db, stocked.kafka, stocked.topics, second_pair, redis) as server,
        dashboard(server.url) as url,
        new_page(url) as p,
        server.client() as client,
    ):
        await p.open("/?instrument=usdm:BTCUSDT&tf=1s")
        await drawn(p.page, "#market-candles", at_least=100)
        btc = await p.page.evaluate(TRACE, ["#market-candles", 0])
        await choose(p.page, "#market-instrument", "usdm:ETHUSDT")
        await p.page.wait_for_function(
            "([t, btc]) => { const d = (" + TRACE + ")(['#market-candles', 0]); "
            "return d && d.close && d.close[0] !== btc; }", arg=[None, btc["close"][0]],
            polling=50, timeout=15_000)  # fmt: skip
        eth = await p.page.evaluate(TRACE, ["#market-candles", 0])
        eth_bars = [b.close for b in stocked.bars if b.symbol == "ETHUSDT"]
        assert eth["close"] == eth_bars[-len(eth["close"]) :]  # ETH's closes, newest last
        await in_url(p.page, "instrument=usdm%3AETHUSDT")
        await choose(p.page, "#market-tf", "1m")
        await p.page.wait_for_function(
            "(n) => { const d = (" + TRACE + ")(['#market-candles', 0]); "
            "return d && d.close && d.close.length === n; }", arg=len(minute), polling=50,
            timeout=15_000)  # fmt: skip
        drawn_minutes = await p.page.evaluate(TRACE, ["#market-candles", 0])
        assert drawn_minutes["close"] == [b.close for b in minute]
        assert drawn_minutes["x"] == [b.start for b in minute]
        await in_url(p.page, "tf=1m")

        await p.open(f"/pair?pair={PAIR}&tf=1s&method=ols")
        await drawn(p.page, "#pair-zscore", at_least=100)
        ols = await p.page.evaluate(TRACE, ["#pair-zscore", 0])
        await choose(p.page, "#pair-method", "kalman")
        await p.page.wait_for_function(
            "(first) => { const d = (" + TRACE + ")(['#pair-zscore', 0]); "
            "return d && d.y && d.y.length && d.y[d.y.length - 1] !== first; }",
            arg=ols["y"][-1], polling=50, timeout=15_000)  # fmt: skip
        kalman = await p.page.evaluate(TRACE, ["#pair-zscore", 0])
        page = (await client.get(f"/api/v1/analytics/{PAIR}", params={
            "tf": "1s", "method": "kalman", "limit": 10_000})).json()  # fmt: skip
        want = [a["zscore"] for a in page["items"] if a["zscore"] is not None]
        assert kalman["y"] == want[-len(kalman["y"]) :]  # the Kalman z-scores
        await in_url(p.page, "method=kalman")

        await p.page.click("#pair-pair")
        await p.page.get_by_role("option", name=PAIR2).click(timeout=10_000)
        await p.page.wait_for_function(
            "(first) => { const d = (" + TRACE + ")(['#pair-zscore', 0]); "
            "return d && d.y && d.y.length && d.y[d.y.length - 1] === first; }",
            arg=-kalman["y"][-1], polling=50, timeout=15_000)  # fmt: skip
        other = await p.page.evaluate(TRACE, ["#pair-zscore", 0])
        assert other["y"] == [-z for z in kalman["y"]]  # the other pair's z-scores
        legs = await p.page.evaluate(TRACE, ["#pair-legs", 0])
        assert legs is not None
        await in_url(p.page, "pair=usdm%3AETHUSDT-usdm%3ABTCUSDT")
        assert p.errors == []
