"""What ``pairstream up`` does for the dashboard on one machine (never in its own process
or image: it needs the database, which the dashboard has no address of)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping

DASHBOARD_KEY = "dashboard (pairstream up)"


@contextlib.asynccontextmanager
async def write_key() -> AsyncIterator[Mapping[str, str]]:
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
