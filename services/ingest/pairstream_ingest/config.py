"""Settings of the ingest service (prefix ``INGEST_``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pairstream.instruments import MARKETS, Market, parse_instrument, split_instrument
from pairstream.settings import ServiceSettings, comma_list, default_market

#: Today's routed defaults (USD-M moved trade streams to ``/market`` on 2026-04-23).
DEFAULT_WS_URL = {
    "usdm": "wss://fstream.binance.com/market/stream",
    "spot": "wss://stream.binance.com:9443/stream",
}
DEFAULT_REST_URL = {"usdm": "https://fapi.binance.com", "spot": "https://api.binance.com"}
#: Incoming control messages per second and connection that Binance allows.
CONTROL_LIMIT = {"usdm": 10.0, "spot": 5.0}


class IngestSettings(ServiceSettings):
    """Where trades come from and how they are published."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_", frozen=True, extra="ignore", populate_by_name=True
    )

    metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="Prometheus metrics port (0 = disabled)."
    )
    source: Literal["binance", "replay", "synthetic"] = Field(
        default="synthetic", description="Trade source; `synthetic` works offline."
    )
    market: Market = Field(
        default_factory=default_market,
        description="Market of the bare symbols in `INGEST_SYMBOLS`; unset = `MARKET_DEFAULT`.",
    )
    stream: Literal["trade", "aggTrade"] = Field(
        default="trade", description="Binance stream: every trade, or aggregate trades."
    )
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("BTCUSDT", "ETHUSDT"),
        description="Instruments, comma-separated: `usdm:BTCUSDT,spot:BTCUSDT` (one process may "
        "take both markets); a bare symbol is of `INGEST_MARKET`.",
    )
    ws_url: str | None = Field(
        default=None,
        description="WebSocket URL (combined-stream route), or one per market "
        "(`usdm=wss://…,spot=wss://…`); unset = today's route for the market: "
        "usdm `wss://fstream.binance.com/market/stream`, spot `wss://stream.binance.com:9443/stream`.",
    )
    rest_url: str | None = Field(
        default=None,
        description="REST base URL for gap backfill, or one per market (`usdm=…,spot=…`); unset = "
        "`https://fapi.binance.com` (usdm) or `https://api.binance.com` (spot).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Binance API key (read-only is enough): gaps are filled with exact trades "
        "from `historicalTrades`; without it, with aggregate trades.",
    )
    max_streams_per_connection: int = Field(
        default=200, ge=1, le=1024, description="Streams per WebSocket connection."
    )
    streams_per_subscribe: int = Field(
        default=50, ge=1, description="Streams named in one SUBSCRIBE message."
    )
    control_rate: float | None = Field(
        default=None,
        gt=0,
        description="Control messages per second and connection; unset = 80% of Binance's limit "
        "(usdm 10/s, spot 5/s).",
    )
    ping_interval_s: float = Field(
        default=20.0, gt=0, description="Client keepalive ping interval (a stalled socket fails)."
    )
    ping_timeout_s: float = Field(default=20.0, gt=0, description="Keepalive pong timeout.")
    open_timeout_s: float = Field(default=10.0, gt=0, description="Connect + handshake timeout.")
    subscribe_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a SUBSCRIBE answer may take."
    )
    connection_lifetime_s: float = Field(
        default=23.5 * 3600,
        gt=0,
        description="Reconnect proactively after this long (Binance closes at 24 h).",
    )
    rotation_overlap_s: float = Field(
        default=30.0, ge=0, description="Old and new connection both stream this long on rotation."
    )
    silent_after_s: float = Field(
        default=60.0,
        gt=0,
        description="Subscribed but no trade for this long: alarm and reconnect.",
    )
    reconnect_base_s: float = Field(
        default=0.5, gt=0, description="Reconnect backoff: first delay bound."
    )
    reconnect_cap_s: float = Field(
        default=30.0, gt=0, description="Reconnect backoff: largest delay (retries never stop)."
    )
    stable_after_s: float = Field(
        default=30.0, gt=0, description="A connection that lived this long resets the backoff."
    )
    gap_grace_s: float = Field(
        default=0.5,
        ge=0,
        description="Wait this long for late frames before filling a trade-id gap over REST.",
    )
    gap_retry_s: float = Field(
        default=2.0, gt=0, description="Retry a gap REST could not fill yet after this long."
    )
    gap_give_up_s: float = Field(
        default=600.0, gt=0, description="Give up an unfillable gap after this long (alarmed)."
    )
    rest_weight_per_minute: int = Field(
        default=1_200,
        gt=0,
        description="REST request weight budget per minute (Binance: usdm 2400, spot 6000).",
    )
    resume_scan_max_records: int = Field(
        default=100_000,
        ge=0,
        description="On start, read at most this many records of each `ticks` partition "
        "backwards for each instrument's last published trade: live ingest backfills from it, "
        "the synthetic source continues its ids; an instrument not found within them starts "
        "afresh (0 = no resume).",
    )
    max_run_trades: int = Field(
        default=2_000, ge=1, description="Most trades in one `ticks` message (runs are split)."
    )
    max_waiting: int = Field(
        default=10_000,
        ge=1,
        description="Trades held behind a trade-id gap before the gap is given up (replay).",
    )
    replay_paths: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Files for `--source replay`, comma-separated."
    )
    replay_speed: float | None = Field(
        default=None, gt=0, description="Replay speed (event time × speed); unset = max."
    )
    synthetic_seed: int = Field(default=7, description="Seed of the synthetic source.")
    synthetic_speed: float | None = Field(
        default=1.0,
        gt=0,
        description="Synthetic time × speed (1 = real time); unset = as fast as possible.",
    )

    @field_validator("symbols", "replay_paths", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        return comma_list(value)

    @model_validator(mode="after")
    def _valid_instruments_and_urls(self) -> IngestSettings:
        if not self.instruments:
            raise ValueError("symbols: give at least one instrument")
        for market in self.markets:
            for value in (self.ws_url, self.rest_url):
                _url_for(value, market)  # raises with the reason
        return self

    @property
    def instruments(self) -> tuple[str, ...]:
        """The instruments (``usdm:BTCUSDT``) of ``symbols``, in order, without repeats."""
        return tuple(dict.fromkeys(parse_instrument(s, self.market) for s in self.symbols))

    @property
    def markets(self) -> tuple[Market, ...]:
        """The markets of the instruments, in the order they first appear."""
        return tuple(dict.fromkeys(split_instrument(name)[0] for name in self.instruments))

    def for_market(self, market: Market) -> IngestSettings:
        """These settings for one market: its bare symbols and its URLs."""
        symbols = tuple(s for m, s in map(split_instrument, self.instruments) if m == market)
        return self.model_copy(
            update={
                "market": market,
                "symbols": symbols,
                "ws_url": _url_for(self.ws_url, market),
                "rest_url": _url_for(self.rest_url, market),
            }
        )

    @field_validator("replay_paths", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(s.strip() for s in value.split(",") if s.strip())
        return value

    @property
    def ws_base(self) -> str:
        """The WebSocket URL in use."""
        return self.ws_url or DEFAULT_WS_URL[self.market]

    @property
    def rest_base(self) -> str:
        """The REST base URL in use."""
        return (self.rest_url or DEFAULT_REST_URL[self.market]).rstrip("/")

    @property
    def control_per_s(self) -> float:
        """Control messages per second actually sent."""
        return self.control_rate or 0.8 * CONTROL_LIMIT[self.market]


def _url_for(value: str | None, market: Market) -> str | None:
    """The URL of ``market`` in ``URL`` (every market) or ``usdm=URL,spot=URL`` (None: default)."""
    if value is None or "=" not in value.split("://", 1)[0]:
        return value
    urls: dict[str, str] = {}
    for part in value.split(","):
        name, sep, url = part.strip().partition("=")
        if not sep or name not in MARKETS or not url:
            raise ValueError(f"{value!r}: expected `URL` or `usdm=URL,spot=URL`")
        urls[name] = url
    return urls.get(market)
