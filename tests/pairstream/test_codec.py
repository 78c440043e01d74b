"""The JSON codec: exact round trips, and errors that name topic, field and reason."""

from __future__ import annotations

import itertools

import orjson
import pytest

from pairstream.codec import Codec, MessageDecodeError, codec_for
from pairstream.messages import Bar, Message, TickRun, Trade
from pairstream.testing import example_messages
from pairstream.topics import topic_specs


def runs_from_frames(frames: list[dict[str, object]]) -> list[TickRun]:
    """Group consecutive frames of one symbol into runs, as ingest publishes them."""
    runs = []
    for symbol, group in itertools.groupby(frames, key=lambda f: f["data"]["s"]):
        trades = [
            Trade(
                trade_id=d["t"],
                ts_event=d["T"],
                price=float(d["p"]),
                qty=float(d["q"]),
                is_buyer_maker=d["m"],
            )
            for d in (f["data"] for f in group)
        ]
        runs.append(
            TickRun(
                market="usdm",
                symbol=str(symbol),
                source="replay",
                ts_ingest=trades[-1].ts_event,
                trades=trades,
            )
        )
    return runs


@pytest.mark.parametrize("spec", topic_specs(), ids=lambda s: s.name)
def test_every_topic_round_trips_its_message_exactly(spec: object) -> None:
    codec = Codec(spec.name, spec.message)
    message = example_messages()[spec.message]
    data = codec.encode(message)
    assert codec.decode(data) == message
    assert codec.encode(codec.decode(data)) == data


def test_recorded_binance_trades_round_trip_bit_for_bit(
    recorded_frames: list[dict[str, object]],
) -> None:
    codec = codec_for("ticks")
    runs = runs_from_frames(recorded_frames)
    assert sum(len(r.trades) for r in runs) == len(recorded_frames) == 2000
    for run in runs:
        decoded = codec.decode(codec.encode(run))
        assert decoded == run
        assert [t.price for t in decoded.trades] == [t.price for t in run.trades]


def decode_error(codec: Codec[Message], payload: dict[str, object] | bytes) -> MessageDecodeError:
    data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    with pytest.raises(MessageDecodeError) as caught:
        codec.decode(data)
    return caught.value


def tick_payload() -> dict[str, object]:
    payload = orjson.loads(codec_for("ticks").encode(example_messages()[TickRun]))
    assert isinstance(payload, dict)
    return payload


def test_negative_price_error_names_topic_field_and_reason() -> None:
    payload = tick_payload()
    payload["trades"][1]["price"] = -5.0
    error = decode_error(codec_for("ticks"), payload)
    assert (error.topic, error.field) == ("ticks", "trades[1].price")
    assert "> 0" in error.reason
    assert str(error).startswith("topic 'ticks': field 'trades[1].price': ")


def test_missing_field_error_names_the_missing_field() -> None:
    payload = tick_payload()
    del payload["trades"][0]["qty"]
    error = decode_error(codec_for("ticks"), payload)
    assert error.field == "trades[0].qty"
    assert error.reason == "required field is missing"
    payload = tick_payload()
    del payload["symbol"]
    assert decode_error(codec_for("ticks"), payload).field == "symbol"


def test_nan_and_infinity_tokens_are_rejected() -> None:
    data = codec_for("ticks").encode(example_messages()[TickRun])
    for token in (b"NaN", b"Infinity", b"1e999"):
        error = decode_error(codec_for("ticks"), data.replace(b"63957.5", token, 1))
        assert error.topic == "ticks"


def test_trade_ids_out_of_order_inside_a_run_are_rejected_with_position() -> None:
    payload = tick_payload()
    trades = payload["trades"]
    trades[0], trades[1] = trades[1], trades[0]
    error = decode_error(codec_for("ticks"), payload)
    assert error.field == "trades[1].trade_id"
    assert "strictly increase" in error.reason


def test_malformed_json_names_the_whole_message() -> None:
    error = decode_error(codec_for("bars.1m"), b'{"symbol": "BTCUSDT", ')
    assert (error.topic, error.field) == ("bars.1m", "$")


def test_bar_consistency_error_names_the_field() -> None:
    payload = orjson.loads(codec_for("bars.1m").encode(example_messages()[Bar]))
    payload["high"] = 1.0
    error = decode_error(codec_for("bars.1m"), payload)
    assert error.field == "low/high"


def test_unknown_fields_are_ignored_so_topics_can_grow() -> None:
    payload = tick_payload()
    payload["added_later"] = {"x": 1}
    assert codec_for("ticks").decode(orjson.dumps(payload)) == example_messages()[TickRun]


def test_encoding_a_message_on_the_wrong_topic_is_refused() -> None:
    with pytest.raises(TypeError, match="carries TickRun"):
        codec_for("ticks").encode(example_messages()[Bar])
