"""Alert rules, silences and history over HTTP: the alerts service's own validation,
versions, auth (401 without a key, 403 with a read key) and rule tests equal to
``replay_rules`` (what ``pairstream alerts test`` prints)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pairstream.alerts.history import replay_rules
from pairstream.alerts.rules import Rule
from pairstream.db import connection
from pairstream.testing import unique

from ..conftest import PAIR, Stocked

RULE = {
    "id": "z-out",
    "name": "|z| >= 2",
    "subject": "BTCUSDT-ETHUSDT",
    "tf": "1s",
    "channels": [],
    "condition": {"kind": "threshold", "field": "zscore", "op": "outside", "lo": -2, "hi": 2},
}


async def _versions(stocked: Stocked, rule_id: str) -> int:
    async with connection(stocked.db) as conn:
        return int(await conn.fetchval("SELECT count(*) FROM alert_rules WHERE id = $1", rule_id))


async def test_writes_need_a_write_key_and_bad_keys_are_refused(
    api: Callable[..., Any], keys: dict[str, str], stocked: Stocked
) -> None:
    rule = {**RULE, "id": "auth-check"}
    async with api() as server:
        async with server.client() as anonymous:
            assert (await anonymous.get("/api/v1/alerts/rules")).status_code == 200  # open reads
            refused = await anonymous.post("/api/v1/alerts/rules", json=rule)
        async with server.client(keys["read"]) as reader:
            forbidden = await reader.post("/api/v1/alerts/rules", json=rule)
        async with server.client("ps_000000000000_not-a-key") as stranger:
            unknown = await stranger.get("/api/v1/pairs")
        async with server.client(headers={"X-API-Key": keys["write"]}) as writer:
            created = await writer.post("/api/v1/alerts/rules", json=rule)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert forbidden.status_code == 403
    assert "scope read" in forbidden.json()["detail"]
    assert unknown.status_code == 401
    assert created.status_code == 201, created.text
    assert await _versions(stocked, "auth-check") == 1
    async with api(open_reads=False) as server, server.client() as anonymous:
        assert (await anonymous.get("/api/v1/pairs")).status_code == 401


async def test_rules_are_versioned_validated_like_the_service_and_removed(
    api: Callable[..., Any], keys: dict[str, str], stocked: Stocked
) -> None:
    bad = {
        "unknown field": ({**RULE, "condition": {**RULE["condition"], "field": "zscor"}},
                          "condition"),
        "unknown function": ({**RULE, "condition": {"kind": "expression",
                                                     "expr": "exec(zscore) > 1"}}, "expr"),
        "attribute trick": ({**RULE, "condition": {"kind": "expression",
                                                    "expr": "zscore.__class__ > 1"}}, "expr"),
        "10 kB expression": ({**RULE, "condition": {"kind": "expression",
                                                     "expr": "zscore > 1 || " * 800 + "true"}},
                             "expr"),
        "for_bars 0": ({**RULE, "for_bars": 0}, "for_bars"),
        "glob matching nothing": ({**RULE, "subject": "*-usdm:DOGEUSDT"}, "subject"),
    }  # fmt: skip
    async with api() as server, server.client(keys["write"]) as client:
        for what, (body, field) in bad.items():
            response = await client.post("/api/v1/alerts/rules", json={**body, "id": "bad"})
            assert response.status_code == 422, (what, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert field in response.json()["detail"], (what, response.json())
        assert await _versions(stocked, "bad") == 0  # nothing stored
        first = (await client.post("/api/v1/alerts/rules", json=RULE)).json()
        again = await client.post("/api/v1/alerts/rules", json=RULE)
        changed = {**RULE, "severity": "critical"}
        second = (await client.put("/api/v1/alerts/rules/z-out", json=changed)).json()
        old = (await client.get("/api/v1/alerts/rules/z-out", params={"version": 1})).json()
        mismatch = await client.put("/api/v1/alerts/rules/other", json=RULE)
        listed = (await client.get("/api/v1/alerts/rules")).json()
        removed = await client.delete("/api/v1/alerts/rules/z-out")
        gone = await client.get("/api/v1/alerts/rules/z-out")
    assert first["version"] == 1
    assert first["subject"] == PAIR  # normalised as the service does
    assert again.status_code == 409
    assert second["version"] == 2
    assert second["severity"] == "critical"
    assert old["severity"] == "warning"
    assert mismatch.status_code == 422
    assert "z-out" in {r["id"] for r in listed}
    assert removed.status_code == 204
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


async def test_a_rule_test_equals_the_engine_over_stored_history(
    api: Callable[..., Any], keys: dict[str, str], stocked: Stocked
) -> None:
    rule = {**RULE, "id": "z-test"}
    async with api() as server, server.client(keys["write"]) as client:
        unsaved = await client.post("/api/v1/alerts/test", json=rule)
        await client.post("/api/v1/alerts/rules", json=rule)
        stored = await client.post("/api/v1/alerts/rules/z-test/test")
        missing = await client.post("/api/v1/alerts/rules/no-such-rule/test")
    async with connection(stocked.db) as conn:
        want = await replay_rules(conn, [Rule.model_validate({**rule, "subject": PAIR})])
    assert unsaved.status_code == 200, unsaved.text
    assert want, "the recorded pair should cross |z| = 2"
    expected = [(t.event_id, t.state, t.ts, t.value) for t in want]
    for response in (unsaved, stored):
        got = [(a["event_id"], a["state"], a["ts"], a["value"]) for a in response.json()]
        assert got == expected
    assert missing.status_code == 404


async def test_silences_are_created_listed_and_ended_with_a_write_key(
    api: Callable[..., Any], keys: dict[str, str]
) -> None:
    silence = {"id": "quiet", "rule_id": "z-*", "subject": "*", "until": 4_102_444_800_000,
               "reason": "maintenance"}  # fmt: skip
    async with api() as server, server.client(keys["write"]) as client:
        created = await client.post("/api/v1/alerts/silences", json=silence)
        listed = (await client.get("/api/v1/alerts/silences")).json()
        ended = await client.delete("/api/v1/alerts/silences/quiet")
        again = await client.delete("/api/v1/alerts/silences/quiet")
        bad = await client.post("/api/v1/alerts/silences", json={**silence, "until": -1})
    assert created.status_code == 201, created.text
    assert [s["id"] for s in listed] == ["quiet"]
    assert ended.status_code == 204
    assert again.status_code == 404
    assert bad.status_code == 422
    assert "until" in bad.json()["detail"]


async def test_alert_history_pages_cover_the_episodes_once_oldest_or_newest_first(
    api: Callable[..., Any], stocked: Stocked
) -> None:
    rule_id = unique("history")
    t0 = datetime(2024, 7, 18, tzinfo=UTC)
    ids = [uuid.uuid4() for _ in range(5)]
    async with connection(stocked.db) as conn:
        await conn.executemany(
            "INSERT INTO alert_history (alert_id, rule_id, rule_version, subject, tf, severity, "
            "kind, state, started_ts, message, updated_at) VALUES ($1, $2, 1, $3, '1s', "
            "'warning', 'threshold', $4, $5, $6, now())",
            [(a, rule_id, PAIR, "firing" if i % 2 else "resolved",
              t0 + timedelta(seconds=i // 2), f"episode {i}") for i, a in enumerate(ids)],
        )  # fmt: skip
    try:
        async with api() as server, server.client() as client:

            async def pages(**params: Any) -> list[list[str]]:
                out, cursor = [], None
                while True:
                    page = (await client.get("/api/v1/alerts", params={
                        "rule": rule_id, "limit": 2, **params,
                        **({"cursor": cursor} if cursor else {})})).json()  # fmt: skip
                    out.append([a["alert_id"] for a in page["items"]])
                    cursor = page["next_cursor"]
                    if not cursor:
                        return out

            oldest = await pages()
            newest = await pages(order="desc")
            firing = await pages(order="desc", state="firing")
            bad = await client.get("/api/v1/alerts", params={"order": "newest"})
        # two episodes share each started_ts: the alert id orders them
        by_time = sorted(ids, key=lambda a: (ids.index(a) // 2, str(a)))
        assert [a for p in oldest for a in p] == [str(a) for a in by_time]
        assert [a for p in newest for a in p] == [str(a) for a in reversed(by_time)]
        assert [len(p) for p in newest] == [2, 2, 1]
        assert [a for p in firing for a in p] == [
            str(a) for a in reversed(by_time) if ids.index(a) % 2
        ]
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "order"
    finally:
        async with connection(stocked.db) as conn:
            await conn.execute("DELETE FROM alert_history WHERE rule_id = $1", rule_id)
