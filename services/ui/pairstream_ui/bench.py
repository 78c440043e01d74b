"""``pairstream bench ui``: the dashboard in Debian's headless Chromium (Playwright with
``executable_path``), against the real API on the embedded infrastructure, over a pair of
synthetic 1s bars whose analytics the real analytics worker computed.

* **Navigation → first drawn**: the Market page's first candle and the Pair page's first
  z-score, in a cold browser (nothing cached: plotly.js compiled first) and warm (the
  median of a few navigations), beside the System page's first table (no chart: the
  baseline).
* **Live**: ``ticks`` new points of every Pair chart published to Kafka, ``spacing_s``
  apart: each point's delay from its WebSocket message (and from its Kafka record) to
  the frame that drew it, p50/p95, and the bytes of WebSocket frames per tick.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import shutil
import statistics
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson

from pairstream.clock import SystemClock
from pairstream.db import connection
from pairstream.db.migrate import migrate
from pairstream.kafka import MessageProducer, contract_topics, ensure_topics
from pairstream.messages import Bar, Message, SpreadUpdate, StatsUpdate, ZScoreUpdate
from pairstream.settings import DatabaseSettings, KafkaSettings, RedisSettings, TopicSettings
from pairstream.status import percentile
from pairstream.testing import eventually, served, topics_under, unique

TARGET_FIRST_MS = 2_000.0
TARGET_P95_MS = 500.0
TARGET_BYTES_PER_TICK = 5_000
PAIR = "usdm:BTCUSDT-usdm:ETHUSDT"
T0 = 1_760_000_000_000
BROWSER_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic", "--window-size=1440,1000",
]  # fmt: skip
#: the points of a chart's first trace
POINTS = """(id) => { const g = document.querySelector(id + ' .js-plotly-plot');
    return g && g.data && g.data[0] && g.data[0].x ? g.data[0].x.length : 0; }"""
CHARTS = ("zscore", "legs", "spread", "hedge", "correlation")


@dataclass(frozen=True, slots=True)
class UiBench:
    bars: int
    ticks: int
    first_candle_cold_ms: float
    first_candle_warm_ms: float
    first_zscore_cold_ms: float
    first_zscore_warm_ms: float
    system_table_warm_ms: float
    ws_to_drawn_p50_ms: float
    ws_to_drawn_p95_ms: float
    kafka_to_drawn_p50_ms: float
    kafka_to_drawn_p95_ms: float
    points_timed: int
    bytes_per_tick: float
    cpus: int
    python: str
    targets: dict[str, bool] = field(default_factory=dict)

    def as_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def chromium() -> str:
    """Debian's chromium, or a clear error."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("no chromium: `apt-get install -y --no-install-recommends chromium "
                           "chromium-driver fonts-dejavu-core` (as root)")  # fmt: skip
    return path


def synthetic_bars(n: int, seed: int = 20261203) -> list[Bar]:
    """``n`` 1s bars of a cointegrated pair: ETH a random walk, BTC 20 times it plus
    mean-reverting noise; seeded, so every run draws the same."""
    rng = np.random.default_rng(seed)
    x = 3_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, n)))
    noise = np.zeros(n)
    for i in range(1, n):
        noise[i] = 0.9 * noise[i - 1] + rng.normal(0, 15)
    y = 20 * x + noise
    out = []
    for symbol, closes in (("BTCUSDT", y), ("ETHUSDT", x)):
        for i, close in enumerate(closes):
            c, start = float(close), T0 + i * 1000
            out.append(Bar(
                market="usdm", symbol=symbol, tf="1s", start=start, open=c, high=c * 1.0001,
                low=c * 0.9999, close=c, volume=1.0, quote_volume=c, trades=3, vwap=c,
                buy_volume=0.5, first_trade_id=i * 3 + 1, last_trade_id=i * 3 + 3, final=True,
                ts_event=start + 999, ts_init=start + 1000,
            ))  # fmt: skip
    return sorted(out, key=lambda b: (b.start, b.symbol))


def tick(topics: TopicSettings, pair: str, last: dict[str, Bar], ts: int,
         i: int) -> list[tuple[str, Message]]:  # fmt: skip
    """One new 1s point of every chart of the Pair page (OLS): both legs' bars (moved from
    ``last``, by symbol), the spread, the z-score and the stats; z = 2.5·sin(i/3)."""
    out: list[tuple[str, Message]] = []
    for symbol, bar in last.items():
        c = bar.close * (1 + 1e-4 * math.sin(i))
        out.append((topics.bars("1s"), Bar(
            market="usdm", symbol=symbol, tf="1s", start=ts, open=c, high=c, low=c, close=c,
            volume=1.0, quote_volume=c, trades=1, vwap=c, buy_volume=0.5,
            first_trade_id=10**9 + i, last_trade_id=10**9 + i, final=True, ts_event=ts + 999,
            ts_init=ts + 1000,
        )))  # fmt: skip
    z = 2.5 * math.sin(i / 3)
    common = {"pair": pair, "tf": "1s", "ts": ts, "ts_event": ts + 999, "ts_init": ts + 1000}
    out.append((topics.spread, SpreadUpdate(method="ols", hedge_ratio=13.0 + i / 100,
                                            intercept=1.0, spread=z, **common)))  # type: ignore[arg-type]  # fmt: skip
    out.append((topics.zscore, ZScoreUpdate(method="ols", window=20, spread=z, mean=0.0,
                                            std=1.0, zscore=z, **common)))  # type: ignore[arg-type]  # fmt: skip
    out.append((topics.stats, StatsUpdate(method="ols", correlation=0.5, adf_stat=-3.0,
                                          adf_pvalue=0.01, half_life=8.0, **common)))  # type: ignore[arg-type]  # fmt: skip
    return out


