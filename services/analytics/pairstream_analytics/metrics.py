"""Prometheus metrics of the analytics worker (one registry per worker, so tests stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class AnalyticsMetrics:
    """Bars routed, outputs, duplicates, revisions, rebuilds, store and scan latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.routed = Counter(
            "analytics_routed_bars", "Final bars forwarded to a pair.", ["tf"], registry=r
        )
        self.outputs = Counter(
            "analytics_outputs", "Messages published per analytics topic.", ["topic"], registry=r
        )
        self.duplicates = Counter(
            "analytics_duplicate_bars", "Bars at or before a pair's frontier, dropped.", registry=r
        )
        self.revisions = Counter(
            "analytics_revised_bars", "Bars revising a joined bar (pair rebuilt).", registry=r
        )
        self.rebuilds = Counter(
            "analytics_rebuilds", "Pair states rebuilt from stored bars.", registry=r
        )
        self.incomplete_rebuilds = Counter(
            "analytics_incomplete_rebuilds",
            "Rebuilds that found fewer stored bars than the checkpoint joined.",
            registry=r,
        )
        self.dead_letters = Counter(
            "analytics_dead_letters", "Undecodable input dead-lettered.", ["topic"], registry=r
        )
        self.db_failures = Counter(
            "analytics_db_failures", "Database operations that failed (retried).", registry=r
        )
        self.store_seconds = Histogram(
            "analytics_store_seconds", "Time to store one batch of outputs.", registry=r
        )
        self.scans = Counter("analytics_scans", "Pair scans published.", registry=r)
        self.scan_seconds = Histogram(
            "analytics_scan_seconds", "Time to compute one pair scan.", registry=r
        )
