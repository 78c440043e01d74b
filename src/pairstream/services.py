"""How services join the suite: a :class:`Service` published as an entry point.

Each ``services/<name>/`` package declares, in ``pyproject.toml``::

    [project.entry-points."pairstream.services"]
    ingest = "pairstream_ingest.service:SERVICE"

and ``SERVICE`` is a :class:`Service`: its typer commands (added to ``pairstream``
and ``pairstream bench``), its command line under ``pairstream up`` (with, for a
service users open in a browser, its :class:`Http` address) and its settings
groups (for ``pairstream settings``). The shared package never imports a
service; it finds them here. Loading an entry point must stay cheap: the module
holding ``SERVICE`` and its command module import typer and little else, and the
settings classes are returned by a function, so ``pairstream --help`` imports no
service's dependencies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer
    from pydantic_settings import BaseSettings

#: The entry-point group services register in.
ENTRY_POINT_GROUP = "pairstream.services"


@dataclass(frozen=True, slots=True)
class Http:
    """The HTTP address of a service, as ``pairstream up`` checks, waits for and prints it."""

    #: ``(host, port)`` the service will listen on, from its settings (imported when
    #: called, with the environment ``pairstream up`` runs in); port 0 = a free one.
    address: Callable[[], tuple[str, int]]
    #: The environment variable of that port: ``pairstream up`` sets it to the free port
    #: it chose when the settings say 0.
    port_env: str
    #: Answers 200 as soon as the service serves: ``pairstream up`` waits for it.
    live: str = "/health/live"
    #: Printed once ``live`` answers, with the health URL below.
    home: str = "/"
    #: The health URL printed (with the state of the service's dependencies).
    health: str = "/health/live"
    #: The name its URL is printed under (default: the service's name).
    label: str | None = None
    #: Other services' base URLs it is given under ``pairstream up``: environment variable
    #: → service name (``{"UI_API_URL": "api"}``), unless the environment sets it already.
    peers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Service:
    """One service of the suite, as the shared CLI and supervisor see it."""

    #: The service's name: the entry point's name and the log prefix under ``pairstream up``.
    name: str
    #: Start order under ``pairstream up`` (lower first; ties by name).
    order: int
    #: Adds the service's commands: ``commands(app, bench)`` with the ``pairstream`` app and
    #: its ``bench`` group. Runs whenever the CLI is built, so it must import nothing heavy.
    commands: Callable[[typer.Typer, typer.Typer], None]
    #: The service's settings groups, imported only when called (``pairstream settings``).
    settings: Callable[[], Sequence[type[BaseSettings]]]
    #: Arguments after ``pairstream`` that run the service under ``pairstream up``
    #: (``("ingest",)``); empty = ``pairstream up`` does not start it.
    up: tuple[str, ...] = ()
    #: Where the service serves HTTP under ``pairstream up``: the port is checked before
    #: anything starts and its URLs printed once it answers. ``None``: it serves no one.
    http: Http | None = None
    #: Under ``pairstream up``, once the database is migrated: a context giving more
    #: environment for the service's run (a key made for it), left when everything stops.
    prepare: Callable[[], AbstractAsyncContextManager[Mapping[str, str]]] | None = None
    #: Several may run at once (``pairstream up --scale <name>=N``): replicas split the
    #: partitions of its consumer group. Each replica after the first gets a free metrics
    #: port in this environment variable.
    metrics_port_env: str | None = None


@cache
def services() -> tuple[Service, ...]:
    """Every registered service, in start order."""
    from importlib.metadata import entry_points

    found: dict[str, Service] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        service = point.load()
        if not isinstance(service, Service):
            raise TypeError(
                f"entry point {point.name} = {point.value!r} of {ENTRY_POINT_GROUP} is not a "
                f"pairstream.services.Service"
            )
        if service.name != point.name:
            raise ValueError(
                f"entry point {point.name} = {point.value!r} names service {service.name!r}"
            )
        if service.name in found:  # the same distribution seen twice on sys.path
            continue
        found[service.name] = service
    return tuple(sorted(found.values(), key=lambda s: (s.order, s.name)))


def settings_groups() -> tuple[type[BaseSettings], ...]:
    """The settings groups of every service, in start order (imports their config modules)."""
    return tuple(group for service in services() for group in service.settings())
