"""Embedded infrastructure (no Docker, no root) and endpoint resolution.

Every process finds Kafka, PostgreSQL and Redis the same way: the environment
(``KAFKA_BOOTSTRAP``, ``DATABASE_URL``, ``REDIS_URL``) first, then the embedded
servers recorded by ``pairstream infra up`` under the state directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from pairstream.infra.manager import InfraManager, PartReport, exports
from pairstream.infra.parts import InfraError
from pairstream.settings import InfraSettings


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the three infrastructure parts answer."""

    kafka_bootstrap: str
    database_url: str
    redis_url: str


def resolve_endpoint(part: str, settings: InfraSettings | None = None) -> str:
    """The address of one part (``kafka``, ``postgres`` or ``redis``): environment first,
    else the server ``pairstream infra up`` recorded."""
    manager = InfraManager(settings)
    url = manager.urls().get(part)
    if url is None:
        env_var = next(p.env_var for p in manager.parts if p.name == part)
        raise InfraError(f"no address for {part}: set {env_var}, or run `pairstream infra up`")
    return url


def resolve_endpoints(settings: InfraSettings | None = None) -> Endpoints:
    """All three addresses (see :func:`resolve_endpoint`)."""
    return Endpoints(
        resolve_endpoint("kafka", settings),
        resolve_endpoint("postgres", settings),
        resolve_endpoint("redis", settings),
    )


__all__ = [
    "Endpoints",
    "InfraError",
    "InfraManager",
    "PartReport",
    "exports",
    "resolve_endpoint",
    "resolve_endpoints",
]
