"""``pairstream alerts``: wiring only (settings, metrics endpoint, worker)."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

from pairstream.clock import Clock, SystemClock
from pairstream.status import Rates, status_every

from .config import AlertsSettings
from .metrics import AlertsMetrics
from .worker import AlertsWorker

log = logging.getLogger(__name__)


async def run_alerts(settings: AlertsSettings, clock: Clock | None = None) -> None:
    """Run one worker until stopped; a failure is raised (the supervisor restarts it)."""
    metrics = AlertsMetrics()
    if settings.metrics_port:
        start_http_server(settings.metrics_port, registry=metrics.registry)
        log.info("metrics on :%d/metrics", settings.metrics_port)
    clock = clock or SystemClock()
    rates = Rates(metrics.registry, clock)
    with_status = status_every(
        settings.status_interval_s, lambda: metrics.status(rates), clock, log
    )
    async with with_status:
        await AlertsWorker(settings, clock, metrics).run()
