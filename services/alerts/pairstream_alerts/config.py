"""Settings of the alerts service (prefix ``ALERTS_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, HttpUrl, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pairstream.settings import ServiceSettings, comma_list


class Channel(BaseModel):
    """Where notifications of a channel go: an ``http(s)://`` URL is a webhook (JSON body,
    HMAC-SHA256 signature with ``secret``); any other URL is an apprise URL
    (``tgram://…``, ``slack://…``, ``mailto://…``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=3)
    secret: str = Field(default="", description="Webhook signing secret.")
    per_minute: int = Field(
        default=60, ge=1, description="At most this many messages a minute; the rest is sent "
        "as one digest when the limit allows."
    )  # fmt: skip

    @property
    def webhook(self) -> bool:
        return self.url.startswith(("http://", "https://"))

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if url.startswith(("http://", "https://")):
            HttpUrl(url)
        elif "://" not in url:
            raise ValueError(f"not a webhook or apprise URL: {url!r}")
        return url


class AlertsSettings(ServiceSettings):
    """Consumer group, notification channels and their delivery policy."""

    model_config = SettingsConfigDict(
        env_prefix="ALERTS_", frozen=True, extra="ignore", populate_by_name=True
    )

    metrics_port: int = Field(
        default=9104, ge=0, le=65535, description="Prometheus metrics port (0 = disabled)."
    )
    group_id: str = Field(
        default="pairstream-alerts",
        description="Consumer group of the alert workers; also names their state in the database.",
    )
    timeframes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Bar timeframes read for per-instrument rules; unset = every bars topic.",
    )
    default_rules: bool = Field(
        default=True,
        description="Install the default rule (|z| ≥ the analytics entry z on 1s bars, every "
        "pair, `log` channel) unless a rule with its id exists or existed.",
    )
    default_entry_z: float = Field(
        default=2.0,
        gt=0,
        validation_alias=AliasChoices(
            "ALERTS_DEFAULT_ENTRY_Z", "ANALYTICS_ENTRY_Z", "default_entry_z"
        ),
        description="|z| level of the default rule (`ANALYTICS_ENTRY_Z` when that is set).",
    )
    channels: dict[str, Channel] = Field(
        default_factory=dict,
        description='Notification channels by name, JSON: `{"ops": {"url": "https://…", '
        '"secret": "…"}, "chat": {"url": "tgram://TOKEN/CHAT"}}`; `log` is built in.',
    )
    notify_timeout_s: float = Field(default=10.0, gt=0, description="Per-request timeout.")
    notify_retry_for_s: float = Field(
        default=600.0,
        gt=0,
        description="Retry 5xx, 429 and timeouts for this long, then dead-letter with the reason.",
    )
    notify_backoff_base_s: float = Field(default=0.5, gt=0, description="First retry delay.")
    notify_backoff_cap_s: float = Field(default=60.0, gt=0, description="Largest retry delay.")
    notify_poll_s: float = Field(
        default=0.5, gt=0, description="How often the notifier looks for due notifications."
    )
    storm_cap: int = Field(
        default=20,
        ge=1,
        description="Storm cap: at most this many notifications of one rule per "
        "`ALERTS_STORM_BARS` bars; the rest is recorded but held.",
    )
    storm_bars: int = Field(default=60, ge=1, description="Window of the storm cap, in bars.")
    clock_interval_s: float = Field(
        default=1.0, gt=0, description="How often wall-clock (`stale`) rules are checked."
    )
    retry_base_s: float = Field(default=0.2, gt=0, description="Database retry: first delay.")
    retry_cap_s: float = Field(default=5.0, gt=0, description="Database retry: largest delay.")
    fetch_max_wait_ms: int = Field(
        default=10,
        ge=0,
        le=60_000,
        description="The alert worker's fetch long-poll (`KAFKA_FETCH_MAX_WAIT_MS` for this "
        "service). Tansu does not answer a waiting fetch when records arrive, so this bounds "
        "the delay of an alert; Apache Kafka answers at once, so raise it there (500).",
    )
    session_timeout_s: float = Field(
        default=10.0, gt=0, description="Consumer group session timeout."
    )
    heartbeat_interval_s: float = Field(
        default=1.0, gt=0, description="Consumer group heartbeat interval."
    )

    _split_timeframes = field_validator("timeframes", mode="before")(comma_list)
