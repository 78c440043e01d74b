"""Prometheus metrics of the analytics worker (one registry per worker, so tests stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pairstream.clock import Clock
from pairstream.status import Rates, breakdown, by_timeframe, count, problems, samples


class AnalyticsMetrics:
    """Bars routed, outputs, duplicates, revisions, rebuilds, store and scan latency."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.bar_lag = Gauge(
            "analytics_bar_lag_seconds",
            "Wall clock minus the end of the newest bar analysed, per timeframe.",
            ["tf"], registry=r,
        )  # fmt: skip
        self._newest_end: dict[str, int] = {}
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

    def analysed(self, tf: str, end_ms: int, clock: Clock) -> None:
        """A bar of ``tf`` ending at ``end_ms`` went through a pair's analytics."""
        if tf not in self._newest_end:
            self.bar_lag.labels(tf).set_function(
                lambda: (clock.now_ms() - self._newest_end[tf]) / 1000
            )
        self._newest_end[tf] = max(end_ms, self._newest_end.get(tf, end_ms))

    def status(self, rates: Rates) -> str:
        """The one-line summary ``pairstream up`` shows every status interval."""
        routed = rates.total("analytics_routed_bars_total")
        outputs = {
            topic.removeprefix("analytics."): n
            for topic, n in rates.per_minute("analytics_outputs_total", by="topic").items()
        }
        lags = by_timeframe(samples(self.registry, "analytics_bar_lag_seconds", by="tf"))
        lag = ", ".join(f"{tf} {v:.1f} s" for tf, v in lags.items())
        issues = problems(
            rates,
            {
                "analytics_dead_letters_total": "dead letters",
                "analytics_incomplete_rebuilds_total": "incomplete rebuilds",
                "analytics_db_failures_total": "database failures",
            },
        )
        return (
            f"{count(routed)} bars/min routed → {count(sum(outputs.values()))} outputs/min"
            f"{breakdown(outputs)}; "
            + (f"newest bar analysed ended {lag} ago" if lag else "no bar analysed yet")
            + issues
        )
