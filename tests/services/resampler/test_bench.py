"""`pairstream bench resampler` on a real broker and database reports every figure (untimed)."""

from __future__ import annotations

import orjson

from pairstream.settings import DatabaseSettings, KafkaSettings
from pairstream_resampler.bench import bench_resampler


async def test_bench_resampler_reports_throughput_baseline_and_final_bar_latency(
    kafka_settings: KafkaSettings, db_settings: DatabaseSettings
) -> None:
    result = await bench_resampler(
        repeat=1, latency_symbols=10, latency_seconds=5.0, kafka=kafka_settings, db=db_settings
    )
    assert result.trades == 24_356
    assert result.final_bars > 900  # 8 minutes of 1s bars for two symbols, plus 1m and 5m
    assert 0 < result.stored_ticks_per_s <= result.topics_ticks_per_s
    assert result.raw_ticks_per_s > 0
    assert result.ratio_to_raw == round(result.topics_ticks_per_s / result.raw_ticks_per_s, 3)
    assert result.latency_finals >= 10
    assert 0 < result.latency_p50_ms <= result.latency_p99_ms <= result.latency_max_ms
    figures = orjson.loads(result.as_json())
    assert set(figures["targets"]) == set(result.targets)
    assert figures["final_bars"] == result.final_bars
