"""Data: the stored bars, analytics and alerts as CSV (through ``/download``), an OHLC CSV
uploaded as a dataset (every problem shown with its line and column, nothing stored when
anything is wrong), and a dataset analysed against another or a live instrument with the
same core as ``pairstream analyze``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from pairstream.messages import timeframe_ms

from .. import figures
from ..client import ApiError
from ..context import METHODS, SHOWN_ERRORS, Ui, dataset_label, problem_text, query, when
from . import Page


def layout(ui: Ui, instrument: str = "", pair: str = "", tf: str = "1s", method: str = "ols",
           start: str = "", end: str = "", **_: Any) -> Any:  # fmt: skip
    return html.Div([
        html.H2("Data"),
        html.Section(className="card column", children=[
            html.H3("Download as CSV"),
            html.Div(className="controls", children=[
                html.Label(["instrument", dcc.Dropdown(id="data-instrument",
                                                       value=instrument or None,
                                                       options=[instrument] if instrument else [],
                                                       className="dropdown")]),
                html.Label(["pair", dcc.Dropdown(id="data-pair", value=pair or None,
                                                 options=[pair] if pair else [],
                                                 className="dropdown wide")]),
                html.Label(["timeframe", dcc.Dropdown(id="data-tf", value=tf,
                                                      options=[tf],
                                                      clearable=False,
                                                      className="dropdown small")]),
                html.Label(["method", dcc.Dropdown(id="data-method", value=method,
                                                   options=list(METHODS), clearable=False,
                                                   className="dropdown small")]),
                html.Label(["from (ISO or epoch ms)", dcc.Input(id="data-start", value=start,
                                                                debounce=True,
                                                                className="text wide",
                                                                placeholder="oldest")]),
                html.Label(["to", dcc.Input(id="data-end", value=end, debounce=True,
                                            className="text wide", placeholder="newest")]),
            ]),
            html.Div(id="data-links", className="links"),
        ]),
        html.Div(className="alerts-grid", children=[
            html.Section(className="card column", children=[
                html.H3("Upload an OHLC CSV"),
                html.P("pairstream's bar columns (start, open, high, low, close, volume, "
                       "quote_volume, buy_volume; optional trades, vwap, tf) or a "
                       "data.binance.vision klines file; plain, .zip or gzip.",
                       className="muted"),
                html.Div(className="controls", children=[
                    html.Label(["dataset name", dcc.Input(id="data-name", className="text wide",
                                                          placeholder="btcusdt-1m-2024-07")]),
                    html.Label(["market", dcc.Dropdown(id="data-market",
                                                       options=["usdm", "spot", "coinm"],
                                                       className="dropdown small")]),
                    html.Label(["symbol", dcc.Input(id="data-symbol", className="text")]),
                    html.Label(["timeframe", dcc.Input(id="data-upload-tf", className="text small",
                                                       placeholder="auto")]),
                    dcc.Checklist(id="data-replace", className="check",
                                  options=[{"label": " replace", "value": "on"}], value=[]),
                ]),
                dcc.Upload(id="data-upload", className="upload", multiple=False,
                           children=html.Div(["Drop a CSV here or ", html.A("choose a file")])),
                dcc.Loading(html.Div(id="data-upload-result"), type="dot", delay_show=200),
            ]),
            html.Section(className="card column", children=[
                html.H3("Analyse"),
                html.Div(className="controls", children=[
                    html.Label(["Y: dataset", dcc.Dropdown(id="data-y", className="dropdown",
                                                           placeholder="upload one first")]),
                    html.Label(["X: dataset or instrument", dcc.Dropdown(id="data-x",
                                                                         className="dropdown")]),
                    html.Label(["method", dcc.Dropdown(id="data-a-method", value="ols",
                                                       options=list(METHODS), clearable=False,
                                                       className="dropdown small")]),
                    html.Button("Analyse", id="data-analyse", className="button primary"),
                ]),
                html.Div(id="data-analysis-info", className="muted"),
            ]),
        ]),
        dcc.Loading(html.Div(id="data-analysis"), type="dot", delay_show=200),
        dcc.Store(id="data-datasets-changed", data=0),
    ])  # fmt: skip


def download_links(instrument: str | None, pair: str | None, tf: str, method: str,
                   start: str | None, end: str | None) -> list[Any]:  # fmt: skip
    """Links to ``/download`` for the chosen view."""
    window = {"start": (start or "").strip() or None, "end": (end or "").strip() or None}
    out = []
    if instrument:
        href = "/download/bars.csv" + query({"instrument": instrument, "tf": tf, **window})
        out.append(html.A(f"⇩ {instrument} {tf} bars", href=href, id="data-bars-csv",
                          className="button", download=""))  # fmt: skip
    if pair:
        href = "/download/analytics.csv" + query({"pair": pair, "tf": tf, "method": method,
                                                  **window})  # fmt: skip
        out.append(html.A(f"⇩ {pair} {tf} {method} analytics", href=href,
                          id="data-analytics-csv", className="button", download=""))  # fmt: skip
    out.append(html.A("⇩ alert history", href="/download/alerts.csv" + query(window),
                      id="data-alerts-csv", className="button", download=""))  # fmt: skip
    return out


def _problems(error: ApiError) -> Any:
    if not error.errors:
        return html.P(problem_text(error), className="error")
    head = html.Tr([html.Th(h) for h in ("line", "column", "problem")])
    rows = [html.Tr([html.Td(e.get("line") or "—"), html.Td(e.get("field") or "—"),
                     html.Td(e.get("message"))]) for e in error.errors]  # fmt: skip
    table = html.Table([head, *rows], className="table", id="data-upload-problems")
    return html.Div([html.P(f"Refused, nothing stored: {error.detail}", className="error"), table])


def callbacks(app: dash.Dash, ui: Ui) -> None:
    @app.callback(
        Output("data-instrument", "options"), Output("data-pair", "options"),
        Output("data-y", "options"), Output("data-x", "options"), Output("data-tf", "options"),
        Input("data-loaded", "data"), Input("data-datasets-changed", "data"),
        Input("api-epoch", "data"), State("data-tf", "value"),
    )  # fmt: skip
    async def choices(_: Any, __: Any, ___: Any, tf: str) -> tuple[Any, ...]:
        try:
            instruments = await ui.api.get("/api/v1/instruments")
            pairs = await ui.api.get("/api/v1/pairs")
            datasets = await ui.api.get("/api/v1/uploads")
        except SHOWN_ERRORS:
            return [], [], [], [], [tf]
        sets = [{"label": dataset_label(d), "value": f"dataset:{d['name']}"} for d in datasets]
        live = [{"label": f"{i['instrument']} (stored bars)",
                 "value": f"instrument:{i['instrument']}"} for i in instruments]  # fmt: skip
        tfs = sorted({t for i in instruments for t in i["timeframes"]} | {tf}, key=timeframe_ms)
        return ([i["instrument"] for i in instruments], [p["pair"] for p in pairs], sets,
                sets + live, tfs)  # fmt: skip

    @app.callback(
        Output("data-links", "children"), Output("data-query", "data"),
        Input("data-instrument", "value"), Input("data-pair", "value"), Input("data-tf", "value"),
        Input("data-method", "value"), Input("data-start", "value"), Input("data-end", "value"),
    )  # fmt: skip
    def links(instrument: str | None, pair: str | None, tf: str, method: str,
              start: str | None, end: str | None) -> tuple[Any, str]:  # fmt: skip
        q = query({"instrument": instrument, "pair": pair, "tf": tf, "method": method,
                   "start": start, "end": end})  # fmt: skip
        return download_links(instrument, pair, tf, method, start, end), q

    @app.callback(
        Output("data-upload-result", "children"), Output("data-datasets-changed", "data"),
        Output("data-upload", "contents"), Input("data-upload", "contents"),
        State("data-upload", "filename"),
        State("data-name", "value"), State("data-market", "value"),
        State("data-symbol", "value"), State("data-upload-tf", "value"),
        State("data-replace", "value"), State("data-datasets-changed", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    async def upload(contents: str | None, filename: str | None, name: str | None,
                     market: str | None, symbol: str | None, tf: str | None,
                     replace: list[str], changed: int) -> tuple[Any, ...]:  # fmt: skip
        """Stores the dropped file; the drop zone is emptied (the same file may come again)."""
        if not contents:
            raise dash.exceptions.PreventUpdate
        result, changed_now = await _upload(ui, contents, filename, name, market, symbol, tf,
                                            bool(replace), changed)  # fmt: skip
        return result, changed_now, None

    @app.callback(
        Output("data-analysis", "children"), Output("data-analysis-info", "children"),
        Input("data-analyse", "n_clicks"), State("theme", "data"), State("data-y", "value"),
        State("data-x", "value"), State("data-a-method", "value"), prevent_initial_call=True,
    )  # fmt: skip
    async def analyse(_: int, theme: str, y: str | None, x: str | None,
                      method: str) -> tuple[Any, Any]:  # fmt: skip
        if not y or not x:
            return "", html.Span("Choose both legs.", className="error")
        try:
            y_leg, tf = await _leg(ui, y, None)
            body = {"y": y_leg, "x": (await _leg(ui, x, tf))[0], "methods": [method]}
            result = await ui.api.request("POST", "/api/v1/analyze", json=body)
        except SHOWN_ERRORS as error:
            return "", html.Span(problem_text(error), className="error")
        rows = result["rows"]
        o = result["options"]
        info = (f"{result['count']:,} rows · Y {result['y']['name']} ({result['y']['bars']:,} "
                f"bars) on X {result['x']['name']} ({result['x']['bars']:,} bars) · "
                f"windows hedge {o['hedge_window']}, z {o['zscore_window']}")  # fmt: skip
        charts = [
            ("zscore", figures.zscore(rows, o["entry_z"], o["exit_z"], theme)),
            ("spread", figures.spread(rows, 2.0, theme)),
            ("hedge", figures.hedge_ratios({method: rows}, theme)),
            ("correlation", figures.correlation(rows, theme)),
        ]
        return html.Div([html.Div(dcc.Graph(id=f"data-{name}", figure=fig,
                                            config={"displaylogo": False}), className="chart")
                         for name, fig in charts], className="charts"), info  # fmt: skip


async def _upload(ui: Ui, contents: str, filename: str | None, name: str | None,
              market: str | None, symbol: str | None, tf: str | None, replace: bool,
              changed: int) -> tuple[Any, Any]:  # fmt: skip
    if not (name or "").strip():
        return html.P("Name the dataset first (lower-case letters, digits, . _ -).",
                      className="error"), dash.no_update  # fmt: skip
    try:
        data = base64.b64decode(contents.split(",", 1)[1], validate=True)
    except (IndexError, binascii.Error):
        return html.P("The browser sent an unreadable file.", className="error"), dash.no_update
    form = {k: v for k, v in {"name": (name or "").strip(), "market": market,
                              "symbol": (symbol or "").strip() or None,
                              "tf": (tf or "").strip() or None}.items() if v}  # fmt: skip
    try:
        stored = await ui.api.request(
            "POST",
            "/api/v1/uploads",
            data=form,
            params={"replace": "true"} if replace else None,
            files={"file": (filename or "upload.csv", data, "text/csv")},
        )
    except ApiError as error:
        return _problems(error), dash.no_update
    except SHOWN_ERRORS as error:
        return html.P(problem_text(error), className="error"), dash.no_update
    summary = (f"Stored {stored['name']}: {stored['rows']:,} {stored['tf']} bars from "
               f"{when(stored['first_start'])} to {when(stored['last_start'])} "
               f"({stored['source_format']}).")  # fmt: skip
    return html.P(summary, className="status-line", id="data-upload-stored"), changed + 1


async def _leg(ui: Ui, choice: str, tf: str | None) -> tuple[dict[str, Any], str]:
    """A leg of ``POST /analyze`` from a picker value (``dataset:NAME`` or
    ``instrument:market:SYMBOL``) and its timeframe; an instrument takes ``tf`` (the
    other leg's)."""
    kind, _, name = choice.partition(":")
    if kind == "dataset":
        return {"dataset": name}, (await ui.api.get(f"/api/v1/uploads/{name}"))["tf"]
    return {"instrument": name, "tf": tf or "1m"}, tf or "1m"


PAGE = Page("data", "/data", "Data", layout, callbacks)
