"""Instruments and pairs: how a market and a symbol are written everywhere (DESIGN §10).

An instrument is a market and an exchange symbol, ``usdm:BTCUSDT`` (USD-M
perpetual) or ``spot:BTCUSDT``. It is the Kafka key of market data, a column
pair ``(market, symbol)`` in tables, and the legs of a pair name: ``Y-X`` as
``usdm:BTCUSDT-usdm:ETHUSDT``, or the basis of one coin,
``spot:BTCUSDT-usdm:BTCUSDT``. People may write a bare ``BTCUSDT``: it means the
configured default market, and is turned into the full form once, where the
input is read (settings, CLI flags, API parameters), never further in.
"""

from __future__ import annotations

import re
from typing import Literal, cast, get_args

Market = Literal["usdm", "spot"]
MARKETS: tuple[Market, ...] = get_args(Market)

SYMBOL_PATTERN = r"[A-Z0-9]{2,30}"
INSTRUMENT_PATTERN = rf"(?:usdm|spot):{SYMBOL_PATTERN}"
PAIR_PATTERN = rf"{INSTRUMENT_PATTERN}-{INSTRUMENT_PATTERN}"

_SYMBOL = re.compile(SYMBOL_PATTERN)
_INSTRUMENT = re.compile(INSTRUMENT_PATTERN)


def instrument(market: str, symbol: str) -> str:
    """``market:symbol``, e.g. ``usdm:BTCUSDT``."""
    return f"{market}:{symbol}"


def split_instrument(name: str) -> tuple[Market, str]:
    """``usdm:BTCUSDT`` → ``("usdm", "BTCUSDT")``; the name must be in full form."""
    if not _INSTRUMENT.fullmatch(name):
        raise ValueError(f"instrument {name!r} is not `market:SYMBOL` (market usdm or spot)")
    market, symbol = name.split(":")
    return cast(Market, market), symbol


def parse_instrument(text: str, default_market: str = "usdm") -> str:
    """An instrument as people write it (``BTCUSDT``, ``btcusdt``, ``spot:BTCUSDT``), in full form.

    Raises ``ValueError`` with the reason when it is neither.
    """
    value = text.strip()
    market, sep, symbol = value.rpartition(":")
    if not sep:
        market = default_market
    market = market.lower()
    symbol = symbol.upper()
    if market not in MARKETS:
        raise ValueError(f"instrument {text!r}: unknown market {market!r} (usdm or spot)")
    if not _SYMBOL.fullmatch(symbol):
        raise ValueError(f"instrument {text!r}: symbol must be 2-30 letters or digits")
    return instrument(market, symbol)


def pair_name(y: str, x: str) -> str:
    """The pair ``Y-X`` of two instruments in full form."""
    return f"{y}-{x}"


def pair_legs(pair: str) -> tuple[str, str]:
    """``usdm:BTCUSDT-usdm:ETHUSDT`` → ``("usdm:BTCUSDT", "usdm:ETHUSDT")``."""
    y, sep, x = pair.partition("-")
    if not sep or not _INSTRUMENT.fullmatch(y) or not _INSTRUMENT.fullmatch(x):
        raise ValueError(f"pair {pair!r} is not `Y-X` of two `market:SYMBOL` instruments")
    return y, x


def parse_pair(text: str, default_market: str = "usdm") -> str:
    """A pair as people write it (``BTCUSDT-ETHUSDT``, ``spot:BTCUSDT-usdm:BTCUSDT``), in full form.

    Raises ``ValueError`` when a leg is not an instrument or both legs are the same.
    """
    legs = text.strip().split("-")
    if len(legs) != 2:
        raise ValueError(f"pair {text!r} is not `Y-X` (two instruments joined by `-`)")
    y, x = (parse_instrument(leg, default_market) for leg in legs)
    if y == x:
        raise ValueError(f"pair {text!r}: both legs are {y}")
    return pair_name(y, x)
