"""The dashboard app factory: the shell (navigation, API banner, theme, error toast), the
pages, and ``/live`` (the relay to the API's WebSocket) on the same FastAPI server."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import dash
from dash import Input, Output, State, dcc, html, set_props
from fastapi import WebSocket

from . import downloads, figures, proxy
from .client import ApiClient
from .config import UiSettings
from .context import SHOWN_ERRORS, Ui, problem_text
from .pages import PAGES

ASSETS = Path(__file__).parent / "assets"


def _shown(error: Exception) -> None:
    """Any callback's exception, to the user (not only the log)."""
    text = (
        problem_text(error)
        if isinstance(error, SHOWN_ERRORS)
        else f"{type(error).__name__}: {error}"
    )
    set_props("error-toast", {"children": f"Something failed: {text}", "className": "toast shown"})


def create_app(settings: UiSettings | None = None) -> dash.Dash:
    """The Dash app; ``app.server`` is the FastAPI app to serve."""
    settings = settings or UiSettings()
    ui = Ui(settings, ApiClient(settings))
    app = dash.Dash(
        __name__, backend="fastapi", assets_folder=str(ASSETS),
        title="pairstream", update_title="", suppress_callback_exceptions=True,
        assets_path_ignore=["vendor"],  # loaded by the index below, not as a blocking script
        on_error=_shown,
    )  # fmt: skip
    # plotly.js as an async script from the first byte (the browser fetches and compiles
    # it while the layout and the first callbacks run; dcc.Graph takes window.Plotly), and
    # our bundle of the traces drawn (1.2 MB, services/ui/plotly) instead of the full 4.8 MB;
    # and dcc's graph and dropdown chunks, which it would fetch only once a page shows one
    suites = app.get_relative_path("/_dash-component-suites/dash/dcc/")
    early = [app.get_asset_url("vendor/plotly.min.js"), f"{suites}async-graph.js",
             f"{suites}async-dropdown.js"]  # fmt: skip
    tags = "".join(f'\n        <script async src="{src}"></script>' for src in early)
    app.index_string = dash.dash._default_index.replace("{%css%}", "{%css%}" + tags)
    figures.prime()
    for page in PAGES:
        page.register(app, ui)
    app.layout = html.Div(id="shell", children=[
        dcc.Store(id="theme", storage_type="local", data="dark"),
        dcc.Store(id="api-state", data={"up": None}),
        dcc.Store(id="api-epoch", data=0),  # +1 when the API is back: pages redraw
        dcc.Interval(id="health-tick", interval=int(settings.health_interval_s * 1000)),
        html.Header(className="topbar", children=[
            html.Span("pairstream", className="brand"),
            html.Nav([dcc.Link(p.title, href=p.path, className="nav-link", id=f"nav-{p.name}")
                      for p in PAGES]),
            html.Span("● connecting…", id="live-status", className="live-status live-connecting"),
            html.Button("☀ light", id="theme-toggle", className="button small"),
        ]),
        html.Div(id="api-banner", className="banner hidden"),
        html.Div(id="error-toast", className="toast", n_clicks=0),
        dcc.Location(id="url"),
        html.Main(id="page", className="page"),
    ])  # fmt: skip
    _shell_callbacks(app, ui)
    # what Dash does before its first request (it finds the assets): done now, or a first
    # request that is not the index's gets an index without live.js
    app._setup_server()

    @app.server.websocket("/live")
    async def live(websocket: WebSocket) -> None:
        await proxy.relay(websocket, settings)

    downloads.install(app.server, ui)

    @app.server.get("/health/live")
    async def health() -> dict[str, str]:
        return {"status": "live"}

    return app


def _shell_callbacks(app: dash.Dash, ui: Ui) -> None:
    by_path = {p.path: p for p in PAGES}

    @app.callback(Output("page", "children"), Input("url", "pathname"), State("url", "search"))
    def route(path: str | None, search: str | None) -> Any:
        """The page of a path, its controls from the URL query (a link reopens the view)."""
        page = by_path.get(path or "/")
        if page is None:
            return html.Div([html.H2("Not found"), html.P(f"No page at {path}."),
                             dcc.Link("Market →", href="/")])  # fmt: skip
        query = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
        return page.layout_for(ui, query)

    @app.callback(
        Output("api-banner", "children"), Output("api-banner", "className"),
        Output("api-state", "data"), Output("api-epoch", "data"),
        Input("health-tick", "n_intervals"), State("api-state", "data"),
        State("api-epoch", "data"),
    )  # fmt: skip
    async def banner(_: int | None, previous: dict[str, Any], epoch: int) -> tuple[Any, ...]:
        """The API's state, every ``UI_HEALTH_INTERVAL_S``; ``api-epoch`` moves (and the
        pages redraw) only when it is back after being down."""
        was = previous.get("up")
        try:
            ready = await ui.api.get("/health/ready")
        except SHOWN_ERRORS as error:
            if getattr(error, "status", None) == 503:  # it answers: it says what is missing
                text = f"The API is unavailable: {problem_text(error)}"
            else:
                text = (f"The API at {ui.settings.api_url} does not answer — retrying every "
                        f"{ui.settings.health_interval_s:g} s. The page stays usable.")  # fmt: skip
            state = dash.no_update if was is False else {"up": False}
            return text, "banner down", state, dash.no_update
        state = dash.no_update if was is True else {"up": True}
        recovered = epoch + 1 if was is False else dash.no_update
        if ready["status"] == "degraded":
            down = ", ".join(k for k, c in ready["checks"].items() if c["status"] != "ok")
            text = f"The API is degraded ({down} down): data may lag."
            return text, "banner degraded", state, recovered
        return "", "banner hidden", state, recovered

    app.clientside_callback(
        """function(theme) {
            document.documentElement.dataset.theme = theme || "dark";
            return theme === "light" ? "☾ dark" : "☀ light";
        }""",
        Output("theme-toggle", "children"), Input("theme", "data"),
    )  # fmt: skip
    app.clientside_callback(
        """function(n, theme) {
            return n ? (theme === "light" ? "dark" : "light") : window.dash_clientside.no_update;
        }""",
        Output("theme", "data"), Input("theme-toggle", "n_clicks"), State("theme", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    app.clientside_callback(
        """function(n) { return n ? "toast" : window.dash_clientside.no_update; }""",
        Output("error-toast", "className"), Input("error-toast", "n_clicks"),
        prevent_initial_call=True,
    )  # fmt: skip
