"""The resampler's Faust app hands ``KAFKA_FETCH_MAX_WAIT_MS`` to its aiokafka consumer."""

from __future__ import annotations

from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.testing import unique
from pairstream_resampler.app import App
from pairstream_resampler.config import ResamplerSettings
from pairstream_resampler.worker import ResamplerWorker


def fetch_wait_ms(app: App) -> int:
    consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
    return int(consumer._fetch_max_wait_ms)


async def test_the_worker_consumer_long_polls_for_the_configured_time_not_faust_s_1500_ms() -> None:
    worker = ResamplerWorker(
        ResamplerSettings(group_id=unique("fetch-wait"), metrics_port=0),
        kafka=KafkaSettings(bootstrap="127.0.0.1:1", fetch_max_wait_ms=77),
        topics=TopicSettings(ticks=unique("ticks")),
        db=DatabaseSettings(),
    )
    assert fetch_wait_ms(worker.app) == 77
    assert fetch_wait_ms(App(unique("g"), fetch_max_wait_ms=5, broker="kafka://127.0.0.1:1")) == 5
