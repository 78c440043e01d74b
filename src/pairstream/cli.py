"""The ``pairstream`` command line.

The shared commands live here; each service adds its own (``pairstream ingest``,
``pairstream bench resampler`` …) through its :class:`pairstream.services.Service`
entry point. Module level imports typer only: everything else is imported by the
command that needs it, so ``pairstream --help`` stays quick.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pairstream import __version__
from pairstream.cliutil import console, err, fail
from pairstream.services import services

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings
    from rich.table import Table

    from pairstream.infra.manager import PartReport
    from pairstream.services import Service

# Plain (click) help, not typer's rich panels: rendering help with rich imports
# typer.rich_utils (rich.markdown, rich.traceback, pygments…), which doubles the
# time `pairstream --help` takes. Errors still get rich tracebacks.
_PLAIN: dict[str, Any] = {"rich_markup_mode": None, "no_args_is_help": True}

app = typer.Typer(
    help="pairstream: real-time pairs-trading analytics on Binance trades.",
    add_completion=False,
    context_settings={"max_content_width": 120},
    **_PLAIN,
)
infra_app = typer.Typer(help="Embedded Kafka, PostgreSQL and Redis (no Docker, no root).", **_PLAIN)
db_app = typer.Typer(help="Database schema and maintenance.", **_PLAIN)
topics_app = typer.Typer(help="Kafka topics of the public contract.", **_PLAIN)
app.add_typer(infra_app, name="infra")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
bench_app = typer.Typer(
    help="Reproducible benchmarks, each beside a baseline measured in the same run.", **_PLAIN
)
app.add_typer(bench_app, name="bench")

_STYLE = {
    "started": "green",
    "running": "green",
    "external": "cyan",
    "stopped": "yellow",
    "down": "red",
    "unhealthy": "red",
    "stale": "yellow",
}


def _table(reports: Sequence[PartReport], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for column in ("part", "state", "address", "detail"):
        table.add_column(column)
    for r in reports:
        style = _STYLE.get(r.state, "")
        table.add_row(r.name, f"[{style}]{r.state}[/{style}]", r.url or "-", r.detail)
    return table


@app.callback()
def _root() -> None:
    from pairstream.logs import setup_logging

    setup_logging()


@app.command()
def version() -> None:
    """Print the pairstream version."""
    console().print(__version__)


# -- infra --------------------------------------------------------------------


@infra_app.command("up")
def infra_up() -> None:
    """Start what is not running yet and wait until each part answers; print exports."""
    from pairstream.infra import InfraError
    from pairstream.infra.manager import InfraManager, exports

    try:
        reports = InfraManager().up()
    except InfraError as error:
        raise fail(error) from error
    err().print(_table(reports, "infrastructure"))
    print(exports(reports))


@infra_app.command("status")
def infra_status() -> None:
    """Check each part with a real request; exit 1 when any is down."""
    from pairstream.infra.manager import InfraManager

    reports = InfraManager().status()
    console().print(_table(reports, "infrastructure"))
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@infra_app.command("down")
def infra_down() -> None:
    """Stop exactly what `infra up` started."""
    from pairstream.infra import InfraError
    from pairstream.infra.manager import InfraManager

    try:
        reports = InfraManager().down()
    except InfraError as error:
        raise fail(error) from error
    console().print(_table(reports, "infrastructure"))


# -- contract -------------------------------------------------------------------


@app.command()
def schemas(
    out: Annotated[Path, typer.Option("--out", help="Folder for the schema files.")] = Path(
        "schemas"
    ),
) -> None:
    """Write one JSON Schema (draft 2020-12) per topic plus index.json."""
    from pairstream.schemas import write_schemas
    from pairstream.settings import TopicSettings

    for path in write_schemas(out, TopicSettings()):
        console().print(str(path))


def all_settings_groups() -> tuple[type[BaseSettings], ...]:
    """The shared settings groups, then each registered service's in start order."""
    from pairstream.services import settings_groups
    from pairstream.settings import SETTINGS_GROUPS

    return (*SETTINGS_GROUPS, *settings_groups())


@app.command("settings")
def show_settings() -> None:
    """Print every setting as a Markdown table (the README's configuration table)."""
    from pairstream.settings import settings_table

    print(settings_table(all_settings_groups()), end="")


