"""Settings of the analytics workers (prefix ``ANALYTICS_``)."""

from __future__ import annotations

import itertools
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pairstream.analytics.pair import METHODS, Method, PairConfig
from pairstream.instruments import pair_legs, pair_name, parse_instrument, parse_pair
from pairstream.settings import ServiceSettings, comma_list, default_market


class AnalyticsSettings(ServiceSettings):
    """Which pairs, timeframes and methods; windows and thresholds of the core; the scan."""

    model_config = SettingsConfigDict(
        env_prefix="ANALYTICS_", frozen=True, extra="ignore", populate_by_name=True
    )

    metrics_port: int = Field(
        default=9103, ge=0, le=65535, description="Prometheus metrics port (0 = disabled)."
    )
    group_id: str = Field(
        default="pairstream-analytics",
        description="Consumer group of the pair workers (`<group>-router` routes bars); also "
        "names the checkpoints in the database.",
    )
    pairs: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Pairs `Y-X` of instruments, comma-separated (`usdm:BTCUSDT-usdm:ETHUSDT`, "
        "`spot:BTCUSDT-usdm:BTCUSDT`; a bare symbol is `MARKET_DEFAULT`); unset = every pair of "
        "`ANALYTICS_SYMBOLS`.",
    )
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("BTCUSDT", "ETHUSDT"),  # of MARKET_DEFAULT, like ingest's
        validate_default=True,
        description="Instruments whose every pair is analysed when `ANALYTICS_PAIRS` is unset; "
        "also the instruments of the pair scan (with the pairs' legs).",
    )
    timeframes: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Bar timeframes analysed; unset = every bars topic."
    )
    methods: Annotated[tuple[Method, ...], NoDecode] = Field(
        default=METHODS, description="Hedge methods, comma-separated: `ols,huber,kalman`."
    )
    price_transform: Literal["price", "log"] = Field(
        default="price", description="Regress prices or log prices."
    )
    intercept: bool = Field(default=True, description="OLS/Huber with an intercept α.")
    hedge_window: int = Field(default=300, ge=3, description="OLS/Huber window (bars).")
    zscore_window: int = Field(default=60, ge=3, description="z-score window (spreads).")
    flow_window: int = Field(
        default=60, ge=3, description="Correlation, volatility, VWAP, buy-share window (bars)."
    )
    stats_window: int = Field(
        default=300, ge=3, description="ADF, cointegration, half-life, HAC window (bars)."
    )
    tests_every: int = Field(
        default=10, ge=1, description="ADF/cointegration/HAC on bars whose ts/tf is a multiple."
    )
    adf_lag: int = Field(default=1, ge=0, description="Fixed ADF lag (no autolag).")
    entry_z: float = Field(default=2.0, gt=0, description="Signal entry threshold |z|.")
    exit_z: float = Field(default=0.5, ge=0, description="Signal exit threshold |z|.")
    kalman_delta: float = Field(
        default=1e-7, gt=0, lt=1, description="Kalman state noise: q = delta/(1-delta) per bar."
    )
    kalman_obs_var: float = Field(default=1.0, gt=0, description="Kalman observation variance.")
    kalman_initial_var: float = Field(
        default=1e6, gt=0, description="Kalman initial state variance."
    )
    scan_interval_s: float = Field(
        default=60.0, ge=0, description="Seconds between pair scans (0 = no scan)."
    )
    scan_tf: str = Field(default="1m", description="Timeframe of the pair scan.")
    scan_window: int = Field(default=1_000, ge=3, description="Bars per symbol in the scan.")
    rebuild_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="After a restart, how long to wait for stored bars still in flight before "
        "rebuilding from what is there.",
    )
    retry_base_s: float = Field(default=0.2, gt=0, description="Database retry: first delay.")
    retry_cap_s: float = Field(default=5.0, gt=0, description="Database retry: largest delay.")
    session_timeout_s: float = Field(
        default=10.0, gt=0, description="Consumer group session timeout."
    )
    heartbeat_interval_s: float = Field(
        default=1.0, gt=0, description="Consumer group heartbeat interval."
    )

    @field_validator("pairs", "symbols", "timeframes", "methods", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("pairs")
    @classmethod
    def _full_pairs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        market = default_market()
        return tuple(parse_pair(pair, market) for pair in value)

    @field_validator("symbols")
    @classmethod
    def _full_instruments(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        market = default_market()
        return tuple(parse_instrument(name, market) for name in value)

    @model_validator(mode="after")
    def _core_config_is_valid(self) -> AnalyticsSettings:
        self.pair_config()  # raises ValueError with the reason
        if not self.pair_names:
            raise ValueError("no pairs: set ANALYTICS_PAIRS or at least two ANALYTICS_SYMBOLS")
        return self

    @property
    def pair_names(self) -> tuple[str, ...]:
        """The configured pairs, or every pair of the symbols in the order given."""
        if self.pairs:
            return tuple(dict.fromkeys(self.pairs))
        symbols = tuple(dict.fromkeys(self.symbols))
        return tuple(pair_name(y, x) for y, x in itertools.combinations(symbols, 2))

    @property
    def scan_symbols(self) -> tuple[str, ...]:
        """Instruments of the pair scan: the configured ones and every pair's legs."""
        legs = (leg for pair in self.pair_names for leg in pair_legs(pair))
        return tuple(sorted(set(self.symbols) | set(legs)))

    def pair_config(self) -> PairConfig:
        """The core's configuration."""
        return PairConfig(
            hedge_window=self.hedge_window,
            intercept=self.intercept,
            price_transform=self.price_transform,
            zscore_window=self.zscore_window,
            flow_window=self.flow_window,
            stats_window=self.stats_window,
            tests_every=self.tests_every,
            adf_lag=self.adf_lag,
            entry_z=self.entry_z,
            exit_z=self.exit_z,
            kalman_delta=self.kalman_delta,
            kalman_obs_var=self.kalman_obs_var,
            kalman_initial_var=self.kalman_initial_var,
        )
