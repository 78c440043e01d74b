"""A small, safe expression language for custom alert conditions (a subset of CEL).

    abs(zscore) > 2.5 && adf_pvalue < 0.05 && half_life < 120

Numbers, ``true``/``false``/``null``, field names, ``+ - * /``, comparisons
(``< <= > >= == !=``), ``&& || !``, parentheses and the functions in
:data:`FUNCTIONS`. There are no strings, attributes, indexing, assignment, loops
or user functions, so an expression always ends, in time linear in its size.
It is parsed once, when the rule is saved, into a tree of closures: never
``eval``. Names, functions, types and size are checked then, and every error
says where it is.

A missing value (``null``, e.g. a half-life while the spread does not revert)
makes arithmetic and comparisons ``null``; ``&&``/``||`` follow three-valued
logic (``false && null`` is ``false``). A ``null`` result is not an evaluation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Literal, cast

Value = float | bool | None
Row = Mapping[str, float | None]
Evaluator = Callable[[Row], Value]
Kind = Literal["number", "bool"]

MAX_LENGTH = 1_000
MAX_NODES = 200
MAX_DEPTH = 32


def _sqrt(x: float) -> float | None:
    return math.sqrt(x) if x >= 0 else None


def _log(x: float) -> float | None:
    return math.log(x) if x > 0 else None


def _exp(x: float) -> float | None:
    try:
        return math.exp(x)
    except OverflowError:
        return None


#: name → (function, least arguments, most arguments); numbers in, a number (or null) out
FUNCTIONS: dict[str, tuple[Callable[..., float | None], int, int]] = {
    "abs": (abs, 1, 1),
    "min": (min, 2, 8),
    "max": (max, 2, 8),
    "sqrt": (_sqrt, 1, 1),
    "log": (_log, 1, 1),
    "exp": (_exp, 1, 1),
}


class ExpressionError(ValueError):
    """An expression that cannot be used, with the position (0-based) of the fault."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.position = position
        where = "" if position is None else f" (at character {position + 1})"
        super().__init__(f"{message}{where}")


_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/<>!(),]))"
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["number", "name", "op", "end"]
    text: str
    pos: int


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            char = text[pos:].lstrip()[:1]
            at = len(text) - len(text[pos:].lstrip())
            hint = {
                ".": "attributes are not allowed",
                "[": "indexing is not allowed",
                "]": "indexing is not allowed",
                "'": "strings are not allowed",
                '"': "strings are not allowed",
                "=": "use == to compare",
                "&": "use && for and",
                "|": "use || for or",
            }.get(char, "not part of the language")
            raise ExpressionError(f"unexpected {char!r}: {hint}", at)
        kind = cast(Literal["number", "name", "op"], match.lastgroup)
        out.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    out.append(_Token("end", "", len(text)))
    return out


@dataclass(frozen=True, slots=True)
class _Node:
    kind: Kind
    run: Evaluator


