"""`pairstream bench api` on the real broker, database and Redis, with the API in its own
process: every figure and target (small sizes, untimed)."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import orjson

from pairstream.infra import Endpoints
from pairstream.settings import DatabaseSettings, KafkaSettings, RedisSettings
from pairstream.testing import unique
from pairstream_api.bench import STEP_RATES, bench_api


async def test_bench_api_reports_http_range_and_websocket_figures(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    result = await bench_api(
        concurrency=4, seconds=1.0, clients=5, pairs=2, ws_seconds=2.0, workdir=tmp_path,
        db=DatabaseSettings(DATABASE_URL=endpoints.database_url),
        kafka=KafkaSettings(bootstrap=endpoints.kafka_bootstrap, client_id=unique("bench")),
        redis=RedisSettings(REDIS_URL=endpoints.redis_url),
    )  # fmt: skip
    assert result.latest_gets_per_s > 0
    assert result.constant_gets_per_s > 0
    assert result.bare_gets_per_s > 0
    assert 0 < result.range_p50_ms <= result.range_p99_ms
    for run in (result.fanout, result.with_stuck_client, *result.steps):
        assert run.delivered + run.lost == run.rate_per_pair_per_s * 2 * 2 * 5  # 2 s, 2 pairs
        assert 0 < run.p50_ms <= run.p99_ms <= run.max_ms
    assert result.fanout.lost == 0  # clients that keep up lose nothing
    assert result.with_stuck_client.stuck_dropped > 0  # it was stuck while measured
    assert result.fanout.stuck_dropped == 0
    assert len(result.stuck_delays_ms) == 3
    assert result.fanout_p99s_ms[0] == result.fanout.p99_ms
    assert len(result.fanout_p99s_ms) == 3
    for run in (result.fanout, result.with_stuck_client, *result.steps):
        assert len(run.tick_p99s_ms) == 2 * run.rate_per_pair_per_s  # one per tick of 2 s
        assert max(run.tick_p99s_ms) <= run.max_ms
    first = median(result.with_stuck_client.tick_p99s_ms) - median(result.fanout.tick_p99s_ms)
    assert result.stuck_delays_ms[0] == round(first, 1)
    assert result.fanout.messages_out_per_s == 10
    # stepped up until a step failed, or through every step (then the rate is a bound)
    assert result.limit_found or len(result.steps) == 1 + len(STEP_RATES)
    assert result.max_sustained_messages_per_s in {s.messages_out_per_s for s in result.steps}
    figures = orjson.loads(result.as_json())
    assert set(figures["targets"]) == set(result.targets)
    assert len(result.targets) == 5
