"""Pair: both legs normalised, hedge ratios per method, spread with mean ± k·σ, z-score
with entry/exit levels and signals, rolling correlation, and the stats card — live."""

from __future__ import annotations

import asyncio
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from pairstream.messages import timeframe_ms

from .. import figures
from ..context import METHODS, SHOWN_ERRORS, Ui, live_chart, problem_text, query
from . import Page

CHARTS = ("legs", "hedge", "spread", "zscore", "correlation")


def layout(ui: Ui, pair: str = "", tf: str = "1s", method: str = "ols", k: str = "2",
           entry: str = "", exit: str = "", live: str = "on", bars: str = "",
           **_: Any) -> Any:  # fmt: skip
    return html.Div([
        html.H2("Pair"),
        html.Div(className="controls", children=[
            html.Label(["pair", dcc.Dropdown(id="pair-pair", value=pair or None, clearable=False,
                                             options=[pair] if pair else [],
                                             className="dropdown wide")]),
            html.Label(["timeframe", dcc.Dropdown(id="pair-tf", value=tf, options=[tf],
                                                  clearable=False, className="dropdown small")]),
            html.Label(["method", dcc.Dropdown(id="pair-method", value=method,
                                               options=list(METHODS), clearable=False,
                                               className="dropdown small")]),
            html.Label(["window (bars)", dcc.Dropdown(id="pair-bars", value=ui.points(bars),
                                                      options=ui.windows(), clearable=False,
                                                      className="dropdown small")]),
            html.Label(["band k·σ", _number("pair-k", _float(k, 2.0), 0.1)]),
            html.Label(["entry z", _number("pair-entry", _float(entry, None), 0)]),
            html.Label(["exit z", _number("pair-exit", _float(exit, None), 0)]),
            dcc.Checklist(id="pair-live", options=[{"label": " live", "value": "on"}],
                          value=["on"] if live == "on" else [], className="check"),
        ]),
        html.Div(id="pair-stats", className="card"),
        dcc.Loading(html.Div(id="pair-charts"), type="dot", delay_show=300),
    ])  # fmt: skip


def _number(id: str, value: float | None, least: float) -> dcc.Input:
    return dcc.Input(
        id=id, value=value, type="number", min=least, step=0.1, debounce=True, className="number"
    )


def _float(text: str, default: float | None) -> float | None:
    try:
        return float(text)
    except ValueError:
        return default


