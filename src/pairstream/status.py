"""One INFO line per service and interval: its throughput and lag, read from its metrics.

Every service keeps Prometheus metrics in its own registry; :func:`status_every`
logs what a person watching ``pairstream up`` needs from them every
``<SERVICE>_STATUS_INTERVAL_S`` seconds (default 60), with no scraper involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping

from prometheus_client import CollectorRegistry

from pairstream.clock import Clock


def samples(
    registry: CollectorRegistry,
    name: str,
    by: str | None = None,
    where: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """Values of the samples called ``name`` (``ingest_trades_total``) with labels
    ``where``, summed per value of label ``by`` (one ``""`` key without ``by``)."""
    found: dict[str, float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name != name:
                continue
            if where and any(sample.labels.get(k) != v for k, v in where.items()):
                continue
            key = sample.labels.get(by, "") if by else ""
            found[key] = found.get(key, 0.0) + sample.value
    return found


def largest(registry: CollectorRegistry, name: str) -> float | None:
    """The largest sample called ``name`` (a gauge over labels); ``None`` without any."""
    values = [s.value for metric in registry.collect() for s in metric.samples if s.name == name]
    return max(values) if values else None


class Rates:
    """How much counters grew per minute since the previous status line."""

    def __init__(self, registry: CollectorRegistry, clock: Clock) -> None:
        self.registry = registry
        self.clock = clock
        self._made = clock.monotonic()
        self._previous: dict[tuple[object, ...], tuple[float, dict[str, float]]] = {}

    def per_minute(
        self, name: str, by: str | None = None, where: Mapping[str, str] | None = None
    ) -> dict[str, float]:
        """Growth of counter sample ``name`` per minute since the last call with the same
        arguments (or since this object was made), per value of label ``by``."""
        key = (name, by, tuple(sorted((where or {}).items())))
        now, current = self.clock.monotonic(), samples(self.registry, name, by, where)
        at, previous = self._previous.get(key, (self._made, {}))
        self._previous[key] = (now, current)
        minutes = max(now - at, 1e-9) / 60
        return {k: (v - previous.get(k, 0.0)) / minutes for k, v in sorted(current.items())}

    def total(self, name: str, where: Mapping[str, str] | None = None) -> float:
        """:meth:`per_minute` summed over labels."""
        return sum(self.per_minute(name, where=where).values())


def count(value: float) -> str:
    """``1,234``: counts and rates without decimals."""
    return f"{value:,.0f}"


def _tf_seconds(tf: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return int(tf[:-1]) * units[tf[-1]]
    except (KeyError, ValueError, IndexError):
        return float("inf")


def by_timeframe(values: Mapping[str, float]) -> dict[str, float]:
    """``values`` keyed by timeframe (``1s``, ``1m`` …), shortest first."""
    return {tf: values[tf] for tf in sorted(values, key=lambda tf: (_tf_seconds(tf), tf))}


def breakdown(values: Mapping[str, float]) -> str:
    """`` (BTCUSDT 600, ETHUSDT 600)`` for more than one key, else nothing (also when all
    are 0)."""
    if len(values) < 2 or not any(values.values()):
        return ""
    return " (" + ", ".join(f"{k} {count(v)}" for k, v in values.items()) + ")"


def problems(rates: Rates, counters: Mapping[str, str]) -> str:
    """``; 3 dead letters/min, …`` for the counter samples (name → what) that grew."""
    grew = [(what, rates.total(name)) for name, what in counters.items()]
    shown = [f"{count(v) if v >= 1 else f'{v:.2g}'} {what}/min" for what, v in grew if v > 0]
    return "; " + ", ".join(shown) if shown else ""


@contextlib.asynccontextmanager
async def status_every(
    interval_s: float, line: Callable[[], str], clock: Clock, log: logging.Logger
) -> AsyncIterator[None]:
    """While the block runs, log ``status: <line()>`` at INFO every ``interval_s`` seconds
    (0 = never)."""

    async def report() -> None:
        while True:
            await clock.sleep(interval_s)
            try:
                log.info("status: %s", line())
            except Exception:  # a status line must never stop the service
                log.exception("status line failed")

    task = asyncio.create_task(report(), name="status") if interval_s > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
