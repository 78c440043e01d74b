"""Bodies and responses of the uploaded datasets (``/api/v1/uploads``) and of
``POST /api/v1/analyze``. Times are epoch milliseconds, like the topics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag

from pairstream.instruments import Market
from pairstream.messages import HedgeMethod

from .query import TIME_HELP, TIME_PATTERN
from .routes.market import INSTRUMENT_PATTERN, TF_PATTERN

#: a dataset's name: what `POST /uploads` was given, its key everywhere after
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
NAME_HELP = "Lower-case letters, digits, `.`, `_`, `-`; 1–64 characters, a letter or digit first."
#: windows beyond this are refused (the core keeps a window of each in memory)
MAX_WINDOW = 100_000

EXAMPLE: dict[str, JsonValue] = {
    "y": {"dataset": "btcusdt-1m-2022-09"},
    "x": {"dataset": "ethusdt-1m-2022-09"},
    "methods": ["ols", "kalman"],
    "hedge_window": 300,
    "zscore_window": 60,
    "format": "json",
}
STORED_EXAMPLE: dict[str, JsonValue] = {
    "y": {"instrument": "usdm:BTCUSDT", "tf": "1s", "start": "2024-07-18T23:58:00Z"},
    "x": {"instrument": "usdm:ETHUSDT", "tf": "1s", "start": "2024-07-18T23:58:00Z"},
    "window": 60,
    "tests_every": 10,
    "format": "csv",
}


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class DatasetPublic(_Public):
    """An uploaded dataset: one instrument's bars, as validated and stored."""

    name: str = Field(examples=["btcusdt-1m-2022-09"])
    instrument: str | None = Field(
        description="`market:SYMBOL` when both labels were given.", examples=["usdm:BTCUSDT"]
    )
    market: Market | None = Field(description="Label given at upload (none: null).")
    symbol: str | None = Field(description="Label given at upload (none: null).")
    tf: str = Field(description="Timeframe of the bars.", examples=["1m"])
    rows: int = Field(description="Bars stored.")
    first_start: int = Field(description="Start of the first bar, epoch ms.")
    last_start: int = Field(description="Start of the last bar, epoch ms.")
    source_format: Literal["bars", "klines"] = Field(
        description="`bars`: pairstream's bar columns; `klines`: a data.binance.vision klines CSV."
    )
    filename: str | None = Field(description="The uploaded file's name.")
    sha256: str = Field(description="SHA-256 of the uploaded file, hex.")
    created_at: int = Field(description="When it was stored, epoch ms.")
    created_by: str | None = Field(description="Id of the API key that uploaded it.")


class DatasetBarPublic(_Public):
    start: int = Field(description="Bucket start, epoch ms (inclusive).")
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int | None = Field(description="Null when the file had no trade counts.")
    vwap: float | None = Field(description="Given, else quote_volume / volume (null: no volume).")
    buy_volume: float = Field(description="Taker buy volume.")


