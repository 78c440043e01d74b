"""`pairstream bench alerts` on the real broker and database: every figure and target
(small sizes, untimed)."""

from __future__ import annotations

import orjson

from pairstream.settings import DatabaseSettings, KafkaSettings
from pairstream_alerts.bench import bench_alerts


async def test_bench_alerts_reports_evaluations_baseline_and_latency(
    kafka_settings: KafkaSettings, db_settings: DatabaseSettings
) -> None:
    result = await bench_alerts(
        n_rules=100, n_pairs=10, bars=50, rate=100.0, seconds=2.0, kafka=kafka_settings,
        db=db_settings,
    )  # fmt: skip
    assert result.messages == 500
    assert result.records >= result.messages  # a producer retry may write some twice
    assert result.engine_threshold_evals_per_s > 0
    assert result.worker_threshold_evals_per_s > 0
    assert result.worker_expression_evals_per_s > 0
    assert result.raw_messages_per_s > 0
    assert result.latency_alerts == 200  # every flip seen acked
    assert 0 < result.latency_p50_ms <= result.latency_p99_ms <= result.latency_max_ms
    assert result.latency_read_p99_ms > 0
    figures = orjson.loads(result.as_json())
    assert set(figures["targets"]) == set(result.targets)
    assert len(result.targets) == 3
