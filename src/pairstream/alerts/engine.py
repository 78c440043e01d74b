"""The alert rule engine: analytics and bar messages in, alert transitions out (no I/O).

Everything runs on event time, the bar ``ts`` of the input, except ``stale`` rules
(:meth:`AlertEngine.on_clock`). Per (rule, subject) an episode goes

    ok ──condition true on for_bars evaluations, cooldown over──▶ firing
    firing ──condition false and back beyond ``clear``──▶ resolved (ok)
    firing ──input missing for more than nodata_bars──▶ nodata (ok)

and only transitions are emitted, with ids derived from what they are about, so the
same input always gives the same alerts.

**Joining the three analytics topics.** A pair's ``analytics.spread``, ``.zscore`` and
``.stats`` messages of one (tf, method, ts) form one *row*. A rule reads the fields
of some of these sources; it evaluates a row once every source it reads has delivered
that ts or a later one (each topic delivers a pair's messages in ts order), so the
interleaving of the topics never changes a result. A source that skipped the ts
(no z-score before its window is full) leaves its fields ``null``: no evaluation.

**Revisions.** A message for a ts its source already delivered is a revision: the
rules that read it go back to a snapshot taken before that ts, replay the rows in
between without emitting, and evaluate again from the revised row. Re-emitted
transitions keep their ids, so sinks that upsert by id see nothing twice.
"""

from __future__ import annotations

import bisect
import math
import statistics
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import msgspec

from pairstream.alerts.rules import (
    FIELDS,
    SOURCE_OF,
    Cointegration,
    CorrelationBreak,
    Custom,
    HalfLife,
    HedgeJump,
    Rule,
    RuleSet,
    Source,
    Spike,
    Stale,
    SubjectKind,
    Threshold,
    condition_fields,
)
from pairstream.messages import (
    Alert,
    Bar,
    HedgeMethod,
    SpreadUpdate,
    StatsUpdate,
    ZScoreUpdate,
    timeframe_ms,
)

State = Literal["firing", "resolved", "nodata"]
Values = Mapping[str, float | None]

#: rows a (subject, tf, method) keeps for revisions and for rules waiting on a source
ROWS_KEPT = 4_096
SNAPSHOT_EVERY = 32
SNAPSHOTS_KEPT = 8

_MISSING = object()
_NAMESPACE = uuid.UUID("6f1c7e0a-4b8e-5d2c-9a53-2e7d1f0b8c41")


def alert_id(rule: Rule, subject: str, tf: str, method: HedgeMethod | None, started_ts: int) -> str:
    """The id of the episode of ``rule`` on ``subject`` that started firing at ``started_ts``."""
    name = f"{rule.id}|{rule.version}|{subject}|{tf}|{method or ''}|{started_ts}"
    return str(uuid.uuid5(_NAMESPACE, name))


def event_id(alert: str, state: State, ts: int) -> str:
    """The id of one transition of an episode."""
    return str(uuid.uuid5(_NAMESPACE, f"{alert}|{state}|{ts}"))


@dataclass(frozen=True, slots=True)
class Transition:
    """One change of an episode's state."""

    rule: Rule
    subject: str
    tf: str
    method: HedgeMethod | None
    state: State
    ts: int
    started_ts: int
    value: float | None
    threshold: float | None
    message: str
    alert_id: str
    event_id: str

    def to_message(self, ts_init: int) -> Alert:
        """The ``alerts`` topic message of this transition."""
        return Alert(
            alert_id=self.alert_id,
            event_id=self.event_id,
            rule_id=self.rule.id,
            rule_version=self.rule.version,
            state=self.state,
            severity=self.rule.severity,
            kind=self.rule.condition.kind,
            subject=self.subject,
            tf=self.tf,
            method=self.method,
            value=self.value,
            threshold=self.threshold,
            started_ts=self.started_ts,
            labels=dict(self.rule.labels),
            ts_event=self.ts,
            ts_init=ts_init,
            message=self.message,
        )


