"""The alerts service as ``pairstream`` finds it (entry point ``pairstream.services``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pairstream.services import Service
from pairstream_alerts.cli import register

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


def _settings() -> Sequence[type[BaseSettings]]:
    from pairstream_alerts.config import AlertsSettings

    return (AlertsSettings,)


#: replicas split the consumer group's partitions (``pairstream up --scale alerts=N``)
SERVICE = Service(
    name="alerts",
    order=40,
    commands=register,
    settings=_settings,
    up=("alerts",),
    metrics_port_env="ALERTS_METRICS_PORT",
)
