"""The ingest service as ``pairstream`` finds it (entry point ``pairstream.services``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pairstream.services import Service
from pairstream_ingest.cli import register

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


def _settings() -> Sequence[type[BaseSettings]]:
    from pairstream_ingest.config import IngestSettings

    return (IngestSettings,)


SERVICE = Service(name="ingest", order=10, commands=register, settings=_settings, up=("ingest",))
