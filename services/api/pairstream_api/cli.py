"""``pairstream api``: the server, its OpenAPI document and its API keys.

Imports typer only; everything else is imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pairstream.cliutil import console, fail, settings_from

api_app = typer.Typer(
    help="The REST API (FastAPI): run it, export its OpenAPI, manage API keys.",
    invoke_without_command=True,
    no_args_is_help=False,
)
keys_app = typer.Typer(help="API keys (stored hashed; a key is shown once, at creation).")
api_app.add_typer(keys_app, name="keys")


@api_app.callback()
def api(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Listen address (API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (API_PORT; 0 = a free one).")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes (API_WORKERS).")] = None,
) -> None:
    """Without a subcommand: serve the API (settings API_*, DB_*, REDIS_URL, KAFKA_*)."""
    if ctx.invoked_subcommand is not None:
        return
    from pairstream_api.config import ApiSettings
    from pairstream_api.server import serve

    given = {"host": host, "port": port, "workers": workers}
    settings = settings_from(ApiSettings, **given)
    serve(settings)


@api_app.command("openapi")
def openapi(
    out: Annotated[Path | None, typer.Option(help="Write to this file (default: stdout).")] = None,
) -> None:
    """The complete OpenAPI document (JSON)."""
    import orjson

    from pairstream_api.main import create_app

    document = orjson.dumps(create_app().openapi(), option=orjson.OPT_INDENT_2).decode()
    if out is None:
        typer.echo(document)
    else:
        out.write_text(document + "\n", encoding="utf-8")
        console().print(f"wrote {out}")


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


async def _with_conn(work: Any) -> Any:
    from pairstream.db import connect
    from pairstream.db.migrate import migrate
    from pairstream.settings import DatabaseSettings

    db = DatabaseSettings()
    conn = await connect(db)
    try:
        await migrate(conn, db)
        return await work(conn)
    finally:
        await conn.close()


@keys_app.command("create")
def keys_create(
    scope: Annotated[str, typer.Option(help="read or write.")] = "read",
    name: Annotated[str, typer.Option(help="Who or what uses it.")] = "",
) -> None:
    """Create a key and print it (the only time it is shown)."""
    from pairstream_api.keys import create_key

    if scope not in ("read", "write"):
        raise typer.BadParameter("read or write", param_hint="--scope")
    key, token = _run(_with_conn(lambda conn: create_key(conn, name or scope, scope)))  # type: ignore[arg-type]
    console().print(f"key {key.id} ({key.scope}, {key.name}) created; it is shown only now:")
    typer.echo(token)


@keys_app.command("list")
def keys_list() -> None:
    """Every key (never their secrets)."""
    from rich.table import Table

    from pairstream_api.keys import list_keys

    table = Table()
    for column in ("id", "scope", "name", "created", "revoked"):
        table.add_column(column)
    for k in _run(_with_conn(list_keys)):
        table.add_row(
            k.id, k.scope, k.name, f"{k.created_at:%Y-%m-%d %H:%M}",
            "" if k.revoked_at is None else f"{k.revoked_at:%Y-%m-%d %H:%M}",
        )  # fmt: skip
    console().print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id (from `keys list`).")]) -> None:
    """Revoke a key (APIs stop accepting it within API_KEY_CACHE_S)."""
    from pairstream_api.keys import revoke_key

    if not _run(_with_conn(lambda conn: revoke_key(conn, key_id))):
        raise fail(LookupError(f"no live key {key_id!r}"))
    console().print(f"key {key_id} revoked")


def bench_api(
    concurrency: Annotated[
        int, typer.Option(min=1, max=512, help="HTTP connections of the load generator.")
    ] = 32,
    seconds: Annotated[float, typer.Option(min=1, help="Length of each HTTP run.")] = 5.0,
    clients: Annotated[int, typer.Option(min=1, help="WebSocket clients.")] = 500,
    pairs: Annotated[int, typer.Option(min=1, help="Pairs each client subscribes to.")] = 10,
    ws_seconds: Annotated[float, typer.Option(min=1, help="Length of each WebSocket run.")] = 8.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """`…/latest` GETs/s against a constant route of the same server, p99 of a
    10,000-bar range query, WebSocket fan-out delivery p99 and the highest rate sustained."""
    import asyncio

    from pairstream.cliutil import bench_infra, err, measures, print_bench
    from pairstream_api.bench import bench_api as run_bench

    with bench_infra(), err().status("benchmarking the API (HTTP, range, WebSocket fan-out)…"):
        r = asyncio.run(run_bench(concurrency=concurrency, seconds=seconds, clients=clients,
                                  pairs=pairs, ws_seconds=ws_seconds))  # fmt: skip
    if as_json:
        print(r.as_json().decode())
        return
    table = measures(f"pairstream bench api ({r.cpus} CPUs, server in its own process, "
                     f"{r.concurrency} connections)")  # fmt: skip
    table.add_row("GET …/analytics/{pair}/latest", f"{r.latest_gets_per_s:,} req/s "
                  f"(p99 {r.latest_p99_ms:.1f} ms)")  # fmt: skip
    table.add_row("GET /api/v1/version (constant, same key check and rate limit)",
                  f"{r.constant_gets_per_s:,} req/s")  # fmt: skip
    table.add_row("GET /health/live (constant, nothing in front)", f"{r.bare_gets_per_s:,} req/s")
    table.add_row("latest vs constant", f"{r.ratio_to_constant:.3f}")
    table.add_row(f"{r.range_bars:,}-bar range query",
                  f"p50 {r.range_p50_ms:.1f} ms, p99 {r.range_p99_ms:.1f} ms")  # fmt: skip
    for label, run in (("WebSocket", r.fanout), ("… with a stuck client", r.with_stuck_client),
                       *(("… step", s) for s in r.steps[1:])):  # fmt: skip
        table.add_row(
            f"{label}: {r.ws_clients} clients × {r.ws_pairs} pairs at "
            f"{run.rate_per_pair_per_s:g}/s = {run.messages_out_per_s:,} msg/s",
            f"p50 {run.p50_ms:.1f}, p99 {run.p99_ms:.1f}, max {run.max_ms:.1f} ms; "
            f"{run.lost:,} lost"
            + (f"; the stuck one dropped {run.stuck_dropped:,}" if run is r.with_stuck_client
               else ""),
        )  # fmt: skip
    runs = ", ".join(f"{p:.1f}" for p in r.fanout_p99s_ms)
    table.add_row(f"WebSocket p99 at {r.fanout.messages_out_per_s:,} msg/s, "
                  f"{len(r.fanout_p99s_ms)} runs", runs)  # fmt: skip
    each = ", ".join(f"{d:+.1f}" for d in r.stuck_delays_ms)
    table.add_row("stuck client's delay of the others (median tick's p99, 3 pairs of runs)",
                  f"{r.stuck_delay_ms:+.1f} ms ({each})")  # fmt: skip
    bound = "" if r.limit_found else "≥ "  # every step passed: the highest one tried
    table.add_row("highest rate with p99 ≤ 100 ms, 0 lost",
                  f"{bound}{r.max_sustained_messages_per_s:,} msg/s")  # fmt: skip
    print_bench(table, r.targets)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``api`` (with its subcommands) to ``pairstream``; ``api`` to its bench group."""
    app.add_typer(api_app, name="api")
    bench.command("api")(bench_api)