class _Parser:
    def __init__(self, text: str, names: Collection[str]) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.names = names
        self.used: set[str] = set()
        self.nodes = 0
        self.depth = 0

    # ------------------------------------------------------------------ helpers

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self, text: str | None = None) -> _Token:
        tok = self.tok
        if text is not None and tok.text != text:
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise ExpressionError(f"expected {text!r}, found {found}", tok.pos)
        self.i += 1
        return tok

    def node(self, kind: Kind, run: Evaluator) -> _Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ExpressionError(f"expression too large: more than {MAX_NODES} parts")
        return _Node(kind, run)

    def need(self, node: _Node, kind: Kind, what: str, pos: int) -> None:
        if node.kind != kind:
            wanted = "a number" if kind == "number" else "true/false"
            raise ExpressionError(f"{what} needs {wanted}", pos)

    # ------------------------------------------------------------------ grammar

    def parse(self) -> _Node:
        node = self.or_()
        if self.tok.kind != "end":
            raise ExpressionError(f"unexpected {self.tok.text!r}", self.tok.pos)
        if node.kind != "bool":
            raise ExpressionError("the expression must be a condition (true/false), not a number")
        return node

    def or_(self) -> _Node:
        left = self.and_()
        while self.tok.text == "||":
            pos = self.take().pos
            right = self.and_()
            self.need(left, "bool", "'||'", pos)
            self.need(right, "bool", "'||'", pos)
            left = self.node("bool", _or(left.run, right.run))
        return left

    def and_(self) -> _Node:
        left = self.compare()
        while self.tok.text == "&&":
            pos = self.take().pos
            right = self.compare()
            self.need(left, "bool", "'&&'", pos)
            self.need(right, "bool", "'&&'", pos)
            left = self.node("bool", _and(left.run, right.run))
        return left

    def compare(self) -> _Node:
        left = self.sum()
        if self.tok.text in _COMPARE:
            tok = self.take()
            right = self.sum()
            if tok.text in ("==", "!=") and left.kind == right.kind == "bool":
                pass
            else:
                self.need(left, "number", f"{tok.text!r}", tok.pos)
                self.need(right, "number", f"{tok.text!r}", tok.pos)
            left = self.node("bool", _binary(_COMPARE[tok.text], left.run, right.run))
            if self.tok.text in _COMPARE:
                raise ExpressionError("comparisons do not chain: use &&", self.tok.pos)
        return left

    def sum(self) -> _Node:
        left = self.product()
        while self.tok.text in ("+", "-"):
            tok = self.take()
            right = self.product()
            self.need(left, "number", f"{tok.text!r}", tok.pos)
            self.need(right, "number", f"{tok.text!r}", tok.pos)
            left = self.node("number", _binary(_ARITH[tok.text], left.run, right.run))
        return left

    def product(self) -> _Node:
        left = self.unary()
        while self.tok.text in ("*", "/"):
            tok = self.take()
            right = self.unary()
            self.need(left, "number", f"{tok.text!r}", tok.pos)
            self.need(right, "number", f"{tok.text!r}", tok.pos)
            left = self.node("number", _binary(_ARITH[tok.text], left.run, right.run))
        return left

    def unary(self) -> _Node:
        if self.tok.text in ("!", "-"):
            tok = self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError(f"expression nested deeper than {MAX_DEPTH}", tok.pos)
            operand = self.unary()
            self.depth -= 1
            if tok.text == "!":
                self.need(operand, "bool", "'!'", tok.pos)
                return self.node("bool", _not(operand.run))
            self.need(operand, "number", "'-'", tok.pos)
            return self.node("number", _negate(operand.run))
        return self.primary()

    def primary(self) -> _Node:
        tok = self.take()
        if tok.kind == "number":
            number = float(tok.text)
            if not math.isfinite(number):
                raise ExpressionError(f"number {tok.text} is too large", tok.pos)
            return self.node("number", lambda _row: number)
        if tok.text == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError(f"expression nested deeper than {MAX_DEPTH}", tok.pos)
            inner = self.or_()
            self.depth -= 1
            self.take(")")
            return inner
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                value = tok.text == "true"
                return self.node("bool", lambda _row: value)
            if tok.text == "null":
                raise ExpressionError(
                    "null cannot be used: a missing value already makes the bar skip the rule",
                    tok.pos,
                )
            if self.tok.text == "(":
                return self.call(tok)
            if tok.text not in self.names:
                known = ", ".join(sorted(self.names))
                raise ExpressionError(f"unknown field {tok.text!r}; known fields: {known}", tok.pos)
            self.used.add(tok.text)
            name = tok.text
            return self.node("number", lambda row: row.get(name))
        found = "the end" if tok.kind == "end" else repr(tok.text)
        raise ExpressionError(f"expected a number, a field or '(', found {found}", tok.pos)

    def call(self, name: _Token) -> _Node:
        if name.text not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function {name.text!r}; allowed: {allowed}", name.pos)
        fn, least, most = FUNCTIONS[name.text]
        self.take("(")
        args: list[_Node] = []
        if self.tok.text != ")":
            while True:
                self.depth += 1
                if self.depth > MAX_DEPTH:
                    raise ExpressionError(f"expression nested deeper than {MAX_DEPTH}", name.pos)
                arg = self.or_()
                self.depth -= 1
                self.need(arg, "number", f"{name.text}()", name.pos)
                args.append(arg)
                if self.tok.text != ",":
                    break
                self.take(",")
        self.take(")")
        if not least <= len(args) <= most:
            count = str(least) if least == most else f"{least} to {most}"
            plural = "" if count == "1" else "s"
            raise ExpressionError(
                f"{name.text}() takes {count} argument{plural}, got {len(args)}", name.pos
            )
        return self.node("number", _call(fn, [a.run for a in args]))


def _binary(op: Callable[[float, float], Value], left: Evaluator, right: Evaluator) -> Evaluator:
    def run(row: Row) -> Value:
        a = left(row)
        if a is None:
            return None
        b = right(row)
        if b is None:
            return None
        return op(a, b)

    return run


def _divide(a: float, b: float) -> float | None:
    return a / b if b != 0 else None


_ARITH: dict[str, Callable[[float, float], Value]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
}
_COMPARE: dict[str, Callable[[float, float], Value]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _and(left: Evaluator, right: Evaluator) -> Evaluator:
    def run(row: Row) -> Value:
        a = left(row)
        if a is False:
            return False
        b = right(row)
        if b is False:
            return False
        return None if a is None or b is None else True

    return run


def _or(left: Evaluator, right: Evaluator) -> Evaluator:
    def run(row: Row) -> Value:
        a = left(row)
        if a is True:
            return True
        b = right(row)
        if b is True:
            return True
        return None if a is None or b is None else False

    return run


def _not(operand: Evaluator) -> Evaluator:
    def run(row: Row) -> Value:
        a = operand(row)
        return None if a is None else not a

    return run


def _negate(operand: Evaluator) -> Evaluator:
    def run(row: Row) -> Value:
        a = operand(row)
        return None if a is None else -a

    return run


def _call(fn: Callable[..., float | None], args: list[Evaluator]) -> Evaluator:
    def run(row: Row) -> Value:
        values = [arg(row) for arg in args]
        if any(v is None for v in values):
            return None
        result = fn(*values)
        return None if result is None or not math.isfinite(result) else float(result)

    return run


@dataclass(frozen=True, slots=True)
class Expression:
    """A checked expression: :meth:`evaluate` gives ``True``, ``False`` or ``None``."""

    text: str
    names: frozenset[str]
    _run: Evaluator

    @classmethod
    def parse(cls, text: str, names: Collection[str]) -> Expression:
        """Parse and check ``text`` against the field ``names`` it may use."""
        if len(text) > MAX_LENGTH:
            raise ExpressionError(
                f"expression too long: {len(text):,} characters (at most {MAX_LENGTH:,})"
            )
        if not text.strip():
            raise ExpressionError("expression is empty")
        parser = _Parser(text, names)
        node = parser.parse()
        return cls(text, frozenset(parser.used), node.run)

    def evaluate(self, row: Row) -> bool | None:
        """The condition on one row of field values (a missing field is ``null``)."""
        result = self._run(row)
        return None if result is None else bool(result)
