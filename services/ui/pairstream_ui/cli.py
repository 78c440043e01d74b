"""``pairstream ui``: the dashboard. Imports typer only; the rest when the command runs."""

from __future__ import annotations

from typing import Annotated

import typer

from pairstream.cliutil import settings_from


def ui(
    host: Annotated[str | None, typer.Option(help="Listen address (UI_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (UI_PORT; 0 = a free one).")] = None,
    api_url: Annotated[str | None, typer.Option(help="The API it reads (UI_API_URL).")] = None,
) -> None:
    """Serve the dashboard (settings UI_*); it reads only the API."""
    from pairstream_ui.config import UiSettings
    from pairstream_ui.server import serve

    serve(settings_from(UiSettings, host=host, port=port, api_url=api_url))


def register(app: typer.Typer, bench: typer.Typer) -> None:
    """Add ``ui`` to ``pairstream``."""
    app.command("ui")(ui)
