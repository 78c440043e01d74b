"""``pairstream ingest``, ``pairstream replay`` and ``pairstream bench ingest``.

Imports typer only; the service's modules are imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pairstream.cliutil import (
    bench_infra,
    console,
    err,
    measures,
    parse_speed,
    print_bench,
    run_until_signalled,
    settings_from,
)


def replay(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Frame files (.jsonl[.gz]) or trades CSVs (.csv, .csv.gz, .zip), each optionally "
            "prefixed with its market (`spot:trades.csv`); unprefixed frames tell their market "
            "by their fields (spot payloads carry `M`), other files are of --market.",
            metavar="[MARKET:]PATH...",
        ),
    ],
    speed: Annotated[str, typer.Option(help="Event-time speed-up factor, or `max`.")] = "max",
    market: Annotated[
        str | None,
        typer.Option(
            help="`usdm` or `spot`: files that do not say theirs (default MARKET_DEFAULT)."
        ),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            help="Only these instruments (`usdm:BTCUSDT,spot:BTCUSDT`; a bare symbol is of "
            "--market); others are dead-lettered."
        ),
    ] = None,
) -> None:
    """Replay recorded Binance trades into the ticks topic, merged by event time."""
    import asyncio

    from rich.progress import Progress, SpinnerColumn, TextColumn

    from pairstream.instruments import parse_instrument
    from pairstream.settings import default_market
    from pairstream_ingest.main import run_replay
    from pairstream_ingest.replay import ReplayFile

    chosen = market or default_market()
    if chosen not in ("usdm", "spot"):
        raise typer.BadParameter("`usdm` or `spot`", param_hint="--market")
    files = [ReplayFile.parse(p) for p in paths]
    for file in files:
        if not file.path.is_file():
            raise typer.BadParameter(f"no such file: {file.path}", param_hint="PATH")
    try:
        wanted = (
            frozenset(parse_instrument(s, chosen) for s in symbols.split(",") if s.strip())
            if symbols
            else None
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--symbols") from None
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=err(), transient=True
    ) as bar:
        task = bar.add_task("replaying")

        def progress(read: int) -> None:
            bar.update(task, description=f"replaying: {read:,} records read")

        stats = asyncio.run(
            run_replay(
                files,
                parse_speed(speed),
                market="spot" if chosen == "spot" else "usdm",
                symbols=wanted,
                progress=progress,
            )
        )
    published = sum(stats.per_symbol.values())
    console().print(
        f"read {stats.read:,} records; published {published:,} trades "
        f"({', '.join(f'{s} {n:,}' for s, n in sorted(stats.per_symbol.items()))}); "
        f"duplicates dropped {stats.duplicates:,}; dead-lettered "
        f"{stats.bad + stats.not_subscribed:,}; missing ids {stats.skipped_ids:,}"
    )


def ingest(
    source: Annotated[
        str | None, typer.Option(help="`synthetic` (offline), `binance` (live) or `replay`.")
    ] = None,
    market: Annotated[
        str | None, typer.Option(help="Market of bare symbols: `usdm` or `spot`.")
    ] = None,
    stream: Annotated[str | None, typer.Option(help="`trade` or `aggTrade`.")] = None,
    symbols: Annotated[
        str | None,
        typer.Option(help="Instruments, comma-separated (`usdm:BTCUSDT,spot:BTCUSDT`, or bare)."),
    ] = None,
    ws_url: Annotated[
        str | None, typer.Option(help="WebSocket URL (route included), or `usdm=…,spot=…`.")
    ] = None,
    rest_url: Annotated[
        str | None, typer.Option(help="REST base URL for backfill, or `usdm=…,spot=…`.")
    ] = None,
    replay_path: Annotated[
        list[Path] | None, typer.Option("--replay", help="File for `--source replay` (repeat).")
    ] = None,
    speed: Annotated[
        str | None, typer.Option(help="Replay/synthetic speed factor, or `max`.")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (0 = off).")] = None,
) -> None:
    """Ingest trades into the ticks topic (settings: INGEST_* variables; flags override)."""
    from pairstream_ingest.config import IngestSettings
    from pairstream_ingest.main import run_ingest

    given: dict[str, object] = {
        "source": source, "market": market, "stream": stream, "symbols": symbols,
        "ws_url": ws_url, "rest_url": rest_url, "metrics_port": metrics_port,
    }  # fmt: skip
    overrides = dict(given)
    if replay_path:
        overrides["replay_paths"] = tuple(str(p) for p in replay_path)
    if speed is not None:
        overrides["replay_speed"] = overrides["synthetic_speed"] = parse_speed(speed)
    run_until_signalled(run_ingest(settings_from(IngestSettings, **overrides)))


def bench_ingest(
    frames: Annotated[
        Path | None, typer.Option(help="Recorded frames (.jsonl[.gz]); default: the fixture.")
    ] = None,
    repeat: Annotated[int, typer.Option(min=1, help="Copies of the recording (new ids).")] = 4,
    rate: Annotated[float, typer.Option(min=1, help="Trades/s of the latency run.")] = 2_000,
    seconds: Annotated[float, typer.Option(min=0.5, help="Length of the latency run.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Ingest throughput (decode+validate+dedupe+publish) vs a raw producer; p99 frame→ack."""
    import asyncio

    from pairstream_ingest.bench import DEFAULT_FRAMES
    from pairstream_ingest.bench import bench_ingest as run_bench

    with bench_infra(), err().status("benchmarking ingest (throughput, raw baseline, latency)…"):
        result = asyncio.run(
            run_bench(frames or DEFAULT_FRAMES, repeat=repeat, rate=rate, latency_s=seconds)
        )
    if as_json:
        print(result.as_json().decode())
        return
    table = measures(f"pairstream bench ingest ({result.trades:,} trades, {result.cpus} CPUs)")
    table.add_row(
        "pipeline (decode+validate+dedupe+publish)", f"{result.pipeline_trades_per_s:,.0f} trades/s"
    )
    table.add_row("raw aiokafka forwarder, same frames", f"{result.raw_trades_per_s:,.0f} trades/s")
    table.add_row("ratio pipeline / raw", f"{result.ratio:.2f}")
    table.add_row(
        f"frame→ack at {result.latency_rate_per_s:,.0f}/s: p50", f"{result.latency_p50_ms:.3f} ms"
    )
    table.add_row("p99", f"{result.latency_p99_ms:.3f} ms")
    table.add_row("max", f"{result.latency_max_ms:.3f} ms")
    print_bench(table, result.targets)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``replay`` and ``ingest`` to ``pairstream``, ``ingest`` to ``pairstream bench``."""
    app.command()(replay)
    app.command()(ingest)
    bench.command("ingest")(bench_ingest)
