"""Runs the app under uvicorn (one or more worker processes)."""

from __future__ import annotations

import uvicorn

from pairstream.logs import setup_logging

from .config import ApiSettings


def serve(settings: ApiSettings) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's own handling)."""
    setup_logging()
    uvicorn.run(
        "pairstream_api.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        lifespan="on",
    )
