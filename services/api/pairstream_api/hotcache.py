"""The Redis hot cache of the newest bar per instrument/tf, analytics per pair/tf/method
and scan per tf, shared by every API process.

An entry is a Redis hash of JSON parts, each beside its order (``<part>@``: a bar's start
and revision, a point's ``ts``); a part is replaced only by one at least as new (a Lua
script, so concurrent writers never go back in time). Two writers keep it:

* the API's live consumer writes every bar, spread, z-score, stats and scan it reads from
  Kafka — the services publish before they store, so these are at least as new as what
  PostgreSQL holds;
* a read that finds an entry not *seeded* reads PostgreSQL, answers from it and seeds the
  entry with it (field ``seeded``), so parts that come rarely (the newest cointegration
  verdict) are there too.

A read answers from an entry only when it is seeded and the cache is *trusted*: Redis
answered every write since the last check and the live consumer is following Kafka. Any
failure distrusts it; it is trusted again once this process's namespace is deleted
(entries may have missed updates meanwhile) — then it refills without a restart.

Each process mirrors the seeded entries it has read in memory and applies its consumer's
writes to them as it makes them (the same if-newer rule), so a hit costs no round trip;
the mirror is dropped whenever the cache is distrusted.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pairstream.clock import Clock

from .metrics import ApiMetrics

log = logging.getLogger(__name__)

RETRY_S = 5.0  # after a failure, no Redis call until then
TTL_S = 86_400  # entries of instruments and pairs no longer streamed go away

# KEYS[1] entry; ARGV: ttl, then (part, order, json) triples
_PUT = """
local n = 0
for i = 2, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i] .. '@')
  if (not cur) or tonumber(cur) <= tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2], ARGV[i] .. '@', ARGV[i + 1])
    n = n + 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return n
"""


@dataclass(frozen=True, slots=True)
class Part:
    """One part of an entry: its name, its order (newer = larger) and its JSON value."""

    name: str
    order: int
    value: Any


def bar_order(start: int, revision: int) -> int:
    """A bar's order: by start, then revision (below 2^53 for any start before 2255)."""
    return start * 1024 + min(revision, 1023)


class HotCache:
    """Newest entries in Redis under ``pairstream:<namespace>:`` (see the module doc)."""

    def __init__(
        self, client: aioredis.Redis, namespace: str, clock: Clock, metrics: ApiMetrics
    ) -> None:
        self.client = client
        self.prefix = f"pairstream:{namespace}:"
        self.clock = clock
        self.metrics = metrics
        self._put = client.register_script(_PUT)
        self._trusted = False  # nothing is known of what Redis holds at start
        self._retry_at = 0.0
        self.following = False  # the live consumer follows Kafka (set by the hub)
        self._local: dict[str, dict[str, tuple[int, Any]]] = {}  # seeded entries read here

    def key(self, kind: str, *names: str) -> str:
        return self.prefix + ":".join((kind, *names))

    @property
    def trusted(self) -> bool:
        return self._trusted and self.following

    def distrust(self, why: object) -> None:
        """Entries may be stale from now on (a failed call, the consumer stopped)."""
        if self._trusted:
            log.warning("hot cache distrusted (%s); reads go to PostgreSQL", why)
        self._trusted = False
        self._local.clear()
        self._retry_at = self.clock.monotonic() + RETRY_S

    async def _retrust(self) -> bool:
        if self._trusted:
            return True
        if not self.following or self.clock.monotonic() < self._retry_at:
            return False
        try:
            async for batch in _batched(self.client.scan_iter(self.prefix + "*", count=500)):
                await self.client.unlink(*batch)
        except (RedisError, OSError) as error:
            self.distrust(repr(error))
            return False
        self._local.clear()
        self._trusted = True
        log.info("hot cache trusted again (namespace %s* emptied)", self.prefix)
        return True

    async def put(self, entries: Collection[tuple[str, Sequence[Part]]]) -> None:
        """Write parts of entries (``(key, parts)``) in one round trip, each only if newer."""
        if not self._trusted and self.clock.monotonic() < self._retry_at:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                n = 0
                for key, parts in entries:
                    args: list[Any] = [TTL_S]
                    for p in parts:
                        args += [p.name, p.order, orjson.dumps(p.value)]
                    await self._put(keys=[key], args=args, client=pipe)
                    n += 1
                if n:
                    await pipe.execute()
        except (RedisError, OSError) as error:
            self.distrust(repr(error))
            return
        for key, parts in entries:
            if key in self._local:
                self._merge(key, {p.name: (p.order, p.value) for p in parts})

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The parts of a seeded entry (``None``: not trusted, not seeded, or Redis failed)."""
        if not await self._retrust():
            self.metrics.cache.labels(kind, "bypass").inc()
            return None
        local = self._local.get(key)
        if local is not None:
            self.metrics.cache.labels(kind, "local").inc()
            return {name: value for name, (_, value) in local.items()}
        found = await self._read(key)
        self.metrics.cache.labels(kind, "bypass" if found is None else
                                  "hit" if "seeded" in found else "miss").inc()  # fmt: skip
        return self._remember(key, found)

    async def seed(self, key: str, parts: Sequence[Part]) -> dict[str, Any] | None:
        """Write what PostgreSQL holds into an entry (only parts newer than the entry's),
        mark it seeded, and return it (the live consumer may have written newer parts)."""
        if not self._trusted:
            return None
        await self.put([(key, [*parts, Part("seeded", 0, 1)])])
        return self._remember(key, await self._read(key)) if self._trusted else None

    def _remember(
        self, key: str, found: dict[str, tuple[int, Any]] | None
    ) -> dict[str, Any] | None:
        if found is None or "seeded" not in found or not self._trusted:
            return None
        self._merge(key, found)
        return {name: value for name, (_, value) in self._local[key].items()}

    def _merge(self, key: str, parts: dict[str, tuple[int, Any]]) -> None:
        entry = self._local.setdefault(key, {})
        for name, (order, value) in parts.items():
            old = entry.get(name)
            if old is None or old[0] <= order:
                entry[name] = (order, value)

    async def _read(self, key: str) -> dict[str, tuple[int, Any]] | None:
        """An entry's parts with their orders (``None``: Redis failed)."""
        try:
            raw = await self.client.hgetall(key)
        except (RedisError, OSError) as error:
            self.distrust(repr(error))
            return None
        fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
        return {
            k: (int(fields.get(k + "@", 0)), orjson.loads(v))
            for k, v in fields.items()
            if not k.endswith("@")
        }


async def _batched(keys: Any, size: int = 500) -> Any:
    batch: list[Any] = []
    async for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
