"""Prometheus metrics of the alerts service (one registry per worker, so tests stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pairstream.status import Rates, count, problems


class AlertsMetrics:
    """Evaluations, transitions by rule/severity/state, notifications, retries, dead letters."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "alerts_consumed", "Messages read per input topic.", ["topic"], registry=r
        )
        self.evaluations = Counter(
            "alerts_evaluations", "Rule evaluations (rows × rules, nulls excluded).", registry=r
        )
        self.transitions = Counter(
            "alerts_transitions",
            "Alert transitions published.",
            ["rule", "severity", "state"],
            registry=r,
        )
        self.rules = Gauge("alerts_rules", "Enabled rules.", registry=r)
        self.consumer_lag = Gauge(
            "alerts_consumer_lag",
            "Records not yet read, per input topic (last known high watermark − position).",
            ["topic"],
            registry=r,
        )
        self.firing = Gauge("alerts_firing", "Episodes firing now.", registry=r)
        self.notifications = Counter(
            "alerts_notifications",
            "Notification outcomes per channel.",
            ["channel", "outcome"],
            registry=r,
        )
        self.notify_seconds = Histogram(
            "alerts_notify_latency_seconds",
            "From the transition being stored to its notification being accepted.",
            ["channel"],
            registry=r,
        )
        self.dead_letters = Counter(
            "alerts_dead_letters", "Undecodable input dead-lettered.", ["topic"], registry=r
        )
        self.db_failures = Counter(
            "alerts_db_failures", "Database operations that failed (retried).", registry=r
        )
        self.store_seconds = Histogram(
            "alerts_store_seconds",
            "Time of one store: the batches queued meanwhile, in one transaction.",
            registry=r,
        )

    def status(self, rates: Rates) -> str:
        """The one-line summary ``pairstream up`` shows every status interval."""
        evaluations = rates.total("alerts_evaluations_total")
        raised = rates.total("alerts_transitions_total", where={"state": "firing"})
        sent = rates.total("alerts_notifications_total", where={"outcome": "sent"})
        issues = problems(
            rates,
            {
                "alerts_dead_letters_total": "dead letters",
                "alerts_db_failures_total": "database failures",
            },
        )
        dead = rates.total("alerts_notifications_total", where={"outcome": "dead"})
        if dead:
            issues += f"; {count(dead)} notifications dead-lettered/min"
        return (
            f"{count(evaluations)} evaluations/min, {count(raised)} alerts/min, "
            f"{count(sent)} notifications/min" + issues
        )
