"""Backtest: the z-score strategy of the analytics signals on a pair (stored bars, or two
uploaded datasets) — the parameters form, then the equity curve with its drawdown, the
metrics and the trades, from ``POST /api/v1/backtest``."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from pairstream.messages import timeframe_ms

from .. import figures
from ..context import METHODS, SHOWN_ERRORS, Ui, dataset_label, field_errors, query, when
from . import Page

#: the form's fields, in the order of the callback's states (numbers, then the rest)
NUMBERS = ("entry_z", "exit_z", "stop_z", "fee_bps", "slippage_bps", "capital")
TEXTS = ("pair", "tf", "method", "start", "end", "dataset_y", "dataset_x")
FIELDS = (*TEXTS, *NUMBERS)


def layout(ui: Ui, pair: str = "", tf: str = "1s", method: str = "ols", start: str = "",
           end: str = "", entry_z: str = "", exit_z: str = "", stop_z: str = "",
           fee_bps: str = "2", slippage_bps: str = "1", capital: str = "100000",
           dataset_y: str = "", dataset_x: str = "", **_: Any) -> Any:  # fmt: skip
    def number(name: str, value: str, label: str, step: float = 0.1,
               blank: str = "default") -> html.Label:  # fmt: skip
        control = dcc.Input(id=f"backtest-{name}", value=_float(value), type="number",
                            step=step, className="number", placeholder=blank)  # fmt: skip
        return _field(name, label, control)

    return html.Div([
        html.H2("Backtest"),
        html.P("The z-score strategy: enter at |z| ≥ entry, exit inside ± exit, stop at "
               "|z| ≥ stop; a decision on bar t fills at bar t+1's close, β frozen at entry, "
               "fees and slippage per leg and fill.", className="muted"),
        html.Div(className="card column", children=[
            html.Div(className="controls", children=[
                _field("pair", "pair", dcc.Dropdown(id="backtest-pair", value=pair or None,
                                                    options=[pair] if pair else [],
                                                    clearable=False, className="dropdown wide")),
                _field("tf", "timeframe", dcc.Dropdown(id="backtest-tf", value=tf, options=[tf],
                                                       clearable=False,
                                                       className="dropdown small")),
                _field("method", "method", dcc.Dropdown(id="backtest-method", value=method,
                                                        options=list(METHODS), clearable=False,
                                                        className="dropdown small")),
                _field("start", "from (ISO or epoch ms)",
                       dcc.Input(id="backtest-start", value=start, className="text wide",
                                 placeholder="oldest stored")),
                _field("end", "to", dcc.Input(id="backtest-end", value=end, className="text wide",
                                              placeholder="newest stored")),
            ]),
            html.Div(className="controls", children=[
                number("entry_z", entry_z, "entry z"), number("exit_z", exit_z, "exit z"),
                number("stop_z", stop_z, "stop z", blank="none"),
                number("fee_bps", fee_bps, "fee bps"),
                number("slippage_bps", slippage_bps, "slippage bps"),
                number("capital", capital, "capital", 1000),
            ]),
            html.Div(className="controls", children=[
                _field("dataset_y", "or uploaded datasets: Y",
                       dcc.Dropdown(id="backtest-dataset_y", value=dataset_y or None,
                                    className="dropdown")),
                _field("dataset_x", "X", dcc.Dropdown(id="backtest-dataset_x",
                                                      value=dataset_x or None,
                                                      className="dropdown")),
                html.Button("Run backtest", id="backtest-run", className="button primary"),
            ]),
            html.Div(id="backtest-error-general", className="error"),
        ]),
        dcc.Loading(html.Div(id="backtest-result"), type="dot", delay_show=200),
    ])  # fmt: skip


def _field(name: str, label: str, control: Any) -> html.Label:
    return html.Label([label, control, html.Div(id=f"backtest-error-{name}", className="error")],
                      className="field")  # fmt: skip


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def body_of(values: dict[str, Any]) -> dict[str, Any]:
    """The request body from the form: empty fields left to the API's defaults."""
    body: dict[str, Any] = {"pair": values["pair"] or "", "tf": values["tf"],
                            "method": values["method"]}  # fmt: skip
    for name in ("start", "end"):
        if (values[name] or "").strip():
            body[name] = values[name].strip()
    for name in NUMBERS:
        if values[name] is not None:
            body[name] = float(values[name])
    if values["dataset_y"] or values["dataset_x"]:
        body["datasets"] = {"y": values["dataset_y"] or "", "x": values["dataset_x"] or ""}
    return body


