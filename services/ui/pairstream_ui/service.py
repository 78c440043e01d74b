"""The dashboard as ``pairstream`` finds it (entry point ``pairstream.services``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING

from pairstream.services import Http, Service
from pairstream_ui.cli import register

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


DASHBOARD_KEY = "dashboard (pairstream up)"


@contextlib.asynccontextmanager
async def _write_key() -> AsyncIterator[Mapping[str, str]]:
    """Under ``pairstream up``: a ``write`` API key for the dashboard (its rule editor and
    uploads), made for this run and revoked when it stops — unless ``UI_API_KEY`` is set."""
    if os.environ.get("UI_API_KEY"):
        yield {}
        return
    from pairstream.db import connection
    from pairstream.settings import DatabaseSettings
    from pairstream_api.keys import create_key, list_keys, revoke_key

    db = DatabaseSettings()
    async with connection(db) as conn:
        for old in await list_keys(conn):  # a run that was killed could not revoke its own
            if old.name == DASHBOARD_KEY and old.revoked_at is None:
                await revoke_key(conn, old.id)
        key, token = await create_key(conn, DASHBOARD_KEY, "write")
    try:
        yield {"UI_API_KEY": token}
    finally:
        async with connection(db) as conn:
            await revoke_key(conn, key.id)


SERVICE = Service(name="ui", order=60, commands=register, settings=_settings, up=("ui",),
                  http=HTTP, prepare=_write_key)  # fmt: skip
