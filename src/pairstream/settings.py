"""Configuration for every pairstream process, read from environment variables.

Each group of settings is a frozen pydantic-settings class with its own
environment prefix. The three connection URLs keep their conventional names
(``KAFKA_BOOTSTRAP``, ``DATABASE_URL``, ``REDIS_URL``); when one is not set, the
address of the embedded infrastructure started by ``pairstream infra up`` is
used (see :mod:`pairstream.infra`). Services add their own groups with their
own prefix (``INGEST_``, ``RESAMPLER_`` …) by subclassing :class:`ServiceSettings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from pairstream.instruments import Market

_TF_RE = re.compile(r"[1-9][0-9]*[smh]")


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        frozen=True,
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )


def default_state_dir() -> Path:
    """Where embedded infrastructure keeps data, logs and pid files."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pairstream"


def comma_list(value: object) -> object:
    """``"a, b,,c"`` → ``("a", "b", "c")`` for list settings given as one string; other
    values unchanged (a ``mode="before"`` validator)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class KafkaSettings(BaseSettings):
    """Kafka client settings (prefix ``KAFKA_``)."""

    model_config = _config("KAFKA_")

    bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers `host:port[,host:port]`; unset = the embedded broker "
        "started by `pairstream infra up`.",
    )
    idempotence: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Idempotent producer: `on` (Apache Kafka), `off`, or `auto` (try it, fall back "
        "to plain `acks=all` when the broker rejects InitProducerId, as Tansu does).",
    )
    client_id: str = Field(default="pairstream", description="Client id sent to the broker.")
    linger_ms: int = Field(
        default=2, ge=0, description="Producer linger: how long a batch may wait for more records."
    )
    request_timeout_ms: int = Field(
        default=30_000, gt=0, description="Producer and admin request timeout."
    )
    max_batch_size: int = Field(default=1_048_576, gt=0, description="Producer batch size (bytes).")
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = Field(
        default="none", description="Producer compression codec."
    )
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=0,
        le=60_000,
        description="Consumer fetch long-poll: how long the broker may hold a fetch. Tansu does "
        "not answer a waiting fetch when records arrive, so this bounds live latency (at "
        "Faust's fixed 1,500 ms the median delay was 358 ms; at 100 ms, 27 ms).",
    )


class TopicSettings(BaseSettings):
    """Topic names and partition counts (prefix ``TOPIC_``). Topics are a public API."""

    model_config = _config("TOPIC_")

    ticks: str = Field(default="ticks", description="Runs of trades, key = symbol.")
    bars_template: str = Field(
        default="bars.{tf}", description="Bar topic per timeframe; `{tf}` is replaced (`bars.1m`)."
    )
    spread: str = Field(
        default="analytics.spread", description="Hedge ratio and spread, key = pair."
    )
    zscore: str = Field(default="analytics.zscore", description="Rolling z-score, key = pair.")
    stats: str = Field(
        default="analytics.stats", description="Correlation, ADF, half-life, key = pair."
    )
    analytics_bars: str = Field(
        default="analytics.bars",
        description="Final bars routed to the pairs they are a leg of, key = pair (internal).",
    )
    scan: str = Field(
        default="analytics.scan", description="Correlation/cointegration scan, key = tf."
    )
    alerts: str = Field(default="alerts", description="Raised alerts, key = pair or symbol.")
    dead_letter: str = Field(
        default="dead-letter", description="Unparseable or too-late input, with the reason."
    )
    ticks_partitions: int = Field(default=6, ge=1, description="Partitions of the ticks topic.")
    bars_partitions: int = Field(default=6, ge=1, description="Partitions of each bars topic.")
    analytics_partitions: int = Field(
        default=6, ge=1, description="Partitions of each analytics topic."
    )
    alerts_partitions: int = Field(default=3, ge=1, description="Partitions of the alerts topic.")
    dead_letter_partitions: int = Field(
        default=3, ge=1, description="Partitions of the dead-letter topic."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replication factor for topics pairstream creates."
    )
    timeframes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("1s", "1m", "5m"),
        description="Bar timeframes whose topics are created, comma-separated (`1s,1m,5m`).",
    )

    @field_validator("timeframes", mode="before")
    @classmethod
    def _split_timeframes(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("timeframes")
    @classmethod
    def _valid_timeframes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tf in value:
            if not _TF_RE.fullmatch(tf):
                raise ValueError(
                    f"timeframe {tf!r} is not a whole number of s, m or h (`1s`, `5m`)"
                )
        return value

    @field_validator("bars_template")
    @classmethod
    def _has_tf(cls, value: str) -> str:
        if "{tf}" not in value:
            raise ValueError("must contain `{tf}`")
        return value

    def bars(self, tf: str) -> str:
        """Name of the bars topic for timeframe ``tf``."""
        return self.bars_template.format(tf=tf)


class DatabaseSettings(BaseSettings):
    """PostgreSQL/TimescaleDB settings (prefix ``DB_``, URL in ``DATABASE_URL``)."""

    model_config = _config("DB_")

    url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL; unset = the embedded server started by `pairstream infra up`.",
    )
    schema_name: str = Field(
        default="public",
        validation_alias="DB_SCHEMA",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="Schema holding pairstream's tables (tests use one per test).",
    )
    timescale: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Use TimescaleDB hypertables, compression and retention: `auto` when the "
        "extension is available, `on` (fail without it) or `off` (plain PostgreSQL).",
    )
    pool_min: int = Field(default=1, ge=0, description="Connection pool minimum size.")
    pool_max: int = Field(default=10, ge=1, description="Connection pool maximum size.")
    store_ticks: bool = Field(default=False, description="Keep raw ticks in the `ticks` table.")
    ticks_retention_days: int = Field(
        default=7, ge=0, description="Drop raw ticks older than this (0 = keep forever)."
    )
    bars_retention_days: int = Field(
        default=0, ge=0, description="Drop bars older than this (0 = keep forever)."
    )
    compress_after_days: int = Field(
        default=2, ge=1, description="TimescaleDB only: compress chunks older than this."
    )


class RedisSettings(BaseSettings):
    """Redis settings (URL in ``REDIS_URL``)."""

    model_config = _config("REDIS_")

    url: str | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="Redis URL; unset = the embedded server started by `pairstream infra up`.",
    )


class InfraSettings(BaseSettings):
    """Embedded infrastructure for laptops and tests (prefix ``INFRA_``)."""

    model_config = _config("INFRA_")

    state_dir: Path = Field(
        default_factory=default_state_dir,
        validation_alias="PAIRSTREAM_STATE_DIR",
        description="Data, logs and pid files of the embedded infrastructure "
        "(default `$XDG_STATE_HOME/pairstream` or `~/.local/state/pairstream`).",
    )
    host: str = Field(default="127.0.0.1", description="Address the embedded servers listen on.")
    kafka_port: int = Field(default=0, ge=0, le=65535, description="Broker port (0 = a free one).")
    postgres_port: int = Field(
        default=0, ge=0, le=65535, description="PostgreSQL port (0 = a free one)."
    )
    redis_port: int = Field(default=0, ge=0, le=65535, description="Redis port (0 = a free one).")
    start_timeout_s: float = Field(
        default=30.0, gt=0, description="How long `infra up` waits for each part to answer."
    )


class LogSettings(BaseSettings):
    """Logging (prefix ``LOG_``)."""

    model_config = _config("LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Log level."
    )
    format: Literal["console", "json"] = Field(
        default="console", description="`console` for people, `json` for log shippers."
    )
    library_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = Field(
        default=None,
        description="Level of the libraries' loggers (aiokafka, faust, mode, asyncio); unset = "
        "DEBUG with `LOG_LEVEL=DEBUG`, else WARNING (`pairstream up --verbose`: INFO).",
    )


class MarketSettings(BaseSettings):
    """How bare symbols are read (prefix ``MARKET_``)."""

    model_config = _config("MARKET_")

    default: Market = Field(
        default="usdm",
        description="Market of a bare symbol (`BTCUSDT` = `usdm:BTCUSDT`) in settings, flags and "
        "pair names; instruments are written `usdm:BTCUSDT` / `spot:BTCUSDT`.",
    )


def default_market() -> Market:
    """The market a bare symbol means (``MARKET_DEFAULT``)."""
    return MarketSettings().default


class ServiceSettings(BaseSettings):
    """Base for per-service settings; a service sets its own ``env_prefix``."""

    model_config = _config("SERVICE_")

    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Prometheus metrics port (0 = disabled)."
    )
    status_interval_s: float = Field(
        default=60.0,
        ge=0,
        description="Seconds between one-line status summaries (throughput, lag) logged at "
        "INFO (0 = none).",
    )


#: Every settings group, in the order the README documents them.
SETTINGS_GROUPS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    TopicSettings,
    DatabaseSettings,
    RedisSettings,
    InfraSettings,
    LogSettings,
    MarketSettings,
)


def env_name(group: type[BaseSettings], field_name: str) -> str:
    """The environment variable that sets ``field_name`` of ``group``."""
    info = group.model_fields[field_name]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias.upper()
    prefix = str(group.model_config.get("env_prefix", ""))
    return f"{prefix}{field_name}".upper()


def settings_table(groups: Sequence[type[BaseSettings]] = SETTINGS_GROUPS) -> str:
    """The Markdown table of every setting of ``groups``, generated from the classes."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for group in groups:
        for name, info in group.model_fields.items():
            if info.default_factory is not None:
                default = "(computed)"
            elif info.default is None:
                default = "(unset)"
            elif isinstance(info.default, tuple):
                default = ",".join(str(v) for v in info.default)
            else:
                default = str(info.default)
            description = (info.description or "").replace("|", "\\|")
            rows.append(f"| `{env_name(group, name)}` | `{default}` | {description} |")
    return "\n".join(rows) + "\n"
