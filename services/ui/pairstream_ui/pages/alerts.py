"""Alerts: the live feed (severity colours, optional sound and browser notification),
the history with filters, and the rule editor — create, edit, disable, silence, delete,
and "test on history" — showing the API's validation errors next to each field."""

from __future__ import annotations

from typing import Any

import dash
import orjson
from dash import ALL, Input, Output, State, dcc, html

from pairstream.alerts.rules import RuleSpec

from ..context import (
    METHODS,
    SHOWN_ERRORS,
    Ui,
    field_errors,
    problem_text,
    query,
    when,
)
from . import Page

SEVERITIES = ("info", "warning", "critical")
STATES = ("firing", "resolved", "nodata")
HISTORY_ROWS = 200  # the newest episodes shown
#: the editor's fields: (id suffix, label); an API error on ``condition.value`` is shown
#: under ``condition``
FIELDS = ("name", "subject", "tf", "method", "severity", "for_bars", "cooldown", "channels",
          "condition", "enabled")  # fmt: skip
TEMPLATES: dict[str, dict[str, Any]] = {
    "threshold": {"kind": "threshold", "field": "zscore", "op": "outside", "lo": -2, "hi": 2},
    "correlation_break": {"kind": "correlation_break", "below": 0.5, "bars": 60},
    "cointegration": {"kind": "cointegration", "event": "lost", "level": 0.05, "tests": 3},
    "half_life": {"kind": "half_life", "lo": 0, "hi": 50},
    "hedge_jump": {"kind": "hedge_jump", "relative": 0.05, "bars": 10},
    "volatility_spike": {"kind": "volatility_spike", "factor": 3, "bars": 60},
    "volume_spike": {"kind": "volume_spike", "factor": 4, "bars": 60},
    "stale": {"kind": "stale", "seconds": "30s"},
    "expression": {"kind": "expression", "expr": "abs(zscore) > 2 && adf_pvalue < 0.05"},
}
SILENCE_MS = 3_600_000
HISTORY_REFRESH_S = 10


def layout(ui: Ui, rule: str = "", subject: str = "", severity: str = "", state: str = "",
           **_: Any) -> Any:  # fmt: skip
    return html.Div([
        html.H2("Alerts"),
        html.Div(className="alerts-grid", children=[
            html.Section(className="card column", children=[
                html.H3("Live feed"),
                html.Div(className="controls", children=[
                    dcc.Checklist(id="alerts-sound", options=[{"label": " sound", "value": "on"}],
                                  value=[], className="check"),
                    dcc.Checklist(id="alerts-notify",
                                  options=[{"label": " browser notification", "value": "on"}],
                                  value=[], className="check"),
                    html.Span(id="alerts-notify-state", className="muted"),
                ]),
                _feed(),
            ]),
            html.Section(className="card column", children=[
                html.H3(id="alerts-editor-title", children="New rule"),
                _editor(),
            ]),
        ]),
        html.H3("Rules"),
        html.Div(id="alerts-status", className="status-line"),
        html.Div(id="alerts-rules"),
        html.H3("Test on history"),
        html.Div(html.P("“Test on history” runs the rule in the editor over the stored "
                        "analytics and bars; “test” does so for a stored rule.",
                        className="muted"), id="alerts-test-result"),
        html.H3("History"),
        html.Div(className="controls", children=[
            html.Label(["rule", dcc.Input(id="alerts-f-rule", value=rule, debounce=True,
                                          className="text")]),
            html.Label(["subject", dcc.Input(id="alerts-f-subject", value=subject,
                                             debounce=True, className="text wide")]),
            html.Label(["severity", dcc.Dropdown(id="alerts-f-severity", value=severity or None,
                                                 options=list(SEVERITIES),
                                                 className="dropdown small")]),
            html.Label(["state", dcc.Dropdown(id="alerts-f-state", value=state or None,
                                              options=list(STATES),
                                              className="dropdown small")]),
        ]),
        dcc.Loading(html.Div(id="alerts-history"), type="dot", delay_show=300),
        dcc.Interval(id="alerts-refresh", interval=HISTORY_REFRESH_S * 1000),
        dcc.Store(id="alerts-editing"),  # the id of the rule in the editor (None: new)
        dcc.Store(id="alerts-changed", data=0),  # +1 on every change: tables reload
    ])  # fmt: skip


