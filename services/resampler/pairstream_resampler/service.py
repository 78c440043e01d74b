"""The resampler as ``pairstream`` finds it (entry point ``pairstream.services``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pairstream.services import Service
from pairstream_resampler.cli import register

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


def _settings() -> Sequence[type[BaseSettings]]:
    from pairstream_resampler.config import ResamplerSettings

    return (ResamplerSettings,)


#: replicas split the consumer group's partitions (``pairstream up --scale resampler=N``)
SERVICE = Service(
    name="resampler",
    order=20,
    commands=register,
    settings=_settings,
    up=("resampler",),
    metrics_port_env="RESAMPLER_METRICS_PORT",
)