@asynccontextmanager
async def stocked(db: DatabaseSettings, kafka: KafkaSettings, topics: TopicSettings,
                  bars: list[Bar]) -> AsyncIterator[Any]:  # fmt: skip
    """The bars in ``db`` and their analytics by the real worker (through Kafka); the
    worker's settings. The schema is dropped afterwards."""
    from pairstream_analytics.config import AnalyticsSettings
    from pairstream_analytics.worker import AnalyticsWorker
    from pairstream_resampler.store import BAR_COLUMNS, bar_record

    settings = AnalyticsSettings(
        group_id=unique("bench-ui"), metrics_port=0, pairs=PAIR, timeframes="1s",
        methods="ols,kalman", scan_interval_s=0, hedge_window=60, zscore_window=20,
        flow_window=20, stats_window=60, tests_every=10,
    )  # fmt: skip
    try:
        async with connection(db) as conn:
            await migrate(conn, db)
            await conn.copy_records_to_table("bars", records=[bar_record(b) for b in bars],
                                             columns=list(BAR_COLUMNS))  # fmt: skip
        await ensure_topics(contract_topics(topics), kafka)
        worker = AnalyticsWorker(settings, SystemClock(), kafka=kafka, topics=topics, db=db)
        task = asyncio.create_task(worker.run())
        try:
            await eventually(lambda: worker.ready or task.done(), timeout=60)
            async with MessageProducer(kafka) as producer:
                await asyncio.gather(*[await producer.send(topics.bars("1s"), b) for b in bars])
            last = max(b.start for b in bars)

            async def analysed() -> bool:
                async with connection(db) as conn:
                    n = await conn.fetchval("SELECT count(*) FROM analytics_stats WHERE "
                                            "method = 'ols' AND ts = to_timestamp($1)",
                                            last / 1000)  # fmt: skip
                    return bool(n)

            done: bool = await eventually(analysed, timeout=300)
            assert done
        finally:
            if task.done():
                task.result()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        yield settings
    finally:
        async with connection(db) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{db.schema_name}" CASCADE')


async def _first_drawn(page: Any, path: str, chart: str) -> float:
    """Milliseconds from navigating to ``path`` to ``chart`` drawing its first point."""
    await page.goto(path)
    await page.wait_for_function(f"(id) => ({POINTS})(id) > 0", arg=chart, polling=20,
                                 timeout=60_000)  # fmt: skip
    return float(await page.evaluate("performance.now()"))


async def bench_ui(
    bars: int = 600, ticks: int = 30, spacing_s: float = 0.5, warm_runs: int = 5,
    db: DatabaseSettings | None = None, kafka: KafkaSettings | None = None,
    redis: RedisSettings | None = None,
) -> UiBench:  # fmt: skip
    """Run everything (embedded infrastructure must be up, or addresses configured); the
    database gets a schema of its own, dropped afterwards."""
    from playwright.async_api import async_playwright

    from pairstream.cache import redis_url
    from pairstream.infra import resolve_endpoint
    from pairstream_api.config import ApiSettings
    from pairstream_api.main import create_app as api_app

    from .app import create_app
    from .config import UiSettings

    executable = chromium()
    db = (db or DatabaseSettings()).model_copy(update={"schema_name": unique("bench_ui")})
    db = db.model_copy(update={"url": db.url or resolve_endpoint("postgres")})
    kafka = kafka or KafkaSettings()
    kafka = kafka.model_copy(update={"bootstrap": kafka.bootstrap or resolve_endpoint("kafka")})
    redis = redis or RedisSettings(REDIS_URL=redis_url())
    topics = topics_under(unique("bench-ui"))
    history = synthetic_bars(bars)
    async with stocked(db, kafka, topics, history) as analytics:
        api = api_app(ApiSettings(port=0, rate_limit="100000000/minute"), db=db, kafka=kafka,
                      topics=topics, redis=redis, analytics_settings=analytics)  # fmt: skip
        async with served(api) as api_url:
            ui = create_app(UiSettings(api_url=api_url, port=0, points=bars))
            async with served(ui.server) as url, async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=executable,
                                                           args=BROWSER_FLAGS)  # fmt: skip
                try:
                    return await _measure(browser, url, kafka, topics, history, bars, ticks,
                                          spacing_s, warm_runs)  # fmt: skip
                finally:
                    await browser.close()
    raise AssertionError("unreachable")  # pragma: no cover