def _feed() -> html.Div:
    """The live feed, filled by ``assets/live.js`` from the ``alerts`` channel."""
    feed = html.Div(html.P("waiting for alerts…", className="feed-empty muted"),
                    id="alerts-feed", className="feed")  # fmt: skip
    setattr(feed, "data-live-feed", orjson.dumps({"channel": "alerts", "max": 100}).decode())
    return feed


def _field(name: str, label: str, control: Any) -> html.Label:
    return html.Label([label, control, html.Div(id=f"alerts-error-{name}", className="error")],
                      className="field")  # fmt: skip


def _editor() -> Any:
    return html.Div(className="editor", children=[
        html.Div(className="row", children=[
            _field("name", "name", dcc.Input(id="alerts-name", className="text wide")),
            _field("subject", "subject (pair, instrument or glob)",
                   dcc.Input(id="alerts-subject", className="text wide")),
        ]),
        html.Div(className="row", children=[
            _field("tf", "timeframe", dcc.Input(id="alerts-tf", value="1s", className="text")),
            _field("method", "method", dcc.Dropdown(id="alerts-method", value="ols",
                                                    options=list(METHODS), clearable=False,
                                                    className="dropdown small")),
            _field("severity", "severity", dcc.Dropdown(id="alerts-severity", value="warning",
                                                        options=list(SEVERITIES),
                                                        clearable=False,
                                                        className="dropdown small")),
            _field("for_bars", "for bars", dcc.Input(id="alerts-for_bars", value=1,
                                                     type="number", className="number")),
            _field("cooldown", "cooldown", dcc.Input(id="alerts-cooldown", value="0",
                                                     className="text small")),
        ]),
        html.Div(className="row", children=[
            _field("channels", "channels (comma-separated)",
                   dcc.Input(id="alerts-channels", value="log", className="text wide")),
            _field("enabled", "enabled", dcc.Checklist(
                id="alerts-enabled", options=[{"label": " on", "value": "on"}], value=["on"],
                className="check")),
        ]),
        html.Div(className="row", children=[
            html.Label(["condition", dcc.Dropdown(id="alerts-kind", value="threshold",
                                                  options=list(TEMPLATES), clearable=False,
                                                  className="dropdown")], className="field"),
        ]),
        _field("condition", "condition (JSON)", dcc.Textarea(
            id="alerts-condition", value=_json(TEMPLATES["threshold"]), className="code")),
        html.Div(id="alerts-error-general", className="error"),
        html.Div(className="row", children=[
            html.Button("Save rule", id="alerts-save", className="button primary"),
            html.Button("Test on history", id="alerts-test", className="button"),
            html.Button("New", id="alerts-new", className="button"),
        ]),
    ])  # fmt: skip


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _number(value: Any) -> Any:
    """A number input's value as JSON wants it: 3.0 → 3 (strict ints)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def body_of(values: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The rule body from the editor's values, or the fields it cannot be built from."""
    errors: dict[str, str] = {}
    try:
        condition = orjson.loads(values["condition"] or "")
    except orjson.JSONDecodeError as error:
        errors["condition"] = f"not JSON: {error}"
        condition = None
    if errors:
        return None, errors
    body = {
        "name": (values["name"] or "").strip(),
        "subject": (values["subject"] or "").strip(),
        "tf": (values["tf"] or "").strip(),
        "method": values["method"],
        "severity": values["severity"],
        "for_bars": _number(values["for_bars"]),
        "cooldown": (values["cooldown"] or "0").strip(),
        "channels": [c.strip() for c in (values["channels"] or "").split(",") if c.strip()],
        "condition": condition,
        "enabled": bool(values["enabled"]),
    }
    return body, {}


def _error_outputs(errors: dict[str, str]) -> list[str]:
    return [errors.get(name, "") for name in (*FIELDS, "general")]


ERROR_OUTPUTS = [Output(f"alerts-error-{n}", "children", allow_duplicate=True)
                 for n in (*FIELDS, "general")]  # fmt: skip
EDITOR_STATES = [State(f"alerts-{n}", "value") for n in FIELDS]


