"""Settings of the ingest service (prefix ``INGEST_``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pairstream.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    """Where trades come from and how they are published."""

    model_config = SettingsConfigDict(
        env_prefix="INGEST_", frozen=True, extra="ignore", populate_by_name=True
    )

    source: Literal["binance", "replay", "synthetic"] = Field(
        default="synthetic", description="Trade source; `synthetic` works offline."
    )
    market: Literal["usdm", "spot"] = Field(default="usdm", description="Binance market.")
    symbols: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("BTCUSDT", "ETHUSDT"), description="Symbols, comma-separated."
    )
    max_run_trades: int = Field(
        default=2_000, ge=1, description="Most trades in one `ticks` message (runs are split)."
    )
    max_waiting: int = Field(
        default=10_000,
        ge=1,
        description="Trades held behind a trade-id gap before the gap is given up (replay).",
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(s.strip().upper() for s in value.split(",") if s.strip())
        return value