async def _measure(browser: Any, url: str, kafka: KafkaSettings, topics: TopicSettings,
                   history: list[Bar], bars: int, ticks: int, spacing_s: float,
                   warm_runs: int) -> UiBench:  # fmt: skip
    context = await browser.new_context(viewport={"width": 1440, "height": 1000})
    page = await context.new_page()
    candle = await _first_drawn(page, f"{url}/?instrument=usdm:BTCUSDT&tf=1s", "#market-candles")
    pair_path = f"{url}/pair?pair={PAIR}&tf=1s&method=ols"
    cold = await _first_drawn(page, pair_path, "#pair-zscore")
    warm, system, candles = [], [], []
    for _ in range(warm_runs):
        candles.append(await _first_drawn(page, f"{url}/?instrument=usdm:BTCUSDT&tf=1s",
                                          "#market-candles"))  # fmt: skip
        warm.append(await _first_drawn(page, pair_path, "#pair-zscore"))
        await page.goto(f"{url}/system")
        await page.wait_for_selector("#system-table", timeout=60_000)
        system.append(float(await page.evaluate("performance.now()")))
    await _first_drawn(page, pair_path, "#pair-zscore")
    before = {c: int(await page.evaluate(POINTS, f"#pair-{c}")) for c in CHARTS}
    await page.wait_for_function(
        "window.pairstreamLive && window.pairstreamLive.wanted.size === 4 && "
        "[...window.pairstreamLive.wanted].every(n => (window.pairstreamLive.channels.get(n)"
        " || {seq: null}).seq !== null)", polling=50, timeout=30_000)  # fmt: skip
    start = await page.evaluate("JSON.stringify(window.pairstreamLive.stats)")
    last = {b.symbol: b for b in history[-2:]}
    newest = max(b.start for b in history)
    async with MessageProducer(kafka) as producer:
        for i in range(ticks):
            for topic, message in tick(topics, PAIR, last, newest + (i + 1) * 1000, i):
                await producer.send(topic, message)
            await producer.flush()
            await asyncio.sleep(spacing_s)
    await page.wait_for_function(f"(n) => ({POINTS})('#pair-zscore') >= n",
                                 arg=min(before["zscore"] + ticks, bars), polling=50,
                                 timeout=30_000)  # fmt: skip
    await page.wait_for_timeout(300)  # the last frames' timings recorded
    stats = await page.evaluate("window.pairstreamLive.stats")
    began = orjson.loads(start)
    from_ws = sorted(stats["fromArrival"][len(began["fromArrival"]) :])
    from_kafka = sorted(stats["fromKafka"][len(began["fromKafka"]) :])
    per_tick = (stats["bytes"] - began["bytes"]) / ticks
    await context.close()
    first_warm, candle_warm = statistics.median(warm), statistics.median(candles)
    return UiBench(
        bars=bars, ticks=ticks, first_candle_cold_ms=round(candle, 1),
        first_candle_warm_ms=round(candle_warm, 1),
        first_zscore_cold_ms=round(cold, 1), first_zscore_warm_ms=round(first_warm, 1),
        system_table_warm_ms=round(statistics.median(system), 1),
        ws_to_drawn_p50_ms=round(percentile(from_ws, 0.5), 1),
        ws_to_drawn_p95_ms=round(percentile(from_ws, 0.95), 1),
        kafka_to_drawn_p50_ms=round(percentile(from_kafka, 0.5), 1),
        kafka_to_drawn_p95_ms=round(percentile(from_kafka, 0.95), 1),
        points_timed=len(from_ws), bytes_per_tick=round(per_tick, 1),
        cpus=os.cpu_count() or 1, python=platform.python_version(),
        targets={
            f"first z-score ≤ {TARGET_FIRST_MS:,.0f} ms after navigation (warm)":
                first_warm <= TARGET_FIRST_MS,
            f"first candle ≤ {TARGET_FIRST_MS:,.0f} ms after navigation (warm)":
                candle_warm <= TARGET_FIRST_MS,
            f"first candle ≤ {TARGET_FIRST_MS:,.0f} ms after navigation (cold browser)":
                candle <= TARGET_FIRST_MS,
            f"WebSocket message → drawn p95 ≤ {TARGET_P95_MS:g} ms":
                bool(from_ws) and percentile(from_ws, 0.95) <= TARGET_P95_MS,
            f"≤ {TARGET_BYTES_PER_TICK:,} bytes per tick (a point on every Pair chart)":
                per_tick <= TARGET_BYTES_PER_TICK,
        },
    )  # fmt: skip
