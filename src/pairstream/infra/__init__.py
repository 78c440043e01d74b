"""Embedded infrastructure (no Docker, no root) and endpoint resolution.

Every process finds Kafka, PostgreSQL and Redis the same way: the environment
(``KAFKA_BOOTSTRAP``, ``DATABASE_URL``, ``REDIS_URL``) first, then the embedded
servers recorded by ``pairstream infra up`` under the state directory.

This module imports nothing the services' images lack: the embedded servers
(:mod:`.manager`, :mod:`.parts`, the ``embedded`` extra) are imported only when an
address is not in the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pairstream.settings import InfraSettings

#: the environment variable giving each part's address
ENV_VARS = {"kafka": "KAFKA_BOOTSTRAP", "postgres": "DATABASE_URL", "redis": "REDIS_URL"}


class InfraError(RuntimeError):
    """Embedded infrastructure could not be started, checked or stopped, or a part has no
    address."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the three infrastructure parts answer."""

    kafka_bootstrap: str
    database_url: str
    redis_url: str


def resolve_endpoint(part: str, settings: InfraSettings | None = None) -> str:
    """The address of one part (``kafka``, ``postgres`` or ``redis``): environment first,
    else the server ``pairstream infra up`` recorded."""
    try:
        from pairstream.infra.manager import InfraManager
    except ImportError as error:  # an image: only the environment gives addresses
        raise InfraError(
            f"no address for {part}: set {ENV_VARS[part]} (the embedded infrastructure is "
            f"not installed here: {error})"
        ) from None
    url = InfraManager(settings).urls().get(part)
    if url is None:
        raise InfraError(
            f"no address for {part}: set {ENV_VARS[part]}, or run `pairstream infra up`"
        )
    return url


def resolve_endpoints(settings: InfraSettings | None = None) -> Endpoints:
    """All three addresses (see :func:`resolve_endpoint`)."""
    return Endpoints(
        resolve_endpoint("kafka", settings),
        resolve_endpoint("postgres", settings),
        resolve_endpoint("redis", settings),
    )


__all__ = ["ENV_VARS", "Endpoints", "InfraError", "resolve_endpoint", "resolve_endpoints"]
