"""One status line per service and interval; the libraries' chatter only when asked for."""

from __future__ import annotations

import asyncio
import logging
from typing import get_args

import pytest

from pairstream.clock import FakeClock
from pairstream.logs import FORMATS, LEVELS, LIBRARIES, setup_logging
from pairstream.settings import LogSettings
from pairstream.status import Rates, status_every
from pairstream.testing import eventually
from pairstream_analytics.metrics import AnalyticsMetrics
from pairstream_ingest.metrics import IngestMetrics
from pairstream_resampler.metrics import ResamplerMetrics

pytestmark = pytest.mark.unit


def test_ingest_status_line_has_throughput_lag_and_problems_that_grew() -> None:
    clock = FakeClock()
    metrics = IngestMetrics(clock)
    rates = Rates(metrics.registry, clock)
    assert metrics.status(rates) == "0 trades/min into ticks; no trade yet"
    metrics.published("usdm:BTCUSDT", "synthetic", 600, clock.now_ms())
    metrics.published("usdm:ETHUSDT", "synthetic", 300, clock.now_ms() - 500)
    metrics.dead_letters.labels("usdm:BTCUSDT").inc(2)
    clock.advance(60)
    assert metrics.status(rates) == (
        "900 trades/min (usdm:BTCUSDT 600, usdm:ETHUSDT 300) into ticks; last trade 60.5 s ago "
        "(usdm:ETHUSDT, the stalest instrument); "
        "2 dead letters/min"
    )
    clock.advance(30)
    metrics.published("usdm:BTCUSDT", "synthetic", 30, clock.now_ms())
    assert metrics.status(rates) == (
        "60 trades/min (usdm:BTCUSDT 60, usdm:ETHUSDT 0) into ticks; last trade 90.5 s ago "
        "(usdm:ETHUSDT, the stalest instrument)"
    )


def test_resampler_status_line_counts_final_bars_by_timeframe() -> None:
    clock = FakeClock()
    metrics = ResamplerMetrics()
    rates = Rates(metrics.registry, clock)
    metrics.ticks.labels("usdm:BTCUSDT").inc(1_200)
    for tf, n in (("5m", 1), ("1s", 60), ("1m", 2)):
        metrics.bars.labels(tf, "true").inc(n)
        metrics.bars.labels(tf, "false").inc(100)
    metrics.consumer_lag.labels("0").set(7)
    metrics.watermark_lag.labels("usdm:BTCUSDT").set(2.25)
    clock.advance(60)
    assert metrics.status(rates) == (
        "1,200 ticks/min → 63 final bars/min (1s 60, 1m 2, 5m 1); consumer lag 7 messages, "
        "watermark up to 2.2 s behind"
    )


def test_analytics_status_line_has_outputs_and_the_age_of_the_newest_bar() -> None:
    clock = FakeClock()
    metrics = AnalyticsMetrics()
    rates = Rates(metrics.registry, clock)
    assert metrics.status(rates).endswith("no bar analysed yet")
    metrics.routed.labels(tf="1s").inc(120)
    metrics.outputs.labels(topic="analytics.spread").inc(180)
    metrics.outputs.labels(topic="analytics.zscore").inc(60)
    metrics.analysed("1m", clock.now_ms() - 10_000, clock)
    metrics.analysed("1s", clock.now_ms() - 2_000, clock)
    clock.advance(60)
    assert metrics.status(rates) == (
        "120 bars/min routed → 240 outputs/min (spread 180, zscore 60); "
        "newest bar analysed ended 1s 62.0 s, 1m 70.0 s ago"
    )


async def test_status_every_logs_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock, log = FakeClock(), logging.getLogger("test.status")
    lines = iter(["first", "second"])
    with caplog.at_level(logging.INFO, logger="test.status"):
        async with status_every(60, lambda: next(lines), clock, log):
            await eventually(lambda: clock.sleepers == 1, timeout=5)
            clock.advance(59)
            await asyncio.sleep(0)
            assert not caplog.messages
            clock.advance(1)
            await eventually(lambda: caplog.messages == ["status: first"], timeout=5)
            await eventually(lambda: clock.sleepers == 1, timeout=5)
            clock.advance(60)
            await eventually(lambda: len(caplog.messages) == 2, timeout=5)
    assert caplog.messages == ["status: first", "status: second"]


def test_log_values_are_the_settings_values() -> None:
    assert get_args(LogSettings.model_fields["level"].annotation) == LEVELS
    assert get_args(LogSettings.model_fields["format"].annotation) == FORMATS


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, logging.WARNING),
        ({"LOG_LEVEL": "DEBUG"}, logging.DEBUG),
        ({"LOG_LIBRARY_LEVEL": "INFO"}, logging.INFO),
        ({"LOG_LEVEL": "DEBUG", "LOG_LIBRARY_LEVEL": "ERROR"}, logging.ERROR),
    ],
)
def test_library_loggers_are_quiet_unless_asked(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: int
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in LIBRARIES}
    for name in ("LOG_LEVEL", "LOG_LIBRARY_LEVEL", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        setup_logging()
        assert {logging.getLogger(n).level for n in LIBRARIES} == {expected}
        assert "faust" in LIBRARIES
        assert "aiokafka" in LIBRARIES
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def test_a_bad_log_level_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(SystemExit, match="LOG_LEVEL"):
        setup_logging()
