"""The ``pairstream`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from pydantic_settings import BaseSettings
from rich.console import Console
from rich.table import Table

from pairstream import __version__
from pairstream.infra import InfraError, InfraManager, PartReport, exports
from pairstream.logs import setup_logging
from pairstream.messages import Market
from pairstream.settings import (
    SETTINGS_GROUPS,
    DatabaseSettings,
    KafkaSettings,
    TopicSettings,
    settings_table,
)

app = typer.Typer(
    help="pairstream: real-time pairs-trading analytics on Binance trades.",
    no_args_is_help=True,
    add_completion=False,
)
infra_app = typer.Typer(
    help="Embedded Kafka, PostgreSQL and Redis (no Docker, no root).", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the public contract.", no_args_is_help=True)
app.add_typer(infra_app, name="infra")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
bench_app = typer.Typer(
    help="Reproducible benchmarks, each beside a baseline measured in the same run.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")

console = Console()
err = Console(stderr=True)

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
    table = Table(title=title)
    for column in ("part", "state", "address", "detail"):
        table.add_column(column)
    for r in reports:
        style = _STYLE.get(r.state, "")
        table.add_row(r.name, f"[{style}]{r.state}[/{style}]", r.url or "-", r.detail)
    return table


def _fail(error: Exception) -> typer.Exit:
    err.print(f"[red]error:[/red] {error}")
    return typer.Exit(1)


@app.callback()
def _root() -> None:
    setup_logging()


@app.command()
def version() -> None:
    """Print the pairstream version."""
    console.print(__version__)


# -- infra --------------------------------------------------------------------


@infra_app.command("up")
def infra_up() -> None:
    """Start what is not running yet and wait until each part answers; print exports."""
    try:
        reports = InfraManager().up()
    except InfraError as error:
        raise _fail(error) from error
    err.print(_table(reports, "infrastructure"))
    print(exports(reports))


@infra_app.command("status")
def infra_status() -> None:
    """Check each part with a real request; exit 1 when any is down."""
    reports = InfraManager().status()
    console.print(_table(reports, "infrastructure"))
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@infra_app.command("down")
def infra_down() -> None:
    """Stop exactly what `infra up` started."""
    try:
        reports = InfraManager().down()
    except InfraError as error:
        raise _fail(error) from error
    console.print(_table(reports, "infrastructure"))


# -- contract -------------------------------------------------------------------


@app.command()
def schemas(
    out: Annotated[Path, typer.Option("--out", help="Folder for the schema files.")] = Path(
        "schemas"
    ),
) -> None:
    """Write one JSON Schema (draft 2020-12) per topic plus index.json."""
    from pairstream.schemas import write_schemas

    for path in write_schemas(out, TopicSettings()):
        console.print(str(path))


def all_settings_groups() -> tuple[type[BaseSettings], ...]:
    """The shared settings groups, then each service's."""
    from pairstream_analytics.config import AnalyticsSettings
    from pairstream_ingest.config import IngestSettings
    from pairstream_resampler.config import ResamplerSettings

    return (*SETTINGS_GROUPS, IngestSettings, ResamplerSettings, AnalyticsSettings)


@app.command("settings")
def show_settings() -> None:
    """Print every setting as a Markdown table (the README's configuration table)."""
    print(settings_table(all_settings_groups()), end="")


@topics_app.command("create")
def topics_create() -> None:
    """Create the contract's topics with their partition counts (idempotent)."""
    from pairstream.kafka import contract_topics, ensure_topics

    outcome = asyncio.run(ensure_topics(contract_topics(), KafkaSettings()))
    for name, what in outcome.items():
        console.print(f"{name}: {what}")


# -- database -------------------------------------------------------------------


async def _migrate() -> str:
    from pairstream.db import connection
    from pairstream.db.migrate import migrate

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
    from pairstream.db.migrate import MigrationError

    try:
        console.print(asyncio.run(_migrate()))
    except (MigrationError, InfraError) as error:
        raise _fail(error) from error


@db_app.command("prune")
def db_prune() -> None:
    """Delete rows past their retention (plain PostgreSQL; TimescaleDB uses policies)."""
    from pairstream.db import connection
    from pairstream.db.migrate import prune

    async def run() -> dict[str, int]:
        settings = DatabaseSettings()
        async with connection(settings) as conn:
            return await prune(conn, settings)

    console.print(asyncio.run(run()))


