"""Alert history, rules (versioned, validated by the shared models exactly as the alerts
service does), silences, and rule tests over stored history."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import asyncpg
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ValidationError

from pairstream.alerts.engine import Transition
from pairstream.alerts.history import replay_rules
from pairstream.alerts.rules import Rule, RuleContext, RuleSpec, Silence
from pairstream.alerts.store import (
    current_rules,
    delete_rule,
    delete_silence,
    get_rule,
    put_rule,
    put_silence,
    rule_id_for,
    silences,
)
from pairstream.instruments import pair_legs, parse_instrument, parse_pair

from ..deps import Conn, ReadKey, State, WriteKey
from ..errors import ApiError, invalid_fields, problems
from ..models import AlertPublic, AlertTransitionPublic, Page
from ..openapi import links
from ..query import Cursor, EndQuery, StartQuery, TimeWindow, invalid, parse_time
from ..snapshots import alert_of
from . import PREFIX

router = APIRouter(
    prefix=PREFIX,
    tags=["alerts"],
    responses=problems(400, 401, 413, 422, 429, 503, 403, 404, 409),
)

RuleId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", examples=["z-outside"])]


def context(state: State) -> RuleContext:
    """What a rule is checked against: the default market and the configured subjects
    (a glob must match one)."""
    pairs = state.analytics.pair_names
    instruments = {leg for p in pairs for leg in pair_legs(p)} | set(state.analytics.scan_symbols)
    return RuleContext(default_market=state.market, pairs=pairs, instruments=instruments)


M = TypeVar("M", bound=BaseModel)


async def validated(request: Request, model: type[M], state: State) -> M:
    """The request body validated by ``model`` with :func:`context`, JSON types strictly
    (422 naming the field)."""
    try:  # strict JSON: a number is not a boolean, a string is not a number
        return model.model_validate_json(await request.body(), strict=True, context=context(state))
    except ValidationError as error:
        raise invalid_fields(error.errors(), "body") from None


HISTORY = """
    SELECT alert_id, rule_id, rule_version, subject, tf, method, severity, kind, state,
           started_ts, ended_ts, value, threshold, message, labels::text AS labels
    FROM alert_history
    WHERE ($1::text IS NULL OR rule_id = $1) AND ($2::text IS NULL OR subject = $2)
      AND ($3::text IS NULL OR severity = $3) AND ($4::text IS NULL OR state = $4)
      AND ($5::timestamptz IS NULL OR started_ts >= $5)
      AND ($6::timestamptz IS NULL OR started_ts < $6)
      AND ($7::timestamptz IS NULL OR (started_ts, alert_id::text) {after} ($7, $8::text))
    ORDER BY started_ts {order}, alert_id::text {order} LIMIT $9
"""
#: the history query per order: a page continues after (asc) or before (desc) the cursor
HISTORY_SQL = {"asc": HISTORY.format(after=">", order="ASC"),
               "desc": HISTORY.format(after="<", order="DESC")}  # fmt: skip


@router.get("/alerts", summary="Alert history")
async def alert_history(
    window: TimeWindow, conn: Conn, _: ReadKey,
    rule: Annotated[str | None, Query(max_length=100, description="Rule id.")] = None,
    subject: Annotated[str | None, Query(max_length=200, description="Pair or instrument.")] = None,
    severity: Literal["info", "warning", "critical"] | None = None,
    state: Literal["firing", "resolved", "nodata"] | None = None,
    order: Annotated[Literal["asc", "desc"], Query(
        description="`asc`: oldest first; `desc`: newest first (a page of the latest).")] = "asc",
) -> Page[AlertPublic]:  # fmt: skip
    """Episodes by the bar where they started firing (within the range), oldest first
    unless ``order=desc``."""
    after = window.cursor
    rows = await conn.fetch(
        HISTORY_SQL[order], rule, subject, severity, state, window.start_at, window.end_at,
        window.after_at, "" if after is None else after.key, window.limit + 1,
    )  # fmt: skip
    items = [AlertPublic(**alert_of(r)) for r in rows[: window.limit]]
    more = len(rows) > window.limit
    cursor = Cursor(items[-1].started_ts, items[-1].alert_id).encode() if more else None
    return Page(items=items, next_cursor=cursor)


@router.get("/alerts/rules", summary="Alert rules")
async def list_rules(conn: Conn, _: ReadKey) -> list[Rule]:
    """Every rule, newest version."""
    return await current_rules(conn)


@router.post(
    "/alerts/rules", status_code=201, summary="Create a rule",
    responses={
        409: {"description": "A rule with that id exists (PUT a new version)."},
        **links(201, "rule_id=$response.body#/id",
                "read_rule", "update_rule", "try_stored_rule", "remove_rule"),
    },
)  # fmt: skip
async def create_rule(
    body: RuleSpec, request: Request, conn: Conn, state: State, key: WriteKey
) -> Rule:
    """Validate and store a new rule (version 1)."""
    spec = await validated(request, RuleSpec, state)
    rule_id = spec.id or rule_id_for(spec.name)  # what the store would name it
    if await conn.fetchval("SELECT 1 FROM alert_rules WHERE id = $1 LIMIT 1", rule_id):
        raise ApiError(409, "Conflict", f"rule {rule_id!r} exists: PUT /alerts/rules/{rule_id}")
    return await put_rule(conn, spec.model_copy(update={"id": rule_id}), changed_by=f"api:{key.id}")


@router.post("/alerts/test", summary="Test an unsaved rule on history")
async def try_new_rule(
    body: RuleSpec, request: Request, conn: Conn, state: State, _: ReadKey,
    start: StartQuery = None,
    end: EndQuery = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
) -> list[AlertTransitionPublic]:  # fmt: skip
    """The transitions the rule would have raised over the stored analytics and bars."""
    spec = await validated(request, RuleSpec, state)
    rule = Rule.model_validate({**spec.model_dump(), "id": spec.id or "test"})
    return await _test(conn, rule, state, start, end, subject)


@router.get("/alerts/rules/{rule_id}", summary="One rule")
async def read_rule(
    rule_id: RuleId, conn: Conn, _: ReadKey,
    version: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> Rule:  # fmt: skip
    """A rule's newest version, or the one asked for."""
    return await get_rule(conn, rule_id, version)


