"""`pairstream bench ui` on the real broker, database and Redis, in the real browser:
every figure and target (small sizes, untimed)."""

from __future__ import annotations

from typing import Any

import orjson

from pairstream.infra import Endpoints
from pairstream.settings import DatabaseSettings, KafkaSettings, RedisSettings
from pairstream.testing import unique
from pairstream_ui.bench import bench_ui


async def test_bench_ui_reports_first_draws_live_delays_and_bytes(
    endpoints: Endpoints, browser: Any
) -> None:  # the fixture: skipped (or failed under CI) like every browser test
    result = await bench_ui(
        bars=200, ticks=6, spacing_s=0.2, warm_runs=2,
        db=DatabaseSettings(DATABASE_URL=endpoints.database_url),
        kafka=KafkaSettings(bootstrap=endpoints.kafka_bootstrap, client_id=unique("bench")),
        redis=RedisSettings(REDIS_URL=endpoints.redis_url),
    )  # fmt: skip
    assert result.first_candle_cold_ms > 0
    assert result.first_zscore_warm_ms > 0
    assert result.system_table_warm_ms > 0
    assert 0 < result.ws_to_drawn_p50_ms <= result.ws_to_drawn_p95_ms
    assert 0 < result.kafka_to_drawn_p50_ms <= result.kafka_to_drawn_p95_ms
    assert result.points_timed >= 5 * 6  # a point on each of the five charts per tick
    assert 0 < result.bytes_per_tick <= 5_000
    figures = orjson.loads(result.as_json())
    assert set(figures["targets"]) == set(result.targets)
    assert len(result.targets) == 5