@topics_app.command("create")
def topics_create() -> None:
    """Create the contract's topics with their partition counts (idempotent)."""
    import asyncio

    from pairstream.kafka import contract_topics, ensure_topics
    from pairstream.settings import KafkaSettings

    outcome = asyncio.run(ensure_topics(contract_topics(), KafkaSettings()))
    for name, what in outcome.items():
        console().print(f"{name}: {what}")


# -- database -------------------------------------------------------------------


async def _migrate() -> str:
    from pairstream.db import connection
    from pairstream.db.migrate import migrate
    from pairstream.settings import DatabaseSettings

    settings = DatabaseSettings()
    async with connection(settings) as conn:
        result = await migrate(conn, settings)
    return (
        f"schema {result.schema} ({result.variant}): applied {result.applied or 'none'}, "
        f"already applied {result.already or 'none'}"
    )


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations and the retention/compression policies (idempotent)."""
    import asyncio

    from pairstream.db.migrate import MigrationError
    from pairstream.infra import InfraError

    try:
        console().print(asyncio.run(_migrate()))
    except (MigrationError, InfraError) as error:
        raise fail(error) from error


@db_app.command("prune")
def db_prune() -> None:
    """Delete rows past their retention (plain PostgreSQL; TimescaleDB uses policies)."""
    import asyncio

    from pairstream.db import connection
    from pairstream.db.migrate import prune
    from pairstream.settings import DatabaseSettings

    async def run() -> dict[str, int]:
        settings = DatabaseSettings()
        async with connection(settings) as conn:
            return await prune(conn, settings)

    console().print(asyncio.run(run()))


# -- the services' own commands (entry points), then the whole suite -------------

for _service in services():
    _service.commands(app, bench_app)


def _http_address(service: Service, env: dict[str, str]) -> tuple[str, int]:
    """Where ``service`` will answer under ``pairstream up``: its port checked free before
    anything starts (or, when its settings say 0, a free one chosen and set in ``env``)."""
    from pydantic import ValidationError

    from pairstream.infra.manager import free_port, port_in_use

    assert service.http is not None
    try:
        host, port = service.http.address()
    except ValidationError as error:
        raise fail(ValueError(str(error))) from error
    local = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
    var = service.http.port_env
    if port == 0:
        port = free_port(local)
        env[var] = str(port)
    elif port_in_use(local, port):
        raise fail(
            OSError(
                f"{service.name}: port {host}:{port} is already taken by another program; "
                f"set {var}=0 for a free port, or {var} to another one"
            )
        )
    return local, port


def _replicas(text: str) -> dict[str, int]:
    """``resampler=2,analytics=3`` → ``{"resampler": 2, "analytics": 3}`` (1–32 each)."""
    out: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, count = item.partition("=")
        if not sep or not count.isdigit() or not 1 <= int(count) <= 32:
            raise ValueError(f"{item!r}: give <service>=<replicas>, 1 to 32 replicas")
        out[name.strip()] = int(count)
    return out


def _base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _announce(service: Service, host: str, port: int, patience_s: float = 60.0) -> None:
    """Print ``service``'s URLs once its liveness path answers 200 (and say so, once, when
    it has not after ``patience_s``; the supervisor keeps restarting it meanwhile)."""
    import asyncio
    import contextlib

    assert service.http is not None
    http = service.http
    base = _base_url(host, port)

    async def status() -> int:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {http.live} HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode())
            await writer.drain()
            words = (await reader.readline()).split()  # b"HTTP/1.1 200 OK"
        finally:
            writer.close()
        return int(words[1]) if len(words) > 1 else 0

    loop = asyncio.get_running_loop()
    deadline, told = loop.time() + patience_s, False
    while True:
        with contextlib.suppress(OSError, ValueError, TimeoutError):
            if await asyncio.wait_for(status(), timeout=2) == 200:
                break
        if not told and loop.time() > deadline:
            told = True
            console().print(
                f"{service.name}: no answer at {base}{http.live} after {patience_s:.0f}s yet "
                f"(see its log lines)", highlight=False, soft_wrap=True
            )  # fmt: skip
        await asyncio.sleep(0.2)
    console().print(
        f"{http.label or service.name}: {base}{http.home} (health: {base}{http.health})",
        highlight=False, soft_wrap=True,
    )  # fmt: skip


@app.command()
def up(
    source: Annotated[
        str | None,
        typer.Option(help="Ingest source: `synthetic` (default, offline) or `binance` (live)."),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also show the libraries' INFO logs (Kafka group joins, rebalances, Faust "
            "start/stop): LOG_LIBRARY_LEVEL=INFO. LOG_LEVEL=DEBUG shows everything.",
        ),
    ] = False,
    scale: Annotated[
        str | None,
        typer.Option(
            help="Replicas of the Kafka workers, `resampler=2,analytics=2,alerts=2`: they "
            "split their consumer groups' partitions; each after the first gets a free "
            "metrics port (printed).",
        ),
    ] = None,
) -> None:
    """Start the infrastructure and every service, supervised, until Ctrl-C or SIGTERM.

    Prints the infrastructure's addresses, then each service's log lines prefixed
    with its name, among them one status line a minute per service (throughput and
    lag; <SERVICE>_STATUS_INTERVAL_S), and the URLs of each service that serves HTTP
    once it answers (the API: API_PORT, default 8000; a port already taken is an error
    before anything starts, 0 picks a free one).
    """
    import asyncio
    import contextlib

    from pairstream.infra import InfraError
    from pairstream.infra.manager import InfraManager, exports, free_port
    from pairstream.settings import KafkaSettings
    from pairstream.supervisor import Supervisor, suite

    if source is not None and source not in ("synthetic", "binance", "replay"):
        raise typer.BadParameter("`synthetic`, `binance` or `replay`", param_hint="--source")
    try:
        specs = suite(_replicas(scale or ""), lambda: free_port("127.0.0.1"))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--scale") from None

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the cleanup below

    if verbose:  # for this process and, through the environment, every service
        from pairstream.logs import setup_logging

        os.environ["LOG_LIBRARY_LEVEL"] = "INFO"
        setup_logging()
    signal.signal(signal.SIGTERM, interrupt)
    chosen: dict[str, str] = {}  # ports picked for services configured with port 0
    listening = {
        s.name: (s, *_http_address(s, chosen)) for s in services() if s.up and s.http is not None
    }
    manager = InfraManager()
    try:
        reports = manager.up()
    except InfraError as error:
        raise fail(error) from error
    started = [r.name for r in reports if r.state == "started"]
    err().print(_table(reports, "infrastructure"))
    print(exports(reports), flush=True)
    env = dict(os.environ)
    env.update({r.env_var: r.url for r in reports if r.url})
    env.update(chosen)
    for s, *_ in listening.values():
        assert s.http is not None
        for var, peer in s.http.peers.items():
            if peer in listening and var not in os.environ:
                env[var] = _base_url(*listening[peer][1:])
    if source is not None:
        env["INGEST_SOURCE"] = source
    kafka = next((r for r in reports if r.env_var == "KAFKA_BOOTSTRAP"), None)
    if kafka is not None and kafka.state != "external":
        # the embedded broker refuses idempotent producers: skip the probe (and the
        # warning every service would print about it)
        env.setdefault("KAFKA_IDEMPOTENCE", "off")

    async def run() -> None:
        os.environ.update(env)
        console().print(await _migrate())
        from pairstream.kafka import contract_topics, ensure_topics

        created = await ensure_topics(contract_topics(), KafkaSettings())
        console().print(f"topics: {len(created)} ready")
        async with contextlib.AsyncExitStack() as prepared:
            for s in services():
                if s.up and s.prepare is not None:
                    env.update(await prepared.enter_async_context(s.prepare()))
            await supervise()

    async def supervise() -> None:
        supervisor = Supervisor(specs, env=env)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        names = ", ".join(s.name for s in specs) or "none yet"
        console().print(
            f"services: {names}. Ctrl-C or SIGTERM stops everything.",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
        for spec in specs:
            for var, port in spec.env.items():
                console().print(f"{spec.name}: metrics on http://127.0.0.1:{port}/metrics "
                                f"({var})", highlight=False, soft_wrap=True)  # fmt: skip
        announcing = [
            asyncio.create_task(_announce(*listening[s.name])) for s in specs if s.name in listening
        ]
        try:
            await supervisor.run()
        finally:
            for task in announcing:
                task.cancel()
            await asyncio.gather(*announcing, return_exceptions=True)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        for report in manager.down(only=started):
            console().print(f"{report.name}: {report.state} ({report.detail})")


def main() -> None:
    """Console-script entry point."""
    app()
