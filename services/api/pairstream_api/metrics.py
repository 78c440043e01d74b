"""Prometheus metrics of one API process (served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApiMetrics:
    """Request latency per route and status, rate-limited requests, the hot cache, the
    WebSocket clients and what they were sent or lost."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "api_request_seconds",
            "Request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.limited = Counter(
            "api_rate_limited", "Requests answered 429 (rate limit).", registry=r
        )
        self.cache = Counter(
            "api_cache_reads",
            "Hot-cache reads by kind and result (hit: from Redis, local: from this process's "
            "mirror of Redis, miss: read from PostgreSQL and seeded, bypass: cache not trusted "
            "or Redis down).",
            ["kind", "result"],
            registry=r,
        )
        self.ws_clients = Gauge("api_ws_clients", "Open WebSocket connections.", registry=r)
        self.ws_sent = Counter("api_ws_messages_sent", "WebSocket messages sent.", registry=r)
        self.ws_dropped = Counter(
            "api_ws_messages_dropped",
            "Live messages dropped from the queues of clients that did not keep up.",
            registry=r,
        )
        self.ws_disconnected = Counter(
            "api_ws_disconnected", "WebSocket clients disconnected by the server, by reason.",
            ["reason"], registry=r,
        )  # fmt: skip
        self.live_records = Counter(
            "api_live_records", "Records the live consumer read, by topic.", ["topic"],
            registry=r,
        )  # fmt: skip
        self.live_invalid = Counter(
            "api_live_invalid", "Records the live consumer could not decode (skipped).",
            ["topic"], registry=r,
        )  # fmt: skip


def cache_hits(metrics: ApiMetrics, kind: str = "analytics") -> float:
    """Reads of ``kind`` the hot cache answered (from Redis or this process's mirror)."""
    return float(
        sum(metrics.cache.labels(kind, result)._value.get() for result in ("hit", "local"))
    )
