"""Live points in the browser: messages on the API's topics, through the API's WebSocket
and the dashboard's relay, appended to the Pair page's charts — weighed, and timed (the
times are printed, not asserted: they depend on the machine)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from pairstream.kafka import MessageProducer
from pairstream.status import percentile
from pairstream_ui.bench import tick

from ..conftest import PAIR, Stocked
from .test_pages import drawn, points

TICKS = 20
CHARTS = ("zscore", "legs", "spread", "hedge", "correlation")
SPACING_S = 0.5  # twice the 1s bars' cadence


async def test_live_points_reach_every_pair_chart_in_order_within_the_targets(
    ui: tuple[Any, str], new_page: Any, stocked: Stocked, artifacts: Path, clean_cache: None,
) -> None:  # fmt: skip
    _, url = ui
    async with new_page(url) as p:
        await p.open("/?instrument=usdm:BTCUSDT&tf=1s")
        await drawn(p.page, "#market-candles")
        first_candle_ms = await p.page.evaluate("performance.now()")
        await p.open(f"/pair?pair={PAIR}&tf=1s&method=ols")
        await drawn(p.page, "#pair-zscore")
        first_z_ms = await p.page.evaluate("performance.now()")
        before = {c: await drawn(p.page, f"#pair-{c}") for c in CHARTS}
        await p.page.wait_for_function("window.pairstreamLive?.status === 'live'", polling=50)
        await p.page.wait_for_function(  # the page's channels subscribed, snapshots in
            "window.pairstreamLive.wanted.size === 4 && [...window.pairstreamLive.wanted]"
            ".every(n => (window.pairstreamLive.channels.get(n) || {seq: null}).seq !== null)",
            polling=50,
        )
        start_stats = await p.page.evaluate("JSON.stringify(window.pairstreamLive.stats)")
        base = max(b.start for b in stocked.bars)
        last = {b.symbol: b for b in stocked.bars[-2:]}
        sent = []
        async with MessageProducer(stocked.kafka) as producer:
            for i in range(TICKS):
                ts = base + (i + 1) * 1000
                for topic, message in tick(stocked.topics, PAIR, last, ts, i):
                    await producer.send(topic, message)
                await producer.flush()
                sent.append(2.5 * math.sin(i / 3))
                await asyncio.sleep(SPACING_S)
        await p.page.wait_for_function(
            "(n) => document.querySelector('#pair-zscore .js-plotly-plot').data[0].x.length "
            ">= n", arg=before["zscore"] + TICKS, polling=50, timeout=20_000)  # fmt: skip
        await p.shot(artifacts, "pair-live")
        zs = await p.page.evaluate(
            f"document.querySelector('#pair-zscore .js-plotly-plot').data[0].y.slice(-{TICKS})"
        )
        assert zs == pytest.approx(sent)  # every point, in order, once
        for chart in CHARTS:
            assert await points(p.page, f"#pair-{chart}") == before[chart] + TICKS, chart
        stats = await p.page.evaluate("window.pairstreamLive.stats")
        assert stats["gaps"] == 0
        assert p.errors == []
    start = orjson.loads(start_stats)
    from_kafka = sorted(stats["fromKafka"][len(start["fromKafka"]) :])
    from_ws = sorted(stats["fromArrival"][len(start["fromArrival"]) :])
    draws = sorted(stats["drawMs"][len(start["drawMs"]) :])
    per_tick = (stats["bytes"] - start["bytes"]) / TICKS
    print(
        f"first candle {first_candle_ms:.0f} ms (cold browser), first z-score "
        f"{first_z_ms:.0f} ms after navigation; WebSocket message → drawn p50 "
        f"{percentile(from_ws, 0.5):.0f} ms, p95 {percentile(from_ws, 0.95):.0f} ms; Kafka "
        f"record → drawn p50 {percentile(from_kafka, 0.5):.0f} ms, p95 "
        f"{percentile(from_kafka, 0.95):.0f} ms over {len(from_ws)} points; a frame's drawing "
        f"p50 {percentile(draws, 0.5):.0f} ms; {per_tick:.0f} bytes per tick (one point on "
        "each chart)"
    )
    assert len(from_ws) >= 5 * TICKS  # every point was timed
    assert per_tick <= 5000  # the weight of an update; its times are figures, not a test
