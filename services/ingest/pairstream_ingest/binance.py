"""Binance WebSocket payloads, decoded into frozen venue structs and mapped to domain trades.

Venue types stay here; the rest of pairstream sees only :class:`pairstream.messages.Trade`.
Unknown fields are ignored (Binance adds fields such as ``nq``/``st`` over time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from pairstream.messages import Market, Trade


class FrameError(ValueError):
    """A frame we cannot use; ``reason`` says why (it goes to the dead-letter topic)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# USD-M futures: {"e":"trade","E":1721347022708,"T":1721347022707,"s":"ETHUSDT",
#                 "t":4217896584,"p":"3424.98","q":"0.007","X":"MARKET","m":true}
# spot:          {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,
#                 "p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}
class WsTrade(msgspec.Struct, frozen=True, tag_field="e", tag="trade"):
    """``<symbol>@trade`` payload (futures and spot)."""

    E: int
    T: int
    s: str
    t: int
    p: str
    q: str
    m: bool
    X: str | None = None  # futures only
    M: bool | None = None  # spot only


# {"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100",
#  "f":100,"l":105,"T":123456785,"m":true}
class WsAggTrade(msgspec.Struct, frozen=True, tag_field="e", tag="aggTrade"):
    """``<symbol>@aggTrade`` payload: trades ``f..l`` at one price, aggregated."""

    E: int
    s: str
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 (Binance's field name)
    T: int
    m: bool
    M: bool | None = None  # spot only


Payload = WsTrade | WsAggTrade


class Envelope(msgspec.Struct, frozen=True):
    """Any frame: combined-stream (``stream``/``data``), raw payload (``e``), or control answer."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    e: str | None = None
    id: int | None = None
    result: Any = msgspec.UNSET
    error: Any = None


@dataclass(frozen=True, slots=True)
class ParsedTrade:
    """A trade frame mapped to the domain."""

    symbol: str
    trade: Trade
    exchange_time: int
    aggregate_id: int | None = None
    #: the market the payload's fields tell (spot has `M`, futures trades `X`), if any
    market: Market | None = None


@dataclass(frozen=True, slots=True)
class ControlAnswer:
    """The answer to SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS: ``{"result":…,"id":N}``."""

    id: int | None
    result: Any
    error: Any


_envelope = msgspec.json.Decoder(Envelope)
_payload: msgspec.json.Decoder[Payload] = msgspec.json.Decoder(Payload)


def _price(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FrameError(f"{name}: not a number: {text!r}") from None
    return value


def _market_of(payload: Payload) -> Market | None:
    if payload.M is not None:
        return "spot"
    if isinstance(payload, WsTrade) and payload.X is not None:
        return "usdm"
    return None  # a futures aggTrade looks like none of them


def to_trade(payload: Payload) -> ParsedTrade:
    """Map a venue payload to a domain trade; raises :class:`FrameError` on bad values."""
    price = _price(payload.p, "price")
    qty = _price(payload.q, "qty")
    try:
        if isinstance(payload, WsTrade):
            trade = Trade(
                trade_id=payload.t,
                ts_event=payload.T,
                price=price,
                qty=qty,
                is_buyer_maker=payload.m,
            )
            return ParsedTrade(payload.s, trade, payload.E, market=_market_of(payload))
        if payload.f > payload.l:
            raise FrameError(f"aggTrade: first trade id {payload.f} > last {payload.l}")
        trade = Trade(
            trade_id=payload.f,
            ts_event=payload.T,
            price=price,
            qty=qty,
            is_buyer_maker=payload.m,
            first_trade_id=payload.f,
            last_trade_id=payload.l,
        )
        return ParsedTrade(
            payload.s, trade, payload.E, aggregate_id=payload.a, market=_market_of(payload)
        )
    except ValueError as error:
        if isinstance(error, FrameError):
            raise
        raise FrameError(str(error)) from None


def _decode_payload(raw: bytes | msgspec.Raw) -> Payload:
    try:
        return _payload.decode(raw)
    except msgspec.ValidationError as error:
        text = str(error)
        if "Invalid value" in text and "$.e" in text:
            raise FrameError(f"unknown event type: {text}") from None
        if "missing required field `e`" in text:
            raise FrameError("not a trade payload: no event type `e`") from None
        raise FrameError(f"invalid trade payload: {text}") from None


def decode_frame(frame: bytes | str) -> ParsedTrade | ControlAnswer:
    """Decode one WebSocket frame; raises :class:`FrameError` with the reason."""
    try:
        envelope = _envelope.decode(frame)
    except msgspec.DecodeError as error:
        raise FrameError(f"malformed frame: {error}") from None
    if envelope.data:
        return to_trade(_decode_payload(envelope.data))
    if envelope.e is not None:
        return to_trade(_decode_payload(frame.encode() if isinstance(frame, str) else frame))
    if envelope.result is not msgspec.UNSET or envelope.error is not None:
        return ControlAnswer(envelope.id, envelope.result, envelope.error)
    raise FrameError("neither a stream frame, a trade payload nor a control answer")
