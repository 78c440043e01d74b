"""Settings of the API service (prefix ``API_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from pairstream.settings import ServiceSettings, comma_list


class ApiSettings(ServiceSettings):
    """Where the API listens, who may read and write, and its limits."""

    model_config = SettingsConfigDict(
        env_prefix="API_", frozen=True, extra="ignore", populate_by_name=True
    )

    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of the API (0 = a free one).")
    workers: int = Field(default=1, ge=1, le=64, description="Server processes.")
    open_reads: bool = Field(
        default=True,
        description="Reads need no API key (writes always need a `write` key).",
    )
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Origins allowed by CORS, comma-separated (`*` = any)."
    )
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest request body (uploads too)."
    )
    page_limit: int = Field(default=1_000, ge=1, description="Rows per page unless `limit` says.")
    max_page_limit: int = Field(default=10_000, ge=1, description="Largest `limit` accepted.")
    rate_limit: str = Field(
        default="6000/minute",
        pattern=r"^\d+ ?(/|per) ?\d* ?(second|minute|hour|day)s?$",
        description="Requests per API key (or per client address without one), `limits` "
        "syntax (`100/second`, `6000/minute`); counters in Redis when it is up.",
    )
    db_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="Waiting for a database connection beyond this answers 503.",
    )
    statement_timeout_s: float = Field(
        default=10.0, gt=0, description="Longest database statement of a request."
    )
    key_cache_s: float = Field(
        default=10.0, ge=0, description="How long a checked API key is trusted (revocations "
        "apply after at most this)."
    )  # fmt: skip
    ws_snapshot: int = Field(
        default=300, ge=0, le=10_000,
        description="Points a WebSocket subscription starts with unless it asks otherwise.",
    )  # fmt: skip
    ws_queue: int = Field(
        default=1_000, ge=10,
        description="Messages waiting per WebSocket client; beyond, its oldest are dropped "
        "(counted, and the client told).",
    )  # fmt: skip
    ws_send_timeout_s: float = Field(
        default=10.0, gt=0,
        description="A WebSocket client that takes longer to accept a message is disconnected.",
    )  # fmt: skip
    ws_heartbeat_s: float = Field(
        default=15.0, gt=0, description="Heartbeat interval of idle WebSocket connections."
    )
    ws_max_channels: int = Field(
        default=200, ge=1, description="Channels one WebSocket connection may subscribe to."
    )
    fetch_max_wait_ms: int = Field(
        default=10, ge=0, le=10_000,
        description="Longest wait of the live consumer's fetches (latency to WebSocket "
        "clients on brokers that answer only at the deadline, like the embedded Tansu).",
    )  # fmt: skip
    upload_max_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024,
        description="Largest uploaded bar CSV (`POST /uploads`), also once unzipped; the "
        "request itself is bounded by `API_MAX_BODY_BYTES` too.",
    )  # fmt: skip
    upload_max_rows: int = Field(
        default=200_000, ge=1,
        description="Most bars in one uploaded CSV, and per leg of `POST /analyze`.",
    )  # fmt: skip

    _split = field_validator("cors_origins", mode="before")(comma_list)
