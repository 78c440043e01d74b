"""``pairstream analytics``, ``pairstream analyze`` and ``pairstream bench analytics``.

Imports typer only; the service's modules (numpy, pandas, the core) are imported
when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from pairstream.cliutil import err, fail, measures, print_bench, run_until_signalled, settings_from


def analytics(
    pairs: Annotated[
        str | None,
        typer.Option(
            help="Pairs `Y-X` of instruments, comma-separated (usdm:BTCUSDT-usdm:ETHUSDT, "
            "spot:BTCUSDT-usdm:BTCUSDT; bare symbols are of MARKET_DEFAULT)."
        ),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(help="Analyse every pair of these instruments (comma-separated)."),
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
    settings = settings_from(AnalyticsSettings, **given)
    run_until_signalled(run_analytics(settings))


def _read_bars(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise fail(ValueError(f"{path}: cannot read a bar CSV ({error})")) from error


# The defaults quoted in the help are AnalyticsSettings' (a unit test keeps them equal);
# the help does not import the settings, which would import the analytics core.
_CORE = "Analytics core"


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
        int | None,
        typer.Option(
            min=3,
            help="Shorthand for --hedge-window N --stats-window N --zscore-window N "
            "--flow-window N (each of those given explicitly wins).",
        ),
    ] = None,
    tf: Annotated[
        str | None, typer.Option(help="Timeframe (default: the CSVs' `tf` column).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the metrics here (CSV); default: stdout.")
    ] = None,
    hedge_window: Annotated[
        int | None,
        typer.Option(
            min=3,
            rich_help_panel=_CORE,
            help="OLS/Huber window in bars (default: ANALYTICS_HEDGE_WINDOW, else 300).",
        ),
    ] = None,
    zscore_window: Annotated[
        int | None,
        typer.Option(
            min=3,
            rich_help_panel=_CORE,
            help="z-score window in spreads (default: ANALYTICS_ZSCORE_WINDOW, else 60).",
        ),
    ] = None,
    flow_window: Annotated[
        int | None,
        typer.Option(
            min=3,
            rich_help_panel=_CORE,
            help="Correlation, volatility, VWAP, buy-share window in bars "
            "(default: ANALYTICS_FLOW_WINDOW, else 60).",
        ),
    ] = None,
    stats_window: Annotated[
        int | None,
        typer.Option(
            min=3,
            rich_help_panel=_CORE,
            help="ADF, cointegration, half-life, HAC window in bars "
            "(default: ANALYTICS_STATS_WINDOW, else 300).",
        ),
    ] = None,
    tests_every: Annotated[
        int | None,
        typer.Option(
            min=1,
            rich_help_panel=_CORE,
            help="ADF/cointegration/HAC on bars whose ts/tf is a multiple of this "
            "(default: ANALYTICS_TESTS_EVERY, else 10).",
        ),
    ] = None,
    adf_lag: Annotated[
        int | None,
        typer.Option(
            min=0,
            rich_help_panel=_CORE,
            help="Fixed ADF lag, no autolag (default: ANALYTICS_ADF_LAG, else 1).",
        ),
    ] = None,
    entry_z: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=_CORE,
            help="Signal entry threshold |z| (default: ANALYTICS_ENTRY_Z, else 2.0).",
        ),
    ] = None,
    exit_z: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=_CORE,
            help="Signal exit threshold |z| (default: ANALYTICS_EXIT_Z, else 0.5).",
        ),
    ] = None,
    price_transform: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=_CORE,
            help="Regress `price` or `log` prices "
            "(default: ANALYTICS_PRICE_TRANSFORM, else price).",
        ),
    ] = None,
    intercept: Annotated[
        bool | None,
        typer.Option(
            "--intercept/--no-intercept",
            rich_help_panel=_CORE,
            help="OLS/Huber with an intercept α (default: ANALYTICS_INTERCEPT, else true).",
            show_default=False,
        ),
    ] = None,
    kalman_delta: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=_CORE,
            help="Kalman state noise: q = delta/(1-delta) per bar "
            "(default: ANALYTICS_KALMAN_DELTA, else 1e-07).",
        ),
    ] = None,
    kalman_obs_var: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=_CORE,
            help="Kalman observation variance (default: ANALYTICS_KALMAN_OBS_VAR, else 1.0).",
        ),
    ] = None,
    kalman_initial_var: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=_CORE,
            help="Kalman initial state variance "
            "(default: ANALYTICS_KALMAN_INITIAL_VAR, else 1000000.0).",
        ),
    ] = None,
) -> None:
    """Run the analytics core over two bar CSVs: every metric per bar start and method.

    Windows, thresholds and the Kalman parameters come from the flags, else from
    ANALYTICS_* like the workers', so the output equals what the stream emits for
    the same bars and settings.
    """
    from pydantic import ValidationError

    from pairstream.analytics.batch import analyze as run_analyze
    from pairstream.messages import timeframe_ms
    from pairstream_analytics.config import AnalyticsSettings

    if len(bars) != 2:
        raise typer.BadParameter("give exactly two bar files: Y, then X", param_hint="--bars")
    if price_transform is not None and price_transform not in ("price", "log"):
        raise typer.BadParameter("`price` or `log`", param_hint="--price-transform")
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
        overrides |= dict.fromkeys(
            ("hedge_window", "stats_window", "zscore_window", "flow_window"), window
        )
    given: dict[str, object | None] = {
        "hedge_window": hedge_window,
        "zscore_window": zscore_window,
        "flow_window": flow_window,
        "stats_window": stats_window,
        "tests_every": tests_every,
        "adf_lag": adf_lag,
        "entry_z": entry_z,
        "exit_z": exit_z,
        "price_transform": price_transform,
        "intercept": intercept,
        "kalman_delta": kalman_delta,
        "kalman_obs_var": kalman_obs_var,
        "kalman_initial_var": kalman_initial_var,
    }
    overrides |= {k: v for k, v in given.items() if v is not None}
    if method:
        overrides["methods"] = ",".join(method)
    try:
        settings = AnalyticsSettings(**overrides)  # type: ignore[arg-type]
        tf_ms = timeframe_ms(tf)
        table = run_analyze(frames[0], frames[1], tf_ms, settings.pair_config(), settings.methods)
    except (ValidationError, ValueError) as error:
        raise fail(ValueError(str(error))) from error
    if out is None:
        print(table.to_csv(index=False, float_format="%.17g"), end="")
    else:
        table.to_csv(out, index=False, float_format="%.17g")
        err().print(f"{len(table):,} rows ({table['ts'].nunique():,} bars) → {out}")


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
    with err().status("benchmarking the analytics core…"):
        r = run_bench(bars=bars, scan_symbols=symbols, scan_bars=scan_bars, config=config)
    if as_json:
        print(r.as_json().decode())
        return
    table = measures(
        f"pairstream bench analytics (hedge window {r.hedge_window}, stats window "
        f"{r.stats_window}, tests every {r.tests_every} bars, {r.cpus} CPUs)"
    )
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
    print_bench(table, r.targets)


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``analytics`` and ``analyze`` to ``pairstream``; ``analytics`` to its bench group."""
    app.command()(analytics)
    app.command()(analyze)
    bench.command("analytics")(bench_analytics)