# -- services -------------------------------------------------------------------


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise typer.BadParameter("a positive number, or `max`") from None
    if not speed > 0:
        raise typer.BadParameter("a positive number, or `max`")
    return speed


@app.command()
def replay(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Frame files (.jsonl[.gz]) or trades CSVs (.csv, .csv.gz, .zip).",
            exists=True,
            dir_okay=False,
        ),
    ],
    speed: Annotated[str, typer.Option(help="Event-time speed-up factor, or `max`.")] = "max",
    market: Annotated[str, typer.Option(help="`usdm` or `spot` (for CSV files).")] = "usdm",
    symbols: Annotated[
        str | None,
        typer.Option(help="Only these symbols (comma-separated); others are dead-lettered."),
    ] = None,
) -> None:
    """Replay recorded Binance trades into the ticks topic, merged by event time."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from pairstream_ingest.main import run_replay

    if market not in ("usdm", "spot"):
        raise typer.BadParameter("`usdm` or `spot`", param_hint="--market")
    wanted = frozenset(s.strip().upper() for s in symbols.split(",")) if symbols else None
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True
    ) as bar:
        task = bar.add_task("replaying")

        def progress(read: int) -> None:
            bar.update(task, description=f"replaying: {read:,} records read")

        stats = asyncio.run(
            run_replay(
                paths,
                _speed(speed),
                market=cast(Market, market),
                symbols=wanted,
                progress=progress,
            )
        )
    published = sum(stats.per_symbol.values())
    console.print(
        f"read {stats.read:,} records; published {published:,} trades "
        f"({', '.join(f'{s} {n:,}' for s, n in sorted(stats.per_symbol.items()))}); "
        f"duplicates dropped {stats.duplicates:,}; dead-lettered "
        f"{stats.bad + stats.not_subscribed:,}; missing ids {stats.skipped_ids:,}"
    )


def run_until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run a service's main coroutine; SIGTERM or Ctrl-C cancel it, which stops it cleanly."""

    async def serve() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(serve())