# ---------------------------------------------------------------------------- per-rule state


@dataclass(slots=True)
class _RuleState:
    """Where one rule stands on one subject; ``copy()`` is its snapshot."""

    firing: bool = False
    started_ts: int = 0
    streak: int = 0
    last_ts: int | None = None  # last evaluated bar
    last_fire_ts: int | None = None
    prev: float | None = None  # previous evaluated value (crossings, returns)
    window: deque[float] = field(default_factory=deque)
    count: int = 0  # consecutive tests (cointegration)
    tests_ts: float | None = None
    seen_ts: int | None = None  # last bar with the rule's input (an evaluation or not)

    def reset(self) -> None:
        """Start afresh after a gap in the input, keeping the cooldown and the last test."""
        last_fire, tests_ts = self.last_fire_ts, self.tests_ts
        self.__init__()  # type: ignore[misc]
        self.last_fire_ts, self.tests_ts = last_fire, tests_ts

    def copy(self) -> _RuleState:
        return _RuleState(
            self.firing,
            self.started_ts,
            self.streak,
            self.last_ts,
            self.last_fire_ts,
            self.prev,
            deque(self.window, maxlen=self.window.maxlen),
            self.count,
            self.tests_ts,
            self.seen_ts,
        )


Outcome = tuple[bool | None, float | None, float | None]  # holds?, value, threshold


def _check(rule: Rule, values: Values, st: _RuleState) -> Outcome:
    """Evaluate ``rule``'s condition on one row, updating the state it keeps."""
    c = rule.condition
    match c:
        case Threshold():
            v = values.get(c.field)
            if v is None:
                return None, None, None
            prev, st.prev = st.prev, v
            if c.op == "outside":
                assert c.lo is not None
                assert c.hi is not None
                return v <= c.lo or v >= c.hi, v, c.hi if v >= c.hi else c.lo
            if c.op == "inside":
                assert c.lo is not None
                assert c.hi is not None
                return c.lo <= v <= c.hi, v, c.hi if v > (c.lo + c.hi) / 2 else c.lo
            t = c.value
            assert t is not None
            if c.op == ">":
                return v > t, v, t
            if c.op == ">=":
                return v >= t, v, t
            if c.op == "<":
                return v < t, v, t
            if c.op == "<=":
                return v <= t, v, t
            if c.op == "cross_above":
                return prev is not None and prev <= t < v, v, t
            return prev is not None and prev >= t > v, v, t  # cross_below
        case CorrelationBreak():
            v = values.get("correlation")
            if v is None:
                return None, None, None
            if c.below is not None:
                return v < c.below, v, c.below
            assert c.drop is not None
            window = st.window
            if window.maxlen != c.bars:
                window = st.window = deque(window, maxlen=c.bars)
            full = len(window) == c.bars
            level = sum(window) / len(window) - c.drop if full else None
            window.append(v)
            return (None, v, None) if level is None else (v <= level, v, level)
        case Cointegration():
            p = values.get("adf_pvalue" if c.test == "adf" else "coint_pvalue")
            tests_ts = values.get("tests_ts")
            if p is None or tests_ts is None:
                return None, None, None
            if tests_ts == st.tests_ts:
                return None, p, None  # the same test carried to this bar
            st.tests_ts = tests_ts
            bad = p > c.level if c.event == "lost" else p < c.level
            st.count = st.count + 1 if bad else 0
            return st.count >= c.tests, p, c.level
        case Spike():
            if c.kind == "volatility_spike":
                close = values.get("close")
                if close is None:
                    return None, None, None
                prev, st.prev = st.prev, close
                if prev is None:
                    return None, None, None
                v = abs(math.log(close / prev))
            else:
                volume = values.get("volume")
                if volume is None:
                    return None, None, None
                v = volume
            window = st.window
            if window.maxlen != c.bars:
                window = st.window = deque(window, maxlen=c.bars)
            median = statistics.median(window) if len(window) == c.bars else None
            window.append(v)
            if not median:  # too little history, or a flat market: no scale to compare with
                return None, v, None
            return v > c.factor * median, v, c.factor * median
        case HedgeJump():
            beta = values.get("hedge_ratio")
            if beta is None:
                return None, None, None
            window = st.window
            if window.maxlen != c.bars + 1:
                window = st.window = deque(window, maxlen=c.bars + 1)
            window.append(beta)
            if len(window) <= c.bars or window[0] == 0:
                return None, None, None
            jump = abs(beta - window[0]) / abs(window[0])
            return jump > c.relative, jump, c.relative
        case HalfLife():
            v = values.get("half_life")
            if v is None:
                return None, None, None
            return v < c.lo or v > c.hi, v, c.hi if v > c.hi else c.lo
        case Custom():
            return c.compiled.evaluate(values), None, None
        case Stale():
            return None, None, None


