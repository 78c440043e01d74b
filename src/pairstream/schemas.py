"""JSON Schema (draft 2020-12) export of every topic's message, for outside readers."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec
import orjson

from pairstream.settings import TopicSettings
from pairstream.topics import CONTRACT_VERSION, TopicSpec, topic_specs

DRAFT = "https://json-schema.org/draft/2020-12/schema"

# JSON has no NaN or Infinity, but validators that parse them anyway (Python's
# json module does) would let a plain "number" through. The bounds are the
# largest finite doubles, which rule out the infinities. NaN compares false
# against every bound, so it passes bounds; the inner schema of "not" is
# unsatisfiable for every real number (x <= -1 and x >= 1) and satisfied only
# by NaN, so its negation rejects NaN and constrains nothing else.
_MAX_DOUBLE = 1.7976931348623157e308
_FINITE = {
    "minimum": -_MAX_DOUBLE,
    "maximum": _MAX_DOUBLE,
    "not": {"maximum": -1, "minimum": 1},
    "$comment": "finite: no NaN or Infinity",
}


def _require_finite(node: Any) -> Any:
    if isinstance(node, dict):
        out = {key: _require_finite(value) for key, value in node.items()}
        if out.get("type") == "number":
            out = {**copy.deepcopy(_FINITE), **out}  # keep tighter bounds of the field
        return out
    if isinstance(node, list):
        return [_require_finite(item) for item in node]
    return node


def topic_schema(spec: TopicSpec) -> dict[str, Any]:
    """The JSON Schema of one topic's message value."""
    (ref,), components = msgspec.json.schema_components([spec.message])
    name = ref["$ref"].rsplit("/", 1)[-1]
    root = dict(components.pop(name))
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": f"urn:pairstream:topic:{spec.name}:v{CONTRACT_VERSION}",
        "x-contract-version": CONTRACT_VERSION,
        "title": f"{spec.name} ({spec.message.__name__})",
        "description": f"{root.pop('description', spec.description)}\n\nMessage key: {spec.key}.",
        **{k: v for k, v in root.items() if k != "title"},
    }
    if spec.timeframe is not None:
        schema["properties"] = dict(schema["properties"])
        schema["properties"]["tf"] = {**schema["properties"]["tf"], "const": spec.timeframe}
    if components:
        schema["$defs"] = components
    return _require_finite(schema)  # type: ignore[no-any-return]


def model_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the models that are not topic messages: alert rules and silences."""
    from pairstream.alerts.rules import Rule, RuleSpec, Silence

    out: dict[str, dict[str, Any]] = {}
    for name, model in (("alert-rule", Rule), ("alert-rule-spec", RuleSpec), ("silence", Silence)):
        schema = model.model_json_schema()
        out[name] = {
            "$schema": DRAFT,
            "$id": f"urn:pairstream:model:{name}:v{CONTRACT_VERSION}",
            "x-contract-version": CONTRACT_VERSION,
            **schema,
        }
    return out


def write_schemas(out_dir: Path, settings: TopicSettings | None = None) -> list[Path]:
    """Write one ``<topic>.schema.json`` per topic and an ``index.json``; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    index: list[dict[str, Any]] = []
    for spec in topic_specs(settings):
        path = out_dir / f"{spec.name}.schema.json"
        path.write_bytes(orjson.dumps(topic_schema(spec), option=orjson.OPT_INDENT_2) + b"\n")
        written.append(path)
        index.append(
            {
                "topic": spec.name,
                "key": spec.key,
                "message": spec.message.__name__,
                "partitions": spec.partitions,
                "schema": path.name,
                "description": spec.description,
            }
        )
    models: list[dict[str, Any]] = []
    for name, schema in model_schemas().items():
        path = out_dir / f"{name}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n")
        written.append(path)
        models.append({"model": name, "schema": path.name})
    index_path = out_dir / "index.json"
    index_path.write_bytes(
        orjson.dumps(
            {
                "format": "pairstream-topic-index/1",
                "contract_version": CONTRACT_VERSION,
                "topics": index,
                "models": models,
            },
            option=orjson.OPT_INDENT_2,
        )
        + b"\n"
    )
    written.append(index_path)
    return written
