"""The messages on pairstream's topics: the public contract of DESIGN §3.

Every message is a frozen :class:`msgspec.Struct` and validates itself on
construction *and* on decode (``__post_init__``), so a malformed message can
neither be produced nor consumed. Times are epoch milliseconds (UTC).

Conventions shared by all topics:

* ``ts_event`` – event time: the exchange time the message is about.
* ``ts_init`` (``ts_ingest`` on ``ticks``) – when pairstream produced it.
* Floats are finite; NaN and ±Infinity are not representable in the JSON wire
  format and are rejected. Metrics that can be undefined (a z-score with zero
  standard deviation, a half-life of a non-mean-reverting spread) are ``null``.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Annotated, Literal

import msgspec

from pairstream.instruments import (
    INSTRUMENT_PATTERN,
    PAIR_PATTERN,
    SYMBOL_PATTERN,
    instrument,
    pair_legs,
)
from pairstream.instruments import Market as Market  # re-exported: part of the contract

# ---------------------------------------------------------------------------
# constrained scalar types (the constraints are exported into the JSON Schemas)
# ---------------------------------------------------------------------------

EpochMs = Annotated[int, msgspec.Meta(ge=0, description="Epoch milliseconds, UTC.")]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0.0)]
TradeId = Annotated[int, msgspec.Meta(ge=0)]
Symbol = Annotated[
    str, msgspec.Meta(pattern=f"^{SYMBOL_PATTERN}$", description="Exchange symbol, e.g. BTCUSDT.")
]
Instrument = Annotated[
    str,
    msgspec.Meta(
        pattern=f"^{INSTRUMENT_PATTERN}$",
        description="`market:SYMBOL`, market `usdm` (USD-M futures) or `spot`: usdm:BTCUSDT.",
    ),
]
Pair = Annotated[
    str,
    msgspec.Meta(
        pattern=f"^{PAIR_PATTERN}$",
        description="`Y-X` of two instruments, the first leg regressed on the second, e.g. "
        "usdm:BTCUSDT-usdm:ETHUSDT or spot:BTCUSDT-usdm:BTCUSDT.",
    ),
]
Timeframe = Annotated[
    str,
    msgspec.Meta(pattern=r"^[1-9][0-9]*[smh]$", description="Whole seconds, minutes or hours."),
]
TickSource = Literal["live", "backfill", "replay", "synthetic"]
HedgeMethod = Literal["ols", "huber", "kalman"]
PriceTransform = Literal["price", "log"]
Severity = Literal["info", "warning", "critical"]

_TF_RE = re.compile(r"^([1-9][0-9]*)([smh])$")
_TF_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000}


def timeframe_ms(tf: str) -> int:
    """Length of a timeframe such as ``"5m"`` in milliseconds."""
    match = _TF_RE.match(tf)
    if match is None:
        raise ValueError(f"timeframe {tf!r} is not a whole number of s, m or h")
    return int(match.group(1)) * _TF_UNIT_MS[match.group(2)]


def _finite(owner: str, **values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"{owner}{name}: must be finite, got {value!r}")


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"{owner}{name}: must be a finite number > 0, got {value!r}")


class Message(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """Base of every topic message. Unknown fields are ignored (topics may grow)."""

    @property
    def key(self) -> str:
        """The Kafka message key: instrument, pair, timeframe or subject."""
        raise NotImplementedError


# ---------------------------------------------------------------------------
# ticks
# ---------------------------------------------------------------------------


class Trade(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False, omit_defaults=True
):
    """One trade inside a run.

    A trade backfilled from an aggregate trade covers the exchange trade ids
    ``first_trade_id..last_trade_id`` (both set); a plain trade has neither.
    """

    trade_id: TradeId
    ts_event: EpochMs
    price: PositiveFloat
    qty: PositiveFloat
    is_buyer_maker: bool
    first_trade_id: TradeId | None = None
    last_trade_id: TradeId | None = None

    def __post_init__(self) -> None:
        _positive("", price=self.price, qty=self.qty)
        if (self.first_trade_id is None) != (self.last_trade_id is None):
            raise ValueError("first_trade_id/last_trade_id: set both or neither")
        if (
            self.first_trade_id is not None
            and self.last_trade_id is not None
            and not self.first_trade_id <= self.trade_id <= self.last_trade_id
        ):
            # an aggregate is published under an id inside the range it covers
            raise ValueError(
                f"trade_id: {self.trade_id} outside its aggregate "
                f"{self.first_trade_id}..{self.last_trade_id}"
            )


class TickRun(Message, frozen=True, kw_only=True):
    """Topic ``ticks`` (key = instrument ``market:symbol``): consecutive trades of one instrument.

    Trades are in trade-id order; ids are the exchange's, per market and symbol.
    """

    exchange: Annotated[str, msgspec.Meta(min_length=1)] = "binance"
    market: Market
    symbol: Symbol
    source: TickSource
    ts_ingest: EpochMs
    trades: Annotated[list[Trade], msgspec.Meta(min_length=1)]

    def __post_init__(self) -> None:
        if not self.trades:
            raise ValueError("trades: a run holds at least one trade")
        previous = -1
        for index, trade in enumerate(self.trades):
            if trade.trade_id <= previous:
                raise ValueError(
                    f"trades[{index}].trade_id: {trade.trade_id} does not follow {previous} "
                    "(trade ids must strictly increase inside a run)"
                )
            previous = trade.last_trade_id if trade.last_trade_id is not None else trade.trade_id

    @property
    def instrument(self) -> str:
        """``market:symbol``, e.g. ``usdm:BTCUSDT``."""
        return instrument(self.market, self.symbol)

    @property
    def key(self) -> str:
        return self.instrument


# ---------------------------------------------------------------------------
# bars
# ---------------------------------------------------------------------------


class Bar(Message, frozen=True, kw_only=True):
    """Topics ``bars.<tf>`` (key = instrument): OHLCV over the bucket ``[start, start+tf)``.

    ``revision`` grows by one each time a bar is re-emitted (a late trade inside
    the allowed lateness); ``final`` is true once the watermark has passed the
    bucket's end. ``first_trade_id``/``last_trade_id`` are null only for an
    empty interval (``trades == 0``).
    """

    exchange: Annotated[str, msgspec.Meta(min_length=1)] = "binance"
    market: Market
    symbol: Symbol
    tf: Timeframe
    start: EpochMs
    open: PositiveFloat
    high: PositiveFloat
    low: PositiveFloat
    close: PositiveFloat
    volume: NonNegativeFloat
    quote_volume: NonNegativeFloat
    trades: Annotated[int, msgspec.Meta(ge=0)]
    vwap: PositiveFloat
    buy_volume: NonNegativeFloat
    first_trade_id: TradeId | None
    last_trade_id: TradeId | None
    revision: Annotated[int, msgspec.Meta(ge=0)] = 0
    final: bool
    ts_event: EpochMs
    ts_init: EpochMs

    def __post_init__(self) -> None:
        _positive(
            "", open=self.open, high=self.high, low=self.low, close=self.close, vwap=self.vwap
        )
        _finite("", volume=self.volume, quote_volume=self.quote_volume, buy_volume=self.buy_volume)
        if min(self.volume, self.quote_volume, self.buy_volume) < 0:
            raise ValueError("volume/quote_volume/buy_volume: must be >= 0")
        if not (self.low <= min(self.open, self.close) and max(self.open, self.close) <= self.high):
            raise ValueError(
                f"low/high: open {self.open} and close {self.close} must lie within "
                f"[low {self.low}, high {self.high}]"
            )
        if self.buy_volume > self.volume * (1 + 1e-9):
            raise ValueError(f"buy_volume: {self.buy_volume} exceeds volume {self.volume}")
        if self.trades == 0:
            if self.first_trade_id is not None or self.last_trade_id is not None:
                raise ValueError("first_trade_id: an empty bar has no trade ids")
        elif self.first_trade_id is None or self.last_trade_id is None:
            raise ValueError("first_trade_id/last_trade_id: required when trades > 0")
        elif self.first_trade_id > self.last_trade_id:
            raise ValueError(
                f"first_trade_id: {self.first_trade_id} > last_trade_id {self.last_trade_id}"
            )
        span = timeframe_ms(self.tf)
        if self.start % span:
            raise ValueError(f"start: {self.start} is not aligned to {self.tf}")

    @property
    def instrument(self) -> str:
        """``market:symbol``, e.g. ``usdm:BTCUSDT``."""
        return instrument(self.market, self.symbol)

    @property
    def key(self) -> str:
        return self.instrument


# ---------------------------------------------------------------------------
# analytics
# ---------------------------------------------------------------------------


class SpreadUpdate(Message, frozen=True, kw_only=True):
    """Topic ``analytics.spread`` (key = pair): ``spread = Y - (intercept + hedge_ratio * X)``.

    ``ts`` is the **start** of the bar the values belong to (both legs' bars
    start there; a leg without a bar in that interval carries its previous
    close). ``method``: ``ols``/``huber`` fit over the last ``window`` bars
    including this one, ``kalman`` is the filtered state after this bar (then
    ``forecast_error`` is the one-step prediction error ``Y − (α⁻ + β⁻·X)`` with
    the state before the bar, ``forecast_variance`` its variance).
    ``price_transform`` says whether the legs entered as prices or log prices.
    Emitted once per final bar; re-emitted (same key) if a bar is revised.
    """

    pair: Pair
    tf: Timeframe
    ts: EpochMs
    method: HedgeMethod
    price_transform: PriceTransform = "price"
    window: Annotated[int, msgspec.Meta(ge=0)] | None = None
    hedge_ratio: float
    intercept: float
    spread: float
    forecast_error: float | None = None
    forecast_variance: NonNegativeFloat | None = None
    ts_event: EpochMs
    ts_init: EpochMs

    def __post_init__(self) -> None:
        _finite(
            "",
            hedge_ratio=self.hedge_ratio,
            intercept=self.intercept,
            spread=self.spread,
            forecast_error=self.forecast_error,
            forecast_variance=self.forecast_variance,
        )

    @property
    def key(self) -> str:
        return self.pair


class ZScoreUpdate(Message, frozen=True, kw_only=True):
    """Topic ``analytics.zscore`` (key = pair): ``zscore = (spread - mean) / std``.

    The series standardised is the **spreads as emitted bar by bar** on
    ``analytics.spread`` (each with its own bar's hedge) for the same method:
    ``mean`` and ``std`` (sample, ddof=1) are over the last ``window`` of them,
    this bar's included. ``zscore`` is null while ``std`` is zero. ``position``
    is the signal state after this bar (entry at ``|z| ≥ entry_z``: short the
    spread above, long below; exit when z comes back within ``exit_z`` of 0 on
    the other side); ``signal`` is set on the bar where the position changes.
    """

    pair: Pair
    tf: Timeframe
    ts: EpochMs
    method: HedgeMethod = "ols"
    window: Annotated[int, msgspec.Meta(ge=2)]
    spread: float
    mean: float
    std: NonNegativeFloat
    zscore: float | None
    position: Literal["long", "short", "flat"] = "flat"
    signal: Literal["long", "short", "exit"] | None = None
    entry_z: PositiveFloat | None = None
    exit_z: NonNegativeFloat | None = None
    ts_event: EpochMs
    ts_init: EpochMs

    def __post_init__(self) -> None:
        _finite("", spread=self.spread, mean=self.mean, std=self.std, zscore=self.zscore)
        if self.std < 0:
            raise ValueError(f"std: must be >= 0, got {self.std}")

    @property
    def key(self) -> str:
        return self.pair


class StatsUpdate(Message, frozen=True, kw_only=True):
    """Topic ``analytics.stats`` (key = pair): co-movement and stationarity per bar and method.

    Each statistic is null until its window has enough data. Windows are in
    bars of ``tf``:

    * ``correlation``: Pearson correlation of the legs' log returns
      ``ln(close_t / close_{t−1})`` over the last ``flow_window`` returns;
      ``vol_y``/``vol_x`` realized volatility ``sqrt(Σ r²)`` of the same returns
      (not annualised); ``vwap_*`` = Σ quote volume / Σ volume and
      ``buy_share_*`` = Σ taker-buy volume / Σ volume over ``flow_window`` bars.
    * ``half_life`` (bars): from the OLS fit ``Δs_t = a + b·s_{t−1}`` of the last
      ``stats_window`` emitted spreads of this method, ``−ln 2 / ln(1 + b)``,
      null unless ``−1 < b < 0``.
    * At a cadence (bars whose ``ts / tf`` is a multiple of ``tests_every``),
      over the last ``stats_window`` bars: ``adf_stat``/``adf_pvalue`` —
      ADF with a constant and fixed lag ``adf_lag`` (statsmodels ``adfuller``,
      no autolag) on the emitted spreads; ``coint_stat``/``coint_pvalue`` —
      Engle–Granger of Y on X (statsmodels ``coint``, same lag);
      ``hedge_ratio_ci_low``/``high`` — 95% interval of the OLS β with
      Newey–West (HAC) errors. In between, the last results are repeated and
      ``tests_ts`` is the ``ts`` they were computed at.
    """

    pair: Pair
    tf: Timeframe
    ts: EpochMs
    method: HedgeMethod = "ols"
    correlation: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None
    adf_stat: float | None
    adf_pvalue: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None
    half_life: PositiveFloat | None
    vol_y: NonNegativeFloat | None = None
    vol_x: NonNegativeFloat | None = None
    vwap_y: PositiveFloat | None = None
    vwap_x: PositiveFloat | None = None
    buy_share_y: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    buy_share_x: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    coint_stat: float | None = None
    coint_pvalue: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    hedge_ratio_ci_low: float | None = None
    hedge_ratio_ci_high: float | None = None
    tests_ts: EpochMs | None = None
    flow_window: Annotated[int, msgspec.Meta(ge=2)] | None = None
    stats_window: Annotated[int, msgspec.Meta(ge=3)] | None = None
    adf_lag: Annotated[int, msgspec.Meta(ge=0)] | None = None
    ts_event: EpochMs
    ts_init: EpochMs

    def __post_init__(self) -> None:
        _finite(
            "",
            correlation=self.correlation,
            adf_stat=self.adf_stat,
            adf_pvalue=self.adf_pvalue,
            half_life=self.half_life,
            vol_y=self.vol_y,
            vol_x=self.vol_x,
            vwap_y=self.vwap_y,
            vwap_x=self.vwap_x,
            coint_stat=self.coint_stat,
            hedge_ratio_ci_low=self.hedge_ratio_ci_low,
            hedge_ratio_ci_high=self.hedge_ratio_ci_high,
        )
        if self.correlation is not None and not -1.0 <= self.correlation <= 1.0:
            raise ValueError(f"correlation: must lie in [-1, 1], got {self.correlation}")
        for name in ("adf_pvalue", "coint_pvalue", "buy_share_y", "buy_share_x"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: must lie in [0, 1], got {value}")
        if self.half_life is not None and self.half_life <= 0:
            raise ValueError(f"half_life: must be > 0, got {self.half_life}")

    @property
    def key(self) -> str:
        return self.pair


class PairBar(Message, frozen=True, kw_only=True):
    """Topic ``analytics.bars`` (key = pair): a final bar routed to a pair it is a leg of.

    Internal to the analytics workers (bars are keyed by instrument, a pair needs
    both legs in one place); ``leg`` is ``y`` for the first instrument of the pair.
    """

    pair: Pair
    leg: Literal["y", "x"]
    bar: Bar

    def __post_init__(self) -> None:
        y, x = pair_legs(self.pair)
        if self.bar.instrument != (y if self.leg == "y" else x):
            raise ValueError(
                f"bar: instrument {self.bar.instrument} is not leg {self.leg} of {self.pair}"
            )

    @property
    def key(self) -> str:
        return self.pair


class ScanEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One candidate pair ``y-x`` of a :class:`ScanUpdate`."""

    y: Instrument
    x: Instrument
    nobs: Annotated[int, msgspec.Meta(ge=0)]
    correlation: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None
    hedge_ratio: float | None
    coint_stat: float | None
    coint_pvalue: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None


class ScanUpdate(Message, frozen=True, kw_only=True):
    """Topic ``analytics.scan`` (key = tf): correlation and cointegration across all instruments.

    Over the last ``window`` bars of ``tf`` up to ``ts`` (the newest bar start
    every instrument has reached), for each unordered pair of ``instruments``
    (the alphabetically first is ``y``): Pearson correlation of log returns, OLS
    hedge ratio of y on x with a constant, and Engle–Granger (statsmodels
    ``coint``, lag ``adf_lag``). Instruments missing bars carry their previous close.
    """

    tf: Timeframe
    ts: EpochMs
    window: Annotated[int, msgspec.Meta(ge=3)]
    adf_lag: Annotated[int, msgspec.Meta(ge=0)]
    instruments: list[Instrument]
    entries: list[ScanEntry]
    ts_event: EpochMs
    ts_init: EpochMs

    @property
    def key(self) -> str:
        return self.tf


# ---------------------------------------------------------------------------
# alerts and dead letters
# ---------------------------------------------------------------------------


class Alert(Message, frozen=True, kw_only=True):
    """Topic ``alerts`` (key = subject: a pair or an instrument): one transition of an
    alert episode. ``ts_event`` is the bar ``ts`` (start) where the transition happened
    (wall-clock time for ``kind=stale``). ``alert_id`` names the episode (rule id and
    version, subject, tf, method and the bar where it started firing) and ``event_id`` the
    transition, so the same analytics always give the same ids."""

    alert_id: Annotated[str, msgspec.Meta(min_length=1)]
    event_id: Annotated[str, msgspec.Meta(min_length=1)]
    rule_id: Annotated[str, msgspec.Meta(min_length=1)]
    rule_version: Annotated[int, msgspec.Meta(ge=1)]
    state: Literal["firing", "resolved", "nodata"]
    severity: Severity
    kind: Annotated[str, msgspec.Meta(min_length=1, description="The condition kind.")]
    subject: Annotated[str, msgspec.Meta(min_length=1)]
    tf: Timeframe
    method: HedgeMethod | None = None
    value: float | None
    threshold: float | None = None
    started_ts: Annotated[
        int, msgspec.Meta(ge=0, description="Bar ts where the episode started firing.")
    ]
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    ts_event: EpochMs
    ts_init: EpochMs
    message: str

    def __post_init__(self) -> None:
        _finite("", value=self.value, threshold=self.threshold)

    @property
    def key(self) -> str:
        return self.subject


class DeadLetter(Message, frozen=True, kw_only=True):
    """Topic ``dead-letter`` (key = the original key, or the source): input we could not use.

    ``raw`` holds the original bytes as text (``raw_encoding`` ``utf-8``) or, when
    they are not valid UTF-8, base64 (``raw_encoding`` ``base64``).
    """

    source: Annotated[str, msgspec.Meta(min_length=1, description="Topic or feed it came from.")]
    service: Annotated[str, msgspec.Meta(min_length=1)]
    reason: Annotated[str, msgspec.Meta(min_length=1)]
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    original_key: str | None = None
    ts_event: EpochMs | None = None
    ts_init: EpochMs

    @property
    def key(self) -> str:
        return self.original_key or self.source


def dead_letter(
    *,
    source: str,
    service: str,
    reason: str,
    raw: bytes | str,
    original_key: str | None,
    ts_event: int | None,
    ts_init: int,
) -> DeadLetter:
    """A :class:`DeadLetter` for ``raw`` input, kept as text when it is UTF-8, else base64."""
    encoding: Literal["utf-8", "base64"] = "utf-8"
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return DeadLetter(
        source=source,
        service=service,
        reason=reason,
        raw=text,
        raw_encoding=encoding,
        original_key=original_key,
        ts_event=ts_event,
        ts_init=ts_init,
    )
