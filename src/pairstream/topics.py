"""The topic registry: which message, key and partition count belongs to which topic."""

from __future__ import annotations

from dataclasses import dataclass

from pairstream.messages import (
    Alert,
    Bar,
    DeadLetter,
    Message,
    PairBar,
    ScanUpdate,
    SpreadUpdate,
    StatsUpdate,
    TickRun,
    ZScoreUpdate,
)
from pairstream.settings import TopicSettings

#: Version of the topic contract (message schemas and keys), written by ``pairstream schemas``.
#: 2: instruments ``market:SYMBOL`` as keys and pair legs; ``ScanUpdate.instruments``;
#: ``Bar.market`` required. 3: ``Alert`` is one transition of an episode (``event_id``,
#: ``state``, ``rule_version``, ``tf``, ``method``, ``started_ts``, ``labels``; ``ts_event`` =
#: bar ts; ``value`` and ``threshold`` nullable).
CONTRACT_VERSION = 3


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic of the public contract."""

    name: str
    message: type[Message]
    key: str
    partitions: int
    description: str
    timeframe: str | None = None


def topic_specs(settings: TopicSettings | None = None) -> list[TopicSpec]:
    """Every topic pairstream produces, with names and partition counts from ``settings``."""
    s = settings or TopicSettings()
    specs = [
        TopicSpec(
            s.ticks,
            TickRun,
            "instrument (market:symbol)",
            s.ticks_partitions,
            "Runs of consecutive trades of one instrument, in trade-id order.",
        )
    ]
    specs += [
        TopicSpec(
            s.bars(tf),
            Bar,
            "instrument (market:symbol)",
            s.bars_partitions,
            f"{tf} OHLCV bars by event time; the latest revision per (instrument, start) wins.",
            timeframe=tf,
        )
        for tf in s.timeframes
    ]
    specs += [
        TopicSpec(
            s.spread,
            SpreadUpdate,
            "pair",
            s.analytics_partitions,
            "Hedge ratio, intercept and spread per pair and bar.",
        ),
        TopicSpec(
            s.zscore,
            ZScoreUpdate,
            "pair",
            s.analytics_partitions,
            "Rolling mean, standard deviation and z-score of the spread.",
        ),
        TopicSpec(
            s.stats,
            StatsUpdate,
            "pair",
            s.analytics_partitions,
            "Correlation, ADF and half-life of mean reversion.",
        ),
        TopicSpec(
            s.analytics_bars,
            PairBar,
            "pair",
            s.analytics_partitions,
            "Internal: final bars routed by pair to the analytics workers.",
        ),
        TopicSpec(
            s.scan,
            ScanUpdate,
            "tf",
            1,
            "Correlation and cointegration matrix across all configured instruments.",
        ),
        TopicSpec(
            s.alerts,
            Alert,
            "subject",
            s.alerts_partitions,
            "Alerts raised by rules, keyed by the pair or instrument they concern.",
        ),
        TopicSpec(
            s.dead_letter,
            DeadLetter,
            "original key or source",
            s.dead_letter_partitions,
            "Input that could not be used, with the reason and the raw bytes.",
        ),
    ]
    return specs


def topic_spec(name: str, settings: TopicSettings | None = None) -> TopicSpec:
    """The spec of the topic called ``name``."""
    for spec in topic_specs(settings):
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}")
