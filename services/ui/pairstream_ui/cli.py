"""``pairstream ui``: the dashboard. Imports typer only; the rest when the command runs."""

from __future__ import annotations

from typing import Annotated

import typer

from pairstream.cliutil import settings_from


def ui(
    host: Annotated[str | None, typer.Option(help="Listen address (UI_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (UI_PORT; 0 = a free one).")] = None,
    api_url: Annotated[str | None, typer.Option(help="The API it reads (UI_API_URL).")] = None,
) -> None:
    """Serve the dashboard (settings UI_*); it reads only the API."""
    from pairstream_ui.config import UiSettings
    from pairstream_ui.server import serve

    serve(settings_from(UiSettings, host=host, port=port, api_url=api_url))


def bench_ui(
    bars: Annotated[int, typer.Option(min=100, max=10_000, help="1s bars of history.")] = 600,
    ticks: Annotated[int, typer.Option(min=5, help="Live points published.")] = 30,
    spacing_s: Annotated[float, typer.Option(min=0.05, help="Seconds between points.")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """The dashboard in headless Chromium: navigation → first candle and z-score (cold and
    warm, beside a page without charts), WebSocket message → drawn p50/p95, bytes per tick."""
    import asyncio
    import importlib.util
    import logging

    from pairstream.cliutil import bench_infra, err, fail, measures, print_bench

    if importlib.util.find_spec("playwright") is None:  # the dev extra: `./dev test` has it
        raise fail(RuntimeError("pairstream bench ui needs playwright (pip install "
                                "'pairstream[dev]')"))  # fmt: skip
    from pairstream_ui.bench import bench_ui as run_bench

    # a line per WebSocket the bench's pages open
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    with bench_infra(), err().status("benchmarking the dashboard in headless Chromium…"):
        try:
            r = asyncio.run(run_bench(bars=bars, ticks=ticks, spacing_s=spacing_s))
        except RuntimeError as error:
            raise fail(error) from error
    if as_json:
        print(r.as_json().decode())
        return
    table = measures(f"pairstream bench ui ({r.cpus} CPUs; API, dashboard and Chromium on "
                     f"this machine; {r.bars} bars per chart)")  # fmt: skip
    table.add_row("navigation → first candle (cold browser / warm median)",
                  f"{r.first_candle_cold_ms:,.0f} / {r.first_candle_warm_ms:,.0f} ms")  # fmt: skip
    table.add_row("navigation → first z-score (cold / warm median)",
                  f"{r.first_zscore_cold_ms:,.0f} / {r.first_zscore_warm_ms:,.0f} ms")  # fmt: skip
    table.add_row("navigation → System table (no chart: the baseline, warm)",
                  f"{r.system_table_warm_ms:,.0f} ms "
                  f"(z-score {r.first_zscore_warm_ms / r.system_table_warm_ms:.2f}×)")  # fmt: skip
    table.add_row(f"WebSocket message → drawn ({r.points_timed} points)",
                  _p50_p95(r.ws_to_drawn_p50_ms, r.ws_to_drawn_p95_ms))  # fmt: skip
    table.add_row(
        "Kafka record → drawn", _p50_p95(r.kafka_to_drawn_p50_ms, r.kafka_to_drawn_p95_ms)
    )
    table.add_row("WebSocket bytes per tick (a point on each Pair chart)",
                  f"{r.bytes_per_tick:,.0f}")  # fmt: skip
    print_bench(table, r.targets)


def _p50_p95(p50: float, p95: float) -> str:
    return f"p50 {p50:.0f} ms, p95 {p95:.0f} ms"


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``ui`` to ``pairstream``; ``ui`` to its bench group."""
    app.command("ui")(ui)
    bench.command("ui")(bench_ui)
