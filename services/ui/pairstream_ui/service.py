"""The dashboard as ``pairstream`` finds it (entry point ``pairstream.services``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pairstream.services import Http, Service
from pairstream_ui.cli import register
from pairstream_ui.up import write_key

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


def _settings() -> Sequence[type[BaseSettings]]:
    from pairstream_ui.config import UiSettings

    return (UiSettings,)


def _address() -> tuple[str, int]:
    from pairstream_ui.config import UiSettings

    settings = UiSettings()
    return settings.host, settings.port


#: Under ``pairstream up``: ``dashboard: http://…`` once ``/health/live`` answers.
HTTP = Http(
    _address,
    "UI_PORT",
    live="/health/live",
    home="/",
    health="/health/live",
    label="dashboard",
    peers={"UI_API_URL": "api"},
)


SERVICE = Service(name="ui", order=60, commands=register, settings=_settings, up=("ui",),
                  http=HTTP, prepare=write_key)  # fmt: skip
