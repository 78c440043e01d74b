"""``pairstream resampler`` and ``pairstream bench resampler``.

Imports typer only; the service's modules are imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pairstream.cliutil import (
    bench_infra,
    err,
    measures,
    print_bench,
    run_until_signalled,
    settings_from,
)


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
    from pairstream_resampler.config import ResamplerSettings
    from pairstream_resampler.main import run_resampler

    given = {"lateness_ms": lateness_ms, "group_id": group_id, "metrics_port": metrics_port}
    settings = settings_from(ResamplerSettings, **given)
    run_until_signalled(run_resampler(settings))


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
    import asyncio

    from pairstream_ingest.bench import DEFAULT_FRAMES
    from pairstream_resampler.bench import bench_resampler as run_bench

    with bench_infra(), err().status("benchmarking the resampler (throughput, baseline, latency)…"):
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
    table = measures(
        f"pairstream bench resampler ({result.trades:,} trades in {result.messages:,} "
        f"messages, {result.final_bars:,} final bars {','.join(result.timeframes)}, "
        f"{result.cpus} CPUs)"
    )
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
    print_bench(table, result.targets)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``resampler`` to ``pairstream`` and to ``pairstream bench``."""
    app.command()(resampler)
    bench.command("resampler")(bench_resampler)
