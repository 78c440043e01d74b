"""``pairstream resampler``: wiring only (settings, metrics endpoint, worker)."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from pairstream.clock import Clock, SystemClock

from .config import ResamplerSettings
from .metrics import ResamplerMetrics
from .worker import ResamplerWorker

log = logging.getLogger(__name__)


async def run_resampler(settings: ResamplerSettings, clock: Clock | None = None) -> None:
    """Run one worker until stopped; a failure is raised (the supervisor restarts it)."""
    metrics = ResamplerMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
        log.info("metrics on :%d/metrics", settings.metrics_port)
    await ResamplerWorker(settings, clock=clock or SystemClock(), metrics=metrics).run()