def callbacks(app: dash.Dash, ui: Ui) -> None:
    @app.callback(
        Output("pair-pair", "options"), Output("pair-pair", "value"), Output("pair-tf", "options"),
        Input("pair-loaded", "data"), Input("api-epoch", "data"), State("pair-pair", "value"),
        State("pair-tf", "value"),
    )  # fmt: skip
    async def pairs(_: Any, __: Any, chosen: str | None, tf: str) -> tuple[Any, ...]:
        try:
            configured = await ui.api.get("/api/v1/pairs")
        except SHOWN_ERRORS:
            return ([chosen] if chosen else []), chosen, [tf]
        names = [p["pair"] for p in configured]
        ranked = await _ranked(ui, tf)
        options = [{"label": f"{n}  ·  #{ranked[n]} by EG p" if n in ranked else n, "value": n}
                   for n in sorted(names, key=lambda n: (ranked.get(n, 10**6), n))]  # fmt: skip
        tfs = sorted({t for p in configured for t in p["timeframes"]} | {tf}, key=timeframe_ms)
        # the value only when it must change: a new value re-runs the charts
        value = dash.no_update if chosen in names or not names else options[0]["value"]
        return options, value, tfs

    @app.callback(
        Output("pair-charts", "children"), Output("pair-stats", "children"),
        Output("pair-query", "data"), Output("pair-entry", "placeholder"),
        Output("pair-exit", "placeholder"),
        Input("pair-pair", "value"), Input("pair-tf", "value"), Input("pair-method", "value"),
        Input("pair-k", "value"), Input("pair-entry", "value"), Input("pair-exit", "value"),
        Input("pair-live", "value"), Input("pair-bars", "value"), Input("theme", "data"),
        Input("api-epoch", "data"),
    )  # fmt: skip
    async def charts(pair: str | None, tf: str, method: str, k: float | None,
                     entry: float | None, exit_z: float | None, live: list[str], bars: int,
                     theme: str, _: Any) -> tuple[Any, ...]:  # fmt: skip
        k = k or 2.0
        q = query({"pair": pair, "tf": tf, "method": method, "k": k, "entry": entry,
                   "exit": exit_z, "live": "on" if live else "off", "bars": bars})  # fmt: skip
        if not pair:
            return figures_div({"zscore": figures.empty("waiting for the first pair…", theme)},
                               {}), "", q, "", ""  # fmt: skip
        try:
            configured, latest = await asyncio.gather(
                ui.api.get("/api/v1/pairs"), ui.latest(f"/api/v1/analytics/{pair}/latest", tf)
            )
            config = next((p for p in configured if p["pair"] == pair), None)
            if config is None:
                raise LookupError(f"{pair} is not a configured pair")
            entry = config["entry_z"] if entry is None else entry
            exit_z = config["exit_z"] if exit_z is None else exit_z
            start = ui.window_start(latest, "ts", tf, bars)
            methods = [m for m in METHODS if m in config["methods"]]
            fetched = await asyncio.gather(
                *(
                    ui.window(f"/api/v1/analytics/{pair}", start, bars, tf=tf, method=m)
                    for m in methods
                ),
                *(
                    ui.window(f"/api/v1/bars/{leg}", start, bars, tf=tf)
                    for leg in (config["y"], config["x"])
                ),
            )
            points = dict(zip(methods, fetched[: len(methods)], strict=True))
            legs = fetched[len(methods) :]
        except (*SHOWN_ERRORS, LookupError) as error:
            text = problem_text(error) if isinstance(error, SHOWN_ERRORS) else str(error)
            return figures_div({"zscore": figures.empty(text, theme)}, {}), "", q, "", ""
        chosen = points.get(method, [])
        figs = {
            "legs": figures.normalised_legs(legs[0], legs[1], (config["y"], config["x"]), theme),
            "hedge": figures.hedge_ratios(points, theme),
            "spread": figures.spread(chosen, k, theme),
            "zscore": figures.zscore(chosen, entry, exit_z, theme),
            "correlation": figures.correlation(chosen, theme),
        }
        if not chosen:
            for name in ("spread", "zscore", "correlation"):
                figures.waiting(figs[name], f"waiting for the first {tf} {method} analytics…")
        specs: dict[str, Any] = {}
        if live:
            a = f"analytics:{pair}:{tf}:{method}"
            bases = [t.meta["base"] if t.meta else 1.0 for t in figs["legs"].data]
            specs = {
                "legs": [{"channel": f"bars:{leg}:{tf}", "trace": i, "x": "start", "y": "close",
                          "scale": bases[i]} for i, leg in enumerate((config["y"], config["x"]))],
                "hedge": [{"channel": f"analytics:{pair}:{tf}:{m}", "trace": i, "x": "ts",
                           "y": "hedge_ratio"} for i, m in enumerate(methods)],
                "spread": [{"channel": a, "trace": 0, "x": "ts", "y": "spread"},
                           {"channel": a, "trace": 1, "x": "ts", "y": "mean"},
                           {"channel": a, "trace": 2, "x": "ts", "band": ["mean", "std", k]},
                           {"channel": a, "trace": 3, "x": "ts", "band": ["mean", "std", -k]}],
                "zscore": [{"channel": a, "trace": 0, "x": "ts", "y": "zscore"}] + [
                    {"channel": a, "trace": i + 1, "x": "ts", "y": "zscore",
                     "when": {"signal": s}} for i, s in enumerate(figures.SIGNALS)],
                "correlation": [{"channel": a, "trace": 0, "x": "ts", "y": "correlation"}],
            }  # fmt: skip
        drawn = figures_div(figs, specs, bars)
        levels = f"{config['entry_z']:g}", f"{config['exit_z']:g}"  # the pair's, when left empty
        return drawn, stats_card(latest or {}, method), q, *levels


async def _ranked(ui: Ui, tf: str) -> dict[str, int]:
    try:
        candidates = await ui.api.get(f"/api/v1/scan/{tf}/candidates")
    except SHOWN_ERRORS:
        return {}
    return {c["pair"]: c["rank"] for c in candidates}


def figures_div(figs: dict[str, Any], specs: dict[str, Any], points: int = 600) -> html.Div:
    out = []
    for name in CHARTS:
        if name not in figs:
            continue
        graph = dcc.Graph(id=f"pair-{name}", figure=figs[name], config={"displaylogo": False})
        spec = {"max": points, "series": specs[name]} if name in specs else None
        out.append(live_chart(graph, f"pair-{name}-chart", spec, className="chart"))
    return html.Div(out, className="charts")


def stats_card(latest: dict[str, Any], method: str) -> Any:
    point = latest.get("methods", {}).get(method) or {}

    def value(name: str, digits: int = 4) -> str:
        v = point.get(name)
        return "—" if v is None else f"{v:.{digits}g}"

    verdict = latest.get("cointegrated")
    badge = ("cointegrated", "good") if verdict else ("not cointegrated", "bad") \
        if verdict is False else ("not tested yet", "unknown")  # fmt: skip
    ci = (f"[{value('hedge_ratio_ci_low')}, {value('hedge_ratio_ci_high')}]"
          if point.get("hedge_ratio_ci_low") is not None else "—")  # fmt: skip
    half_life = point.get("half_life")
    rows = [("β", value("hedge_ratio")), ("α", value("intercept")), ("β HAC 95%", ci),
            ("ADF stat", value("adf_stat")), ("ADF p", value("adf_pvalue", 3)),
            ("Engle–Granger p", value("coint_pvalue", 3)),
            ("half-life", "—" if half_life is None else f"{half_life:.1f} bars"),
            ("vol y / x", f"{value('vol_y', 3)} / {value('vol_x', 3)}"),
            ("z", value("zscore", 3)), ("position", point.get("position") or "—")]  # fmt: skip
    return [html.Span(badge[0], className=f"badge {badge[1]}", id="pair-verdict"),
            *[html.Div([html.Span(k, className="stat-name"), html.Span(v, className="stat-value")],
                       className="stat") for k, v in rows]]  # fmt: skip


PAGE = Page("pair", "/pair", "Pair", layout, callbacks)
