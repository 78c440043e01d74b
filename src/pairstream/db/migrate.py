"""Versioned, idempotent schema migrations (``pairstream db migrate``).

Migrations are ordered SQL files in ``migrations/``: ``NNNN_name.sql`` runs on
every database, then ``NNNN_name.timescale.sql`` when TimescaleDB is in use or
``NNNN_name.plain.sql`` on plain PostgreSQL. Which of the two a schema uses is
decided once (``DB_TIMESCALE``: ``auto`` uses TimescaleDB when the extension can
be created) and recorded; every later run follows the recorded choice.

Each migration runs in its own transaction under an advisory lock, so two
services migrating at once do not collide; applied versions and checksums are
kept in ``pairstream_migrations`` and a changed, already-applied file is an error.

Settings-dependent policies (retention, compression) are applied after the
migrations by :func:`apply_policies`, idempotently, so changing a setting and
migrating again updates them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

import asyncpg

from pairstream.settings import DatabaseSettings

log = logging.getLogger(__name__)

Variant = Literal["timescale", "plain"]
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

#: tables that hold time series, with their time column
TIME_SERIES: dict[str, str] = {"ticks": "ts_event", "bars": "start"}


#: first line of a variant file whose statements cannot run in a transaction block
NO_TRANSACTION = "-- pairstream: no-transaction"


class MigrationError(RuntimeError):
    """A migration could not be applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One version: the common SQL plus the variant SQL for each backend."""

    version: int
    name: str
    common: str
    timescale: str
    plain: str

    def sql(self, variant: Variant) -> str:
        return self.common + "\n" + (self.timescale if variant == "timescale" else self.plain)

    def outside_transaction(self, variant: Variant) -> bool:
        """The variant file starts with :data:`NO_TRANSACTION` (e.g. a continuous aggregate)."""
        text = self.timescale if variant == "timescale" else self.plain
        return text.startswith(NO_TRANSACTION)

    def checksum(self, variant: Variant) -> str:
        return hashlib.sha256(self.sql(variant).encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """Every migration shipped with pairstream, in version order."""
    folder = resources.files("pairstream.db") / "migrations"
    files = {entry.name: entry.read_text(encoding="utf-8") for entry in folder.iterdir()}
    migrations = []
    for filename in sorted(files):
        match = _NAME.match(filename)
        if not match:
            continue
        stem = filename[: -len(".sql")]
        migrations.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                common=files[filename],
                timescale=files.get(f"{stem}.timescale.sql", ""),
                plain=files.get(f"{stem}.plain.sql", ""),
            )
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return migrations


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def detect_timescale(conn: asyncpg.Connection, mode: str) -> Variant:
    """``timescale`` when the extension is (or can be made) available, per ``mode``."""
    if mode == "off":
        return "plain"
    installed = await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if installed:
        return "timescale"
    available = await conn.fetchval(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    )
    if available:
        try:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            return "timescale"
        except asyncpg.PostgresError as error:
            if mode == "on":
                raise MigrationError(f"cannot create extension timescaledb: {error}") from error
            log.warning(
                "timescaledb is available but cannot be created (%s); using plain PostgreSQL", error
            )
            return "plain"
    if mode == "on":
        raise MigrationError(
            "DB_TIMESCALE=on but the timescaledb extension is not installed on this server"
        )
    return "plain"


@dataclass(frozen=True, slots=True)
class MigrateResult:
    """What a migrate run did."""

    schema: str
    variant: Variant
    applied: list[int]
    already: list[int]


async def migrate(conn: asyncpg.Connection, settings: DatabaseSettings) -> MigrateResult:
    """Apply every pending migration to ``settings.schema_name``, then the policies."""
    schema = settings.schema_name
    lock_key = f"pairstream-migrate:{schema}"
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock_key)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
        await conn.execute(f"SET search_path TO {_ident(schema)}, public")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS pairstream_migrations (
                   version    integer     PRIMARY KEY,
                   name       text        NOT NULL,
                   variant    text        NOT NULL CHECK (variant IN ('timescale', 'plain')),
                   checksum   text        NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
    applied: list[int] = []
    already: list[int] = []
    variant: Variant | None = None
    # one migrator per schema at a time, for the whole run: a migration that runs outside
    # a transaction is recorded only once all of it has run, and nobody skips it meanwhile
    await conn.execute("SELECT pg_advisory_lock(hashtext($1))", lock_key)
    try:
        for migration in load_migrations():
            rows = await conn.fetch("SELECT version, variant, checksum FROM pairstream_migrations")
            done = {r["version"]: r for r in rows}
            if variant is None:
                recorded = {r["variant"] for r in rows}
                if len(recorded) > 1:
                    raise MigrationError(f"schema {schema} mixes variants {sorted(recorded)}")
                variant = (
                    recorded.pop() if recorded else await detect_timescale(conn, settings.timescale)
                )
            if migration.version in done:
                row = done[migration.version]
                if row["checksum"] != migration.checksum(variant):
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it "
                        f"was applied to schema {schema}; add a new migration instead"
                    )
                already.append(migration.version)
                continue
            outside = migration.outside_transaction(variant)
            async with conn.transaction():
                sql = migration.common if outside else migration.sql(variant)
                if sql.strip():
                    await conn.execute(sql)
                if not outside:
                    await _record(conn, migration, variant)
            if outside:  # idempotent statements: a run cut short is redone in full next time
                await run_outside_transaction(conn, migration, variant)
                async with conn.transaction():
                    await _record(conn, migration, variant)
            applied.append(migration.version)
            log.info(
                "applied migration %04d_%s (%s) to schema %s",
                migration.version,
                migration.name,
                variant,
                schema,
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", lock_key)
    assert variant is not None
    await apply_policies(conn, settings, variant)
    return MigrateResult(schema, variant, applied, already)


async def _record(conn: asyncpg.Connection, migration: Migration, variant: Variant) -> None:
    await conn.execute(
        "INSERT INTO pairstream_migrations (version, name, variant, checksum) "
        "VALUES ($1, $2, $3, $4)",
        migration.version,
        migration.name,
        variant,
        migration.checksum(variant),
    )


async def run_outside_transaction(
    conn: asyncpg.Connection, migration: Migration, variant: Variant
) -> None:
    """Run a variant file statement by statement, each in its own implicit transaction.

    Its statements are idempotent (``IF NOT EXISTS``, ``IF EXISTS``), and its version
    is recorded only after the last one, so a run cut short is completed by the
    next ``migrate``.
    """
    text = migration.timescale if variant == "timescale" else migration.plain
    for statement in (part.strip() for part in text.split(";\n")):
        if statement and not all(
            line.startswith("--") for line in statement.splitlines() if line.strip()
        ):
            await conn.execute(statement)


def policy_statements(settings: DatabaseSettings, variant: Variant) -> list[str]:
    """SQL that makes retention and compression match the settings (idempotent)."""
    if variant == "plain":
        return []  # plain PostgreSQL: `pairstream db prune` (see prune) enforces retention
    retention = {"ticks": settings.ticks_retention_days, "bars": settings.bars_retention_days}
    out: list[str] = []
    for table in TIME_SERIES:
        out.append(f"SELECT remove_compression_policy('{table}', if_exists => TRUE)")
        out.append(
            f"SELECT add_compression_policy('{table}', "
            f"INTERVAL '{settings.compress_after_days} days')"
        )
        out.append(f"SELECT remove_retention_policy('{table}', if_exists => TRUE)")
        if retention[table] > 0:
            out.append(
                f"SELECT add_retention_policy('{table}', INTERVAL '{retention[table]} days')"
            )
    return out


async def apply_policies(
    conn: asyncpg.Connection, settings: DatabaseSettings, variant: Variant
) -> None:
    """Apply :func:`policy_statements` in one transaction."""
    async with conn.transaction():
        for statement in policy_statements(settings, variant):
            await conn.execute(statement)


async def prune(conn: asyncpg.Connection, settings: DatabaseSettings) -> dict[str, int]:
    """Delete rows older than their retention (plain PostgreSQL; TimescaleDB drops chunks)."""
    retention = {"ticks": settings.ticks_retention_days, "bars": settings.bars_retention_days}
    deleted: dict[str, int] = {}
    for table, column in TIME_SERIES.items():
        days = retention[table]
        if days <= 0:
            continue
        status = await conn.execute(
            f"DELETE FROM {_ident(table)} "
            f"WHERE {_ident(column)} < now() - make_interval(days => $1)",
            days,
        )
        deleted[table] = int(status.rsplit(" ", 1)[-1])
    return deleted