def _rule_row(rule: dict[str, Any], silenced: dict[str, int]) -> Any:
    rid = rule["id"]

    def action(label: str, name: str, cls: str = "button small") -> html.Button:
        return html.Button(label, id={"type": "alerts-action", "action": name, "rule": rid},
                           className=cls)  # fmt: skip

    condition = rule["condition"]
    summary = ", ".join(f"{k}={v}" for k, v in condition.items() if k != "kind" and v is not None)
    until = silenced.get(rid)
    return html.Tr([
        html.Td(rid), html.Td(rule["name"]), html.Td(rule["subject"]),
        html.Td(f"{condition['kind']} {summary}"), html.Td(f"{rule['tf']} {rule['method']}"),
        html.Td(rule["severity"], className=f"sev sev-{rule['severity']}"),
        html.Td("enabled" if rule["enabled"] else "disabled",
                className="status-ok" if rule["enabled"] else "muted"),
        html.Td(f"v{rule['version']}" + (f" · silenced until {when(until)}" if until else "")),
        html.Td([action("edit", "edit"),
                 action("disable", "disable") if rule["enabled"] else action("enable", "enable"),
                 action("unsilence" if until else "silence 1 h",
                        "unsilence" if until else "silence"),
                 action("test", "test"), action("delete", "delete", "button small danger")],
                className="actions"),
    ])  # fmt: skip


