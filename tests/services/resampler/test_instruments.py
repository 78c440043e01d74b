"""Spot and USD-M BTCUSDT side by side: two instruments, two bar series, one basis pair.

The August 2024 recordings of spot and USD-M BTCUSDT overlap in time. Replayed
together through the real replay, resampler and analytics workers, they must give
two distinct bar series keyed ``spot:BTCUSDT`` and ``usdm:BTCUSDT``, each equal to
the batch aggregation of its own recorded trades (read here with plain ``json``),
and the pair ``spot:BTCUSDT-usdm:BTCUSDT`` streamed through analytics must equal
``pairstream analyze`` run on the two bar files exported from the table.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import math
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from pairstream.clock import SystemClock
from pairstream.codec import Codec
from pairstream.db import connection
from pairstream.kafka import MessageProducer, contract_topics, create_consumer, ensure_topics
from pairstream.messages import Bar, SpreadUpdate, StatsUpdate, TickRun, Trade, ZScoreUpdate
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.testing import eventually, unique
from pairstream_analytics.config import AnalyticsSettings
from pairstream_analytics.worker import AnalyticsWorker
from pairstream_ingest.main import run_replay
from pairstream_resampler.config import ResamplerSettings
from pairstream_resampler.worker import ResamplerWorker

FIXTURES = Path(__file__).parents[2] / "fixtures" / "binance"
RECORDINGS = {
    "spot:BTCUSDT": FIXTURES / "spot_BTCUSDT_20240808-09.jsonl.gz",
    "usdm:BTCUSDT": FIXTURES / "usdm_BTCUSDT_20240808.jsonl.gz",
}
PAIR = "spot:BTCUSDT-usdm:BTCUSDT"
TF_MS = {"1s": 1_000, "1m": 60_000, "5m": 300_000}
WINDOWS = {
    "ANALYTICS_HEDGE_WINDOW": "60",
    "ANALYTICS_ZSCORE_WINDOW": "20",
    "ANALYTICS_FLOW_WINDOW": "20",
    "ANALYTICS_STATS_WINDOW": "60",
    "ANALYTICS_TESTS_EVERY": "10",
}
MOVE_ON_MS = 400_000  # one more trade this long after a recording closes its every bar

Key = tuple[str, str, int]  # instrument, tf, start


def recorded_trades(path: Path) -> list[Trade]:
    """The trades of a frame file, read with plain json (no pairstream parsing)."""
    with gzip.open(path, "rt") as handle:
        frames = [json.loads(line)["data"] for line in handle if line.strip()]
    trades = {
        f["t"]: Trade(
            trade_id=f["t"],
            ts_event=f["T"],
            price=float(f["p"]),
            qty=float(f["q"]),
            is_buyer_maker=f["m"],
        )
        for f in frames
        if f["e"] == "trade"
    }
    return [trades[i] for i in sorted(trades)]


def move_on(name: str, trades: list[Trade]) -> TickRun:
    market, symbol = name.split(":")
    last = trades[-1]
    return TickRun(
        market=market,  # type: ignore[arg-type]
        symbol=symbol,
        source="replay",
        ts_ingest=0,
        trades=[
            Trade(
                trade_id=last.trade_id + 1,
                ts_event=last.ts_event + MOVE_ON_MS,
                price=last.price,
                qty=1.0,
                is_buyer_maker=False,
            )
        ],
    )


@asynccontextmanager
async def latest_bars(kafka: KafkaSettings, topics: TopicSettings) -> AsyncIterator[dict[Key, Bar]]:
    """The latest revision of every bar on the bar topics, by (instrument, tf, start)."""
    names = [topics.bars(tf) for tf in TF_MS]
    codec = Codec("bars", Bar)
    consumer = create_consumer(names, None, kafka)
    await consumer.start()
    bars: dict[Key, Bar] = {}

    async def pump() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    bar = codec.decode(record.value)
                    key = (bar.key, bar.tf, bar.start)
                    if key not in bars or bars[key].revision <= bar.revision:
                        bars[key] = bar

    task = asyncio.create_task(pump())
    try:
        yield bars
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


@asynccontextmanager
async def analytics_outputs(
    kafka: KafkaSettings, topics: TopicSettings
) -> AsyncIterator[dict[str, dict[tuple[int, str], Any]]]:
    """The latest spread, z-score and stats message per (ts, method)."""
    types = {topics.spread: SpreadUpdate, topics.zscore: ZScoreUpdate, topics.stats: StatsUpdate}
    codecs = {name: Codec(name, message) for name, message in types.items()}
    consumer = create_consumer(list(types), None, kafka)
    await consumer.start()
    out: dict[str, dict[tuple[int, str], Any]] = {name: {} for name in types}

    async def pump() -> None:
        while True:
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    message = codecs[tp.topic].decode(record.value)
                    assert message.pair == PAIR
                    out[tp.topic][(message.ts, message.method)] = message

    task = asyncio.create_task(pump())
    try:
        yield out
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()


async def stored_bars(db: DatabaseSettings) -> dict[Key, Any]:
    async with connection(db) as conn:
        rows = await conn.fetch(
            "SELECT market || ':' || symbol AS instrument, tf, "
            "(extract(epoch FROM start) * 1000)::bigint AS start_ms, * FROM bars WHERE final"
        )
    return {(r["instrument"], r["tf"], r["start_ms"]): _Row(r) for r in rows}


class _Row:
    def __init__(self, record: Any) -> None:
        self.__dict__.update(dict(record))


async def export_1s_bars(db: DatabaseSettings, name: str, path: Path) -> None:
    """The final 1s bars of one instrument as a bar CSV (what a user would export)."""
    market, symbol = name.split(":")
    async with connection(db) as conn:
        rows = await conn.fetch(
            "SELECT (extract(epoch FROM start) * 1000)::bigint AS start, tf, close, volume, "
            "quote_volume, buy_volume FROM bars WHERE market = $1 AND symbol = $2 "
            "AND tf = '1s' AND final ORDER BY start",
            market,
            symbol,
        )
    columns = ("close", "volume", "quote_volume", "buy_volume")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start", "tf", *columns])
        for r in rows:
            writer.writerow([r["start"], r["tf"], *(repr(r[c]) for c in columns)])  # exact floats


def same(a: float | None, b: Any) -> bool:
    missing = b is None or (isinstance(b, float) and math.isnan(b))
    return (a is None and missing) if (a is None or missing) else a == b


async def test_spot_and_usdm_btcusdt_replayed_together_are_two_series_and_one_basis_pair(
    tmp_path: Path,
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    db_settings: DatabaseSettings,
    batch: Callable[..., dict[int, Any]],
    bars_equal: Callable[..., None],
) -> None:
    trades = {name: recorded_trades(path) for name, path in RECORDINGS.items()}
    expected = {
        (name, tf, start): bar
        for name, of in trades.items()
        for tf, span in TF_MS.items()
        for start, bar in batch(of, span).items()
    }
    await ensure_topics(contract_topics(topic_settings), kafka_settings)
    stats = await run_replay(
        list(RECORDINGS.values()), speed=None, kafka=kafka_settings, topics=topic_settings
    )
    assert stats.per_symbol == {"spot:BTCUSDT": 19_904, "usdm:BTCUSDT": 21_313}
    async with MessageProducer(kafka_settings) as producer:
        for name, of in trades.items():
            await producer.send(topic_settings.ticks, move_on(name, of))

    resampler = ResamplerWorker(
        ResamplerSettings(
            group_id=unique("resampler"), metrics_port=0, checkpoint_interval_s=0.2,
            idle_after_s=1.0,
            session_timeout_s=3.0, rebalance_timeout_s=3.0, heartbeat_interval_s=0.5,
        ),
        kafka=kafka_settings, topics=topic_settings, db=db_settings,
    )  # fmt: skip
    windows = {k.removeprefix("ANALYTICS_").lower(): int(v) for k, v in WINDOWS.items()}
    analytics = AnalyticsWorker(
        AnalyticsSettings(
            group_id=unique("analytics"), metrics_port=0, pairs=PAIR, timeframes="1s",
            scan_interval_s=0, rebuild_wait_s=5, session_timeout_s=3.0,
            heartbeat_interval_s=0.5, **windows,
        ),
        SystemClock(), kafka=kafka_settings, topics=topic_settings, db=db_settings,
    )  # fmt: skip
    await resampler.start()
    worker = asyncio.create_task(analytics.run())
    try:
        async with (
            latest_bars(kafka_settings, topic_settings) as bars,
            analytics_outputs(kafka_settings, topic_settings) as outputs,
        ):

            def all_final() -> bool:
                missing = [k for k in expected if k not in bars or not bars[k].final]
                assert not missing, (len(missing), sorted(missing)[:5], len(bars))
                return True

            await eventually(all_final, timeout=120)
            in_recording = {k: b for k, b in bars.items() if k in expected}
            bars_equal(in_recording, expected)
            spot = {k[2] for k in expected if k[0] == "spot:BTCUSDT" and k[1] == "1s"}
            usdm = {k[2] for k in expected if k[0] == "usdm:BTCUSDT" and k[1] == "1s"}
            assert len(spot & usdm) > 300  # the two series overlap in time...
            some = min(spot & usdm)  # ...and are distinct series
            assert bars[("spot:BTCUSDT", "1s", some)] != bars[("usdm:BTCUSDT", "1s", some)]

            async def all_stored() -> dict[Key, Any]:
                rows = {k: b for k, b in (await stored_bars(db_settings)).items() if k in expected}
                assert len(rows) == len(expected), (len(rows), len(expected))
                return rows

            bars_equal(await eventually(all_stored, timeout=60), expected)

            async def move_on_bars_final() -> bool:
                # the bars of the trades after the recordings: final once the idle clock moves
                moved = {
                    (n, "1s", (t[-1].ts_event + MOVE_ON_MS) // 1000 * 1000)
                    for n, t in trades.items()
                }
                assert moved <= set(await stored_bars(db_settings)), moved
                return True

            await eventually(move_on_bars_final, timeout=60)

            files = []
            for name in ("spot:BTCUSDT", "usdm:BTCUSDT"):
                files.append(tmp_path / f"{name.replace(':', '_')}_1s.csv")
                await export_1s_bars(db_settings, name, files[-1])
            out = tmp_path / "analyze.csv"
            env = {**os.environ, **WINDOWS}
            await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "pairstream", "analyze", "--bars", str(files[0]),
                 "--bars", str(files[1]), "--out", str(out)],
                env=env, check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            want = pd.read_csv(out)
            assert want["ts"].nunique() > 600  # the overlap, then usdm carried to its last bar
            spreads = outputs[topic_settings.spread]

            def every_spread() -> bool:
                if worker.done():
                    import traceback

                    traceback.print_exception(worker.exception())
                    worker.result()
                assert len(spreads) >= len(want), (len(spreads), len(want))
                return True

            await eventually(every_spread, timeout=120)
            assert len(spreads) == len(want)
            zscores, stats_out = outputs[topic_settings.zscore], outputs[topic_settings.stats]
            for row in want.itertuples(index=False):
                key = (int(row.ts), str(row.method))
                s = spreads[key]
                assert (s.hedge_ratio, s.intercept, s.spread) == (
                    row.hedge_ratio, row.intercept, row.spread,
                ), key  # fmt: skip
                for field in ("correlation", "adf_pvalue", "half_life", "coint_pvalue"):
                    assert same(getattr(stats_out[key], field), getattr(row, field)), (key, field)
                if key in zscores:
                    assert same(zscores[key].zscore, row.zscore), key
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await resampler.stop()
