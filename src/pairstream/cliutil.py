"""Helpers shared by the ``pairstream`` commands and the commands services add to it.

Kept cheap to import (typer only): rich, pydantic settings and the infrastructure
are imported when a command runs, so ``pairstream --help`` stays quick.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Coroutine, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings
    from rich.console import Console
    from rich.table import Table

S = TypeVar("S", bound="BaseSettings")


@cache
def console() -> Console:
    """Rich console on stdout."""
    from rich.console import Console

    return Console()


@cache
def err() -> Console:
    """Rich console on stderr."""
    from rich.console import Console

    return Console(stderr=True)


def fail(error: Exception) -> typer.Exit:
    """Print ``error`` in red on stderr; the exit (code 1) to raise."""
    err().print(f"[red]error:[/red] {error}")
    return typer.Exit(1)


def settings_from(group: type[S], **given: Any) -> S:
    """``group`` from the environment with the options given on the command line (those
    not ``None``) on top; invalid values exit with the validation error."""
    from pydantic import ValidationError

    try:
        return group(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as error:
        raise fail(ValueError(str(error))) from error


def parse_speed(value: str) -> float | None:
    """``--speed``: a positive factor, or ``max`` (``None``)."""
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise typer.BadParameter("a positive number, or `max`") from None
    if not speed > 0:
        raise typer.BadParameter("a positive number, or `max`")
    return speed


def run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run a service's main coroutine; SIGTERM or Ctrl-C cancel it, which stops it cleanly."""
    import asyncio

    async def serve() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(serve())


@contextlib.contextmanager
def bench_infra() -> Iterator[None]:
    """Embedded infrastructure for a bench when none is configured; stopped afterwards."""
    from pairstream.infra import InfraError
    from pairstream.infra.manager import InfraManager
    from pairstream.settings import DatabaseSettings, KafkaSettings

    manager, started = InfraManager(), []
    if not (KafkaSettings().bootstrap and DatabaseSettings().url):
        try:
            started = [r.name for r in manager.up() if r.state == "started"]
        except InfraError as error:
            raise fail(error) from error
    try:
        yield
    finally:
        if started:
            manager.down(only=started)


def measures(title: str) -> Table:
    """A two-column table (measure, value) for a bench's figures."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    return table


def print_bench(table: Table, targets: Mapping[str, bool]) -> None:
    """A bench's table, then each target met or missed."""
    out = console()
    out.print(table)
    for target, met in targets.items():
        out.print(f"{'[green]met[/green]' if met else '[red]missed[/red]'}  {target}")