Check = Callable[[Values, "_RuleState"], Outcome]


def compile_check(rule: Rule) -> Check:
    """``rule``'s condition as one function; thresholds specialised (the hot path)."""
    c = rule.condition
    if not isinstance(c, Threshold) or c.op in ("cross_above", "cross_below"):
        return lambda values, st: _check(rule, values, st)
    name = c.field
    if c.op in ("outside", "inside"):
        lo, hi = c.lo, c.hi
        assert lo is not None
        assert hi is not None
        if c.op == "outside":

            def outside(values: Values, st: _RuleState) -> Outcome:
                v = values.get(name)
                if v is None:
                    return _NULL
                st.prev = v
                if v >= hi:
                    return True, v, hi
                return v <= lo, v, lo

            return outside
        mid = (lo + hi) / 2

        def inside(values: Values, st: _RuleState) -> Outcome:
            v = values.get(name)
            if v is None:
                return _NULL
            st.prev = v
            return lo <= v <= hi, v, hi if v > mid else lo

        return inside
    t = c.value
    assert t is not None
    compare = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}[c.op]

    def one_sided(values: Values, st: _RuleState) -> Outcome:
        v = values.get(name)
        if v is None:
            return _NULL
        st.prev = v
        return compare(float(v), t), v, t

    return one_sided


_NULL: Outcome = (None, None, None)


def _cleared(rule: Rule, value: float | None) -> bool:
    """Whether a value is back beyond the rule's ``clear`` level (always, without one)."""
    clear = rule.clear
    c = rule.condition
    if clear is None or value is None or not isinstance(c, Threshold):
        return True
    if isinstance(clear, tuple):
        lo, hi = clear
        return lo <= value <= hi if c.op == "outside" else (value <= lo or value >= hi)
    if c.op in (">", ">=", "cross_above"):
        return value <= clear
    return value >= clear


def _describe(rule: Rule, value: float | None, threshold: float | None, state: State) -> str:
    c = rule.condition
    if state == "nodata":
        return f"{rule.name}: no input for more than {rule.nodata_bars} bars"
    resolved = state == "resolved"
    verb = "resolved" if resolved else "firing"
    if isinstance(c, Custom):
        return f"{rule.name} {verb}: {'no longer ' if resolved else ''}{c.expr}"
    shown = "?" if value is None else f"{value:.6g}"
    if isinstance(c, Threshold):  # "zscore 1.97, no longer outside [-2, 2]"
        bounds = f"[{c.lo:g}, {c.hi:g}]" if c.value is None else f"{c.value:g}"
        what = f"{c.field} {shown}{', no longer' if resolved else ''} {c.op} {bounds}"
    else:
        level = "" if threshold is None else f" (level {threshold:.6g})"
        what = f"{c.kind} {shown}{level}" + (", no longer met" if resolved else "")
    return f"{rule.name} {verb}: {what}"


# ---------------------------------------------------------------------------- per-subject feed


@dataclass(slots=True)
class _Silent:
    """When a subject of a ``stale`` rule was last heard of, and its firing episode."""

    seen_ms: int
    last_ts: int
    firing: tuple[str, int] | None  # alert id, bar ts it started after


