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

# ---------------------------------------------------------------------------
# constrained scalar types (the constraints are exported into the JSON Schemas)
# ---------------------------------------------------------------------------

EpochMs = Annotated[int, msgspec.Meta(ge=0, description="Epoch milliseconds, UTC.")]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0.0)]
TradeId = Annotated[int, msgspec.Meta(ge=0)]
Symbol = Annotated[
    str, msgspec.Meta(pattern=r"^[A-Z0-9]{2,30}$", description="Exchange symbol, e.g. BTCUSDT.")
]
Pair = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Z0-9]{2,30}-[A-Z0-9]{2,30}$",
        description="`Y-X`: the first leg regressed on the second, e.g. BTCUSDT-ETHUSDT.",
    ),
]
Timeframe = Annotated[
    str,
    msgspec.Meta(pattern=r"^[1-9][0-9]*[smh]$", description="Whole seconds, minutes or hours."),
]
Market = Literal["usdm", "spot"]
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
        """The Kafka message key: symbol, pair or subject."""
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
    """Topic ``ticks`` (key = symbol): consecutive trades of one symbol, in trade-id order."""

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
    def key(self) -> str:
        return self.symbol


# ---------------------------------------------------------------------------
# bars
# ---------------------------------------------------------------------------


class Bar(Message, frozen=True, kw_only=True):
    """Topics ``bars.<tf>`` (key = symbol): OHLCV over the event-time bucket ``[start, start+tf)``.

    ``revision`` grows by one each time a bar is re-emitted (a late trade inside
    the allowed lateness); ``final`` is true once the watermark has passed the
    bucket's end. ``first_trade_id``/``last_trade_id`` are null only for an
    empty interval (``trades == 0``).
    """

    exchange: Annotated[str, msgspec.Meta(min_length=1)] = "binance"
    market: Market = "usdm"
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
    def key(self) -> str:
        return self.symbol


# ---------------------------------------------------------------------------
# analytics
# ---------------------------------------------------------------------------


class SpreadUpdate(Message, frozen=True, kw_only=True):
    """Topic ``analytics.spread`` (key = pair): ``spread = Y - (intercept + hedge_ratio * X)``.

    ``ts`` is the start of the bar the value belongs to; ``price_transform`` says
    whether the regression ran on prices or log prices.
    """

    pair: Pair
    tf: Timeframe
    ts: EpochMs
    method: HedgeMethod
    price_transform: PriceTransform = "price"
    hedge_ratio: float
    intercept: float
    spread: float
    ts_event: EpochMs
    ts_init: EpochMs

    def __post_init__(self) -> None:
        _finite("", hedge_ratio=self.hedge_ratio, intercept=self.intercept, spread=self.spread)

    @property
    def key(self) -> str:
        return self.pair


class ZScoreUpdate(Message, frozen=True, kw_only=True):
    """Topic ``analytics.zscore`` (key = pair): ``zscore = (spread - mean) / std``.

    ``mean`` and ``std`` (sample, ddof=1) are over the last ``window`` spreads;
    ``zscore`` is null while ``std`` is zero.
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
    """Topic ``analytics.stats`` (key = pair): stationarity and co-movement statistics.

    Each statistic is null until its window has enough data.
    """

    pair: Pair
    tf: Timeframe
    ts: EpochMs
    correlation: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)] | None
    adf_stat: float | None
    adf_pvalue: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None
    half_life: PositiveFloat | None
    ts_event: EpochMs
    ts_init: EpochMs

    def __post_init__(self) -> None:
        _finite(
            "",
            correlation=self.correlation,
            adf_stat=self.adf_stat,
            adf_pvalue=self.adf_pvalue,
            half_life=self.half_life,
        )
        if self.correlation is not None and not -1.0 <= self.correlation <= 1.0:
            raise ValueError(f"correlation: must lie in [-1, 1], got {self.correlation}")
        if self.adf_pvalue is not None and not 0.0 <= self.adf_pvalue <= 1.0:
            raise ValueError(f"adf_pvalue: must lie in [0, 1], got {self.adf_pvalue}")
        if self.half_life is not None and self.half_life <= 0:
            raise ValueError(f"half_life: must be > 0, got {self.half_life}")

    @property
    def key(self) -> str:
        return self.pair


# ---------------------------------------------------------------------------
# alerts and dead letters
# ---------------------------------------------------------------------------


class Alert(Message, frozen=True, kw_only=True):
    """Topic ``alerts`` (key = subject: a pair or a symbol)."""

    alert_id: Annotated[str, msgspec.Meta(min_length=1)]
    rule_id: Annotated[str, msgspec.Meta(min_length=1)]
    severity: Severity
    kind: Annotated[str, msgspec.Meta(min_length=1)]
    subject: Annotated[str, msgspec.Meta(min_length=1)]
    value: float
    threshold: float
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
