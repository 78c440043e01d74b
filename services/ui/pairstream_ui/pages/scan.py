"""Scan: the correlation heatmap of the configured instruments and the candidates ranked
by Engle–Granger p-value; a cell or a row opens that pair."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, dcc, html

from .. import figures
from ..context import SHOWN_ERRORS, Ui, problem_text, query, span
from . import Page


def layout(ui: Ui, tf: str = "1m", **_: Any) -> Any:
    return html.Div([
        html.H2("Scan"),
        html.Div(className="controls", children=[
            html.Label(["timeframe", dcc.Dropdown(id="scan-tf", value=tf, clearable=False,
                                                  options=["1s", "1m", "1h"],
                                                  className="dropdown small")]),
        ]),
        html.Div(id="scan-info", className="info"),
        dcc.Loading(dcc.Graph(id="scan-heatmap", config={"displaylogo": False}), type="dot",
                    delay_show=300),
        html.H3("Candidates"),
        html.Div(id="scan-candidates"),
        dcc.Location(id="scan-go", refresh="callback-nav"),
    ])  # fmt: skip


def callbacks(app: dash.Dash, ui: Ui) -> None:
    @app.callback(
        Output("scan-heatmap", "figure"), Output("scan-candidates", "children"),
        Output("scan-info", "children"), Output("scan-query", "data"),
        Input("scan-tf", "value"), Input("theme", "data"), Input("api-epoch", "data"),
    )  # fmt: skip
    async def scan(tf: str, theme: str, _: Any) -> tuple[Any, Any, Any, str]:
        q = query({"tf": tf})
        try:
            latest = await ui.api.get(f"/api/v1/scan/{tf}/latest")
            candidates = await ui.api.get(f"/api/v1/scan/{tf}/candidates")
        except SHOWN_ERRORS as error:
            return figures.empty(problem_text(error), theme), "", "", q
        if not latest["cells"]:
            return figures.empty(f"waiting for the first {tf} scan…", theme), "", "", q
        rows = [html.Tr([html.Th(h) for h in ("#", "pair", "EG p", "ρ", "β", "half-life", "")])]
        for c in candidates:
            href = f"/pair{query({'pair': c['pair'], 'tf': tf})}"
            rows.append(html.Tr([
                html.Td(c["rank"]), html.Td(dcc.Link(c["pair"], href=href)),
                html.Td(_f(c["coint_pvalue"], 3)), html.Td(_f(c["correlation"], 3)),
                html.Td(_f(c["hedge_ratio"], 4)),
                html.Td(span(None) if c["half_life"] is None else f"{c['half_life']:.1f} bars"),
                html.Td(dcc.Link("open →", href=href)),
            ]))  # fmt: skip
        info = f"{len(latest['instruments'])} instruments, window {latest['window']} bars"
        return figures.heatmap(latest, theme), html.Table(rows, className="table"), info, q

    @app.callback(
        Output("scan-go", "href"), Input("scan-heatmap", "clickData"),
        Input("scan-tf", "value"), prevent_initial_call=True,
    )  # fmt: skip
    def open_pair(click: dict[str, Any] | None, tf: str) -> str:
        if not click or dash.ctx.triggered_id != "scan-heatmap":
            raise dash.exceptions.PreventUpdate
        point = click["points"][0]
        if point["x"] == point["y"]:
            raise dash.exceptions.PreventUpdate
        return "/pair" + query({"pair": f"{point['y']}-{point['x']}", "tf": tf})


def _f(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


PAGE = Page("scan", "/scan", "Scan", layout, callbacks)