def metrics_card(result: dict[str, Any]) -> Any:
    m, p = result["metrics"], result["params"]

    def pct(v: float | None) -> str:
        return "—" if v is None else f"{v:+.2%}"

    stop = "—" if p["stop_z"] is None else f"{p['stop_z']:g}"
    rows = [("total return", pct(m["total_return"])),
            ("Sharpe (annualised)", "—" if m["sharpe"] is None else f"{m['sharpe']:.2f}"),
            ("max drawdown", f"{m['max_drawdown']:.2%}"),
            ("hit rate", "—" if m["hit_rate"] is None else f"{m['hit_rate']:.0%}"),
            ("turnover", f"{m['turnover']:.1f}×"), ("trades", f"{m['n_trades']}"),
            ("closed", f"{m['n_closed']}"), ("fees", f"{m['fees']:,.2f}"),
            ("final equity", f"{m['final_equity']:,.2f}"),
            ("bars", f"{result['bars']:,}"),
            ("entry / exit / stop z", f"{p['entry_z']:g} / {p['exit_z']:g} / {stop}"),
            ("windows hedge / z", f"{p['hedge_window']} / {p['zscore_window']}")]  # fmt: skip
    return html.Div([html.Div([html.Span(k, className="stat-name"),
                               html.Span(v, className="stat-value")], className="stat")
                     for k, v in rows], className="card", id="backtest-metrics")  # fmt: skip


def trades_table(trades: list[dict[str, Any]]) -> Any:
    if not trades:
        return html.P("No trades: |z| never reached the entry level.", className="muted")
    head = html.Tr([html.Th(h) for h in ("side", "entry", "exit", "reason", "β", "qty y",
                                         "qty x", "bars", "pnl", "return")])  # fmt: skip
    rows = [html.Tr([
        html.Td(t["side"], className="state-firing" if t["side"] == "short" else "state-resolved"),
        html.Td(when(t["entry_ts"])), html.Td(when(t["exit_ts"]) if t["exit_ts"] else "open"),
        html.Td(t["exit_reason"] or "—"), html.Td(f"{t['hedge_ratio']:.4g}"),
        html.Td(f"{t['qty_y']:.4g}"), html.Td(f"{t['qty_x']:.4g}"), html.Td(t["bars_held"]),
        html.Td(f"{t['pnl']:,.2f}", className="good" if t["pnl"] > 0 else "bad"),
        html.Td(f"{t['trade_return']:+.3%}"),
    ]) for t in trades]  # fmt: skip
    return html.Table([head, *rows], className="table", id="backtest-trades")


def callbacks(app: dash.Dash, ui: Ui) -> None:
    @app.callback(
        Output("backtest-pair", "options"), Output("backtest-pair", "value"),
        Output("backtest-tf", "options"), Output("backtest-dataset_y", "options"),
        Output("backtest-dataset_x", "options"),
        Input("backtest-loaded", "data"), Input("api-epoch", "data"),
        State("backtest-pair", "value"), State("backtest-tf", "value"),
    )  # fmt: skip
    async def choices(_: Any, __: Any, chosen: str | None, tf: str) -> tuple[Any, ...]:
        try:
            configured = await ui.api.get("/api/v1/pairs")
            datasets = await ui.api.get("/api/v1/uploads")
        except SHOWN_ERRORS:
            return ([chosen] if chosen else []), chosen, [tf], [], []
        names = [p["pair"] for p in configured]
        tfs = sorted({t for p in configured for t in p["timeframes"]} | {tf}, key=timeframe_ms)
        value = dash.no_update if chosen in names or not names else names[0]
        sets = [{"label": dataset_label(d), "value": d["name"]} for d in datasets]
        return names, value, tfs, sets, sets

    @app.callback(
        Output("backtest-result", "children"), Output("backtest-query", "data"),
        *[Output(f"backtest-error-{n}", "children") for n in (*FIELDS, "general")],
        Input("backtest-run", "n_clicks"), State("theme", "data"),
        *[State(f"backtest-{n}", "value") for n in FIELDS], prevent_initial_call=True,
    )  # fmt: skip
    async def run(_: int, theme: str, *values: Any) -> tuple[Any, ...]:
        form = dict(zip(FIELDS, values, strict=True))
        q = query(form)
        try:
            result = await ui.api.request("POST", "/api/v1/backtest", json=body_of(form))
        except SHOWN_ERRORS as error:
            errors = field_errors(error, (*FIELDS, "datasets"))
            if "datasets" in errors:  # datasets.y / datasets.x: under the pickers
                errors["dataset_y"] = errors.pop("datasets")
            return ("", q, *[errors.get(n, "") for n in (*FIELDS, "general")])
        blank = [""] * (len(FIELDS) + 1)
        if not result["bars"]:
            return html.P("No bar of the range has a z-score yet.", className="muted"), q, *blank
        chart = dcc.Graph(id="backtest-equity", figure=figures.equity(result["equity"], theme),
                          config={"displaylogo": False})  # fmt: skip
        return html.Div([metrics_card(result), html.Div(chart, className="chart"),
                         html.H3(f"Trades ({len(result['trades'])})"),
                         trades_table(result["trades"])]), q, *blank  # fmt: skip


PAGE = Page("backtest", "/backtest", "Backtest", layout, callbacks)
