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


def resolve_endpoints(settings: InfraSettings | None = None) -> Endpoints:
    """Addresses from the environment, else from ``pairstream infra up``'s records."""
    urls = InfraManager(settings).urls()
    missing = [name for name in ("kafka", "postgres", "redis") if name not in urls]
    if missing:
        raise InfraError(
            f"no address for {', '.join(missing)}: set KAFKA_BOOTSTRAP / DATABASE_URL / "
            "REDIS_URL, or run `pairstream infra up`"
        )
    return Endpoints(urls["kafka"], urls["postgres"], urls["redis"])


__all__ = ["Endpoints", "InfraError", "InfraManager", "PartReport", "exports", "resolve_endpoints"]
