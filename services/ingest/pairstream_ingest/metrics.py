"""Prometheus metrics of the ingest service (one registry per pipeline, so tests stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

from pairstream.clock import Clock
from pairstream.status import Rates, breakdown, count, problems, samples

CONNECTION_STATES = ["connecting", "subscribing", "streaming", "silent", "closed"]


class IngestMetrics:
    """Per instrument: trades, last-trade age, gaps, duplicates, dead letters; per connection:
    state."""

    def __init__(self, clock: Clock, registry: CollectorRegistry | None = None) -> None:
        self.clock = clock
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.trades = Counter(
            "ingest_trades", "Trades published to ticks.", ["instrument", "source"], registry=r
        )
        self.last_trade_ms = Gauge(
            "ingest_last_trade_timestamp_ms", "Event time of the last published trade.",
            ["instrument"], registry=r,
        )  # fmt: skip
        self.last_trade_age = Gauge(
            "ingest_last_trade_age_seconds", "Seconds since the last published trade's event time.",
            ["instrument"], registry=r,
        )  # fmt: skip
        self.gaps = Counter("ingest_gaps", "Trade-id gaps found.", ["instrument"], registry=r)
        self.gap_ids_filled = Counter(
            "ingest_gap_ids_filled",
            "Missing trade ids filled over REST.",
            ["instrument"],
            registry=r,
        )
        self.gap_ids_skipped = Counter(
            "ingest_gap_ids_skipped",
            "Missing trade ids given up (alarm).",
            ["instrument"],
            registry=r,
        )
        self.duplicates = Counter(
            "ingest_duplicates", "Duplicate trades dropped.", ["instrument"], registry=r
        )
        self.dead_letters = Counter(
            "ingest_dead_letters",
            "Frames sent to the dead-letter topic.",
            ["instrument"],
            registry=r,
        )
        self.reconnects = Counter(
            "ingest_reconnects", "WebSocket reconnects.", ["connection", "cause"], registry=r
        )
        self.silent_alarms = Counter(
            "ingest_silent_stream_alarms", "Subscribed streams that went silent.",
            ["connection"], registry=r,
        )  # fmt: skip
        self.state = Enum(
            "ingest_connection_state", "WebSocket connection state.", ["connection"],
            states=CONNECTION_STATES, registry=r,
        )  # fmt: skip
        self.rest_requests = Counter(
            "ingest_rest_requests", "Backfill REST requests.", ["endpoint", "status"], registry=r
        )
        self.rest_weight = Gauge(
            "ingest_rest_used_weight", "Binance's X-MBX-USED-WEIGHT-1M.", registry=r
        )
        self.latency = Histogram(
            "ingest_frame_to_ack_seconds", "Frame received to acknowledged by the broker.",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0),
            registry=r,
        )  # fmt: skip
        self._last_ts: dict[str, int] = {}

    def published(self, name: str, source: str, count: int, last_ts: int) -> None:
        """``count`` trades of instrument ``name`` acked by the broker, the last at ``last_ts``."""
        self.trades.labels(name, source).inc(count)
        self.last_trade_ms.labels(name).set(last_ts)
        if name not in self._last_ts:
            self.last_trade_age.labels(name).set_function(
                lambda: (self.clock.now_ms() - self._last_ts[name]) / 1000
            )
        self._last_ts[name] = max(last_ts, self._last_ts.get(name, last_ts))

    def status(self, rates: Rates) -> str:
        """The one-line summary ``pairstream up`` shows every status interval."""
        trades = rates.per_minute("ingest_trades_total", by="instrument")
        ages = samples(self.registry, "ingest_last_trade_age_seconds", by="instrument")
        stalest = max(ages, key=ages.__getitem__, default=None)
        lag = "no trade yet" if stalest is None else f"last trade {ages[stalest]:.1f} s ago"
        if len(ages) > 1:
            lag += f" ({stalest}, the stalest instrument)"
        issues = problems(
            rates,
            {
                "ingest_gaps_total": "gaps",
                "ingest_gap_ids_skipped_total": "ids given up",
                "ingest_dead_letters_total": "dead letters",
                "ingest_reconnects_total": "reconnects",
                "ingest_silent_stream_alarms_total": "silent streams",
            },
        )
        return (
            f"{count(sum(trades.values()))} trades/min{breakdown(trades)} into ticks; {lag}{issues}"
        )
