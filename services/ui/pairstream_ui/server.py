"""Runs the dashboard under uvicorn."""

from __future__ import annotations

import uvicorn

from pairstream.logs import setup_logging

from .config import UiSettings


def serve(settings: UiSettings) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's own handling)."""
    from .app import create_app

    setup_logging()
    uvicorn.run(create_app(settings).server, host=settings.host, port=settings.port,
                log_config=None, access_log=False, lifespan="on")  # fmt: skip
