"""Rules and silences in PostgreSQL (``alert_rules``, ``alert_silences``), shared by the CLI,
the API and the alerts service. Every change of a rule is a new version; every write
sends ``NOTIFY pairstream_alert_rules`` so running services reload it."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from pairstream.alerts.rules import Rule, RuleContext, RuleSpec, Silence

CHANNEL = "pairstream_alert_rules"

Conn = asyncpg.Connection | asyncpg.Pool


class NotFoundError(LookupError):
    """No rule (or silence) with that id."""


def rule_id_for(name: str) -> str:
    """An id for a rule given without one: a slug of its name and a short hash."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48] or "rule"
    return f"{slug}-{hashlib.blake2b(name.encode(), digest_size=3).hexdigest()}"


def _spec_json(rule: RuleSpec) -> str:
    return rule.model_dump_json(exclude={"id", "version"})


def _rule(row: asyncpg.Record, ctx: RuleContext | None = None) -> Rule:
    data = orjson.loads(row["spec"])
    return Rule.model_validate(
        {**data, "id": row["id"], "version": row["version"]}, context=ctx or RuleContext()
    )


async def current_rules(conn: Conn) -> list[Rule]:
    """The newest version of every rule that is not deleted, by id."""
    rows = await conn.fetch(
        """
        SELECT DISTINCT ON (id) id, version, spec::text AS spec, deleted
        FROM alert_rules ORDER BY id, version DESC
        """
    )
    return [_rule(r) for r in rows if not r["deleted"]]


async def get_rule(conn: Conn, rule_id: str, version: int | None = None) -> Rule:
    """One rule (its newest version unless ``version`` is given)."""
    row = await conn.fetchrow(
        """
        SELECT id, version, spec::text AS spec, deleted FROM alert_rules
        WHERE id = $1 AND ($2::int IS NULL OR version = $2)
        ORDER BY version DESC LIMIT 1
        """,
        rule_id,
        version,
    )
    if row is None or (row["deleted"] and version is None):
        raise NotFoundError(f"no rule {rule_id!r}")
    return _rule(row)


async def rule_versions(conn: Conn, rule_id: str) -> list[tuple[int, bool, datetime]]:
    """(version, deleted, changed_at) of every version of a rule, oldest first."""
    rows = await conn.fetch(
        "SELECT version, deleted, changed_at FROM alert_rules WHERE id = $1 ORDER BY version",
        rule_id,
    )
    return [(r["version"], r["deleted"], r["changed_at"]) for r in rows]


async def put_rule(conn: asyncpg.Connection, spec: RuleSpec, changed_by: str = "") -> Rule:
    """Store ``spec`` (already validated) as the next version of its rule and return it.
    Storing what the newest version already says changes nothing."""
    rule_id = spec.id or rule_id_for(spec.name)
    body = _spec_json(spec)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('alert_rules:' || $1))", rule_id)
        last = await conn.fetchrow(
            "SELECT version, spec::text AS spec, deleted FROM alert_rules WHERE id = $1 "
            "ORDER BY version DESC LIMIT 1",
            rule_id,
        )
        same = last is not None and orjson.loads(last["spec"]) == orjson.loads(body)
        if last is not None and same and not last["deleted"]:
            return Rule.model_validate(
                {**orjson.loads(body), "id": rule_id, "version": last["version"]}
            )
        version = 1 if last is None else last["version"] + 1
        await conn.execute(
            "INSERT INTO alert_rules (id, version, spec, changed_by) "
            "VALUES ($1, $2, $3::jsonb, $4)",
            rule_id,
            version,
            body,
            changed_by,
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, rule_id)
    data = orjson.loads(body)
    return Rule.model_validate({**data, "id": rule_id, "version": version})


async def set_enabled(conn: asyncpg.Connection, rule_id: str, enabled: bool) -> Rule:
    """Enable or disable a rule (a new version)."""
    rule = await get_rule(conn, rule_id)
    return await put_rule(conn, rule.model_copy(update={"enabled": enabled}))


async def delete_rule(conn: asyncpg.Connection, rule_id: str, changed_by: str = "") -> None:
    """Remove a rule (a last version marked deleted; its history stays). Under the rule's
    lock, like :func:`put_rule`: a version stored meanwhile is the one marked deleted."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('alert_rules:' || $1))", rule_id)
        rule = await get_rule(conn, rule_id)
        await conn.execute(
            "INSERT INTO alert_rules (id, version, spec, deleted, changed_by) "
            "VALUES ($1, $2, $3::jsonb, true, $4)",
            rule_id,
            rule.version + 1,
            _spec_json(rule),
            changed_by,
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, rule_id)


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


async def put_silence(conn: asyncpg.Connection, silence: Silence) -> Silence:
    """Store (or replace) a silence."""
    async with conn.transaction():
        await conn.execute(
            """
            INSERT INTO alert_silences (id, spec, until) VALUES ($1, $2::jsonb, $3)
            ON CONFLICT (id) DO UPDATE SET spec = EXCLUDED.spec, until = EXCLUDED.until
            """,
            silence.id,
            silence.model_dump_json(),
            _when(silence.until),
        )
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"silence:{silence.id}")
    return silence


async def silences(conn: Conn, now_ms: int | None = None) -> list[Silence]:
    """Every silence, or those still active at ``now_ms``."""
    rows = await conn.fetch(
        "SELECT spec::text AS spec FROM alert_silences "
        "WHERE $1::timestamptz IS NULL OR until > $1 ORDER BY id",
        None if now_ms is None else _when(now_ms),
    )
    return [Silence.model_validate_json(r["spec"]) for r in rows]


async def delete_silence(conn: asyncpg.Connection, silence_id: str) -> None:
    """Remove a silence."""
    async with conn.transaction():
        done = await conn.execute("DELETE FROM alert_silences WHERE id = $1", silence_id)
        if done == "DELETE 0":
            raise NotFoundError(f"no silence {silence_id!r}")
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"silence:{silence_id}")


def rule_dict(rule: Rule) -> dict[str, Any]:
    """A rule as JSON-ready data."""
    return rule.model_dump(mode="json")
