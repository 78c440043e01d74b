"""A Faust app whose consumer takes its fetch long-poll from ``KAFKA_FETCH_MAX_WAIT_MS``.

Faust passes a fixed ``fetch_max_wait_ms=1500`` to aiokafka. Tansu holds a fetch that
long whenever one of its partitions has no data, even while records arrive on another,
so with 2 symbols on 6 partitions every fetch waited up to 1.5 s: live bars came late
and the replay bench lost 0.2-1.2 s per run to idle fetches. aiokafka reads the value
when the consumer starts, so it is set on the consumer Faust has just created.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = cast(App, self.app).fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer: ClassVar[type[faust_aiokafka.Consumer]] = _Consumer


class App(faust.App):
    """``faust.App`` with the consumer's ``fetch_max_wait_ms`` as an argument."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)