@dataclass(slots=True)
class _Group:
    """The rules of one subject that read the same sources, evaluated row by row together."""

    sources: frozenset[Source]
    rules: list[Rule]
    states: list[_RuleState]
    cursor: int | None = None  # last row considered
    checks: list[Check] = field(default_factory=list)
    rows_done: int = 0
    snapshots: deque[tuple[int, list[_RuleState]]] = field(
        default_factory=lambda: deque(maxlen=SNAPSHOTS_KEPT)
    )


@dataclass(slots=True)
class _Feed:
    """The rows of one (subject, tf, method) and the rules watching it."""

    kind: SubjectKind
    subject: str
    tf: str
    tf_ms: int
    method: HedgeMethod | None
    rules_seen: RuleSet | None = None
    groups: list[_Group] = field(default_factory=list)
    stale: tuple[Rule, ...] = ()  # the wall-clock rules watching it
    ts: list[int] = field(default_factory=list)
    rows: dict[int, dict[str, float | None]] = field(default_factory=dict)
    delivered: dict[Source, int] = field(default_factory=dict)
    emitted: dict[str, int] = field(default_factory=dict)  # event id → ts, while rows are kept


def _sources(rule: Rule) -> frozenset[Source]:
    return frozenset(SOURCE_OF[name] for name in condition_fields(rule.condition))


