"""The analytics workers as ``pairstream`` finds them (entry point ``pairstream.services``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pairstream.services import Service
from pairstream_analytics.cli import register

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


def _settings() -> Sequence[type[BaseSettings]]:
    from pairstream_analytics.config import AnalyticsSettings

    return (AnalyticsSettings,)


#: replicas split the consumer group's partitions (``pairstream up --scale analytics=N``)
SERVICE = Service(
    name="analytics",
    order=30,
    commands=register,
    settings=_settings,
    up=("analytics",),
    metrics_port_env="ANALYTICS_METRICS_PORT",
)
