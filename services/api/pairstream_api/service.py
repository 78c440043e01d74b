"""The API service as ``pairstream`` finds it (entry point ``pairstream.services``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pairstream.services import Service
from pairstream_api.cli import register

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


def _settings() -> Sequence[type[BaseSettings]]:
    from pairstream_api.config import ApiSettings

    return (ApiSettings,)


SERVICE = Service(name="api", order=50, commands=register, settings=_settings)
