"""`pairstream bench ingest` measures on a real broker and reports every figure (untimed)."""

from __future__ import annotations

import orjson

from pairstream.settings import KafkaSettings
from pairstream_ingest.bench import bench_ingest


async def test_bench_ingest_reports_throughput_baseline_ratio_and_latency(
    kafka_settings: KafkaSettings,
) -> None:
    result = await bench_ingest(repeat=1, rate=1_000, latency_s=1.0, kafka=kafka_settings)
    assert result.trades == 24_356
    assert result.pipeline_trades_per_s > 0
    assert result.raw_trades_per_s > 0
    assert result.ratio == round(result.pipeline_trades_per_s / result.raw_trades_per_s, 3)
    assert result.latency_frames == 1_000
    assert 0 < result.latency_p50_ms <= result.latency_p99_ms <= result.latency_max_ms
    figures = orjson.loads(result.as_json())
    assert set(figures["targets"]) == set(result.targets)
    assert figures["pipeline_messages"] == result.pipeline_messages