@router.put("/alerts/rules/{rule_id}", summary="Store a new version of a rule")
async def update_rule(
    rule_id: RuleId, body: RuleSpec, request: Request, conn: Conn, state: State, key: WriteKey
) -> Rule:
    """Validate and store the rule as its next version (new alert episodes follow it)."""
    spec = await validated(request, RuleSpec, state)
    if spec.id is not None and spec.id != rule_id:
        raise invalid("id", f"the body's id {spec.id!r} is not the path's {rule_id!r}")
    return await put_rule(conn, spec.model_copy(update={"id": rule_id}), changed_by=f"api:{key.id}")


@router.delete("/alerts/rules/{rule_id}", status_code=204, summary="Remove a rule")
async def remove_rule(rule_id: RuleId, conn: Conn, key: WriteKey) -> Response:
    """Remove a rule; its versions and alert history stay."""
    await delete_rule(conn, rule_id, changed_by=f"api:{key.id}")
    return Response(status_code=204)


@router.post("/alerts/rules/{rule_id}/test", summary="Test a stored rule on history")
async def try_stored_rule(
    rule_id: RuleId, conn: Conn, state: State, _: ReadKey,
    start: StartQuery = None,
    end: EndQuery = None,
    subject: Annotated[str | None, Query(max_length=200)] = None,
) -> list[AlertTransitionPublic]:  # fmt: skip
    """What ``pairstream alerts test`` prints for the stored rule."""
    return await _test(conn, await get_rule(conn, rule_id), state, start, end, subject)


async def _test(
    conn: asyncpg.Connection, rule: Rule, state: State, start: str | None, end: str | None,
    subject: str | None,
) -> list[AlertTransitionPublic]:  # fmt: skip
    from_ms = None if start is None else parse_time(start, "start")
    to_ms_ = None if end is None else parse_time(end, "end")
    subjects = None
    if subject is not None:
        parse = parse_pair if rule.kind == "pair" else parse_instrument
        try:
            subjects = [parse(subject, state.market)]
        except ValueError as error:
            raise invalid("subject", str(error)) from None
    async with state.analyses:  # a replay over all history is as heavy as an analysis
        transitions = await replay_rules(conn, [rule], subjects, from_ms, to_ms_)
    return [_transition(t) for t in transitions]


def _transition(t: Transition) -> AlertTransitionPublic:
    return AlertTransitionPublic(
        alert_id=t.alert_id, event_id=t.event_id, rule_id=t.rule.id,
        rule_version=t.rule.version, subject=t.subject, tf=t.tf, method=t.method,
        severity=t.rule.severity, kind=t.rule.condition.kind, state=t.state,
        started_ts=t.started_ts, ts=t.ts, ended_ts=None if t.state == "firing" else t.ts,
        value=t.value, threshold=t.threshold, message=t.message, labels=dict(t.rule.labels),
    )  # fmt: skip


@router.get("/alerts/silences", summary="Silences")
async def list_silences(
    conn: Conn, state: State, _: ReadKey,
    active: Annotated[bool, Query(description="Only those still in force.")] = True,
) -> list[Silence]:  # fmt: skip
    """Silences (mute notifications, never history)."""
    return await silences(conn, state.clock.now_ms() if active else None)


@router.post(
    "/alerts/silences", status_code=201, summary="Create or replace a silence",
    responses=links(201, "silence_id=$response.body#/id", "remove_silence"),
)  # fmt: skip
async def create_silence(
    body: Silence, request: Request, conn: Conn, state: State, _: WriteKey
) -> Silence:
    """Mute notifications of matching alerts until ``until`` (epoch ms)."""
    return await put_silence(conn, await validated(request, Silence, state))


@router.delete("/alerts/silences/{silence_id}", status_code=204, summary="End a silence")
async def remove_silence(
    silence_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")], conn: Conn,
    _: WriteKey,
) -> Response:  # fmt: skip
    await delete_silence(conn, silence_id)
    return Response(status_code=204)
