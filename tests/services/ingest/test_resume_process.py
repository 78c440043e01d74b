"""A ``pairstream ingest`` process SIGKILLed mid-stream and restarted resumes where ``ticks`` ends.

The local fake Binance plays the July recording (24,356 trades, BTCUSDT and
ETHUSDT) at an accelerated pace and keeps playing while the ingest is down.
After the restart the ingest reads the last published trade id of each
instrument back from ``ticks`` and backfills the ids since over REST:

* ``@trade`` with an API key: exact trades (``historicalTrades``). Asserted:
  the trade ids in ``ticks`` are exactly the recorded ids, each once, with the
  recorded price, quantity and side; the ones missed while down are
  ``source=backfill``.
* ``@trade`` without a key: aggregates (``aggTrades``) fill the missed ids.
  Asserted: the id ranges in ``ticks`` (one id per live trade, ``first..last``
  per backfilled aggregate) tile each symbol's recorded ids without a hole or
  an overlap, and each symbol's total quantity equals the recording's exactly.
* ``@aggTrade``: the same, every message being an aggregate.

In every case the restarted process logs where it resumed, and that id is the
highest one the killed process had published.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from pairstream.codec import Codec
from pairstream.kafka import contract_topics, create_consumer, ensure_topics
from pairstream.messages import TickRun
from pairstream.settings import KafkaSettings, TopicSettings
from pairstream.testing import ServiceProcess, eventually
from pairstream_ingest.fake_binance import FakeBinance, read_lines
from pairstream_ingest.sequencer import decimal_qty, span

FRAMES = (
    Path(__file__).parents[2]
    / "fixtures"
    / "binance"
    / "usdm_BTC+ETH_20240718-19.interleaved.jsonl.gz"
)
LINES = read_lines(FRAMES)

#: the fake plays ~1,000 frames/s: the recording lasts ~25 s, the ingest is down 10 s of it
BATCH, INTERVAL_S = 10, 0.01
KILL_AFTER_TRADES = 3_000
DOWN_S = 10.0


def _recorded_trades() -> dict[tuple[str, int], tuple[str, str, bool]]:
    out = {}
    for line in LINES:
        d = orjson.loads(line)["data"]
        out[(d["s"], d["t"])] = (d["p"], d["q"], d["m"])
    return out


def _recorded() -> dict[str, tuple[int, int, Decimal]]:
    """First id, last id and total quantity of each symbol in the recording."""
    ids: dict[str, list[int]] = defaultdict(list)
    qty: dict[str, Decimal] = defaultdict(Decimal)
    for (symbol, tid), (_, q, _) in _recorded_trades().items():
        ids[symbol].append(tid)
        qty[symbol] += Decimal(q)
    return {s: (min(v), max(v), qty[s]) for s, v in ids.items()}


RECORDED = _recorded()


@dataclass
class Collected:
    """Every run read from ``ticks`` so far, by a consumer that keeps reading."""

    runs: list[TickRun] = field(default_factory=list)
    top: dict[str, int] = field(default_factory=dict)
    trades: int = 0

    def complete(self) -> bool:
        return all(self.top.get(s, 0) >= last for s, (_, last, _) in RECORDED.items())


async def collect(kafka: KafkaSettings, topics: TopicSettings, into: Collected) -> None:
    codec = Codec(topics.ticks, TickRun)
    consumer = create_consumer([topics.ticks], None, kafka)
    await consumer.start()
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    run = codec.decode(record.value)
                    into.runs.append(run)
                    into.trades += len(run.trades)
                    into.top[run.symbol] = max(into.top.get(run.symbol, 0), span(run.trades[-1])[1])
    finally:
        await consumer.stop()


def alive(process: ServiceProcess) -> bool:
    assert process.proc.poll() is None, process.output()
    return True


def ingest_env(
    fake: FakeBinance, kafka: KafkaSettings, topics: TopicSettings, **ingest: object
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INGEST_", "TOPIC_"))}
    env.update(
        {
            "KAFKA_BOOTSTRAP": str(kafka.bootstrap),
            "TOPIC_TICKS": topics.ticks,
            "TOPIC_DEAD_LETTER": topics.dead_letter,
            "LOG_LEVEL": "INFO",
        }
    )
    settings: dict[str, object] = {
        "source": "binance", "ws_url": fake.ws_url, "rest_url": fake.rest_url,
        "symbols": "BTCUSDT,ETHUSDT", "metrics_port": 0, "silent_after_s": 30,
        "gap_grace_s": 0.2, "gap_retry_s": 0.2, "control_rate": 50, **ingest,
    }  # fmt: skip
    env.update({f"INGEST_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@pytest.mark.parametrize(
    ("stream", "api_key"),
    [("trade", "k3y"), ("trade", None), ("aggTrade", None)],
    ids=["trade-exact-backfill", "trade-aggregate-backfill", "aggTrade"],
)
async def test_ingest_killed_and_restarted_backfills_every_trade_it_missed(
    stream: str,
    api_key: str | None,
    kafka_settings: KafkaSettings,
    topic_settings: TopicSettings,
    tmp_path: Path,
) -> None:
    fake = FakeBinance(LINES, batch=BATCH, interval_s=INTERVAL_S, api_keys=frozenset({"k3y"}))
    extra = {"stream": stream} | ({"api_key": api_key} if api_key else {})
    got = Collected()
    produced = {topic_settings.ticks, topic_settings.dead_letter}
    await ensure_topics([t for t in contract_topics(topic_settings) if t.name in produced],
                        kafka_settings)  # fmt: skip
    async with fake:
        env = ingest_env(fake, kafka_settings, topic_settings, **extra)
        reader = asyncio.create_task(collect(kafka_settings, topic_settings, got))
        first = ServiceProcess("ingest", env, tmp_path / "first.log")
        second: ServiceProcess | None = None
        try:
            await eventually(lambda: alive(first) and fake.subscribed.is_set(), timeout=60)
            fake.play()
            await eventually(lambda: got.trades >= KILL_AFTER_TRADES, timeout=60)
            first.kill()
            killed_ms = int(time.time() * 1000)
            killed_at_frame = fake.cursor
            await asyncio.sleep(DOWN_S)
            restarted = time.monotonic()
            restarted_at_frame = fake.cursor
            second = ServiceProcess("ingest", env, tmp_path / "second.log")
            later = second
            await eventually(
                lambda: alive(later) and got.complete(), timeout=120, what="every id in ticks"
            )
            completed_s = time.monotonic() - restarted
            await asyncio.sleep(1.0)  # anything published twice would show up now
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            first.stop()
            if second is not None:
                assert second.stop() == 0, second.output()
    log = second.output()
    assert "Traceback" not in log, log
    after = [r for r in got.runs if r.ts_ingest > killed_ms]
    assert any(r.source == "live" for r in after), "the restart came after the market ended"
    assert restarted_at_frame > killed_at_frame  # trades happened while it was down

    # where it resumed: the highest id the killed process had published, per symbol
    before = defaultdict(int)
    for run in got.runs:
        if run.ts_ingest <= killed_ms:
            before[run.symbol] = max(before[run.symbol], span(run.trades[-1])[1])
    resumed = {
        m["symbol"]: int(m["id"])
        for m in re.finditer(r"usdm:(?P<symbol>\w+): resuming after trade id (?P<id>\d+)", log)
    }
    assert resumed == dict(before), log

    backfilled = assert_each_id_once(got.runs, exact=api_key is not None and stream == "trade")
    assert sum(backfilled.values()) > 0
    if api_key is not None:
        assert fake.rest_calls["historicalTrades"] > 0
        assert fake.rest_calls["aggTrades"] == 0
    else:
        assert fake.rest_calls["aggTrades"] > 0
    print(
        f"\n{stream} key={api_key}: {len(LINES)} recorded trades, {got.trades} trade messages "
        f"in ticks ({sum(len(r.trades) for r in got.runs if r.source == 'backfill')} backfilled, "
        f"covering {sum(backfilled.values())} ids); killed at frame {killed_at_frame}, "
        f"restarted at frame {restarted_at_frame}; everything in ticks {completed_s:.1f} s "
        f"after the restart; resumed {resumed}"
    )
    for line in log.splitlines():
        if "resume scan" in line or "backfilled" in line or "subscribed to" in line:
            print(line)


def assert_each_id_once(runs: list[TickRun], exact: bool) -> dict[str, int]:
    """Each symbol's recorded ids tiled once, quantity conserved; returns backfilled ids."""
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    qty: dict[str, Decimal] = defaultdict(Decimal)
    backfilled: dict[str, int] = defaultdict(int)
    recorded = _recorded_trades() if exact else {}
    for run in runs:
        assert run.source in ("live", "backfill")
        for trade in run.trades:
            lo, hi = span(trade)
            spans[run.symbol].append((lo, hi))
            qty[run.symbol] += decimal_qty(trade.qty)
            if run.source == "backfill":
                backfilled[run.symbol] += hi - lo + 1
            if exact:
                assert trade.first_trade_id is None
                p, q, m = recorded[(run.symbol, trade.trade_id)]
                assert (trade.price, trade.qty, trade.is_buyer_maker) == (float(p), float(q), m)
    for symbol, (first, last, total) in RECORDED.items():
        got = sorted(spans[symbol])
        assert got[0][0] == first, symbol
        assert got[-1][1] == last, symbol
        for (_, prev_hi), (lo, _) in itertools.pairwise(got):
            assert lo == prev_hi + 1, f"{symbol}: {prev_hi} then {lo}"
        assert qty[symbol] == total, symbol
        if exact:
            assert len(got) == last - first + 1
    return dict(backfilled)
