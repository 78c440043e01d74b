"""System: the API's readiness (PostgreSQL, Redis, Kafka with their latency), the live
feed, and the last trade's age per instrument."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, html

from ..context import SHOWN_ERRORS, Ui, problem_text, span, when
from . import Page


def layout(ui: Ui, **_: Any) -> Any:
    return html.Div([
        html.H2("System"),
        html.Div(id="system-checks"),
        html.H3("Instruments"),
        html.Div(id="system-instruments"),
    ])  # fmt: skip


def callbacks(app: dash.Dash, ui: Ui) -> None:
    @app.callback(
        Output("system-checks", "children"), Output("system-instruments", "children"),
        Input("health-tick", "n_intervals"), Input("api-epoch", "data"),
    )  # fmt: skip
    async def system(_: Any, __: Any) -> tuple[Any, Any]:
        head = [html.Tr([html.Th(h) for h in ("component", "status", "latency", "detail")])]
        try:
            ready = await ui.api.get("/health/ready")
        except SHOWN_ERRORS as error:
            checks = html.Table([*head, html.Tr([
                html.Td("api"), html.Td("down", className="status-down"), html.Td("—"),
                html.Td(problem_text(error))])], className="table", id="system-table")  # fmt: skip
            return checks, ""
        rows = [html.Tr([html.Td("api"), html.Td(ready["status"],
                                                 className=f"status-{ready['status']}"),
                         html.Td("—"), html.Td(ui.settings.api_url)])]  # fmt: skip
        for name, check in ready["checks"].items():
            latency = check.get("latency_ms")
            rows.append(html.Tr([
                html.Td(name), html.Td(check["status"], className=f"status-{check['status']}"),
                html.Td("—" if latency is None else f"{latency:.1f} ms"), html.Td(check["detail"]),
            ]))  # fmt: skip
        try:
            instruments = await ui.api.get("/api/v1/instruments")
        except SHOWN_ERRORS as error:
            return html.Table(head + rows, className="table"), problem_text(error)
        inst = [html.Tr([html.Th(h) for h in ("instrument", "timeframes", "last bar",
                                              "last trade age")])]  # fmt: skip
        for i in instruments:
            age = i.get("last_trade_age_s")
            inst.append(html.Tr([
                html.Td(i["instrument"]), html.Td(", ".join(i["timeframes"])),
                html.Td(when(i.get("last_bar"))), html.Td(span(age)),
            ]))  # fmt: skip
        return (html.Table(head + rows, className="table", id="system-table"),
                html.Table(inst, className="table"))  # fmt: skip


PAGE = Page("system", "/system", "System", layout, callbacks)
