"""The dashboard under ``pairstream up``: the write key made for its run (the rule editor
and uploads need one) is revoked when the run ends, a key a killed run could not revoke
is revoked by the next, and a key the user gave is used instead."""

from __future__ import annotations

import pytest

from pairstream.db import connection
from pairstream.db.migrate import migrate
from pairstream.settings import DatabaseSettings
from pairstream_api.keys import create_key, key_id_of
from pairstream_ui.service import SERVICE
from pairstream_ui.up import DASHBOARD_KEY


async def dashboard_keys(db: DatabaseSettings) -> dict[str, bool]:
    """The dashboard's keys: id → revoked."""
    async with connection(db) as conn:
        rows = await conn.fetch("SELECT id, revoked_at IS NOT NULL AS revoked FROM api_keys "
                                "WHERE name = $1", DASHBOARD_KEY)  # fmt: skip
    return {r["id"]: r["revoked"] for r in rows}


async def test_the_run_s_write_key_is_revoked_after_it_and_a_killed_run_s_by_the_next(
    db_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = db_settings
    assert db.url is not None
    monkeypatch.setenv("DATABASE_URL", db.url)
    monkeypatch.setenv("DB_SCHEMA", db.schema_name)
    monkeypatch.delenv("UI_API_KEY", raising=False)
    async with connection(db) as conn:
        await migrate(conn, db)
        killed, _ = await create_key(conn, DASHBOARD_KEY, "write")  # a run that was SIGKILLed
    assert SERVICE.prepare is not None
    async with SERVICE.prepare() as env:
        key = key_id_of(env["UI_API_KEY"])
        during = await dashboard_keys(db)
        async with connection(db) as conn:
            scope = await conn.fetchval("SELECT scope FROM api_keys WHERE id = $1", key)
    assert during == {killed.id: True, key: False}
    assert scope == "write"
    assert await dashboard_keys(db) == {killed.id: True, key: True}

    monkeypatch.setenv("UI_API_KEY", "ps_given")
    async with SERVICE.prepare() as given:
        assert given == {}  # the user's key is used, none is made
    assert len(await dashboard_keys(db)) == 2