@app.command()
def ingest(
    source: Annotated[
        str | None, typer.Option(help="`synthetic` (offline), `binance` (live) or `replay`.")
    ] = None,
    market: Annotated[str | None, typer.Option(help="Binance market: `usdm` or `spot`.")] = None,
    stream: Annotated[str | None, typer.Option(help="`trade` or `aggTrade`.")] = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
    ws_url: Annotated[str | None, typer.Option(help="WebSocket URL (route included).")] = None,
    rest_url: Annotated[str | None, typer.Option(help="REST base URL for backfill.")] = None,
    replay_path: Annotated[
        list[Path] | None, typer.Option("--replay", help="File for `--source replay` (repeat).")
    ] = None,
    speed: Annotated[
        str | None, typer.Option(help="Replay/synthetic speed factor, or `max`.")
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (0 = off).")] = None,
) -> None:
    """Ingest trades into the ticks topic (settings: INGEST_* variables; flags override)."""
    from pydantic import ValidationError

    from pairstream_ingest.config import IngestSettings
    from pairstream_ingest.main import run_ingest

    given: dict[str, object] = {
        "source": source, "market": market, "stream": stream, "symbols": symbols,
        "ws_url": ws_url, "rest_url": rest_url, "metrics_port": metrics_port,
    }  # fmt: skip
    overrides = {k: v for k, v in given.items() if v is not None}
    if replay_path:
        overrides["replay_paths"] = tuple(str(p) for p in replay_path)
    if speed is not None:
        overrides["replay_speed"] = overrides["synthetic_speed"] = _speed(speed)
    try:
        settings = IngestSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise _fail(ValueError(str(error))) from error
    run_until_signalled(run_ingest(settings))


@app.command()
def resampler(
    lateness_ms: Annotated[
        int | None, typer.Option(help="Allowed lateness (ms) before a bar is final.")
    ] = None,
    group_id: Annotated[str | None, typer.Option(help="Consumer group of the workers.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (0 = off).")] = None,
) -> None:
    """Roll ticks into bars.<tf> topics and the bars table (RESAMPLER_*, TOPIC_TIMEFRAMES).

    Start several for more throughput: the workers split the partitions of ticks.
    """
    from pydantic import ValidationError

    from pairstream_resampler.config import ResamplerSettings
    from pairstream_resampler.main import run_resampler

    given = {"lateness_ms": lateness_ms, "group_id": group_id, "metrics_port": metrics_port}
    try:
        settings = ResamplerSettings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as error:
        raise _fail(ValueError(str(error))) from error
    run_until_signalled(run_resampler(settings))


@app.command()
def analytics(
    pairs: Annotated[
        str | None, typer.Option(help="Pairs `Y-X`, comma-separated (BTCUSDT-ETHUSDT,…).")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Analyse every pair of these symbols (comma-separated).")
    ] = None,
    timeframes: Annotated[
        str | None, typer.Option(help="Bar timeframes (default: every bars topic).")
    ] = None,
    methods: Annotated[str | None, typer.Option(help="Hedge methods: ols,huber,kalman.")] = None,
    group_id: Annotated[str | None, typer.Option(help="Consumer group of the workers.")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port (0 = off).")] = None,
) -> None:
    """Per-pair hedge ratio, spread, z-score and stats from final bars (ANALYTICS_*).

    Start several for more pairs: pairs spread over the workers by partition.
    """
    from pydantic import ValidationError

    from pairstream_analytics.config import AnalyticsSettings
    from pairstream_analytics.main import run_analytics

    given: dict[str, object] = {
        "pairs": pairs,
        "symbols": symbols,
        "timeframes": timeframes,
        "methods": methods,
        "group_id": group_id,
        "metrics_port": metrics_port,
    }
    if symbols is not None and pairs is None:
        given["pairs"] = ""  # --symbols alone: every pair of them, not ANALYTICS_PAIRS
    try:
        settings = AnalyticsSettings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as error:
        raise _fail(ValueError(str(error))) from error
    run_until_signalled(run_analytics(settings))


def _read_bars(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise _fail(ValueError(f"{path}: cannot read a bar CSV ({error})")) from error


@app.command()
def analyze(
    bars: Annotated[
        list[Path],
        typer.Option(
            "--bars",
            help="Bar CSV of a leg (DESIGN §3 columns, at least start, close, volume, "
            "quote_volume, buy_volume); give Y first, then X.",
        ),
    ],
    method: Annotated[
        list[str] | None, typer.Option(help="ols, huber or kalman (repeatable; default all).")
    ] = None,
    window: Annotated[
        int | None, typer.Option(min=3, help="Hedge and stats window in bars.")
    ] = None,
    tf: Annotated[
        str | None, typer.Option(help="Timeframe (default: the CSVs' `tf` column).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the metrics here (CSV); default: stdout.")
    ] = None,
) -> None:
    """Run the analytics core over two bar CSVs: every metric per bar start and method.

    Windows, thresholds and the Kalman parameters come from ANALYTICS_* like the
    workers', so the output equals what the stream emits for the same bars.
    """
    from pydantic import ValidationError

    from pairstream.analytics.batch import analyze as run_analyze
    from pairstream.messages import timeframe_ms
    from pairstream_analytics.config import AnalyticsSettings

    if len(bars) != 2:
        raise typer.BadParameter("give exactly two bar files: Y, then X", param_hint="--bars")
    frames = [_read_bars(path) for path in bars]
    if tf is None:
        found = {str(v) for frame in frames if "tf" in frame for v in frame["tf"].unique()}
        if len(found) != 1:
            raise typer.BadParameter(
                f"cannot tell the timeframe from the files (tf values: {sorted(found) or 'none'})",
                param_hint="--tf",
            )
        tf = found.pop()
    overrides: dict[str, object] = {}
    if window is not None:
        overrides |= {"hedge_window": window, "stats_window": window}
    if method:
        overrides["methods"] = ",".join(method)
    try:
        settings = AnalyticsSettings(**overrides)  # type: ignore[arg-type]
        tf_ms = timeframe_ms(tf)
        table = run_analyze(frames[0], frames[1], tf_ms, settings.pair_config(), settings.methods)
    except (ValidationError, ValueError) as error:
        raise _fail(ValueError(str(error))) from error
    if out is None:
        print(table.to_csv(index=False, float_format="%.17g"), end="")
    else:
        table.to_csv(out, index=False, float_format="%.17g")
        err.print(f"{len(table):,} rows ({table['ts'].nunique():,} bars) → {out}")


@contextlib.contextmanager
def _bench_infra() -> Iterator[None]:
    """Embedded infrastructure for a bench when none is configured; stopped afterwards."""
    manager, started = InfraManager(), []
    if not (KafkaSettings().bootstrap and DatabaseSettings().url):
        try:
            started = [r.name for r in manager.up() if r.state == "started"]
        except InfraError as error:
            raise _fail(error) from error
    try:
        yield
    finally:
        if started:
            manager.down(only=started)


@bench_app.command("ingest")
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
    from pairstream_ingest.bench import DEFAULT_FRAMES
    from pairstream_ingest.bench import bench_ingest as run_bench

    with _bench_infra(), err.status("benchmarking ingest (throughput, raw baseline, latency)…"):
        result = asyncio.run(
            run_bench(frames or DEFAULT_FRAMES, repeat=repeat, rate=rate, latency_s=seconds)
        )
    if as_json:
        print(result.as_json().decode())
        return
    table = Table(title=f"pairstream bench ingest ({result.trades:,} trades, {result.cpus} CPUs)")
    table.add_column("measure")
    table.add_column("value", justify="right")
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
    console.print(table)
    for target, met in result.targets.items():
        console.print(f"{'[green]met[/green]' if met else '[red]missed[/red]'}  {target}")


@bench_app.command("resampler")
def bench_resampler(
    frames: Annotated[
        Path | None, typer.Option(help="Recorded frames (.jsonl[.gz]); default: the fixture.")
    ] = None,
    repeat: Annotated[
        int, typer.Option(min=1, help="Copies of the recording (ids and times shifted).")
    ] = 8,
    symbols: Annotated[int, typer.Option(min=1, help="Symbols of the live latency run.")] = 50,
    seconds: Annotated[float, typer.Option(min=2, help="Length of the latency run.")] = 8.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """One resampler worker: ticks/s to bar topics and table vs a raw consumer; p99 final bar."""
    from pairstream_ingest.bench import DEFAULT_FRAMES
    from pairstream_resampler.bench import bench_resampler as run_bench

    with _bench_infra(), err.status("benchmarking the resampler (throughput, baseline, latency)…"):
        result = asyncio.run(
            run_bench(
                frames_file=frames or DEFAULT_FRAMES,
                repeat=repeat,
                latency_symbols=symbols,
                latency_seconds=seconds,
            )
        )
    if as_json:
        print(result.as_json().decode())
        return
    table = Table(
        title=f"pairstream bench resampler ({result.trades:,} trades in {result.messages:,} "
        f"messages, {result.final_bars:,} final bars {','.join(result.timeframes)}, "
        f"{result.cpus} CPUs)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("one worker: ticks folded into bars", f"{result.folded_ticks_per_s:,} ticks/s")
    table.add_row(
        "ticks → final bars acked on bar topics", f"{result.topics_ticks_per_s:,} ticks/s"
    )
    table.add_row(
        f"ticks → final bars stored (checkpoint every {result.checkpoint_interval_s} s)",
        f"{result.stored_ticks_per_s:,} ticks/s ({result.stored_rows_per_s:,} rows/s)",
    )
    table.add_row("raw aiokafka consume+decode, same topic", f"{result.raw_ticks_per_s:,} ticks/s")
    table.add_row("ratio bar topics / raw", f"{result.ratio_to_raw:.3f}")
    table.add_row(
        f"watermark passed → final bar acked ({result.latency_finals} bars, "
        f"{result.latency_symbols} live symbols): p50",
        f"{result.latency_p50_ms:.3f} ms",
    )
    table.add_row("p99", f"{result.latency_p99_ms:.3f} ms")
    table.add_row("max", f"{result.latency_max_ms:.3f} ms")
    console.print(table)
    for target, met in result.targets.items():
        console.print(f"{'[green]met[/green]' if met else '[red]missed[/red]'}  {target}")


@bench_app.command("analytics")
def bench_analytics(
    bars: Annotated[int, typer.Option(min=1_000, help="Bars of the per-bar update runs.")] = 20_000,
    symbols: Annotated[int, typer.Option(min=2, help="Symbols of the pair scan.")] = 20,
    scan_bars: Annotated[int, typer.Option(min=50, help="Bars per symbol in the scan.")] = 1_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """The analytics core: per-bar update, rolling OLS vs statsmodels refit, ADF, pair scan."""
    from pairstream_analytics.bench import bench_analytics as run_bench
    from pairstream_analytics.config import AnalyticsSettings

    config = AnalyticsSettings().pair_config()
    with err.status("benchmarking the analytics core…"):
        r = run_bench(bars=bars, scan_symbols=symbols, scan_bars=scan_bars, config=config)
    if as_json:
        print(r.as_json().decode())
        return
    table = Table(
        title=f"pairstream bench analytics (hedge window {r.hedge_window}, stats window "
        f"{r.stats_window}, tests every {r.tests_every} bars, {r.cpus} CPUs)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for methods, us in r.update_us.items():
        table.add_row(f"per-bar update, one pair, {methods} (every metric but ADF)", f"{us:.3f} µs")
    table.add_row(f"rolling OLS ({r.ols_window} bars), per bar", f"{r.ols_incremental_us:.3f} µs")
    table.add_row("statsmodels OLS refit on the window, per bar", f"{r.ols_statsmodels_us:.3f} µs")
    table.add_row(
        "speed-up (same β, max relative difference)",
        f"{r.ols_speedup:.1f}× ({r.ols_max_rel_diff:.1e})",
    )
    table.add_row(
        f"ADF lag-fixed on {r.stats_window} spreads (ours / adfuller)",
        f"{r.adf_ms:.4f} / {r.adfuller_ms:.4f} ms",
    )
    table.add_row(f"ADF per bar at every {r.tests_every} bars", f"{r.adf_per_bar_us:.3f} µs")
    table.add_row(
        f"pair scan: {r.scan_symbols} symbols, {r.scan_pairs} pairs × {r.scan_bars} bars",
        f"{r.scan_s:.4f} s",
    )
    console.print(table)
    for target, met in r.targets.items():
        console.print(f"{'[green]met[/green]' if met else '[red]missed[/red]'}  {target}")


# -- the whole suite ------------------------------------------------------------


@app.command()
def up(
    source: Annotated[
        str | None,
        typer.Option(help="Ingest source: `synthetic` (default, offline) or `binance` (live)."),
    ] = None,
) -> None:
    """Start the infrastructure and every service, supervised, until Ctrl-C or SIGTERM."""
    from pairstream.supervisor import SERVICES, Supervisor

    if source is not None and source not in ("synthetic", "binance", "replay"):
        raise typer.BadParameter("`synthetic`, `binance` or `replay`", param_hint="--source")

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds through the cleanup below

    signal.signal(signal.SIGTERM, interrupt)
    manager = InfraManager()
    try:
        reports = manager.up()
    except InfraError as error:
        raise _fail(error) from error
    started = [r.name for r in reports if r.state == "started"]
    err.print(_table(reports, "infrastructure"))
    print(exports(reports), flush=True)
    env = dict(os.environ)
    env.update({r.env_var: r.url for r in reports if r.url})
    if source is not None:
        env["INGEST_SOURCE"] = source

    async def run() -> None:
        os.environ.update(env)
        console.print(await _migrate())
        from pairstream.kafka import contract_topics, ensure_topics

        created = await ensure_topics(contract_topics(), KafkaSettings())
        console.print(f"topics: {len(created)} ready")
        supervisor = Supervisor(SERVICES, env=env)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, supervisor.stop)
        names = ", ".join(s.name for s in SERVICES) or "none yet"
        console.print(f"services: {names}. Ctrl-C or SIGTERM stops everything.", highlight=False)
        await supervisor.run()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    finally:
        for report in manager.down(only=started):
            console.print(f"{report.name}: {report.state} ({report.detail})")


def main() -> None:
    """Console-script entry point."""
    app()
