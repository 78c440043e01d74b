"""Prometheus metrics of the resampler (one registry per worker, so tests stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pairstream.status import (
    Rates,
    breakdown,
    by_timeframe,
    count,
    largest,
    problems,
    samples,
)

_DELAY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ResamplerMetrics:
    """Ticks in, bars out, watermark lag, late/dead-lettered, sink latency, consumer lag."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.ticks = Counter(
            "resampler_ticks", "Trades folded into bars.", ["instrument"], registry=r
        )
        self.duplicates = Counter(
            "resampler_duplicates", "Trades dropped as already seen (by trade id).",
            ["instrument"], registry=r,
        )  # fmt: skip
        self.late = Counter(
            "resampler_late_trades", "Trades later than the allowed lateness (dead-lettered).",
            ["instrument"], registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "resampler_dead_letters", "Messages sent to the dead-letter topic.", ["reason"],
            registry=r,
        )  # fmt: skip
        self.bars = Counter(
            "resampler_bars", "Bars published (every revision).", ["tf", "final"], registry=r
        )
        self.watermark_lag = Gauge(
            "resampler_watermark_lag_seconds", "Wall clock minus the instrument's watermark.",
            ["instrument"], registry=r,
        )  # fmt: skip
        self.final_delay = Histogram(
            "resampler_final_bar_delay_seconds",
            "From the watermark passing a bar's end to its final bar acked by the broker.",
            buckets=_DELAY_BUCKETS, registry=r,
        )  # fmt: skip
        self.sink_batch = Histogram(
            "resampler_sink_batch_seconds", "One checkpoint: bars and state stored together.",
            buckets=_DELAY_BUCKETS, registry=r,
        )  # fmt: skip
        self.sink_rows = Counter("resampler_stored_bars", "Bar rows upserted.", registry=r)
        self.sink_failures = Counter(
            "resampler_sink_failures", "Failed checkpoint writes (retried).", registry=r
        )
        self.buffered = Gauge(
            "resampler_buffered_bars", "Bars waiting for the database.", registry=r
        )
        self.consumer_lag = Gauge(
            "resampler_consumer_lag", "Messages of ticks not yet read, per partition.",
            ["partition"], registry=r,
        )  # fmt: skip

    def status(self, rates: Rates) -> str:
        """The one-line summary ``pairstream up`` shows every status interval."""
        ticks = rates.total("resampler_ticks_total")
        finals = by_timeframe(
            rates.per_minute("resampler_bars_total", by="tf", where={"final": "true"})
        )
        behind = sum(samples(self.registry, "resampler_consumer_lag").values())
        watermark = largest(self.registry, "resampler_watermark_lag_seconds")
        lag = f"consumer lag {count(behind)} messages"
        if watermark is not None:
            lag += f", watermark up to {watermark:.1f} s behind"
        issues = problems(
            rates,
            {
                "resampler_late_trades_total": "late trades",
                "resampler_dead_letters_total": "dead letters",
                "resampler_sink_failures_total": "failed stores",
            },
        )
        buffered = largest(self.registry, "resampler_buffered_bars") or 0
        waiting = f"; {count(buffered)} bars waiting for the database" if buffered else ""
        return (
            f"{count(ticks)} ticks/min → {count(sum(finals.values()))} final bars/min"
            f"{breakdown(finals)}; {lag}{issues}{waiting}"
        )
