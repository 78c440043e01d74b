"""Settings of the resampler (prefix ``RESAMPLER_``); its timeframes are the topics'."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from pairstream.settings import ServiceSettings


class ResamplerSettings(ServiceSettings):
    """How bars are built, checkpointed and stored."""

    model_config = SettingsConfigDict(
        env_prefix="RESAMPLER_", frozen=True, extra="ignore", populate_by_name=True
    )

    metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="Prometheus metrics port (0 = disabled)."
    )
    group_id: str = Field(
        default="pairstream-resampler",
        description="Consumer group (Faust app id); also names the checkpoints in the database.",
    )
    lateness_ms: int = Field(
        default=2_000,
        ge=0,
        description="Allowed lateness: a bar is final once the event clock is this far past its "
        "end; trades later than that are dead-lettered.",
    )
    idle_after_s: float = Field(
        default=5.0,
        gt=0,
        description="A symbol with no trade for this long (while its partition is caught up) has "
        "its event clock moved on by the wall clock, so its bars still close.",
    )
    checkpoint_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How often bars and state are stored together and offsets committed.",
    )
    buffer_max_rows: int = Field(
        default=200_000,
        ge=1,
        description="Bars waiting for the database before consumption pauses (database outage).",
    )
    retry_base_s: float = Field(
        default=0.2, gt=0, description="Database retry backoff: first delay bound."
    )
    retry_cap_s: float = Field(
        default=5.0, gt=0, description="Database retry backoff: largest delay (never gives up)."
    )
    max_id_ranges: int = Field(
        default=10_000, ge=2, description="Trade-id holes remembered per symbol for deduplication."
    )
    session_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Consumer group session timeout (a dead worker's partitions "
        "move after this long).",
    )
    rebalance_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a group rebalance may take."
    )
    heartbeat_interval_s: float = Field(
        default=1.0, gt=0, description="Consumer group heartbeat interval."
    )
