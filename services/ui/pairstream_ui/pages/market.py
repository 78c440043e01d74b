"""Market: candlesticks, VWAP, volume and trades per bar of one instrument and timeframe,
live; the last trade's age."""

from __future__ import annotations

import asyncio
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from pairstream.messages import timeframe_ms

from .. import figures
from ..context import SHOWN_ERRORS, Ui, live_chart, problem_text, query, span
from . import Page


def layout(ui: Ui, instrument: str = "", tf: str = "1s", live: str = "on", bars: str = "",
           **_: Any) -> Any:  # fmt: skip
    return html.Div([
        html.H2("Market"),
        html.Div(className="controls", children=[
            html.Label(["instrument", dcc.Dropdown(id="market-instrument", value=instrument or None,
                                                   options=[instrument] if instrument else [],
                                                   clearable=False, className="dropdown")]),
            html.Label(["timeframe", dcc.Dropdown(id="market-tf", value=tf, clearable=False,
                                                  options=[tf], className="dropdown small")]),
            html.Label(["window (bars)", dcc.Dropdown(id="market-bars", value=ui.points(bars),
                                                      options=ui.windows(), clearable=False,
                                                      className="dropdown small")]),
            dcc.Checklist(id="market-live", options=[{"label": " live", "value": "on"}],
                          value=["on"] if live == "on" else [], className="check"),
        ]),
        html.Div(id="market-info", className="info"),
        dcc.Store(id="market-found"),  # the instruments the page read
        dcc.Loading(html.Div(id="market-chart", className="chart"), type="dot", delay_show=300),
    ])  # fmt: skip


def callbacks(app: dash.Dash, ui: Ui) -> None:
    @app.callback(
        Output("market-instrument", "options"), Output("market-instrument", "value"),
        Output("market-found", "data"),
        Input("market-loaded", "data"), Input("api-epoch", "data"),
        State("market-instrument", "value"),
    )  # fmt: skip
    async def instruments(_: Any, __: Any, chosen: str | None) -> tuple[Any, ...]:
        try:
            found = await ui.api.get("/api/v1/instruments")
        except SHOWN_ERRORS:
            return ([chosen] if chosen else []), chosen, dash.no_update
        names = [i["instrument"] for i in found]
        # the value only when it must change: a new value re-runs the chart
        return names, dash.no_update if chosen in names or not names else names[0], found

    @app.callback(
        Output("market-tf", "options"), Input("market-instrument", "value"),
        Input("market-found", "data"), State("market-tf", "value"),
    )  # fmt: skip
    def timeframes(instrument: str | None, found: list[dict[str, Any]] | None,
                   tf: str) -> list[str]:  # fmt: skip
        """The instrument's stored timeframes (from the list the page read)."""
        for i in found or []:
            if i["instrument"] == instrument:
                return sorted(set(i["timeframes"]) | {tf}, key=timeframe_ms)
        return [tf]

    @app.callback(
        Output("market-chart", "children"), Output("market-info", "children"),
        Output("market-query", "data"),
        Input("market-instrument", "value"), Input("market-tf", "value"),
        Input("market-live", "value"), Input("market-bars", "value"), Input("theme", "data"),
        Input("api-epoch", "data"),
    )  # fmt: skip
    async def chart(instrument: str | None, tf: str, live: list[str], points: int, theme: str,
                    _: Any) -> tuple[Any, Any, str]:  # fmt: skip
        on = "on" if live else "off"
        q = query({"instrument": instrument, "tf": tf, "live": on, "bars": points})
        if not instrument:
            return (
                _wrap(figures.empty("waiting for the first instrument…", theme, 560), None),
                "",
                q,
            )
        try:
            latest, found = await asyncio.gather(
                ui.latest(f"/api/v1/bars/{instrument}/latest", tf),
                ui.api.get("/api/v1/instruments"),
            )
            start = ui.window_start(latest, "start", tf, points)
            bars = await ui.window(f"/api/v1/bars/{instrument}", start, points, tf=tf)
        except SHOWN_ERRORS as error:
            return _wrap(figures.empty(problem_text(error), theme, 560), None), "", q
        fig = figures.candles(bars, instrument, theme)
        if not bars:
            figures.waiting(fig, f"waiting for the first {tf} bars of {instrument}…")
        spec = None if not live else {"max": points, "series": [
            {"channel": f"bars:{instrument}:{tf}", "trace": 0, "x": "start", "ohlc": True},
            {"channel": f"bars:{instrument}:{tf}", "trace": 1, "x": "start", "y": "vwap"},
            {"channel": f"bars:{instrument}:{tf}", "trace": 2, "x": "start", "y": "volume"},
            {"channel": f"bars:{instrument}:{tf}", "trace": 3, "x": "start", "y": "trades"},
        ]}  # fmt: skip
        about: dict[str, Any] = next((i for i in found if i["instrument"] == instrument), {})
        info = [
            html.Span(f"{len(bars):,} bars drawn"),
            html.Span(
                f"last trade {span(about.get('last_trade_age_s'))} ago"
                if about.get("last_trade_age_s") is not None
                else "no trades stored yet"
            ),
        ]
        return _wrap(fig, spec), info, q


def _wrap(fig: Any, spec: dict[str, Any] | None) -> Any:
    graph = dcc.Graph(id="market-candles", figure=fig, config={"displaylogo": False})
    return live_chart(graph, "market-live-chart", spec)


PAGE = Page("market", "/", "Market", layout, callbacks)
