"""`pairstream schemas`: a valid draft 2020-12 schema per DESIGN §3 topic, matching the codec."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from typer.testing import CliRunner

from pairstream.cli import app
from pairstream.codec import Codec
from pairstream.testing import example_messages
from pairstream.topics import topic_specs

DESIGN_TOPICS = {
    "ticks",
    "bars.1s",
    "bars.1m",
    "bars.5m",
    "analytics.spread",
    "analytics.zscore",
    "analytics.stats",
    "alerts",
}
PRICE_FIELDS = {
    "ticks": ("trades", 0, "price"),
    "bars.1s": ("open",),
    "bars.1m": ("close",),
    "bars.5m": ("low",),
}


@pytest.fixture(scope="module")
def schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("schemas")
    result = CliRunner().invoke(app, ["schemas", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def validator(schema_dir: Path, topic: str) -> jsonschema.Draft202012Validator:
    schema = orjson.loads((schema_dir / f"{topic}.schema.json").read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def instance(topic: str) -> dict[str, Any]:
    spec = next(s for s in topic_specs() if s.name == topic)
    message = example_messages()[spec.message]
    if spec.timeframe is not None:
        import msgspec

        message = msgspec.structs.replace(message, tf=spec.timeframe)
    data = orjson.loads(Codec(spec.name, spec.message).encode(message))
    assert isinstance(data, dict)
    return data


def set_path(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def test_cli_writes_a_schema_for_every_design_topic_and_an_index(schema_dir: Path) -> None:
    index = orjson.loads((schema_dir / "index.json").read_bytes())
    topics = {entry["topic"] for entry in index["topics"]}
    assert topics >= DESIGN_TOPICS
    for entry in index["topics"]:
        assert (schema_dir / entry["schema"]).exists()
        schema = orjson.loads((schema_dir / entry["schema"]).read_bytes())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("topic", sorted(DESIGN_TOPICS | {"dead-letter"}))
def test_schema_accepts_the_codec_output(schema_dir: Path, topic: str) -> None:
    validator(schema_dir, topic).validate(instance(topic))


@pytest.mark.parametrize("topic", sorted(DESIGN_TOPICS | {"dead-letter"}))
def test_schema_rejects_a_missing_required_field(schema_dir: Path, topic: str) -> None:
    v = validator(schema_dir, topic)
    for field in v.schema["required"]:
        doc = instance(topic)
        del doc[field]
        assert not v.is_valid(doc), f"{topic}: accepted a message without {field}"


@pytest.mark.parametrize("topic", sorted(PRICE_FIELDS))
@pytest.mark.parametrize("bad", [-1.0, 0.0, math.nan, math.inf])
def test_schema_rejects_negative_zero_and_non_finite_prices(
    schema_dir: Path, topic: str, bad: float
) -> None:
    doc = instance(topic)
    set_path(doc, PRICE_FIELDS[topic], bad)
    assert not validator(schema_dir, topic).is_valid(doc)


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        ("analytics.spread", "spread"),
        ("analytics.zscore", "zscore"),
        ("analytics.stats", "adf_stat"),
        ("alerts", "value"),
        ("ticks", "ts_ingest"),
    ],
)
def test_schema_rejects_nan_in_unbounded_numbers(schema_dir: Path, topic: str, field: str) -> None:
    doc = instance(topic)
    doc[field] = math.nan
    assert not validator(schema_dir, topic).is_valid(doc)
    doc[field] = -math.inf
    assert not validator(schema_dir, topic).is_valid(doc)


def test_bars_schema_pins_the_timeframe_of_its_topic(schema_dir: Path) -> None:
    doc = instance("bars.1m")
    assert validator(schema_dir, "bars.1m").is_valid(doc)
    assert not validator(schema_dir, "bars.5m").is_valid(doc)


def test_ticks_schema_rejects_unknown_market_and_empty_runs(schema_dir: Path) -> None:
    v = validator(schema_dir, "ticks")
    doc = instance("ticks")
    doc["market"] = "coinm"
    assert not v.is_valid(doc)
    doc = instance("ticks")
    doc["trades"] = []
    assert not v.is_valid(doc)


def test_rule_and_silence_schemas_accept_the_example_rule_and_reject_a_bad_one(
    schema_dir: Path,
) -> None:
    index = orjson.loads((schema_dir / "index.json").read_bytes())
    assert {m["model"] for m in index["models"]} == {"alert-rule", "alert-rule-spec", "silence"}
    rule = validator(schema_dir, "alert-rule")
    example = {
        "id": "z-btc-eth",
        "name": "|z| above 2",
        "subject": "BTCUSDT-ETHUSDT",
        "tf": "1s",
        "method": "ols",
        "condition": {"kind": "threshold", "field": "zscore", "op": "outside", "lo": -2, "hi": 2},
        "for_bars": 1,
        "severity": "warning",
    }
    rule.validate(example)
    assert not rule.is_valid({**example, "for_bars": 0})
    assert not rule.is_valid({**example, "condition": {"kind": "nope"}})
    validator(schema_dir, "silence").validate({"id": "s1", "until": 1_800_000_000_000})
