"""Alert rules and silences: one typed model, validated the same way for the CLI, the API
and the alerts service (``Rule.model_validate(data, context=RuleContext(...))``).

A rule watches a *subject* — a pair (``usdm:BTCUSDT-usdm:ETHUSDT``), an instrument
(``spot:BTCUSDT``) or a glob of either (``*-usdm:ETHUSDT``) — at one timeframe and, for
hedge-dependent metrics, one method, and raises an alert when its condition holds on
``for_bars`` consecutive evaluations. A bare symbol means the default market.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pairstream.alerts.expr import Expression, ExpressionError
from pairstream.instruments import INSTRUMENT_PATTERN, PAIR_PATTERN

Source = Literal["spread", "zscore", "stats", "bar"]

#: every numeric field a rule may read, by the message (topic) it comes from
FIELDS: dict[Source, tuple[str, ...]] = {
    "spread": ("hedge_ratio", "intercept", "spread", "forecast_error", "forecast_variance"),
    "zscore": ("zscore", "mean", "std"),
    "stats": (
        "correlation",
        "adf_stat",
        "adf_pvalue",
        "half_life",
        "vol_y",
        "vol_x",
        "vwap_y",
        "vwap_x",
        "buy_share_y",
        "buy_share_x",
        "coint_stat",
        "coint_pvalue",
        "hedge_ratio_ci_low",
        "hedge_ratio_ci_high",
    ),
    "bar": (
        "open",
        "high",
        "low",
        "close",
        "volume",
        "quote_volume",
        "trades",
        "vwap",
        "buy_volume",
    ),
}
SOURCE_OF: dict[str, Source] = {name: src for src, names in FIELDS.items() for name in names}
PAIR_FIELDS = frozenset(n for s in ("spread", "zscore", "stats") for n in FIELDS[s])
BAR_FIELDS = frozenset(FIELDS["bar"])

SubjectKind = Literal["pair", "instrument"]

_ID = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_CHANNEL = r"^[a-z][a-z0-9_-]{0,31}(:[A-Za-z0-9._-]{1,64})?$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_GLOB = set("*?[")


def _seconds(value: Any) -> Any:
    """``300``, ``"300"``, ``"5m"``, ``"1.5h"`` → seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (e.g. 90, '30s', '5m', '1h')")
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What validation checks a rule against: the default market for bare symbols and,
    when known, the subjects that exist (a glob must match one of them)."""

    default_market: str = "usdm"
    pairs: Collection[str] | None = None
    instruments: Collection[str] | None = None


def _context(info: ValidationInfo) -> RuleContext:
    ctx = info.context
    return ctx if isinstance(ctx, RuleContext) else RuleContext()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------- conditions


class Threshold(_Strict):
    """A numeric field against a level or a range. ``outside [lo, hi]`` holds for
    ``v <= lo or v >= hi`` (|z| ≥ 2 is ``outside [-2, 2]``), ``inside`` for ``lo <= v <= hi``;
    ``cross_above t`` at a bar with ``v > t`` whose previous evaluated value was ``<= t``."""

    kind: Literal["threshold"] = "threshold"
    field: str
    op: Literal[">", ">=", "<", "<=", "cross_above", "cross_below", "outside", "inside"]
    value: float | None = None
    lo: float | None = None
    hi: float | None = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str) -> str:
        if name not in SOURCE_OF:
            known = ", ".join(sorted(SOURCE_OF))
            raise ValueError(f"unknown metric {name!r}; known metrics: {known}")
        return name

    @model_validator(mode="after")
    def _levels(self) -> Threshold:
        if self.op in ("outside", "inside"):
            if self.lo is None or self.hi is None or self.value is not None:
                raise ValueError(f"op {self.op!r} takes lo and hi (not value)")
            if not self.lo < self.hi:
                raise ValueError(f"lo ({self.lo}) must be below hi ({self.hi})")
        elif self.value is None or self.lo is not None or self.hi is not None:
            raise ValueError(f"op {self.op!r} takes value (not lo/hi)")
        return self


class CorrelationBreak(_Strict):
    """Correlation below ``below``, or ``drop`` or more under its mean over the previous
    ``bars`` evaluations."""

    kind: Literal["correlation_break"] = "correlation_break"
    below: float | None = Field(default=None, ge=-1, le=1)
    drop: float | None = Field(default=None, gt=0, le=2)
    bars: int = Field(strict=True, default=60, ge=2, le=10_000)

    @model_validator(mode="after")
    def _one(self) -> CorrelationBreak:
        if (self.below is None) == (self.drop is None):
            raise ValueError("give exactly one of below and drop")
        return self


class Cointegration(_Strict):
    """``lost``: the p-value above ``level`` on ``tests`` consecutive tests; ``regained``:
    below it. Only bars where a new test ran (a new ``tests_ts``) are evaluations."""

    kind: Literal["cointegration"] = "cointegration"
    event: Literal["lost", "regained"]
    test: Literal["adf", "engle_granger"] = "engle_granger"
    level: float = Field(default=0.05, gt=0, lt=1)
    tests: int = Field(strict=True, default=3, ge=1, le=1_000)


class Spike(_Strict):
    """Per instrument: the bar's volatility (|log return| of the close) or volume more than
    ``factor`` × the median of the previous ``bars`` bars."""

    kind: Literal["volatility_spike", "volume_spike"]
    factor: float = Field(gt=1)
    bars: int = Field(strict=True, default=60, ge=3, le=10_000)


class HedgeJump(_Strict):
    """The hedge ratio moved by more than ``relative`` (0.1 = 10 %) over ``bars`` bars."""

    kind: Literal["hedge_jump"] = "hedge_jump"
    relative: float = Field(gt=0)
    bars: int = Field(strict=True, default=10, ge=1, le=10_000)


class HalfLife(_Strict):
    """The half-life of mean reversion (in bars) outside ``[lo, hi]``."""

    kind: Literal["half_life"] = "half_life"
    lo: float = Field(default=0, ge=0)
    hi: float = Field(gt=0)

    @model_validator(mode="after")
    def _range(self) -> HalfLife:
        if not self.lo < self.hi:
            raise ValueError(f"lo ({self.lo}) must be below hi ({self.hi})")
        return self


class Stale(_Strict):
    """No analytics for the subject for ``seconds`` of **wall-clock** time (the one rule
    that does not run on event time)."""

    kind: Literal["stale"] = "stale"
    seconds: Seconds = Field(gt=0)
    clock: Literal["wall"] = "wall"


class Custom(_Strict):
    """An expression over the fields of one bar (see :mod:`pairstream.alerts.expr`)."""

    kind: Literal["expression"] = "expression"
    expr: str

    @field_validator("expr")
    @classmethod
    def _parses(cls, text: str) -> str:
        try:
            compiled = Expression.parse(text, SOURCE_OF.keys())
        except ExpressionError as error:
            raise ValueError(str(error)) from None
        kinds = {"instrument" if n in BAR_FIELDS else "pair" for n in compiled.names}
        if len(kinds) > 1:
            raise ValueError("an expression reads either bar fields or pair analytics, not both")
        return text

    @cached_property
    def compiled(self) -> Expression:
        return Expression.parse(self.expr, SOURCE_OF.keys())


Condition = Annotated[
    Threshold | CorrelationBreak | Cointegration | Spike | HedgeJump | HalfLife | Stale | Custom,
    Field(discriminator="kind"),
]


def condition_fields(condition: Condition) -> frozenset[str]:
    """The message fields a condition reads."""
    match condition:
        case Threshold():
            return frozenset({condition.field})
        case CorrelationBreak():
            return frozenset({"correlation"})
        case Cointegration():
            return frozenset({"adf_pvalue" if condition.test == "adf" else "coint_pvalue"})
        case Spike():
            return frozenset({"close"} if condition.kind == "volatility_spike" else {"volume"})
        case HedgeJump():
            return frozenset({"hedge_ratio"})
        case HalfLife():
            return frozenset({"half_life"})
        case Stale():
            return frozenset()
        case Custom():
            return condition.compiled.names


def subject_kind(condition: Condition) -> SubjectKind:
    """Whether a condition watches pairs or instruments."""
    names = condition_fields(condition)
    return "instrument" if names and names <= BAR_FIELDS else "pair"


# ---------------------------------------------------------------------------- subjects


def _leg(text: str, default_market: str) -> str:
    if ":" in text or text == "*":
        return text
    return f"{default_market}:{text}"


def normalise_subject(text: str, kind: SubjectKind, default_market: str = "usdm") -> str:
    """``BTCUSDT-ETHUSDT`` → ``usdm:BTCUSDT-usdm:ETHUSDT``; globs keep their wildcards."""
    text = text.strip()
    if kind == "pair":
        legs = text.split("-")
        if len(legs) != 2 or not all(legs):
            raise ValueError(f"a pair subject is Y-X, e.g. BTCUSDT-ETHUSDT: got {text!r}")
        return "-".join(_leg(leg, default_market) for leg in legs)
    if "-" in text:
        raise ValueError(f"an instrument subject has no '-': got {text!r}")
    return _leg(text, default_market)


def is_glob(subject: str) -> bool:
    """Whether a subject has wildcards."""
    return bool(_GLOB & set(subject))


def subject_matches(pattern: str, subject: str) -> bool:
    """Case-sensitive glob match of a subject."""
    return pattern == subject or (is_glob(pattern) and fnmatch.fnmatchcase(subject, pattern))


# ---------------------------------------------------------------------------- rules


class RuleSpec(_Strict):
    """A rule as a person writes it (the Create model; ``id`` is optional)."""

    id: str | None = Field(default=None, pattern=_ID, description="Kept when given.")
    name: str = Field(min_length=1, max_length=200)
    condition: Condition
    subject: str = Field(min_length=1, max_length=200)
    tf: str = Field(default="1s", pattern=r"^[1-9][0-9]*[smh]$")
    method: Literal["ols", "huber", "kalman"] = "ols"
    for_bars: int = Field(strict=True, default=1, ge=1, le=10_000)
    clear: float | tuple[float, float] | None = Field(
        default=None,
        description="Hysteresis: a firing alert resolves only once the value is back beyond "
        "this level (a [lo, hi] range for outside/inside).",
    )
    cooldown: Seconds = Field(
        default=0, description="Event-time seconds from one fire to the next."
    )
    nodata_bars: int = Field(
        strict=True,
        default=10,
        ge=1,
        le=100_000,
        description="A gap of more than this many bars in a subject's input is `nodata`.",
    )
    severity: Literal["info", "warning", "critical"] = "warning"
    channels: list[Annotated[str, Field(pattern=_CHANNEL)]] = Field(
        default_factory=lambda: ["log"], max_length=20
    )
    labels: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]] = (
        Field(default_factory=dict, max_length=50)
    )
    enabled: bool = Field(default=True, strict=True)

    @field_validator("subject")
    @classmethod
    def _subject(cls, text: str, info: ValidationInfo) -> str:
        condition = info.data.get("condition")
        if condition is None:  # already reported
            return text
        ctx = _context(info)
        kind = subject_kind(condition)
        subject = normalise_subject(text, kind, ctx.default_market)
        pattern = PAIR_PATTERN if kind == "pair" else INSTRUMENT_PATTERN
        if not is_glob(subject) and re.fullmatch(pattern, subject) is None:
            raise ValueError(f"{subject!r} is not a valid {kind}")
        known = ctx.pairs if kind == "pair" else ctx.instruments
        if known is not None and not any(subject_matches(subject, s) for s in known):
            raise ValueError(f"{subject!r} matches no configured {kind}")
        return subject

    @field_validator("clear")
    @classmethod
    def _clear(
        cls, clear: float | tuple[float, float] | None, info: ValidationInfo
    ) -> float | tuple[float, float] | None:
        c = info.data.get("condition")
        if clear is None or c is None:
            return clear
        if not isinstance(c, Threshold):
            raise ValueError("only threshold conditions take a clear level")
        ranged = c.op in ("outside", "inside")
        if ranged != isinstance(clear, tuple):
            raise ValueError(
                f"op {c.op!r} takes {'a [lo, hi] range' if ranged else 'a single level'}"
            )
        if isinstance(clear, tuple):
            lo, hi = clear
            assert c.lo is not None
            assert c.hi is not None
            ok = (c.lo < lo <= hi < c.hi) if c.op == "outside" else (lo <= c.lo < c.hi <= hi)
            if not ok:
                raise ValueError(
                    "for outside it lies inside (lo, hi); for inside it holds [lo, hi]"
                )
        else:
            assert c.value is not None
            above = c.op in (">", ">=", "cross_above")
            if (clear >= c.value) if above else (clear <= c.value):
                raise ValueError(f"must be {'below' if above else 'above'} the threshold {c.value}")
        return clear

    @property
    def kind(self) -> SubjectKind:
        return subject_kind(self.condition)


class Rule(RuleSpec):
    """A stored rule: its id and the version every change increments."""

    id: str = Field(pattern=_ID)
    version: int = Field(default=1, ge=1, strict=True)

    def applies_to(self, subject: str) -> bool:
        """Whether this rule watches ``subject``."""
        return subject_matches(self.subject, subject)


class Silence(_Strict):
    """Mutes notifications (never history) of matching alerts until ``until`` (epoch ms)."""

    id: str = Field(pattern=_ID)
    rule_id: str = Field(default="*", description="A rule id or a glob of rule ids.")
    subject: str = Field(default="*", min_length=1, max_length=200)
    until: int = Field(
        ge=0, le=253_402_300_799_999, strict=True, description="Epoch ms, wall clock."
    )
    reason: str = Field(default="", max_length=500)

    def mutes(self, rule_id: str, subject: str, now_ms: int) -> bool:
        """Whether this silence mutes an alert of ``rule_id`` on ``subject`` at ``now_ms``."""
        return (
            now_ms < self.until
            and subject_matches(self.rule_id, rule_id)
            and subject_matches(self.subject, subject)
        )


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Enabled rules, indexed by exact subject (globs scanned), matches cached."""

    rules: tuple[Rule, ...]
    _exact: dict[str, list[Rule]] = field(default_factory=dict)
    _globs: list[Rule] = field(default_factory=list)
    _matches: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    _order: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for n, rule in enumerate(self.rules):
            self._order[id(rule)] = n
            if not rule.enabled:
                continue
            if is_glob(rule.subject):
                self._globs.append(rule)
            else:
                self._exact.setdefault(rule.subject, []).append(rule)

    def for_subject(self, kind: SubjectKind, subject: str) -> tuple[Rule, ...]:
        """Enabled rules that watch ``subject``, in the order they were given."""
        key = (kind, subject)
        found = self._matches.get(key)
        if found is None:
            candidates = self._exact.get(subject, []) + [
                r for r in self._globs if fnmatch.fnmatchcase(subject, r.subject)
            ]
            candidates.sort(key=lambda r: self._order[id(r)])
            found = tuple(r for r in candidates if r.kind == kind)
            self._matches[key] = found
        return found
