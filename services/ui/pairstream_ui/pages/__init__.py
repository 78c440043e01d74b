"""The dashboard's pages: each module has a :class:`Page` (``PAGE``) whose ``register``
adds its layout (a function of the URL query: the state lives in the URL) and callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dash

    from ..context import Ui


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    title: str
    layout: Callable[..., Any]
    callbacks: Callable[[dash.Dash, Ui], None]

    @property
    def query(self) -> str:
        """The id of the page's store of its URL query (its callbacks write it)."""
        return f"{self.name}-query"

    def register(self, app: dash.Dash, ui: Ui) -> None:
        import dash
        from dash import Input, Output, dcc, html

        def layout(**q: Any) -> Any:
            return html.Div([dcc.Store(id=self.query), dcc.Store(id=f"{self.query}-written"),
                             self.layout(ui, **q)])  # fmt: skip

        dash.register_page(self.name, path=self.path, title=f"pairstream · {self.title}",
                           name=self.title, layout=layout)  # fmt: skip
        # the controls' state in the URL, without a reload; every output of a page's
        # callbacks is on the page (the renderer refuses a callback whose output is shown
        # while one of its inputs is on another page)
        app.clientside_callback(
            """function(q) { if (q && q !== location.search) {
                history.replaceState(null, "", location.pathname + q); } return q; }""",
            Output(f"{self.query}-written", "data"), Input(self.query, "data"),
            prevent_initial_call=True,
        )  # fmt: skip
        self.callbacks(app, ui)


def _pages() -> tuple[Page, ...]:
    from . import market, pair, scan, system

    return (market.PAGE, pair.PAGE, scan.PAGE, system.PAGE)


PAGES = _pages()
