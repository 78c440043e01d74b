"""Migrations on real PostgreSQL: idempotent, concurrent-safe, and the TimescaleDB path parses."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import asyncpg
import pglast
import pytest

from pairstream.db import connect
from pairstream.db.migrate import (
    NO_TRANSACTION,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    policy_statements,
    prune,
    run_outside_transaction,
)
from pairstream.settings import DatabaseSettings

BAR_COLUMNS = (
    "market, symbol, tf, start, open, high, low, close, volume, quote_volume, trades, "
    "vwap, buy_volume, first_trade_id, last_trade_id, revision, final, ts_event, ts_init"
)


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def bar_row(
    start_ms: int, close: float = 101.0, revision: int = 0, market: str = "usdm"
) -> tuple[object, ...]:
    return (
        market,
        "BTCUSDT",
        "1m",
        ts(start_ms),
        100.0,
        102.0,
        99.0,
        close,
        3.0,
        300.0,
        7,
        100.5,
        1.0,
        10,
        16,
        revision,
        True,
        ts(start_ms + 59_000),
        ts(start_ms + 61_000),
    )


async def upsert_bar(conn: asyncpg.Connection, row: tuple[object, ...]) -> None:
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await conn.execute(
        f"INSERT INTO bars ({BAR_COLUMNS}) VALUES ({placeholders}) "
        "ON CONFLICT (market, symbol, tf, start) DO UPDATE SET close = EXCLUDED.close, "
        "revision = EXCLUDED.revision WHERE bars.revision < EXCLUDED.revision",
        *row,
    )


async def test_migrate_creates_tables_then_is_idempotent(
    db: asyncpg.Connection, db_settings: DatabaseSettings
) -> None:
    first = await migrate(db, db_settings)
    assert first.variant == "plain"  # no TimescaleDB on this server
    assert first.applied == [m.version for m in load_migrations()]
    second = await migrate(db, db_settings)
    assert second.applied == []
    assert second.already == first.applied
    tables = {
        r["tablename"]
        for r in await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", db_settings.schema_name
        )
    }
    assert {"ticks", "bars", "pairstream_migrations"} <= tables
    indexes = {
        r["indexname"]
        for r in await db.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1", db_settings.schema_name
        )
    }
    assert {"ticks_ts_event_brin", "bars_tf_start"} <= indexes


async def test_bars_upsert_by_instrument_tf_start_keeps_the_latest_revision(
    db: asyncpg.Connection, db_settings: DatabaseSettings
) -> None:
    await migrate(db, db_settings)
    start = 1_721_347_200_000
    await upsert_bar(db, bar_row(start, close=101.0, revision=1))
    await upsert_bar(db, bar_row(start, close=100.2, revision=0))  # stale revision loses
    await upsert_bar(db, bar_row(start + 60_000))
    await upsert_bar(db, bar_row(start, close=100.9, market="spot"))  # another instrument
    rows = await db.fetch(
        "SELECT market, start, close, revision FROM bars WHERE symbol = 'BTCUSDT' "
        "AND tf = '1m' ORDER BY market, start"
    )
    assert [(r["market"], r["close"], r["revision"]) for r in rows] == [
        ("spot", 100.9, 0),
        ("usdm", 101.0, 1),
        ("usdm", 101.0, 0),
    ]
    assert rows[1]["start"] == ts(start)
    hourly = await db.fetch("SELECT market, symbol, close FROM bars_1h ORDER BY market")
    assert [(r["market"], r["symbol"], r["close"]) for r in hourly] == [
        ("spot", "BTCUSDT", 100.9),
        ("usdm", "BTCUSDT", 101.0),
    ]


async def test_instruments_migration_names_the_market_of_rows_written_before_it(
    db: asyncpg.Connection, db_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pairstream.db.migrate as migrations

    every = load_migrations()
    before = [m for m in every if m.version < 5]
    monkeypatch.setattr(migrations, "load_migrations", lambda: before)
    await migrate(db, db_settings)
    start = ts(1_721_347_200_000)
    await upsert_bar_before_instruments(db, bar_row(1_721_347_200_000))
    await db.execute(
        "INSERT INTO analytics_checkpoints (group_id, pair, tf, first_ts, frontier, joined) "
        "VALUES ('g', 'BTCUSDT-ETHUSDT', '1s', $1, $1, 1)",
        start,
    )
    await db.execute(
        'INSERT INTO pair_scan (tf, ts, y, x, "window", nobs, ts_init) '
        "VALUES ('1m', $1, 'BTCUSDT', 'ETHUSDT', 10, 10, $1)",
        start,
    )
    monkeypatch.setattr(migrations, "load_migrations", lambda: every)
    result = await migrate(db, db_settings)
    assert result.applied == [m.version for m in every if m.version >= 5]
    assert await db.fetchval("SELECT pair FROM analytics_checkpoints") == (
        "usdm:BTCUSDT-usdm:ETHUSDT"
    )
    assert tuple(await db.fetchrow("SELECT y, x FROM pair_scan")) == (
        "usdm:BTCUSDT",
        "usdm:ETHUSDT",
    )
    await upsert_bar(db, bar_row(1_721_347_200_000, close=99.5, market="spot"))
    markets = await db.fetch("SELECT market, close FROM bars ORDER BY market")
    assert [(r["market"], r["close"]) for r in markets] == [("spot", 99.5), ("usdm", 101.0)]


async def upsert_bar_before_instruments(conn: asyncpg.Connection, row: tuple[object, ...]) -> None:
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await conn.execute(
        f"INSERT INTO bars ({BAR_COLUMNS}) VALUES ({placeholders}) "
        "ON CONFLICT (symbol, tf, start) DO NOTHING",
        *row,
    )


@pytest.mark.parametrize("bad_close", [math.nan, math.inf, -1.0])
async def test_tables_refuse_non_finite_or_negative_prices(
    db: asyncpg.Connection, db_settings: DatabaseSettings, bad_close: float
) -> None:
    await migrate(db, db_settings)
    with pytest.raises(asyncpg.CheckViolationError):
        await upsert_bar(db, bar_row(1_721_347_200_000, close=bad_close))


async def test_two_services_migrating_at_once_apply_each_migration_once(
    db_settings: DatabaseSettings,
) -> None:
    conns = [await connect(db_settings) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c, db_settings) for c in conns))
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    applied = sorted(v for r in results for v in r.applied)
    assert applied == [m.version for m in load_migrations()]


async def test_a_changed_applied_migration_is_an_error(
    db: asyncpg.Connection, db_settings: DatabaseSettings
) -> None:
    await migrate(db, db_settings)
    await db.execute("UPDATE pairstream_migrations SET checksum = 'edited' WHERE version = 1")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(db, db_settings)


async def test_timescale_on_without_the_extension_fails_clearly(
    db: asyncpg.Connection, db_settings: DatabaseSettings
) -> None:
    strict = db_settings.model_copy(update={"timescale": "on"})
    with pytest.raises(MigrationError, match="timescaledb extension is not installed"):
        await migrate(db, strict)


async def test_prune_deletes_only_rows_past_retention(
    db: asyncpg.Connection, db_settings: DatabaseSettings
) -> None:
    await migrate(db, db_settings)
    now_ms = int(datetime.now(UTC).timestamp() * 1000) // 60_000 * 60_000
    await upsert_bar(db, bar_row(now_ms - 10 * 86_400_000))
    await upsert_bar(db, bar_row(now_ms - 60_000))
    keep_three_days = db_settings.model_copy(update={"bars_retention_days": 3})
    assert (await prune(db, keep_three_days))["bars"] == 1
    assert await db.fetchval("SELECT count(*) FROM bars") == 1


def test_timescale_migrations_and_policies_are_valid_postgresql_syntax() -> None:
    # TimescaleDB cannot be installed here; its path is parsed by PostgreSQL's own
    # parser (libpg_query) so a typo cannot hide until production.
    migrations = load_migrations()
    for migration in migrations:
        statements = pglast.parse_sql(migration.sql("timescale"))
        assert statements, migration.name
    assert "create_hypertable('bars'" in migrations[0].timescale
    settings = DatabaseSettings(ticks_retention_days=7, bars_retention_days=90)
    policies = policy_statements(settings, "timescale")
    assert len(policies) == 8
    for statement in policies:
        pglast.parse_sql(statement)
    assert policy_statements(settings, "plain") == []


async def test_a_no_transaction_variant_runs_outside_any_transaction_block(
    db: asyncpg.Connection, db_settings: DatabaseSettings
) -> None:
    # CREATE INDEX CONCURRENTLY refuses to run inside a transaction block, like
    # TimescaleDB's CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous)
    await migrate(db, db_settings)
    migration = Migration(
        version=999,
        name="concurrent_index",
        common="",
        timescale="",
        plain=NO_TRANSACTION + "\n-- a comment-only part is skipped\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS bars_symbol_start ON bars (symbol, start);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS bars_tf ON bars (tf);\n",
    )
    assert migration.outside_transaction("plain")
    await run_outside_transaction(db, migration, "plain")
    await run_outside_transaction(db, migration, "plain")  # idempotent
    indexes = await db.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname IN "
        "('bars_symbol_start', 'bars_tf')",
        db_settings.schema_name,
    )
    assert indexes == 2


async def test_a_no_transaction_migration_cut_short_is_completed_by_the_next_migrate(
    db: asyncpg.Connection, db_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pairstream.db.migrate as migrations

    every = load_migrations()
    await migrate(db, db_settings)
    step = Migration(
        version=998,
        name="two_steps",
        common="",
        timescale="",
        plain=NO_TRANSACTION + "\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS bars_first ON bars (tf);\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS bars_second ON bars USING nonsense (tf);\n",
    )
    monkeypatch.setattr(migrations, "load_migrations", lambda: [*every, step])
    with pytest.raises(asyncpg.PostgresError):
        await migrate(db, db_settings)  # dies after its first statement
    assert await db.fetchval("SELECT count(*) FROM pairstream_migrations WHERE version = 998") == 0
    fixed = Migration(998, "two_steps", "", "", step.plain.replace("USING nonsense ", ""))
    monkeypatch.setattr(migrations, "load_migrations", lambda: [*every, fixed])
    result = await migrate(db, db_settings)
    assert result.applied == [998]
    indexes = await db.fetchval(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname IN "
        "('bars_first', 'bars_second')",
        db_settings.schema_name,
    )
    assert indexes == 2
