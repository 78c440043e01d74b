"""System: the API's readiness (PostgreSQL, Redis, Kafka with their latency), and how
far behind each stage of the pipeline is — ingest (last trade per instrument), resampler
(last bar), analytics (last point per pair, timeframe and method) — as the data the API
holds shows it."""

from __future__ import annotations

import asyncio
from typing import Any

import dash
from dash import Input, Output, html

from ..context import SHOWN_ERRORS, Ui, problem_text, span, when
from . import Page


def layout(ui: Ui, **_: Any) -> Any:
    return html.Div([
        html.H2("System"),
        html.Div(id="system-checks"),
        html.H3("Ingest and resampler: instruments"),
        html.Div(id="system-instruments"),
        html.H3("Analytics: pairs"),
        html.Div(id="system-pairs"),
    ])  # fmt: skip


def callbacks(app: dash.Dash, ui: Ui) -> None:
    @app.callback(
        Output("system-checks", "children"), Output("system-instruments", "children"),
        Output("system-pairs", "children"),
        Input("health-tick", "n_intervals"), Input("api-epoch", "data"),
    )  # fmt: skip
    async def system(_: Any, __: Any) -> tuple[Any, Any, Any]:
        head = [html.Tr([html.Th(h) for h in ("component", "status", "latency", "detail")])]
        try:
            ready = await ui.api.get("/health/ready")
        except SHOWN_ERRORS as error:
            checks = html.Table([*head, html.Tr([
                html.Td("api"), html.Td("down", className="status-down"), html.Td("—"),
                html.Td(problem_text(error))])], className="table", id="system-table")  # fmt: skip
            return checks, "", ""
        rows = [html.Tr([html.Td("api"), html.Td(ready["status"],
                                                 className=f"status-{ready['status']}"),
                         html.Td("—"), html.Td(ui.settings.api_url)])]  # fmt: skip
        for name, check in ready["checks"].items():
            latency = check.get("latency_ms")
            rows.append(html.Tr([
                html.Td(name), html.Td(check["status"], className=f"status-{check['status']}"),
                html.Td("—" if latency is None else f"{latency:.1f} ms"), html.Td(check["detail"]),
            ]))  # fmt: skip
        checks = html.Table(head + rows, className="table", id="system-table")
        try:
            instruments, pairs = await asyncio.gather(ui.api.get("/api/v1/instruments"),
                                                      analytics_ages(ui))  # fmt: skip
        except SHOWN_ERRORS as error:
            return checks, problem_text(error), ""
        now = ui.clock.now_ms()
        inst = [html.Tr([html.Th(h) for h in ("instrument", "timeframes", "last bar",
                                              "last bar age", "last trade age")])]  # fmt: skip
        for i in instruments:
            last = i.get("last_bar")
            inst.append(html.Tr([
                html.Td(i["instrument"]), html.Td(", ".join(i["timeframes"])), html.Td(when(last)),
                html.Td(span(None if last is None else (now - last) / 1000)),
                html.Td(span(i.get("last_trade_age_s"))),
            ]))  # fmt: skip
        table = [html.Tr([html.Th(h) for h in ("pair", "timeframe", "method", "last point",
                                               "age")])]  # fmt: skip
        for pair, tf, method, ts in pairs:
            age = span(None if ts is None else (now - ts) / 1000)
            table.append(html.Tr([html.Td(pair), html.Td(tf), html.Td(method), html.Td(when(ts)),
                                  html.Td(age)]))  # fmt: skip
        return (checks, html.Table(inst, className="table"),
                html.Table(table, className="table", id="system-pairs-table"))  # fmt: skip


#: Pairs whose analytics the System page reads (one request per pair and timeframe).
MOST_PAIRS = 20


async def analytics_ages(ui: Ui) -> list[tuple[str, str, str, int | None]]:
    """(pair, tf, method, newest point's ts) of the configured pairs."""
    configured = (await ui.api.get("/api/v1/pairs"))[:MOST_PAIRS]
    wanted = [(p["pair"], tf, p["methods"]) for p in configured for tf in p["timeframes"]]
    latest = await asyncio.gather(*(ui.latest(f"/api/v1/analytics/{pair}/latest", tf)
                                    for pair, tf, _ in wanted))  # fmt: skip
    out = []
    for (pair, tf, methods), answer in zip(wanted, latest, strict=True):
        points = (answer or {}).get("methods", {})
        for m in methods:
            out.append((pair, tf, m, (points.get(m) or {}).get("ts")))
    return out


PAGE = Page("system", "/system", "System", layout, callbacks)
