"""The dashboard's pages: each module has a :class:`Page` (``PAGE``): its path, its
layout (a function of the URL query: the state lives in the URL) and its callbacks."""

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

    @property
    def loaded(self) -> str:
        """The id of a store set as the page is shown: an input that fires on it."""
        return f"{self.name}-loaded"

    def layout_for(self, ui: Ui, query: dict[str, str]) -> Any:
        """The page for a URL query, with its stores."""
        from dash import dcc, html

        stores = [dcc.Store(id=self.query), dcc.Store(id=f"{self.query}-written"),
                  dcc.Store(id=self.loaded, data=True)]  # fmt: skip
        return html.Div([*stores, self.layout(ui, **query)])

    def register(self, app: dash.Dash, ui: Ui) -> None:
        from dash import Input, Output

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
    from . import alerts, backtest, data, market, pair, scan, system

    return (market.PAGE, pair.PAGE, scan.PAGE, alerts.PAGE, backtest.PAGE, data.PAGE,
            system.PAGE)  # fmt: skip


PAGES = _pages()
