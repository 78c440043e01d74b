"""Settings of the dashboard (prefix ``UI_``): where it listens and where the API is.

It has no database, Redis or Kafka settings on purpose: everything comes from the API.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from pairstream.settings import ServiceSettings


class UiSettings(ServiceSettings):
    """The dashboard's address, the API it reads and how much it draws."""

    model_config = SettingsConfigDict(
        env_prefix="UI_", frozen=True, extra="ignore", populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="Address the dashboard listens on.")
    port: int = Field(
        default=8050, ge=0, le=65535, description="Port of the dashboard (0 = a free one)."
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000",
        pattern=r"^https?://[^/\s]+$",
        description="The API the dashboard reads (scheme, host and port; REST and WebSocket).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key sent to the API (a `write` key lets the rule editor and "
        "uploads work); unset while the API's reads are open.",
    )
    api_timeout_s: float = Field(default=5.0, gt=0, description="Longest wait for one API request.")
    points: int = Field(
        default=600, ge=10, le=10_000,
        description="Points per chart: the history drawn and the live window kept.",
    )  # fmt: skip
    health_interval_s: float = Field(
        default=2.0, gt=0, description="How often the API's readiness is checked (the banner)."
    )
