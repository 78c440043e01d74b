"""The custom-expression language: what it computes and what it refuses, with the reason."""

from __future__ import annotations

import pytest

from pairstream.alerts.expr import MAX_LENGTH, Expression, ExpressionError

NAMES = {"zscore", "adf_pvalue", "half_life", "correlation", "hedge_ratio"}


def ev(text: str, **row: float | None) -> bool | None:
    return Expression.parse(text, NAMES).evaluate(row)


def test_the_issue_s_example() -> None:
    text = "abs(zscore) > 2.5 && adf_pvalue < 0.05 && half_life < 120"
    assert ev(text, zscore=-2.6, adf_pvalue=0.01, half_life=119.9) is True
    assert ev(text, zscore=2.5, adf_pvalue=0.01, half_life=10) is False
    assert Expression.parse(text, NAMES).names == {"zscore", "adf_pvalue", "half_life"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3 == 7", True),
        ("(1 + 2) * 3 == 9", True),
        ("-zscore > 1", True),
        ("!(zscore > 0)", True),
        ("zscore / 0 > 1", None),  # division by zero is a missing value
        ("sqrt(0 - 1) > 0", None),
        ("log(0) < 0", None),
        ("min(zscore, 1, 2) == zscore", True),
        ("max(zscore, -5) == zscore", True),
        ("true || zscore > 1", True),
        ("1e3 > 999.5 && .5 == 0.5", True),
        ("zscore != 2 && true == true", True),
    ],
)
def test_arithmetic_comparisons_and_functions(text: str, expected: bool | None) -> None:
    assert ev(text, zscore=-2.0) is expected


def test_missing_values_follow_three_valued_logic() -> None:
    assert ev("half_life < 120", half_life=None) is None
    assert ev("zscore > 2 && half_life < 120", zscore=1.0, half_life=None) is False
    assert ev("zscore > 2 && half_life < 120", zscore=3.0, half_life=None) is None
    assert ev("zscore > 2 || half_life < 120", zscore=3.0, half_life=None) is True
    assert ev("zscore > 2 || half_life < 120", zscore=1.0, half_life=None) is None
    assert ev("!(half_life < 120)") is None  # a field not in the row is missing


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("foo > 1", "unknown field 'foo'"),
        ("exec(1) > 1", "unknown function 'exec'"),
        ("__import__('os') > 1", "strings are not allowed"),
        ("zscore.__class__ > 1", "attributes are not allowed"),
        ("zscore[0] > 1", "indexing is not allowed"),
        ("zscore = 1", "use == to compare"),
        ("zscore > 1 & adf_pvalue < 1", "use && for and"),
        ("zscore > 1 and adf_pvalue < 1", "unexpected 'and'"),
        ("zscore", "must be a condition"),
        ("1 < zscore < 3", "comparisons do not chain"),
        ("zscore > 1 &&", "found the end"),
        ("abs(zscore, 1) > 1", "abs() takes 1 argument, got 2"),
        ("min(zscore) > 1", "min() takes 2 to 8 arguments, got 1"),
        ("zscore > true", "needs a number"),
        ("zscore && true", "needs true/false"),
        ("zscore == null", "null cannot be used"),
        ("1e999 > 1", "too large"),
        ("", "empty"),
        ("(" * 40 + "zscore" + ")" * 40 + " > 1", "nested deeper than 32"),
        (" || ".join(["zscore > 1"] * 60), "too large"),
        ("zscore > 1 && " * 100 + "true", "too long"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Expression.parse(text, NAMES)


def test_errors_point_at_the_fault() -> None:
    with pytest.raises(ExpressionError) as info:
        Expression.parse("zscore > 1 && bogus < 2", NAMES)
    assert info.value.position == 14
    assert "at character 15" in str(info.value)


def test_a_10_kb_expression_is_refused_before_parsing() -> None:
    text = "zscore > 1 || " * 730 + "true"
    assert len(text) > 10_000
    with pytest.raises(ExpressionError, match=f"at most {MAX_LENGTH:,}"):
        Expression.parse(text, NAMES)