class _Leg(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")

    start: str | None = Field(
        default=None, pattern=TIME_PATTERN, examples=["2022-09-05T00:00:00Z"],
        description=f"First bar, inclusive (default: the oldest). {TIME_HELP}",
    )  # fmt: skip
    end: str | None = Field(
        default=None, pattern=TIME_PATTERN, examples=["1662508800000"],
        description=f"Bars starting before this (default: through the newest). {TIME_HELP}",
    )  # fmt: skip


class DatasetLeg(_Leg):
    """The bars of an uploaded dataset."""

    dataset: str = Field(pattern=NAME_PATTERN, examples=["btcusdt-1m-2022-09"])


class InstrumentLeg(_Leg):
    """The stored final bars of an instrument (what the analytics service reads)."""

    instrument: str = Field(
        pattern=INSTRUMENT_PATTERN, examples=["usdm:BTCUSDT"],
        description="`usdm:BTCUSDT`, `spot:ETHUSDT`, or a bare symbol (the default market).",
    )  # fmt: skip
    tf: str = Field(pattern=TF_PATTERN, examples=["1m"], description="Timeframe of its bars.")


def _leg_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "dataset" if "dataset" in value else "instrument"
    if isinstance(value, DatasetLeg):
        return "dataset"
    return "instrument" if isinstance(value, InstrumentLeg) else None


Leg = Annotated[
    Annotated[DatasetLeg, Tag("dataset")] | Annotated[InstrumentLeg, Tag("instrument")],
    Discriminator(_leg_kind),
]


class AnalyzeRequest(BaseModel):
    """Two legs (Y regressed on X) and the core's options, as `pairstream analyze` takes.

    An option left out is the analytics service's setting (`ANALYTICS_*`), as the CLI
    defaults; `window` sets the four windows at once (each given explicitly wins). Both
    legs must have the same timeframe."""

    model_config = ConfigDict(
        frozen=True, strict=True, extra="forbid",
        json_schema_extra={"examples": [EXAMPLE, STORED_EXAMPLE]},
    )  # fmt: skip

    y: Leg = Field(description="The regressed leg: `{dataset}` or `{instrument, tf}`.")
    x: Leg = Field(description="The regressor leg.")
    methods: list[HedgeMethod] | None = Field(
        default=None, min_length=1, max_length=3,
        description="Hedge methods (default `ANALYTICS_METHODS`).",
    )  # fmt: skip
    window: int | None = Field(
        default=None, ge=3, le=MAX_WINDOW,
        description="Shorthand for the hedge, stats, z-score and flow windows.",
    )  # fmt: skip
    hedge_window: int | None = Field(
        default=None, ge=3, le=MAX_WINDOW, description="OLS/Huber window in bars."
    )
    zscore_window: int | None = Field(
        default=None, ge=3, le=MAX_WINDOW, description="z-score window in spreads."
    )
    flow_window: int | None = Field(
        default=None, ge=3, le=MAX_WINDOW,
        description="Correlation, volatility, VWAP, buy-share window in bars.",
    )  # fmt: skip
    stats_window: int | None = Field(
        default=None, ge=3, le=MAX_WINDOW,
        description="ADF, cointegration, half-life, HAC window in bars.",
    )  # fmt: skip
    tests_every: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="ADF/cointegration/HAC on bars whose ts/tf is a multiple of this.",
    )  # fmt: skip
    adf_lag: int | None = Field(
        default=None, ge=0, le=MAX_WINDOW // 2, description="Fixed ADF lag (no autolag)."
    )
    entry_z: float | None = Field(
        default=None, gt=0, le=100, description="Signal entry threshold |z|."
    )
    exit_z: float | None = Field(
        default=None, ge=0, le=100, description="Signal exit threshold |z| (below entry_z)."
    )
    price_transform: Literal["price", "log"] | None = Field(
        default=None, description="Regress prices or log prices."
    )
    intercept: bool | None = Field(default=None, description="OLS/Huber with an intercept α.")
    kalman_delta: float | None = Field(
        default=None, gt=0, lt=1, description="Kalman state noise: q = delta/(1-delta) per bar."
    )
    kalman_obs_var: float | None = Field(
        default=None, gt=0, le=1e12, description="Kalman observation variance."
    )
    kalman_initial_var: float | None = Field(
        default=None, gt=0, le=1e12, description="Kalman initial state variance."
    )
    format: Literal["json", "csv"] | None = Field(
        default=None,
        description="`csv`: what `pairstream analyze --out` writes, byte for byte; default "
        "JSON, or CSV when `Accept` asks for `text/csv`.",
    )


class AnalyzeRow(_Public):
    """Every metric of one bar and method (`pairstream.analytics.batch.OUTPUT_COLUMNS`);
    null where not computed (yet)."""

    ts: int = Field(description="Bar start, epoch ms.")
    method: HedgeMethod
    hedge_ratio: float | None
    intercept: float | None
    spread: float | None
    forecast_error: float | None
    forecast_variance: float | None
    mean: float | None
    std: float | None
    zscore: float | None
    position: Literal["long", "short", "flat"] | None
    signal: Literal["long", "short", "exit"] | None
    correlation: float | None
    vol_y: float | None
    vol_x: float | None
    vwap_y: float | None
    vwap_x: float | None
    buy_share_y: float | None
    buy_share_x: float | None
    half_life: float | None
    adf_stat: float | None
    adf_pvalue: float | None
    coint_stat: float | None
    coint_pvalue: float | None
    hedge_ratio_ci_low: float | None
    hedge_ratio_ci_high: float | None
    tests_ts: int | None = Field(description="Bar of the newest tests, epoch ms.")


class LegPublic(_Public):
    """What a leg read."""

    source: Literal["dataset", "instrument"]
    name: str = Field(description="The dataset, or the instrument in full form.")
    tf: str
    bars: int = Field(description="Bars read.")
    first_start: int | None
    last_start: int | None


class AnalyzeOptions(_Public):
    """The options the run used (defaults filled in)."""

    methods: list[HedgeMethod]
    hedge_window: int
    zscore_window: int
    flow_window: int
    stats_window: int
    tests_every: int
    adf_lag: int
    entry_z: float
    exit_z: float
    price_transform: Literal["price", "log"]
    intercept: bool
    kalman_delta: float
    kalman_obs_var: float
    kalman_initial_var: float


class AnalyzePublic(_Public):
    tf: str
    y: LegPublic
    x: LegPublic
    options: AnalyzeOptions
    count: int = Field(description="Rows (one per bar and method).")
    rows: list[AnalyzeRow] = Field(description="Oldest first; per bar, the methods in order.")
