"""The API service as ``pairstream`` finds it (entry point ``pairstream.services``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pairstream.services import Http, Service
from pairstream_api.cli import register

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


def _settings() -> Sequence[type[BaseSettings]]:
    from pairstream_api.config import ApiSettings

    return (ApiSettings,)


def _address() -> tuple[str, int]:
    from pairstream_api.config import ApiSettings

    settings = ApiSettings()
    return settings.host, settings.port


#: Under ``pairstream up``: the port checked before anything starts; the docs and readiness
#: URLs printed once ``/health/live`` answers.
HTTP = Http(_address, "API_PORT", live="/health/live", home="/docs", health="/health/ready")

SERVICE = Service(
    name="api", order=50, commands=register, settings=_settings, up=("api",), http=HTTP
)