def _transitions(items: list[dict[str, Any]], title: str) -> Any:
    if not items:
        return html.P(f"{title}: it would have fired nothing.", className="muted")
    head = html.Tr([html.Th(h) for h in ("bar", "state", "severity", "subject", "value",
                                         "threshold", "message")])  # fmt: skip
    rows = [html.Tr([
        html.Td(when(t["ts"])), html.Td(t["state"], className=f"state-{t['state']}"),
        html.Td(t["severity"], className=f"sev sev-{t['severity']}"), html.Td(t["subject"]),
        html.Td(_f(t["value"])), html.Td(_f(t["threshold"])), html.Td(t["message"]),
    ]) for t in items[-HISTORY_ROWS:]]  # fmt: skip
    fired = sum(t["state"] == "firing" for t in items)
    shown = f" (the last {HISTORY_ROWS} shown)" if len(items) > HISTORY_ROWS else ""
    summary = f"{title}: {fired} firing transitions, {len(items)} in all{shown}."
    return html.Div(
        [html.P(summary), html.Table([head, *rows], className="table", id="alerts-test-table")]
    )


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def callbacks(app: dash.Dash, ui: Ui) -> None:
    app.clientside_callback(
        """async function(on) {
            if (!on || !on.length) return "";
            if (!window.Notification) return "this browser has no notifications";
            const answer = Notification.permission === "default"
                ? await Notification.requestPermission() : Notification.permission;
            return answer === "granted" ? "" : "notifications are blocked for this site";
        }""",
        Output("alerts-notify-state", "children"), Input("alerts-notify", "value"),
        prevent_initial_call=True,
    )  # fmt: skip

    @app.callback(
        Output("alerts-rules", "children"),
        Input("alerts-loaded", "data"), Input("alerts-changed", "data"),
        Input("api-epoch", "data"),
    )  # fmt: skip
    async def rules(_: Any, __: Any, ___: Any) -> Any:
        try:
            stored = await ui.api.get("/api/v1/alerts/rules")
            active = await ui.api.get("/api/v1/alerts/silences")
        except SHOWN_ERRORS as error:
            return html.P(problem_text(error), className="error")
        if not stored:
            return html.P("No rules yet: write one in the editor.", className="muted")
        silenced = {s["rule_id"]: s["until"] for s in active if s["subject"] == "*"}
        head = html.Tr([html.Th(h) for h in ("id", "name", "subject", "condition", "tf",
                                             "severity", "state", "version", "")])  # fmt: skip
        return html.Table([head, *(_rule_row(r, silenced) for r in stored)],
                          className="table", id="alerts-rules-table")  # fmt: skip

    @app.callback(
        Output("alerts-history", "children"), Output("alerts-query", "data"),
        Input("alerts-f-rule", "value"), Input("alerts-f-subject", "value"),
        Input("alerts-f-severity", "value"), Input("alerts-f-state", "value"),
        Input("alerts-changed", "data"), Input("alerts-refresh", "n_intervals"),
        Input("api-epoch", "data"),
    )  # fmt: skip
    async def history(rule: str | None, subject: str | None, severity: str | None,
                      state: str | None, *_: Any) -> tuple[Any, str]:  # fmt: skip
        filters: dict[str, Any] = {"rule": rule or None, "subject": subject or None,
                                   "severity": severity, "state": state}  # fmt: skip
        q = query(filters)
        try:  # the newest page only
            page = await ui.api.get("/api/v1/alerts", order="desc", limit=HISTORY_ROWS,
                                    **filters)  # fmt: skip
        except SHOWN_ERRORS as error:
            return html.P(problem_text(error), className="error"), q
        items = page["items"]
        if not items:
            return html.P("No alerts match.", className="muted"), q
        head = html.Tr([html.Th(h) for h in ("started", "ended", "state", "severity", "rule",
                                             "subject", "value", "message")])  # fmt: skip
        rows = [html.Tr([
            html.Td(when(a["started_ts"])), html.Td(when(a["ended_ts"])),
            html.Td(a["state"], className=f"state-{a['state']}"),
            html.Td(a["severity"], className=f"sev sev-{a['severity']}"),
            html.Td(a["rule_id"]), html.Td(a["subject"]), html.Td(_f(a["value"])),
            html.Td(a["message"]),
        ]) for a in items]  # fmt: skip
        count = (f"The newest {len(items)} episodes (more in the CSV export)"
                 if page.get("next_cursor") else
                 f"{len(items)} episode" + ("" if len(items) == 1 else "s"))  # fmt: skip
        return html.Div([html.P(f"{count}.", className="muted"),
                         html.Table([head, *rows], className="table",
                                    id="alerts-history-table")]), q  # fmt: skip

    @app.callback(
        Output("alerts-condition", "value", allow_duplicate=True),
        Input("alerts-kind", "value"), prevent_initial_call=True,
    )  # fmt: skip
    def template(kind: str) -> str:
        return _json(TEMPLATES[kind])

    @app.callback(
        *ERROR_OUTPUTS, Output("alerts-status", "children", allow_duplicate=True),
        Output("alerts-changed", "data", allow_duplicate=True),
        Output("alerts-editing", "data", allow_duplicate=True),
        Output("alerts-editor-title", "children", allow_duplicate=True),
        Input("alerts-save", "n_clicks"), *EDITOR_STATES, State("alerts-editing", "data"),
        State("alerts-changed", "data"), prevent_initial_call=True,
    )  # fmt: skip
    async def save(_: int, *values: Any) -> tuple[Any, ...]:
        editing, changed = values[-2], values[-1]
        body, errors = body_of(dict(zip(FIELDS, values[:-2], strict=True)))
        if body is None:
            return (*_error_outputs(errors), "", dash.no_update, dash.no_update, dash.no_update)
        try:
            if editing:  # what the editor does not show (clear, labels, …) stays as stored
                stored = await ui.api.get(f"/api/v1/alerts/rules/{editing}")
                body = {**_spec(stored), **body}
                rule = await ui.api.request("PUT", f"/api/v1/alerts/rules/{editing}", json=body)
            else:
                rule = await ui.api.request("POST", "/api/v1/alerts/rules", json=body)
        except SHOWN_ERRORS as error:
            errors = field_errors(error, FIELDS)
            return (*_error_outputs(errors), "", dash.no_update, dash.no_update, dash.no_update)
        status = f"Saved rule {rule['id']} (version {rule['version']})."
        return (*_error_outputs({}), status, changed + 1, rule["id"],
                f"Edit rule {rule['id']}")  # fmt: skip

    @app.callback(
        *ERROR_OUTPUTS, Output("alerts-test-result", "children", allow_duplicate=True),
        Input("alerts-test", "n_clicks"), *EDITOR_STATES, prevent_initial_call=True,
    )  # fmt: skip
    async def try_unsaved(_: int, *values: Any) -> tuple[Any, ...]:
        body, errors = body_of(dict(zip(FIELDS, values, strict=True)))
        if body is None:
            return (*_error_outputs(errors), dash.no_update)
        try:
            found = await ui.api.request("POST", "/api/v1/alerts/test", json=body)
        except SHOWN_ERRORS as error:
            return (*_error_outputs(field_errors(error, FIELDS)), dash.no_update)
        return (*_error_outputs({}), _transitions(found, "The rule in the editor over history"))

    @app.callback(
        *[Output(f"alerts-{n}", "value", allow_duplicate=True) for n in FIELDS],
        Output("alerts-kind", "value", allow_duplicate=True),
        Output("alerts-editing", "data", allow_duplicate=True),
        Output("alerts-editor-title", "children", allow_duplicate=True),
        *ERROR_OUTPUTS, Input("alerts-new", "n_clicks"), prevent_initial_call=True,
    )  # fmt: skip
    def new(_: int) -> tuple[Any, ...]:
        blank = RuleSpec.model_fields
        values = ["", "", "1s", "ols", "warning", blank["for_bars"].default, "0", "log",
                  _json(TEMPLATES["threshold"]), ["on"]]  # fmt: skip
        return (*values, "threshold", None, "New rule", *_error_outputs({}))

    @app.callback(
        *[Output(f"alerts-{n}", "value", allow_duplicate=True) for n in FIELDS],
        Output("alerts-editing", "data", allow_duplicate=True),
        Output("alerts-editor-title", "children", allow_duplicate=True),
        Output("alerts-status", "children", allow_duplicate=True),
        Output("alerts-changed", "data", allow_duplicate=True),
        Output("alerts-test-result", "children", allow_duplicate=True),
        Input({"type": "alerts-action", "action": ALL, "rule": ALL}, "n_clicks"),
        State("alerts-changed", "data"), State("alerts-editing", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    async def act(clicks: list[int | None], changed: int, editing: str | None) -> tuple[Any, ...]:
        trigger = dash.ctx.triggered_id
        if not trigger or not any(clicks) or not dash.ctx.triggered[0]["value"]:
            raise dash.exceptions.PreventUpdate  # a table drawn, not a click
        rid, action = trigger["rule"], trigger["action"]
        keep = [dash.no_update] * len(FIELDS)
        unchanged: tuple[Any, Any] = (dash.no_update, dash.no_update)
        try:
            if action == "edit":
                rule = await ui.api.get(f"/api/v1/alerts/rules/{rid}")
                values = [rule["name"], rule["subject"], rule["tf"], rule["method"],
                          rule["severity"], rule["for_bars"], _duration(rule["cooldown"]),
                          ", ".join(rule["channels"]), _json(rule["condition"]),
                          ["on"] if rule["enabled"] else []]  # fmt: skip
                return (*values, rid, f"Edit rule {rid}", f"Editing {rid} (version "
                        f"{rule['version']}).", dash.no_update, dash.no_update)  # fmt: skip
            if action == "test":
                found = await ui.api.request("POST", f"/api/v1/alerts/rules/{rid}/test")
                return (*keep, *unchanged, "", dash.no_update,
                        _transitions(found, f"Rule {rid} over history"))  # fmt: skip
            status = await _change(ui, rid, action)
        except SHOWN_ERRORS as error:
            return (*keep, *unchanged, f"{action} {rid} failed: {problem_text(error)}",
                    dash.no_update, dash.no_update)  # fmt: skip
        if action == "delete" and rid == editing:  # the editor writes a new rule next
            unchanged = (None, "New rule")
        return (*keep, *unchanged, status, changed + 1, dash.no_update)


def _spec(rule: dict[str, Any]) -> dict[str, Any]:
    """A stored rule's fields a PUT takes (``RuleSpec``'s)."""
    return {k: v for k, v in rule.items() if k in RuleSpec.model_fields and k != "id"}


def _duration(seconds: float) -> str:
    """Seconds as the editor shows them (``30``, ``1.5``), every digit kept."""
    return format(seconds, "f").rstrip("0").rstrip(".") or "0"


async def _change(ui: Ui, rid: str, action: str) -> str:
    """Disable/enable, silence/unsilence or delete a stored rule: what happened."""
    path = f"/api/v1/alerts/rules/{rid}"
    if action in ("enable", "disable"):
        rule = await ui.api.get(path)
        if rule["enabled"] == (action == "enable"):  # a second click: already done
            return f"Rule {rid} is {action}d (version {rule['version']})."
        saved = await ui.api.request("PUT", path, json={**_spec(rule),
                                                        "enabled": action == "enable"})  # fmt: skip
        return f"Rule {rid} {'enabled' if saved['enabled'] else 'disabled'} (version " \
            f"{saved['version']})."  # fmt: skip
    if action == "silence":
        until = ui.clock.now_ms() + SILENCE_MS
        await ui.api.request("POST", "/api/v1/alerts/silences", json={
            "id": f"ui-{rid}"[:64], "rule_id": rid, "subject": "*", "until": until,
            "reason": "silenced from the dashboard"})  # fmt: skip
        return f"Rule {rid} silenced until {when(until)} (notifications only)."
    if action == "unsilence":
        active = await ui.api.get("/api/v1/alerts/silences")
        for s in active:
            if s["rule_id"] == rid and s["subject"] == "*":
                await ui.api.request("DELETE", f"/api/v1/alerts/silences/{s['id']}")
        return f"Rule {rid} no longer silenced."
    if action == "delete":
        await ui.api.request("DELETE", path)
        return f"Rule {rid} deleted (its history stays)."
    raise ValueError(f"no action {action!r}")


PAGE = Page("alerts", "/alerts", "Alerts", layout, callbacks)
