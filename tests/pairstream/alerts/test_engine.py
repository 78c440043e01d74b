"""The alert engine's lifecycle and conditions on hand-made sequences (1s bars)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from pairstream.alerts.engine import AlertEngine, Transition
from pairstream.alerts.rules import Rule
from pairstream.messages import Bar, SpreadUpdate, StatsUpdate, ZScoreUpdate

PAIR = "usdm:BTCUSDT-usdm:ETHUSDT"
T0 = 1_720_000_000_000
S = 1_000


def rule(condition: dict[str, Any], **fields: Any) -> Rule:
    base: dict[str, Any] = {"id": "r1", "name": "test rule", "subject": PAIR, "tf": "1s"}
    return Rule.model_validate({**base, "condition": condition, **fields})


def z_rule(op: str = "outside", **fields: Any) -> Rule:
    levels = {"lo": -2, "hi": 2} if op in ("outside", "inside") else {"value": 2}
    return rule({"kind": "threshold", "field": "zscore", "op": op, **levels}, **fields)


def feed(
    engine: AlertEngine, values: Sequence[float | None], field: str = "zscore", start: int = 0
) -> list[Transition]:
    """One zscore-source row per second from T0 + start seconds."""
    out: list[Transition] = []
    source = "zscore" if field in ("zscore", "mean", "std") else "stats"
    for i, v in enumerate(values):
        ts = T0 + (start + i) * S
        out += engine.on_values(source, "pair", PAIR, "1s", "ols", ts, {field: v})  # type: ignore[arg-type]
    return out


def states(transitions: Iterable[Transition]) -> list[tuple[str, int]]:
    """(state, seconds after T0) of each transition."""
    return [(t.state, (t.ts - T0) // S) for t in transitions]


# ---------------------------------------------------------------- thresholds


def test_outside_holds_at_exactly_the_bounds() -> None:
    engine = AlertEngine([z_rule("outside")])
    assert states(feed(engine, [1.999, 2.0, 0.0, -1.999, -2.0])) == [
        ("firing", 1),
        ("resolved", 2),
        ("firing", 4),
    ]


def test_inside_holds_on_the_closed_range() -> None:
    engine = AlertEngine([z_rule("inside")])
    assert states(feed(engine, [3.0, 2.0, 2.5, -2.0, -2.01])) == [
        ("firing", 1),
        ("resolved", 2),
        ("firing", 3),
        ("resolved", 4),
    ]


@pytest.mark.parametrize(
    ("op", "values", "expected"),
    [
        (">", [2.0, 2.01], [("firing", 1)]),
        (">=", [1.99, 2.0], [("firing", 1)]),
        ("<", [2.0, 1.99], [("firing", 1)]),
        ("<=", [2.01, 2.0], [("firing", 1)]),
    ],
)
def test_one_sided_thresholds_at_the_boundary(
    op: str, values: list[float], expected: list[tuple[str, int]]
) -> None:
    assert states(feed(AlertEngine([z_rule(op)]), values)) == expected


def test_cross_above_needs_the_previous_value_at_or_below_and_this_one_above() -> None:
    engine = AlertEngine([z_rule("cross_above")])
    # 2.5 first: no previous value, not a crossing; 2.0 is not above; 2.0 → 2.01 crosses
    assert states(feed(engine, [2.5, 1.0, 2.0, 2.01, 3.0, 1.0, 2.5])) == [
        ("firing", 3),
        ("resolved", 4),
        ("firing", 6),
    ]


def test_cross_below_mirrors_cross_above() -> None:
    engine = AlertEngine([z_rule("cross_below")])
    assert states(feed(engine, [1.0, 3.0, 2.0, 1.99])) == [("firing", 3)]


def test_the_first_bar_after_a_gap_is_never_a_crossing() -> None:
    engine = AlertEngine([z_rule("cross_above", nodata_bars=5)])
    out = feed(engine, [1.0, 1.5])
    out += feed(engine, [2.5], start=20)  # 19 bars missing: the 1.5 before it is forgotten
    assert out == []


# ---------------------------------------------------------------- lifecycle


def test_for_bars_interrupted_by_one_false_bar_starts_counting_again() -> None:
    engine = AlertEngine([z_rule(">", for_bars=3)])
    out = feed(engine, [3, 3, 1, 3, 3, 3, 3])
    assert states(out) == [("firing", 5)]
    assert out[0].started_ts == T0 + 5 * S


def test_null_values_are_not_evaluations() -> None:
    engine = AlertEngine([z_rule(">", for_bars=2)])
    # the nulls neither break the streak nor resolve the firing alert
    assert states(feed(engine, [3, None, 3, None, None, 1])) == [("firing", 2), ("resolved", 5)]


def test_hysteresis_resolves_only_back_beyond_clear() -> None:
    engine = AlertEngine([z_rule(">", clear=1.0)])
    assert states(feed(engine, [2.5, 1.5, 1.0001, 3.0, 1.0])) == [("firing", 0), ("resolved", 4)]


def test_hysteresis_on_a_range() -> None:
    engine = AlertEngine([z_rule("outside", clear=[-1, 1])])
    assert states(feed(engine, [-2.5, -1.5, -1.0])) == [("firing", 0), ("resolved", 2)]


def test_cooldown_allows_the_next_fire_at_exactly_last_fire_plus_cooldown() -> None:
    engine = AlertEngine([z_rule(">", cooldown="10s")])
    values = [3.0, 1.0] + [3.0] * 9  # true again from second 2; cooldown ends at second 10
    assert states(feed(engine, values)) == [("firing", 0), ("resolved", 1), ("firing", 10)]


def test_while_firing_nothing_new_is_raised() -> None:
    engine = AlertEngine([z_rule(">")])
    assert states(feed(engine, [3.0] * 50)) == [("firing", 0)]


def test_missing_input_for_more_than_nodata_bars_ends_a_firing_episode_as_nodata() -> None:
    engine = AlertEngine([z_rule(">", nodata_bars=3)])
    out = feed(engine, [3.0, 3.0]) + feed(engine, [3.0], start=5)
    assert states(out) == [("firing", 0), ("nodata", 4), ("firing", 5)]
    assert out[0].alert_id == out[1].alert_id != out[2].alert_id


def test_a_gap_of_exactly_nodata_bars_is_not_nodata() -> None:
    engine = AlertEngine([z_rule(">", nodata_bars=3)])
    assert states(feed(engine, [3.0]) + feed(engine, [3.0], start=3)) == [("firing", 0)]


# ---------------------------------------------------------------- ids and rule changes


def test_the_same_input_gives_the_same_ids() -> None:
    values = [0.0, 2.5, 0.0, -3.0, 0.0]
    first = feed(AlertEngine([z_rule()]), values)
    second = feed(AlertEngine([z_rule()]), values)
    assert [(t.alert_id, t.event_id) for t in first] == [(t.alert_id, t.event_id) for t in second]
    assert len({t.alert_id for t in first}) == 2
    assert len({t.event_id for t in first}) == 4


def test_a_new_rule_version_starts_new_episodes_and_resolves_the_old_one() -> None:
    engine = AlertEngine([z_rule(">")])
    fired = feed(engine, [3.0, 3.0])
    ended = engine.set_rules([z_rule(">", version=2, for_bars=1)])
    assert states(ended) == [("resolved", 1)]
    assert ended[0].alert_id == fired[0].alert_id
    again = feed(engine, [3.0], start=2)
    assert states(again) == [("firing", 2)]
    assert again[0].rule.version == 2
    assert again[0].alert_id != fired[0].alert_id


def test_an_unchanged_rule_keeps_its_state_across_a_rule_set_change() -> None:
    engine = AlertEngine([z_rule(">", for_bars=3)])
    feed(engine, [3.0, 3.0])
    other = z_rule(">", id="r2")
    assert engine.set_rules([z_rule(">", for_bars=3), other]) == []
    out = feed(engine, [3.0], start=2)
    assert [(t.rule.id, t.state) for t in out] == [("r1", "firing"), ("r2", "firing")]


def test_disabled_rules_do_not_evaluate() -> None:
    assert feed(AlertEngine([z_rule(">", enabled=False)]), [3.0]) == []


# ---------------------------------------------------------------- revisions


def test_a_revised_bar_re_evaluates_from_its_ts_and_emits_only_what_changed() -> None:
    engine = AlertEngine([z_rule(">")])
    original = feed(engine, [0.0] * 40 + [3.0, 0.0, 0.0, 3.0, 0.0])
    assert states(original) == [("firing", 40), ("resolved", 41), ("firing", 43), ("resolved", 44)]
    # bars 42-44 re-emitted, 42 revised to 3.0: a new episode from 42 to 44
    revised = feed(engine, [3.0, 3.0, 0.0], start=42)
    reference = feed(AlertEngine([z_rule(">")]), [0.0] * 40 + [3.0, 0.0, 3.0, 3.0, 0.0])
    assert states(reference) == [("firing", 40), ("resolved", 41), ("firing", 42), ("resolved", 44)]
    assert revised == reference[2:]
    assert (engine.revisions, engine.duplicates) == (1, 2)  # 43 and 44 came again unchanged


def test_re_emitted_bars_with_the_same_values_emit_nothing_again() -> None:
    engine = AlertEngine([z_rule(">")])
    values = [0.0] * 40 + [3.0, 0.0, 3.0]
    assert len(feed(engine, values)) == 3
    assert feed(engine, values[38:], start=38) == []


def test_a_revision_replays_the_bars_before_it_silently() -> None:
    rules = [z_rule(">", for_bars=3)]
    engine = AlertEngine(rules)
    feed(engine, [0.0] * 35 + [3.0, 3.0, 0.0, 3.0])
    revised = feed(engine, [3.0], start=37)  # 35, 36, 37 true: fires at 37
    assert states(revised) == [("firing", 37)]
    assert revised == feed(AlertEngine(rules), [0.0] * 35 + [3.0, 3.0, 3.0])[-1:]


# ---------------------------------------------------------------- joining topics


def spread(ts: int, beta: float) -> SpreadUpdate:
    return SpreadUpdate(
        pair=PAIR, tf="1s", ts=ts, method="ols", hedge_ratio=beta, intercept=0.0,
        spread=1.0, ts_event=ts + S, ts_init=ts + S,
    )  # fmt: skip


def zscore(ts: int, z: float) -> ZScoreUpdate:
    return ZScoreUpdate(
        pair=PAIR, tf="1s", ts=ts, window=60, spread=1.0, mean=0.0, std=1.0, zscore=z,
        ts_event=ts + S, ts_init=ts + S,
    )  # fmt: skip


def stats(ts: int, *, p: float | None = 0.01, half_life: float | None = 50.0,
          correlation: float | None = 0.9, tests_ts: int | None = None) -> StatsUpdate:  # fmt: skip
    return StatsUpdate(
        pair=PAIR, tf="1s", ts=ts, correlation=correlation, adf_stat=-4.0, adf_pvalue=p,
        half_life=half_life, coint_pvalue=p, tests_ts=tests_ts, ts_event=ts + S, ts_init=ts + S,
    )  # fmt: skip


EXPR = rule({"kind": "expression", "expr": "abs(zscore) > 2.5 && adf_pvalue < 0.05"})


def run_messages(engine: AlertEngine, messages: Iterable[object]) -> list[Transition]:
    out: list[Transition] = []
    for m in messages:
        if isinstance(m, SpreadUpdate):
            out += engine.on_spread(m)
        elif isinstance(m, ZScoreUpdate):
            out += engine.on_zscore(m)
        elif isinstance(m, StatsUpdate):
            out += engine.on_stats(m)
    return out


def test_an_expression_over_two_topics_gives_the_same_alerts_whatever_their_interleaving() -> None:
    zs = [zscore(T0 + i * S, z) for i, z in enumerate([0, 3, 3, 0, -3, -3, 0])]
    st = [stats(T0 + i * S, p=p) for i, p in enumerate([0.01, 0.01, 0.2, 0.01, 0.01, 0.01, 0.01])]
    zscores_first = run_messages(AlertEngine([EXPR]), zs + st)
    stats_first = run_messages(AlertEngine([EXPR]), st + zs)
    alternating = run_messages(
        AlertEngine([EXPR]), [m for pair in zip(zs, st, strict=False) for m in pair]
    )
    assert states(zscores_first) == [("firing", 1), ("resolved", 2), ("firing", 4), ("resolved", 6)]
    assert zscores_first == stats_first == alternating


def test_a_row_waits_only_for_the_sources_its_rule_reads() -> None:
    corr = rule({"kind": "correlation_break", "below": 0.5})
    engine = AlertEngine([corr, EXPR])
    out = run_messages(engine, [stats(T0, correlation=0.1)])  # no z-score yet (warming up)
    assert [(t.rule.id, t.state) for t in out] == [("r1", "firing")]


def test_rows_without_a_z_score_are_no_evaluation_for_rules_that_read_it() -> None:
    engine = AlertEngine([EXPR])
    warmup = [stats(T0 + i * S) for i in range(5)]  # the z-score window is still filling
    out = run_messages(engine, [*warmup, zscore(T0 + 5 * S, 3.0), stats(T0 + 5 * S)])
    assert states(out) == [("firing", 5)]


# ---------------------------------------------------------------- other kinds


def test_correlation_drop_from_its_mean_over_the_previous_bars() -> None:
    engine = AlertEngine([rule({"kind": "correlation_break", "drop": 0.2, "bars": 3})])
    # levels (mean of the 3 before, minus 0.2): bar 3 0.7, bar 4 0.6, bar 5 0.483
    values = [0.9, 0.9, 0.9, 0.6, 0.55, 0.9]
    assert states(feed(engine, values, field="correlation")) == [("firing", 3), ("resolved", 5)]


def test_correlation_below_a_level() -> None:
    engine = AlertEngine([rule({"kind": "correlation_break", "below": 0.5})])
    assert states(feed(engine, [0.5, 0.49, 0.5], field="correlation")) == [
        ("firing", 1),
        ("resolved", 2),
    ]


def test_cointegration_lost_after_n_consecutive_tests_above_the_level() -> None:
    engine = AlertEngine([rule({"kind": "cointegration", "event": "lost", "tests": 2})])
    # a test every second bar (tests_ts), carried on the bar between: p 0.2, 0.01, 0.2
    carried = [(0, 0.2, 0), (1, 0.2, 0), (2, 0.01, 2), (3, 0.01, 2), (4, 0.2, 4), (5, 0.2, 4)]
    msgs = [stats(T0 + i * S, p=p, tests_ts=T0 + t * S) for i, p, t in carried]
    assert run_messages(engine, msgs) == []  # never two tests in a row above 0.05
    assert states(run_messages(engine, [stats(T0 + 6 * S, p=0.3, tests_ts=T0 + 6 * S)])) == [
        ("firing", 6)
    ]


def test_cointegration_regained_below_the_level() -> None:
    engine = AlertEngine(
        [rule({"kind": "cointegration", "event": "regained", "test": "adf", "tests": 1})]
    )
    out = run_messages(
        engine, [stats(T0, p=0.2, tests_ts=T0), stats(T0 + S, p=0.01, tests_ts=T0 + S)]
    )
    assert states(out) == [("firing", 1)]


def test_half_life_outside_its_range() -> None:
    engine = AlertEngine([rule({"kind": "half_life", "lo": 5, "hi": 100})])
    assert states(feed(engine, [50, 5, 4.9, 50, 100.1], field="half_life")) == [
        ("firing", 2),
        ("resolved", 3),
        ("firing", 4),
    ]


def test_hedge_jump_relative_over_n_bars() -> None:
    engine = AlertEngine([rule({"kind": "hedge_jump", "relative": 0.1, "bars": 2})])
    out: list[Transition] = []
    for i, beta in enumerate([10.0, 10.5, 11.0, 11.5, 11.55]):  # 11 / 10 = +10 % exactly
        out += engine.on_spread(spread(T0 + i * S, beta))
    assert out == []
    out = engine.on_spread(spread(T0 + 5 * S, 12.8))  # 12.8 / 11.5 - 1 = 11.3 %
    assert states(out) == [("firing", 5)]


def bar(i: int, close: float, volume: float = 1.0) -> Bar:
    return Bar(
        market="spot", symbol="BTCUSDT", tf="1s", start=T0 + i * S, open=close, high=close,
        low=close, close=close, volume=volume, quote_volume=volume * close, trades=1, vwap=close,
        buy_volume=0.0, first_trade_id=i, last_trade_id=i, final=True, ts_event=T0 + (i + 1) * S,
        ts_init=T0 + (i + 1) * S,
    )  # fmt: skip


def instrument_rule(condition: dict[str, Any]) -> Rule:
    return rule(condition, subject="spot:BTCUSDT")


def test_volume_spike_against_the_median_of_the_previous_bars() -> None:
    engine = AlertEngine([instrument_rule({"kind": "volume_spike", "factor": 3, "bars": 3})])
    out: list[Transition] = []
    for i, volume in enumerate([1.0, 2.0, 1.0, 3.0, 9.1, 1.0]):  # medians 1, 2, 3 before 3, 4, 5
        out += engine.on_bar(bar(i, 100.0, volume))
    assert states(out) == [("firing", 4), ("resolved", 5)]


def test_volatility_spike_on_absolute_log_returns() -> None:
    engine = AlertEngine([instrument_rule({"kind": "volatility_spike", "factor": 5, "bars": 3})])
    closes = [100.0, 100.1, 100.0, 100.1, 100.0, 101.0]  # |r| ≈ 1e-3 then ≈ 1e-2
    out: list[Transition] = []
    for i, close in enumerate(closes):
        out += engine.on_bar(bar(i, close))
    assert states(out) == [("firing", 5)]


def test_forming_bars_are_ignored() -> None:
    engine = AlertEngine(
        [instrument_rule({"kind": "threshold", "field": "close", "op": ">", "value": 1})]
    )
    forming = bar(0, 100.0)
    assert (
        engine.on_bar(
            Bar(**{**{f: getattr(forming, f) for f in forming.__struct_fields__}, "final": False})
        )
        == []
    )
    assert states(engine.on_bar(forming)) == [("firing", 0)]


def test_stale_fires_on_the_wall_clock_and_resolves_on_new_input() -> None:
    engine = AlertEngine([rule({"kind": "stale", "seconds": 30})])
    wall = 1_800_000_000_000
    engine.on_values("stats", "pair", PAIR, "1s", "ols", T0, {"correlation": 0.5}, wall_ms=wall)
    assert engine.on_clock(wall + 30_000) == []
    fired = engine.on_clock(wall + 30_001)
    assert [(t.state, t.ts) for t in fired] == [("firing", wall + 30_001)]
    assert fired[0].started_ts == T0
    assert engine.on_clock(wall + 40_000) == []
    engine.on_values(
        "stats", "pair", PAIR, "1s", "ols", T0 + S, {"correlation": 0.5}, wall_ms=wall + 41_000
    )
    back = engine.on_clock(wall + 41_500)
    assert [(t.state, t.alert_id) for t in back] == [("resolved", fired[0].alert_id)]


# ---------------------------------------------------------------- checkpoints


def test_a_feed_exported_mid_stream_and_imported_into_a_new_engine_continues_exactly() -> None:
    rules = [
        EXPR,
        z_rule(">", id="streak", for_bars=3, cooldown="5s"),
        rule({"kind": "correlation_break", "drop": 0.1, "bars": 4}, id="corr"),
    ]
    zs = [zscore(T0 + i * S, z) for i, z in enumerate([0, 3, 3, 3, 0, 3, 3, 3, 3, -3, 0, 3])]
    st = [stats(T0 + i * S, correlation=0.9 - 0.05 * (i % 5)) for i in range(12)]
    messages: list[object] = [m for pair in zip(zs, st, strict=True) for m in pair]
    messages.insert(11, messages.pop(12))  # a row waits on its stats message at the cut
    whole = run_messages(AlertEngine(rules), messages)
    first = AlertEngine(rules)
    before = run_messages(first, messages[:12])
    saved = [first.export_feed(key) for key in first.feeds()]
    second = AlertEngine(rules)
    assert [second.import_feed(data) for data in saved] == first.feeds()
    after = run_messages(second, messages[12:])
    assert before + after == whole
    assert {t.rule.id for t in whole} == {"r1", "streak", "corr"}


def test_an_imported_feed_drops_the_state_of_a_rule_changed_since() -> None:
    engine = AlertEngine([z_rule(">", for_bars=2)])
    feed(engine, [3.0])
    (saved,) = [engine.export_feed(key) for key in engine.feeds()]
    fresh = AlertEngine([z_rule(">", for_bars=2, version=2)])
    fresh.import_feed(saved)
    assert feed(fresh, [3.0], start=1) == []  # its streak starts again under version 2


def test_firing_counts_the_episodes_firing_now() -> None:
    engine = AlertEngine([z_rule(">"), z_rule(">", id="r2", for_bars=2)])
    feed(engine, [3.0])
    assert engine.firing() == 1
    feed(engine, [3.0], start=1)
    assert engine.firing() == 2
    feed(engine, [0.0], start=2)
    assert engine.firing() == 0


# ---------------------------------------------------------------- found in review


def test_tests_carried_between_cadence_bars_are_input_so_cointegration_does_not_flap() -> None:
    engine = AlertEngine(
        [rule({"kind": "cointegration", "event": "lost", "tests": 1}, nodata_bars=5)]
    )
    msgs = [stats(T0 + i * S, p=0.5, tests_ts=T0 + (i // 10) * 10 * S) for i in range(40)]
    assert states(run_messages(engine, msgs)) == [("firing", 0)]  # no nodata every 10 bars


def test_a_rule_added_later_does_not_move_a_kept_rule_past_rows_its_slower_source_lacks() -> None:
    expr = rule({"kind": "expression", "expr": "zscore > 1 && spread > 0"}, id="z-old")
    engine = AlertEngine([expr])
    spreads = [spread(T0 + i * S, 1.0) for i in range(12)]
    zs = [zscore(T0 + i * S, 3.0 if i == 11 else 0.0) for i in range(12)]
    run_messages(engine, spreads + zs[:6])  # z-scores lag the spreads by 6 bars
    engine.set_rules([rule({"kind": "hedge_jump", "relative": 5.0}, id="a-new"), expr])
    assert [(t.rule.id, t.state) for t in run_messages(engine, zs[6:])] == [("z-old", "firing")]


def test_an_exported_feed_keeps_the_rows_a_lagging_rule_has_not_evaluated() -> None:
    rules = [
        rule({"kind": "hedge_jump", "relative": 5.0}, id="a"),
        rule({"kind": "expression", "expr": "zscore > 1 && spread > 0"}, id="b"),
    ]
    first = AlertEngine(rules)
    run_messages(first, [spread(T0 + i * S, 1.0) for i in range(3)])  # no z-score yet
    second = AlertEngine(rules)
    for key in first.feeds():
        second.import_feed(first.export_feed(key))
    out = run_messages(second, [zscore(T0 + i * S, 3.0) for i in range(3)])
    assert states(out) == [("firing", 0)]


def test_a_revision_older_than_the_snapshots_keeps_them_for_the_next_one() -> None:
    engine = AlertEngine([z_rule(">")])
    feed(engine, [0.0] * 1000)
    feed(engine, [3.0], start=10)  # long gone: counted, not re-evaluated
    assert engine.revisions_too_old == 1
    assert states(feed(engine, [3.0], start=995)) == [("firing", 995), ("resolved", 996)]
