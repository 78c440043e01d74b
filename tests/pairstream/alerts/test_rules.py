"""Rule validation: the issue's example form, normalised subjects, and clear errors by field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pairstream.alerts.rules import Rule, RuleContext, RuleSpec, Silence, subject_matches

EXAMPLE: dict[str, Any] = {
    "id": "z-btc-eth",
    "name": "|z| above 2",
    "subject": "BTCUSDT-ETHUSDT",
    "tf": "1s",
    "method": "ols",
    "condition": {"kind": "threshold", "field": "zscore", "op": "outside", "lo": -2, "hi": 2},
    "for_bars": 1,
    "severity": "warning",
}
CONTEXT = RuleContext(
    pairs=["usdm:BTCUSDT-usdm:ETHUSDT", "spot:BTCUSDT-usdm:BTCUSDT"],
    instruments=["usdm:BTCUSDT", "usdm:ETHUSDT", "spot:BTCUSDT"],
)


def errors(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as info:
        Rule.model_validate(data, context=CONTEXT)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


def test_the_example_rule_is_accepted_with_its_id_and_a_normalised_subject() -> None:
    rule = Rule.model_validate(EXAMPLE, context=CONTEXT)
    assert rule.id == "z-btc-eth"
    assert rule.subject == "usdm:BTCUSDT-usdm:ETHUSDT"
    assert rule.version == 1
    assert rule.kind == "pair"
    assert rule.channels == ["log"]
    assert Rule.model_validate_json(rule.model_dump_json(), context=CONTEXT) == rule


def test_the_default_market_applies_to_bare_symbols() -> None:
    rule = Rule.model_validate(EXAMPLE, context=RuleContext(default_market="spot"))
    assert rule.subject == "spot:BTCUSDT-spot:ETHUSDT"


def test_globs_match_configured_subjects() -> None:
    rule = Rule.model_validate({**EXAMPLE, "subject": "*-usdm:ETHUSDT"}, context=CONTEXT)
    assert rule.applies_to("usdm:BTCUSDT-usdm:ETHUSDT")
    assert not rule.applies_to("spot:BTCUSDT-usdm:BTCUSDT")
    assert subject_matches("spot:*", "spot:BTCUSDT")


def test_an_instrument_rule_takes_an_instrument_subject() -> None:
    spike = {"kind": "volume_spike", "factor": 5, "bars": 30}
    rule = Rule.model_validate(
        {**EXAMPLE, "subject": "spot:BTCUSDT", "condition": spike}, context=CONTEXT
    )
    assert rule.kind == "instrument"
    assert errors({**EXAMPLE, "condition": spike})[0][0] == ("subject",)


def test_durations_read_as_seconds() -> None:
    for given, seconds in [(90, 90), ("90", 90), ("30s", 30), ("5m", 300), ("1.5h", 5400)]:
        assert Rule.model_validate({**EXAMPLE, "cooldown": given}).cooldown == seconds


@pytest.mark.parametrize(
    ("change", "loc", "message"),
    [
        (
            {"condition": {"kind": "threshold", "field": "zscor", "op": ">", "value": 2}},
            ("condition", "threshold", "field"),
            "unknown metric 'zscor'",
        ),
        (
            {"condition": {"kind": "expression", "expr": "system(1) > 0"}},
            ("condition", "expression", "expr"),
            "unknown function 'system'",
        ),
        (
            {"condition": {"kind": "expression", "expr": "zscore.real > 0"}},
            ("condition", "expression", "expr"),
            "attributes are not allowed",
        ),
        (
            {"condition": {"kind": "expression", "expr": "zscore[1] > 0"}},
            ("condition", "expression", "expr"),
            "indexing is not allowed",
        ),
        (
            {"condition": {"kind": "expression", "expr": "zscore > 1 || " * 800 + "true"}},
            ("condition", "expression", "expr"),
            "expression too long",
        ),
        (
            {"condition": {"kind": "expression", "expr": "zscore > 1 && volume > 2"}},
            ("condition", "expression", "expr"),
            "either bar fields or pair analytics",
        ),
        ({"for_bars": 0}, ("for_bars",), "greater than or equal to 1"),
        ({"subject": "*-usdm:XRPUSDT"}, ("subject",), "matches no configured pair"),
        ({"subject": "BTCUSDT"}, ("subject",), "a pair subject is Y-X"),
        ({"subject": "btc-eth"}, ("subject",), "not a valid pair"),
        ({"clear": 1.5}, ("clear",), "takes a [lo, hi] range"),
        ({"clear": [-3, 1]}, ("clear",), "lies inside (lo, hi)"),
        (
            {
                "condition": {"kind": "threshold", "field": "zscore", "op": ">", "value": 2},
                "clear": 3,
            },
            ("clear",),
            "must be below the threshold 2",
        ),
        (
            {
                "condition": {
                    "kind": "threshold",
                    "field": "zscore",
                    "op": "outside",
                    "lo": 2,
                    "hi": -2,
                }
            },
            ("condition", "threshold"),
            "lo (2.0) must be below hi (-2.0)",
        ),
        (
            {"condition": {"kind": "threshold", "field": "zscore", "op": ">", "lo": 1, "hi": 2}},
            ("condition", "threshold"),
            "takes value (not lo/hi)",
        ),
        (
            {"condition": {"kind": "bogus"}},
            ("condition",),
            "does not match any of the expected tags",
        ),
        ({"severity": "fatal"}, ("severity",), "'info', 'warning' or 'critical'"),
        ({"cooldown": "soon"}, ("cooldown",), "not a duration"),
        ({"id": "Has Spaces"}, ("id",), "should match pattern"),
        ({"channels": ["web hook"]}, ("channels", 0), "should match pattern"),
        ({"extra": 1}, ("extra",), "Extra inputs are not permitted"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(
    change: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    found = errors({**EXAMPLE, **change})
    assert any(l == loc and message in m for l, m in found), found  # noqa: E741


def test_a_spec_may_omit_the_id_and_a_stored_rule_may_not() -> None:
    spec = RuleSpec.model_validate({k: v for k, v in EXAMPLE.items() if k != "id"})
    assert spec.id is None
    assert errors({k: v for k, v in EXAMPLE.items() if k != "id"})[0][0] == ("id",)


def test_a_silence_mutes_matching_rules_and_subjects_until_it_ends() -> None:
    silence = Silence(id="s1", rule_id="z-*", subject="*-usdm:ETHUSDT", until=2_000)
    assert silence.mutes("z-btc-eth", "usdm:BTCUSDT-usdm:ETHUSDT", 1_999)
    assert not silence.mutes("z-btc-eth", "usdm:BTCUSDT-usdm:ETHUSDT", 2_000)
    assert not silence.mutes("corr", "usdm:BTCUSDT-usdm:ETHUSDT", 1_000)
    assert not silence.mutes("z-btc-eth", "spot:BTCUSDT-usdm:BTCUSDT", 1_000)
