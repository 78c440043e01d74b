"""API keys: created by ``pairstream api keys create``, stored as a SHA-256 only.

A key reads ``ps_<id>_<secret>``: the id finds the row, the hash of the whole key is
compared in constant time. Keys are 32 random bytes, so a fast hash is safe (no
password stretching needed), and the key itself is shown once, never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from pairstream.clock import Clock

Scope = Literal["read", "write"]
PREFIX = "ps_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as the API knows it (never its secret)."""

    id: str
    name: str
    scope: Scope
    created_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(row["id"], row["name"], row["scope"], row["created_at"], row["revoked_at"])


async def create_key(conn: asyncpg.Connection, name: str, scope: Scope) -> tuple[ApiKey, str]:
    """A new key and its token (shown once)."""
    key_id = secrets.token_hex(6)
    token = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    row = await conn.fetchrow(
        "INSERT INTO api_keys (id, name, scope, hash) VALUES ($1, $2, $3, $4) "
        "RETURNING id, name, scope, created_at, revoked_at",
        key_id, name, scope, _hash(token),
    )  # fmt: skip
    assert row is not None
    return _key(row), token


async def list_keys(conn: asyncpg.Connection) -> list[ApiKey]:
    """Every key, newest first (revoked ones too)."""
    rows = await conn.fetch(
        "SELECT id, name, scope, created_at, revoked_at FROM api_keys ORDER BY created_at DESC"
    )
    return [_key(r) for r in rows]


async def revoke_key(conn: asyncpg.Connection, key_id: str) -> bool:
    """Revoke a key; False when there is no such (unrevoked) key."""
    done = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", key_id
    )
    return done.endswith(" 1")


def key_id_of(token: str) -> str | None:
    """The id part of a well-formed token, else None."""
    if not token.startswith(PREFIX):
        return None
    key_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or not secret or len(key_id) != 12:
        return None
    return key_id


class KeyChecker:
    """Checks tokens against the table, trusting a checked token for ``ttl_s`` seconds."""

    def __init__(self, clock: Clock, ttl_s: float, timeout_s: float) -> None:
        self.clock = clock
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._seen: OrderedDict[str, tuple[float, ApiKey | None]] = OrderedDict()

    async def check(self, pool: asyncpg.Pool, token: str) -> ApiKey | None:
        """The live key ``token`` is, or None (unknown, wrong secret or revoked)."""
        digest = _hash(token)
        now = self.clock.monotonic()
        seen = self._seen.get(digest)
        if seen is not None and now - seen[0] < self.ttl_s:
            self._seen.move_to_end(digest)
            return seen[1]
        key_id = key_id_of(token)
        key = None
        if key_id is not None:
            async with pool.acquire(timeout=self.timeout_s) as conn:
                row = await conn.fetchrow(
                    "SELECT id, name, scope, hash, created_at, revoked_at FROM api_keys "
                    "WHERE id = $1",
                    key_id,
                )
            if (
                row is not None
                and row["revoked_at"] is None
                and hmac.compare_digest(row["hash"], digest)
            ):
                key = _key(row)
        self._seen[digest] = (now, key)
        if len(self._seen) > 10_000:  # least recently used first
            self._seen.popitem(last=False)
        return key