class AlertEngine:
    """Evaluates rules over analytics and bars; every ``on_*`` returns the transitions."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules = RuleSet(tuple(rules))
        self._feeds: dict[tuple[str, str, HedgeMethod | None], _Feed] = {}
        self._stale: dict[tuple[str, str, str], _Silent] = {}
        self.evaluations = 0
        self.revisions = 0
        self.revisions_too_old = 0
        self.duplicates = 0
        self.rows_dropped = 0
        self._checks: dict[tuple[str, int], Check] = {}
        self._check_rules: dict[tuple[str, int], Rule] = {}

    # ------------------------------------------------------------------ rules

    def set_rules(self, rules: Iterable[Rule]) -> list[Transition]:
        """Replace the rule set. A changed rule (new version) starts new episodes; a firing
        episode of a removed or changed rule is resolved at its last bar."""
        new = RuleSet(tuple(rules))
        keep = {(r.id, r.version) for r in new.rules if r.enabled}
        out: list[Transition] = []
        for feed in self._feeds.values():
            for group in feed.groups:
                for rule, st in zip(group.rules, group.states, strict=True):
                    gone = (rule.id, rule.version) not in keep
                    if gone and st.firing and st.last_ts is not None:
                        end = self._transition(feed, rule, st, "resolved", st.last_ts, None, None)
                        out.append(end)
        self.rules = new
        return out

    # ------------------------------------------------------------------ checkpoints

    def firing(self) -> int:
        """Episodes firing now (summed over every rule state: for a metric scrape)."""
        stale = sum(s.firing is not None for s in self._stale.values())
        return stale + sum(
            st.firing for feed in self._feeds.values() for g in feed.groups for st in g.states
        )

    def feeds(self) -> list[str]:
        """The keys of every feed the engine holds."""
        return [feed_key(*key) for key in self._feeds]

    def export_feed(self, key: str) -> bytes:
        """One feed's state (see :class:`FeedState`), msgpack-encoded."""
        subject, tf, method = key.split("|")
        feed = self._feeds[(subject, tf, cast(HedgeMethod, method or None))]
        cursors = [g.cursor for g in feed.groups]
        first = None if None in cursors else min(cursors, default=None)  # type: ignore[type-var]
        rows = [(ts, dict(feed.rows[ts])) for ts in feed.ts if first is None or ts > first]
        groups = [
            (
                sorted(g.sources),
                g.cursor,
                [
                    (r.id, r.version, _state_tuple(st))
                    for r, st in zip(g.rules, g.states, strict=True)
                ],
            )
            for g in feed.groups
        ]
        state = FeedState(
            feed.kind, feed.subject, feed.tf, feed.method, dict(feed.delivered), rows, groups
        )
        return _FEED_ENCODER.encode(state)

    def import_feed(self, data: bytes) -> str:
        """Restore a feed from :meth:`export_feed`; states of rules that changed since are
        dropped. Returns its key."""
        s = _FEED_DECODER.decode(data)
        feed = _Feed(s.kind, s.subject, s.tf, timeframe_ms(s.tf), s.method)
        feed.delivered = dict(s.delivered)
        for ts, values in s.rows:
            feed.rows[ts] = values
            feed.ts.append(ts)
        feed.ts.sort()
        rules = {(r.id, r.version): r for r in self.rules.rules}
        for sources, cursor, members in s.groups:
            group = _Group(frozenset(sources), [], [], cursor)
            for rule_id, version, state in members:
                rule = rules.get((rule_id, version))
                if rule is not None:
                    group.rules.append(rule)
                    group.states.append(_state_from(state))
                    group.checks.append(self._compiled(rule))
            feed.groups.append(group)
        self._feeds[(s.subject, s.tf, s.method)] = feed
        self._regroup(feed)
        return feed_key(s.subject, s.tf, s.method)

    def drop_feed(self, key: str) -> None:
        """Forget a feed and its wall-clock watch (its partition went to another worker)."""
        subject, tf, method = key.split("|")
        self._feeds.pop((subject, tf, cast(HedgeMethod, method or None)), None)
        for stale in [k for k in self._stale if k[1] == subject and k[2] == tf]:
            del self._stale[stale]

    # ------------------------------------------------------------------ inputs

    def on_spread(self, m: SpreadUpdate, wall_ms: int | None = None) -> list[Transition]:
        """An ``analytics.spread`` message (``wall_ms``: when it arrived, for stale rules)."""
        values = {name: getattr(m, name) for name in FIELDS["spread"]}
        return self.on_values("spread", "pair", m.pair, m.tf, m.method, m.ts, values, wall_ms)

    def on_zscore(self, m: ZScoreUpdate, wall_ms: int | None = None) -> list[Transition]:
        """An ``analytics.zscore`` message."""
        values = {name: getattr(m, name) for name in FIELDS["zscore"]}
        return self.on_values("zscore", "pair", m.pair, m.tf, m.method, m.ts, values, wall_ms)

    def on_stats(self, m: StatsUpdate, wall_ms: int | None = None) -> list[Transition]:
        """An ``analytics.stats`` message."""
        values: dict[str, float | None] = {name: getattr(m, name) for name in FIELDS["stats"]}
        values["tests_ts"] = m.tests_ts
        return self.on_values("stats", "pair", m.pair, m.tf, m.method, m.ts, values, wall_ms)

    def on_bar(self, bar: Bar, wall_ms: int | None = None) -> list[Transition]:
        """A final bar of ``bars.<tf>`` (forming bars are ignored)."""
        if not bar.final:
            return []
        values: dict[str, float | None] = {name: getattr(bar, name) for name in FIELDS["bar"]}
        subject = f"{bar.market}:{bar.symbol}"
        return self.on_values(
            "bar", "instrument", subject, bar.tf, None, bar.start, values, wall_ms
        )

    def on_values(
        self,
        source: Source,
        kind: SubjectKind,
        subject: str,
        tf: str,
        method: HedgeMethod | None,
        ts: int,
        values: Mapping[str, float | None],
        wall_ms: int | None = None,
    ) -> list[Transition]:
        """One source's fields of the row ``ts`` of (``subject``, ``tf``, ``method``)."""
        feed = self._feed(kind, subject, tf, method)
        if wall_ms is not None:
            self._seen_live(feed, ts, wall_ms)
        last = feed.delivered.get(source)
        revised = last is not None and ts <= last
        row = feed.rows.get(ts)
        if row is None:
            if len(feed.ts) >= ROWS_KEPT:
                self._prune(feed, force=True)
            row = feed.rows[ts] = {}
            bisect.insort(feed.ts, ts)
        elif revised and all(row.get(k, _MISSING) == v for k, v in values.items()):
            self.duplicates += 1  # delivered again as it was (a producer retry): nothing to do
            return []
        row.update(values)
        out: list[Transition] = []
        if revised:
            self.revisions += 1
            for group in feed.groups:
                if source in group.sources and group.cursor is not None and ts <= group.cursor:
                    self._rewind(feed, group, ts)
        else:
            feed.delivered[source] = ts
        for group in feed.groups:
            self._advance(feed, group, out)
        if len(feed.ts) > 2 * SNAPSHOT_EVERY * SNAPSHOTS_KEPT:
            self._prune(feed)
        return out

    # ------------------------------------------------------------------ wall clock

    def _seen_live(self, feed: _Feed, ts: int, wall_ms: int) -> None:
        for rule in feed.stale:
            key = (rule.id, feed.subject, feed.tf)
            old = self._stale.get(key)
            self._stale[key] = _Silent(wall_ms, ts, None if old is None else old.firing)

    def on_clock(self, now_ms: int) -> list[Transition]:
        """``stale`` rules against the wall clock: fire when a subject has been silent for
        ``seconds``, resolve on its next input (also checked here)."""
        out: list[Transition] = []
        by_id = {r.id: r for r in self.rules.rules if r.enabled}
        for key, silent in list(self._stale.items()):
            rule = by_id.get(key[0])
            if rule is None or not isinstance(rule.condition, Stale):
                del self._stale[key]
                continue
            quiet_s = (now_ms - silent.seen_ms) / 1000
            if (quiet_s > rule.condition.seconds) == (silent.firing is not None):
                continue
            if silent.firing is None:
                started = silent.last_ts
                aid = alert_id(rule, key[1], key[2], None, started)
                message = f"{rule.name}: no analytics for {quiet_s:.0f} s (wall clock)"
                out.append(
                    self._stale_transition(
                        rule, key, "firing", now_ms, started, quiet_s, aid, message
                    )
                )
                silent.firing = (aid, started)
            else:
                aid, started = silent.firing
                message = f"{rule.name} resolved: analytics again"
                out.append(
                    self._stale_transition(
                        rule, key, "resolved", now_ms, started, None, aid, message
                    )
                )
                silent.firing = None
        return out

    @staticmethod
    def _stale_transition(
        rule: Rule,
        key: tuple[str, str, str],
        state: State,
        now_ms: int,
        started: int,
        value: float | None,
        aid: str,
        message: str,
    ) -> Transition:
        assert isinstance(rule.condition, Stale)
        return Transition(
            rule, key[1], key[2], None, state, now_ms, started, value,
            rule.condition.seconds, message, aid, event_id(aid, state, now_ms),
        )  # fmt: skip

    # ------------------------------------------------------------------ machinery

    def _feed(self, kind: SubjectKind, subject: str, tf: str, method: HedgeMethod | None) -> _Feed:
        key = (subject, tf, method)
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = _Feed(kind, subject, tf, timeframe_ms(tf), method)
        if feed.rules_seen is not self.rules:
            self._regroup(feed)
        return feed

    def _compiled(self, rule: Rule) -> Check:
        key = (rule.id, rule.version)
        check = self._checks.get(key)
        if check is None or self._check_rules.get(key) is not rule:
            check = self._checks[key] = compile_check(rule)
            self._check_rules[key] = rule
        return check

    def _regroup(self, feed: _Feed) -> None:
        """Match the current rules to a feed, keeping the state of unchanged rules."""
        old: dict[tuple[str, int], tuple[_RuleState, _Group]] = {}
        for group in feed.groups:
            for rule, st in zip(group.rules, group.states, strict=True):
                old[(rule.id, rule.version)] = (st, group)
        cursors = {g.sources: g.cursor for g in feed.groups}  # a kept group keeps its place
        groups: dict[frozenset[Source], _Group] = {}
        stale: list[Rule] = []
        for rule in self.rules.for_subject(feed.kind, feed.subject):
            if rule.tf == feed.tf and isinstance(rule.condition, Stale):
                stale.append(rule)
            if rule.tf != feed.tf or isinstance(rule.condition, Stale):
                continue
            if feed.kind == "pair" and rule.method != feed.method:
                continue
            sources = _sources(rule)
            kept = old.get((rule.id, rule.version))
            target = groups.get(sources)
            if target is None:
                target = groups[sources] = _Group(sources, [], [], None)
                target.cursor = cursors.get(sources, _frontier(feed, sources))
            target.rules.append(rule)
            target.states.append(kept[0] if kept is not None else _RuleState())
            target.checks.append(self._compiled(rule))
        feed.groups = list(groups.values())
        feed.stale = tuple(stale)
        feed.rules_seen = self.rules

    def _advance(self, feed: _Feed, group: _Group, out: list[Transition] | None) -> None:
        """Evaluate the rows every source of the group has reached."""
        delivered = feed.delivered
        frontier = min((delivered.get(s) for s in group.sources), default=None, key=_none_low)
        if frontier is None:
            return
        lo = 0 if group.cursor is None else bisect.bisect_right(feed.ts, group.cursor)
        hi = bisect.bisect_right(feed.ts, frontier)
        for ts in feed.ts[lo:hi]:
            if group.rows_done % SNAPSHOT_EVERY == 0:
                group.snapshots.append((ts, [st.copy() for st in group.states]))
            group.rows_done += 1
            row = feed.rows[ts]
            for rule, st, check in zip(group.rules, group.states, group.checks, strict=True):
                self._evaluate(feed, rule, st, ts, row, out, check)
            group.cursor = ts

    def _evaluate(
        self,
        feed: _Feed,
        rule: Rule,
        st: _RuleState,
        ts: int,
        row: Values,
        out: list[Transition] | None,
        check: Check,
    ) -> None:
        if st.seen_ts is not None and ts - st.seen_ts > rule.nodata_bars * feed.tf_ms:
            gap_ts = st.seen_ts + rule.nodata_bars * feed.tf_ms
            if st.firing and out is not None:
                _emit(feed, out, self._transition(feed, rule, st, "nodata", gap_ts, None, None))
            st.reset()
        holds, value, threshold = check(row, st)
        if holds is None:
            if isinstance(rule.condition, Cointegration) and value is not None:
                st.seen_ts = ts  # a test carried from an earlier bar: input, not an evaluation
            return
        st.seen_ts = ts
        self.evaluations += 1
        st.last_ts = ts
        if holds:
            st.streak += 1
            cooled = st.last_fire_ts is None or ts >= st.last_fire_ts + rule.cooldown * 1000
            if not st.firing and st.streak >= rule.for_bars and cooled:
                st.firing = True
                st.started_ts = ts
                st.last_fire_ts = ts
                if out is not None:
                    change = self._transition(feed, rule, st, "firing", ts, value, threshold)
                    _emit(feed, out, change)
        else:
            st.streak = 0
            if st.firing and _cleared(rule, value):
                if out is not None:
                    change = self._transition(feed, rule, st, "resolved", ts, value, threshold)
                    _emit(feed, out, change)
                st.firing = False

    def _transition(
        self,
        feed: _Feed,
        rule: Rule,
        st: _RuleState,
        state: State,
        ts: int,
        value: float | None,
        threshold: float | None,
    ) -> Transition:
        aid = alert_id(rule, feed.subject, feed.tf, feed.method, st.started_ts)
        return Transition(
            rule, feed.subject, feed.tf, feed.method, state, ts, st.started_ts, value, threshold,
            _describe(rule, value, threshold, state), aid, event_id(aid, state, ts),
        )  # fmt: skip

    def _rewind(self, feed: _Feed, group: _Group, ts: int) -> None:
        """Put the group back to just before row ``ts`` (a revision)."""
        if not group.snapshots or group.snapshots[0][0] > ts:
            self.revisions_too_old += 1  # older than what is kept: not re-evaluated
            return
        while group.snapshots[-1][0] > ts:
            group.snapshots.pop()
        snap_ts, states = group.snapshots[-1]
        group.states = [st.copy() for st in states]
        before = bisect.bisect_left(feed.ts, snap_ts)
        group.cursor = feed.ts[before - 1] if before > 0 else None
        group.rows_done = 0
        replay_to = feed.ts[bisect.bisect_left(feed.ts, ts) - 1] if ts > snap_ts else None
        if replay_to is not None:
            saved = feed.delivered
            feed.delivered = dict.fromkeys(group.sources, replay_to)
            try:
                self._advance(feed, group, None)  # rows before the revision: already emitted
            finally:
                feed.delivered = saved

    def _prune(self, feed: _Feed, *, force: bool = False) -> None:
        """Drop rows no group needs (for evaluation or for a rewind); ``force``: the oldest."""
        keep_from: int | None = None
        for group in feed.groups:
            need = group.snapshots[0][0] if group.snapshots else None
            if group.cursor is None:
                need = feed.ts[0] if feed.ts else None
            elif need is None:
                need = group.cursor + 1
            if need is not None:
                keep_from = need if keep_from is None else min(keep_from, need)
        cut = len(feed.ts) if keep_from is None else bisect.bisect_left(feed.ts, keep_from)
        if force:
            forced = max(cut, len(feed.ts) // 4)
            self.rows_dropped += forced - cut  # rows a lagging source never reached
            cut = forced
        if cut:
            for ts in feed.ts[:cut]:
                del feed.rows[ts]
            del feed.ts[:cut]
            first = feed.ts[0] if feed.ts else None
            feed.emitted = {
                eid: ts for eid, ts in feed.emitted.items() if first is not None and ts >= first
            }


def _emit(feed: _Feed, out: list[Transition], change: Transition) -> None:
    """Add a transition unless it was emitted before (re-derived after a revision)."""
    if change.event_id not in feed.emitted:
        feed.emitted[change.event_id] = change.ts
        out.append(change)


def _frontier(feed: _Feed, sources: frozenset[Source]) -> int | None:
    """The last row every one of ``sources`` has reached (None: one has not started)."""
    reached = [feed.delivered.get(s) for s in sources]
    return None if None in reached else min(r for r in reached if r is not None)


def _none_low(value: int | None) -> float:
    return -math.inf if value is None else value


# ---------------------------------------------------------------------------- checkpoints


class FeedState(msgspec.Struct, frozen=True, array_like=True):
    """A feed as stored with the outputs: enough to continue exactly where it stopped
    (rows not yet evaluated, per-rule state); revision snapshots are not kept."""

    kind: SubjectKind
    subject: str
    tf: str
    method: HedgeMethod | None
    delivered: dict[Source, int]
    rows: list[tuple[int, dict[str, float | None]]]
    groups: list[tuple[list[Source], int | None, list[tuple[str, int, tuple[Any, ...]]]]]


def _state_tuple(st: _RuleState) -> tuple[Any, ...]:
    return (
        st.firing, st.started_ts, st.streak, st.last_ts, st.last_fire_ts, st.prev,
        list(st.window), st.window.maxlen, st.count, st.tests_ts, st.seen_ts,
    )  # fmt: skip


def _state_from(t: Sequence[Any]) -> _RuleState:
    window: deque[float] = deque(t[6], maxlen=t[7])
    seen = t[10] if len(t) > 10 else t[3]  # states stored before seen_ts: the last evaluation
    return _RuleState(t[0], t[1], t[2], t[3], t[4], t[5], window, t[8], t[9], seen)


_FEED_ENCODER = msgspec.msgpack.Encoder()
_FEED_DECODER = msgspec.msgpack.Decoder(FeedState)


def feed_key(subject: str, tf: str, method: str | None) -> str:
    """The name a feed is stored under."""
    return f"{subject}|{tf}|{method or ''}"
