"""Decoding Binance frames: recorded frames parse exactly; bad frames fail with a reason."""

from __future__ import annotations

import orjson
import pytest

from pairstream_ingest.binance import ControlAnswer, FrameError, ParsedTrade, decode_frame


def test_every_recorded_futures_frame_decodes_to_its_trade(
    recorded_frames: list[dict[str, object]],
) -> None:
    for frame in recorded_frames:
        data = frame["data"]
        assert isinstance(data, dict)
        parsed = decode_frame(orjson.dumps(frame))
        assert isinstance(parsed, ParsedTrade)
        assert parsed.symbol == data["s"]
        assert parsed.trade.trade_id == data["t"]
        assert parsed.trade.ts_event == data["T"]
        assert parsed.trade.price == float(data["p"])
        assert parsed.trade.qty == float(data["q"])
        assert parsed.trade.is_buyer_maker is data["m"]


def test_raw_payload_spot_frame_and_aggtrade_with_new_fields() -> None:
    spot = (
        b'{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,'
        b'"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}'
    )
    parsed = decode_frame(spot)
    assert isinstance(parsed, ParsedTrade)
    assert (parsed.trade.trade_id, parsed.trade.price) == (3735683259, 61837.63)
    agg = (
        b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":5,"s":"BTCUSDT","a":77,'
        b'"p":"64000.1","q":"0.5","nq":"0.5","f":100,"l":104,"T":4,"m":false,"st":1}}'
    )
    parsed = decode_frame(agg)
    assert isinstance(parsed, ParsedTrade)
    assert parsed.aggregate_id == 77
    trade = parsed.trade
    assert (trade.trade_id, trade.first_trade_id, trade.last_trade_id) == (100, 100, 104)


def test_control_answers_are_recognised() -> None:
    assert decode_frame(b'{"result":null,"id":7}') == ControlAnswer(7, None, None)
    listed = decode_frame(b'{"result":["btcusdt@trade"],"id":8}')
    assert listed == ControlAnswer(8, ["btcusdt@trade"], None)


TRADE = {"e": "trade", "E": 1, "T": 1, "s": "BTCUSDT", "t": 1, "p": "1.5", "q": "2", "m": True}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"{not json", "malformed frame"),
        (b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","E":1}}', "unknown event type"),
        (orjson.dumps({"data": {k: v for k, v in TRADE.items() if k != "p"}}), "missing required"),
        (orjson.dumps({"data": {**TRADE, "p": "NaN"}}), "price: must be a finite number > 0"),
        (orjson.dumps({"data": {**TRADE, "p": "-3"}}), "price: must be a finite number > 0"),
        (orjson.dumps({"data": {**TRADE, "q": "0"}}), "qty: must be a finite number > 0"),
        (orjson.dumps({"data": {**TRADE, "p": "abc"}}), "price: not a number"),
        (orjson.dumps({"data": {**TRADE, "t": "1"}}), "Expected `int`"),
        (b'{"hello":"world"}', "neither a stream frame"),
    ],
)
def test_bad_frames_fail_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(frame)
    assert reason in caught.value.reason
