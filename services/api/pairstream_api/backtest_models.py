"""The body and response of ``POST /api/v1/backtest`` (definitions:
:mod:`pairstream.analytics.backtest`). Times are epoch milliseconds, like the topics."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from pairstream.messages import HedgeMethod

from .dataset_models import NAME_PATTERN
from .query import TIME_HELP, TIME_PATTERN
from .routes.analytics import PAIR_PATTERN
from .routes.market import TF_PATTERN

EXAMPLE: dict[str, JsonValue] = {
    "pair": "BTCUSDT-ETHUSDT",
    "tf": "1m",
    "method": "ols",
    "start": "2024-07-18T00:00:00Z",
    "end": "2024-07-19T00:00:00Z",
    "entry_z": 2.0,
    "exit_z": 0.5,
    "stop_z": 4.0,
    "fee_bps": 2.0,
    "slippage_bps": 1.0,
    "capital": 100_000.0,
}


class BacktestDatasets(BaseModel):
    """The uploaded datasets of the legs."""

    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    y: str = Field(pattern=NAME_PATTERN, examples=["btcusdt-1m-2022-09"], description="Y leg.")
    x: str = Field(pattern=NAME_PATTERN, examples=["ethusdt-1m-2022-09"], description="X leg.")


class BacktestRequest(BaseModel):
    """A backtest of the z-score strategy on a pair's stored final bars.

    The analytics (hedge ratio, z-score) are computed from the bars in the range with
    the analytics service's settings (`ANALYTICS_*` windows), so they warm up from
    `start`: over the whole stored history they are the service's numbers.
    """

    model_config = ConfigDict(
        frozen=True, strict=True, extra="forbid",
        json_schema_extra={"examples": [
            EXAMPLE,
            {"pair": "usdm:BTCUSDT-usdm:ETHUSDT", "tf": "1s", "method": "kalman"},
        ]},
    )  # fmt: skip

    pair: str = Field(
        pattern=PAIR_PATTERN, examples=["BTCUSDT-ETHUSDT"],
        description="`Y-X`: `BTCUSDT-ETHUSDT` (default market) or `usdm:BTCUSDT-usdm:ETHUSDT`.",
    )  # fmt: skip
    tf: str = Field(pattern=TF_PATTERN, examples=["1m"], description="Bar timeframe.")
    method: HedgeMethod = Field(default="ols", description="Hedge-ratio method.")
    start: str | None = Field(
        default=None, pattern=TIME_PATTERN, examples=["2024-07-18T00:00:00Z"],
        description=f"First bar, inclusive (default: the oldest stored). {TIME_HELP}",
    )  # fmt: skip
    end: str | None = Field(
        default=None, pattern=TIME_PATTERN, examples=["1721347200000"],
        description=f"Bars starting before this (default: through the newest). {TIME_HELP}",
    )  # fmt: skip
    entry_z: float | None = Field(
        default=None, gt=0, le=100,
        description="Enter at |z| ≥ entry_z (short spread above, long below); default "
        "`ANALYTICS_ENTRY_Z`.",
    )  # fmt: skip
    exit_z: float | None = Field(
        default=None, ge=0, le=100,
        description="Exit a long at z ≥ −exit_z, a short at z ≤ exit_z; below entry_z; default "
        "`ANALYTICS_EXIT_Z`.",
    )  # fmt: skip
    stop_z: float | None = Field(
        default=None, gt=0, le=1000,
        description="Stop: |z| ≥ stop_z closes and blocks entries until z is back inside the "
        "exit band or crosses zero; above entry_z; null = no stop.",
    )  # fmt: skip
    fee_bps: float = Field(
        default=0.0, ge=0, le=1000, description="Fee per leg and fill, bps of its notional."
    )
    slippage_bps: float = Field(
        default=0.0, ge=0, le=1000,
        description="Each fill is this many bps worse than the bar's close, per leg.",
    )  # fmt: skip
    capital: float = Field(default=100_000.0, ge=1, le=1e12, description="Starting equity.")
    notional: float | None = Field(
        default=None, ge=1, le=1e12,
        description="The Y leg's notional at each entry (X: β times the Y units); default: "
        "the capital.",
    )  # fmt: skip
    include_equity: bool = Field(
        default=True, description="Return the equity curve (one point per bar)."
    )
    datasets: BacktestDatasets | None = Field(
        default=None,
        description="Uploaded datasets (`POST /uploads`) to use as the legs instead of the "
        "pair's stored bars; both of timeframe `tf`.",
    )


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class BacktestParamsPublic(_Public):
    """The parameters the run used (defaults filled in)."""

    entry_z: float
    exit_z: float
    stop_z: float | None
    fee_bps: float
    slippage_bps: float
    capital: float
    notional: float = Field(description="The Y leg's notional at each entry.")
    hedge_window: int = Field(description="`ANALYTICS_HEDGE_WINDOW` (bars).")
    zscore_window: int = Field(description="`ANALYTICS_ZSCORE_WINDOW` (spreads).")
    price_transform: Literal["price", "log"] = Field(
        description="What the hedge regressed; fills are at raw closes either way."
    )


class TradePublic(_Public):
    """One round trip; `exit_*` null while still open after the last bar (then `pnl` is
    marked to the last closes, less the entry fees)."""

    side: Literal["long", "short"] = Field(description="Of the spread Y − β·X.")
    decided_ts: int = Field(description="Bar whose z decided the entry.")
    entry_ts: int = Field(description="Next bar: the entry fills at its close.")
    exit_decided_ts: int | None = Field(description="Bar whose z decided the exit.")
    exit_ts: int | None = Field(description="Next bar: the exit fills at its close.")
    exit_reason: Literal["exit", "reverse", "stop"] | None
    hedge_ratio: float = Field(description="β of the decision bar, frozen for the trade.")
    qty_y: float = Field(description="Units of Y held (signed: negative = short).")
    qty_x: float = Field(description="Units of X held: −side·β·|qty_y|.")
    entry_price_y: float = Field(description="Fill price, slippage included.")
    entry_price_x: float
    exit_price_y: float | None
    exit_price_x: float | None
    pnl: float = Field(description="Net of fees (slippage is in the prices).")
    fees: float
    trade_return: float = Field(description="pnl / gross entry notional of both legs.")
    bars_held: int


class BacktestMetricsPublic(_Public):
    total_return: float = Field(description="Final equity / capital − 1.")
    sharpe: float | None = Field(
        description="Of the per-bar equity returns, annualised by √(bars per 365-day year)."
    )
    max_drawdown: float = Field(description="Largest fall from a running peak, a fraction.")
    hit_rate: float | None = Field(description="Share of closed trades with pnl > 0.")
    turnover: float = Field(description="Traded notional of every fill / capital.")
    n_trades: int = Field(description="Trades entered (an open one included).")
    n_closed: int
    fees: float
    final_equity: float


class EquityCurvePublic(_Public):
    """Per bar (after its fills), as columns of equal length."""

    ts: list[int]
    equity: list[float] = Field(description="Cash + positions at the bar's closes.")
    position: list[Literal[-1, 0, 1]] = Field(description="+1 long spread, −1 short, 0 flat.")
    drawdown: list[float] = Field(description="1 − equity / running peak.")


class BacktestPublic(_Public):
    pair: str = Field(examples=["usdm:BTCUSDT-usdm:ETHUSDT"])
    tf: str
    method: HedgeMethod
    first_ts: int | None = Field(description="First bar with analytics (null: none).")
    last_ts: int | None = Field(description="Last bar with analytics.")
    bars: int = Field(description="Bars with analytics (the equity curve's length).")
    params: BacktestParamsPublic
    metrics: BacktestMetricsPublic
    trades: list[TradePublic]
    equity: EquityCurvePublic | None = Field(description="Null unless `include_equity`.")
