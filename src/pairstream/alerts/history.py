"""Rules over stored history: the alert engine fed from the analytics and bar tables, in
bar order — what ``pairstream alerts test`` and the API's rule test show ("would this
rule have fired last week?"). The same engine as the live service, so the same input
gives the same alerts with the same ids."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from pairstream.alerts.engine import AlertEngine, Transition
from pairstream.alerts.rules import FIELDS, Rule, Source
from pairstream.instruments import split_instrument

_TABLES: dict[Source, str] = {
    "spread": "analytics_spread",
    "zscore": "analytics_zscore",
    "stats": "analytics_stats",
}


def _ts(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _ms(value: datetime) -> int:
    return round(value.timestamp() * 1000)


async def stored_subjects(conn: asyncpg.Connection, rule: Rule) -> list[str]:
    """The stored pairs (or instruments) at the rule's tf that its subject matches."""
    if rule.kind == "pair":
        rows = await conn.fetch(
            "SELECT DISTINCT pair AS s FROM analytics_spread WHERE tf = $1 AND method = $2",
            rule.tf,
            rule.method,
        )
    else:
        rows = await conn.fetch(
            "SELECT DISTINCT market || ':' || symbol AS s FROM bars WHERE tf = $1", rule.tf
        )
    return sorted(r["s"] for r in rows if rule.applies_to(r["s"]))


async def replay_rules(
    conn: asyncpg.Connection,
    rules: Sequence[Rule],
    subjects: Sequence[str] | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> list[Transition]:
    """The transitions ``rules`` raise over the stored rows of ``subjects`` (default: every
    stored subject each rule matches) with bar ts in ``[start_ms, end_ms)``."""
    engine = AlertEngine(rules)
    out: list[Transition] = []
    for rule in rules:
        wanted = subjects if subjects is not None else await stored_subjects(conn, rule)
        for subject in wanted:
            if not rule.applies_to(subject):
                continue
            if rule.kind == "pair":
                out += await _replay_pair(conn, engine, rule, subject, start_ms, end_ms)
            else:
                out += await _replay_instrument(conn, engine, rule, subject, start_ms, end_ms)
    unique = {t.event_id: t for t in out}
    return sorted(unique.values(), key=lambda t: (t.ts, t.rule.id, t.subject, t.state))


async def _replay_pair(
    conn: asyncpg.Connection,
    engine: AlertEngine,
    rule: Rule,
    pair: str,
    start_ms: int | None,
    end_ms: int | None,
) -> list[Transition]:
    rows: dict[int, list[tuple[Source, dict[str, float | None]]]] = {}
    for source, table in _TABLES.items():
        columns = list(FIELDS[source]) + (["tests_ts"] if source == "stats" else [])
        query = (
            f"SELECT ts, {', '.join(columns)} FROM {table} "
            "WHERE pair = $1 AND tf = $2 AND method = $3 "
            "AND ($4::timestamptz IS NULL OR ts >= $4) AND ($5::timestamptz IS NULL OR ts < $5)"
        )
        for r in await conn.fetch(query, pair, rule.tf, rule.method, _ts(start_ms), _ts(end_ms)):
            values: dict[str, float | None] = {c: r[c] for c in FIELDS[source]}
            if source == "stats":
                values["tests_ts"] = None if r["tests_ts"] is None else _ms(r["tests_ts"])
            rows.setdefault(_ms(r["ts"]), []).append((source, values))
    out: list[Transition] = []
    for ts in sorted(rows):
        for source, values in rows[ts]:
            out += engine.on_values(source, "pair", pair, rule.tf, rule.method, ts, values)
    return out


async def _replay_instrument(
    conn: asyncpg.Connection,
    engine: AlertEngine,
    rule: Rule,
    instrument: str,
    start_ms: int | None,
    end_ms: int | None,
) -> list[Transition]:
    market, symbol = split_instrument(instrument)
    columns = FIELDS["bar"]
    query = (
        f"SELECT start, {', '.join(columns)} FROM bars "
        "WHERE market = $1 AND symbol = $2 AND tf = $3 AND final "
        "AND ($4::timestamptz IS NULL OR start >= $4) AND ($5::timestamptz IS NULL OR start < $5) "
        "ORDER BY start"
    )
    out: list[Transition] = []
    for r in await conn.fetch(query, market, symbol, rule.tf, _ts(start_ms), _ts(end_ms)):
        values = {c: None if r[c] is None else float(r[c]) for c in columns}
        out += engine.on_values(
            "bar", "instrument", instrument, rule.tf, None, _ms(r["start"]), values
        )
    return out
