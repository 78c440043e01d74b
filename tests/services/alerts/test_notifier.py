"""The notifier on a real PostgreSQL outbox and a real local webhook receiver: outages,
retries, final errors, dead letters, rate limits, silences — nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from pairstream.alerts.engine import AlertEngine, Transition
from pairstream.alerts.rules import Rule, Silence
from pairstream.clock import SystemClock
from pairstream.db import connection, create_pool
from pairstream.db.migrate import migrate
from pairstream.settings import DatabaseSettings
from pairstream.testing import WebhookReceiver, eventually
from pairstream_alerts.config import AlertsSettings
from pairstream_alerts.metrics import AlertsMetrics
from pairstream_alerts.notifier import Notifier
from pairstream_alerts.store import AlertStore, BatchWrite

PAIR = "usdm:BTCUSDT-usdm:ETHUSDT"
T0 = 1_720_000_000_000


def transitions(n_fires: int, channels: list[str], rule_id: str = "z") -> list[Transition]:
    """``n_fires`` episodes (firing + resolved each) of a |z| rule."""
    rule = Rule.model_validate(
        {
            "id": rule_id, "name": rule_id, "subject": PAIR, "tf": "1s", "channels": channels,
            "condition": {"kind": "threshold", "field": "zscore", "op": ">", "value": 2},
        }
    )  # fmt: skip
    engine = AlertEngine([rule])
    out: list[Transition] = []
    for i in range(2 * n_fires):
        z = 3.0 if i % 2 == 0 else 0.0
        out += engine.on_values("zscore", "pair", PAIR, "1s", "ols", T0 + i * 1000, {"zscore": z})
    return out


async def outbox(db: DatabaseSettings) -> list[dict[str, Any]]:
    async with connection(db) as conn:
        rows = await conn.fetch(
            "SELECT event_id::text AS event_id, channel, status, attempts, last_error "
            "FROM alert_outbox ORDER BY seq"
        )
    return [dict(r) for r in rows]


@asynccontextmanager
async def setup(
    db: DatabaseSettings, changes: list[Transition], silences: list[Silence] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[asyncpg.Pool, AlertsMetrics]]:  # fmt: skip
    async with connection(db) as conn:
        await migrate(conn, db)
    pool = await create_pool(db)
    store = AlertStore(pool, "test", "alerts")
    now = int(time.time() * 1000)
    messages = [t.to_message(now) for t in changes]
    await store.write([BatchWrite(changes, messages, silences or [], [], [], now)])
    metrics = AlertsMetrics()
    values: dict[str, Any] = {
        "notify_poll_s": 0.05, "notify_backoff_base_s": 0.05, "notify_backoff_cap_s": 0.5,
        **settings,
    }  # fmt: skip
    notifier = Notifier(pool, AlertsSettings(**values), SystemClock(), metrics)
    task = asyncio.create_task(notifier.run())
    try:
        yield pool, metrics
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]
        await pool.close()


def hook(receiver: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    return {"hook": {"url": receiver.url, "secret": "s3cret", "per_minute": 10_000, **extra}}


async def test_a_receiver_down_for_30_s_gets_every_alert_once_when_it_is_back(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    changes = transitions(10, ["hook"])
    await receiver.stop()  # connections refused from now on
    async with setup(db_settings, changes, channels=hook(receiver), notify_backoff_cap_s=2.0):
        await asyncio.sleep(30)
        rows = await outbox(db_settings)
        assert {r["status"] for r in rows} == {"pending"}
        assert all(r["attempts"] >= 2 and "ClientConnectorError" in r["last_error"] for r in rows)
        await receiver.start()
        ids = {t.event_id for t in changes}
        await eventually(lambda: set(receiver.keys) == ids, timeout=10)
        await eventually(_all_status(db_settings, "sent"), timeout=10)
    assert all(n == 1 for n in receiver.keys.values())
    assert receiver.bad_signatures == 0


def _all_status(db: DatabaseSettings, status: str) -> Any:
    async def check() -> bool:
        return {r["status"] for r in await outbox(db)} == {status}

    return check


async def test_a_500_is_retried_and_delivered_once(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    changes = transitions(1, ["hook"])[:1]
    receiver.answers = [500, 502, 503]
    async with setup(db_settings, changes, channels=hook(receiver)):
        await eventually(_all_status(db_settings, "sent"), timeout=10)
    assert [status for _, status in receiver.requests] == [500, 502, 503, 200]
    assert receiver.keys == {changes[0].event_id: 1}
    (row,) = await outbox(db_settings)
    assert row["attempts"] == 4


async def test_retry_after_is_honoured(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    changes = transitions(1, ["hook"])[:1]
    receiver.answers = [429]
    receiver.retry_after = "2"
    started = time.monotonic()
    async with setup(db_settings, changes, channels=hook(receiver)):
        await eventually(_all_status(db_settings, "sent"), timeout=10)
    assert time.monotonic() - started >= 2.0
    assert [s for _, s in receiver.requests] == [429, 200]


async def test_always_failing_is_dead_lettered_after_the_configured_time_with_the_reason(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    changes = transitions(1, ["hook"])[:1]
    receiver.status = 503
    async with setup(db_settings, changes, channels=hook(receiver), notify_retry_for_s=2.0):
        await eventually(_all_status(db_settings, "dead"), timeout=15)
    (row,) = await outbox(db_settings)
    assert row["last_error"].startswith("gave up after")
    assert "HTTP 503: nope" in row["last_error"]
    assert len(receiver.requests) >= 3
    assert receiver.keys == {}


async def test_a_client_error_is_final_at_once(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    changes = transitions(1, ["hook"])[:1]
    receiver.status = 400
    async with setup(db_settings, changes, channels=hook(receiver)):
        await eventually(_all_status(db_settings, "dead"), timeout=10)
    (row,) = await outbox(db_settings)
    assert row["last_error"] == "HTTP 400: nope"
    assert len(receiver.requests) == 1


async def test_over_the_rate_limit_the_rest_goes_out_as_one_digest(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    changes = transitions(6, ["hook"])  # 12 transitions
    async with setup(db_settings, changes, channels=hook(receiver, per_minute=5)):
        await eventually(_all_status(db_settings, "sent"), timeout=10)
    assert len(receiver.keys) == 5
    digests = [body for key, body in receiver.bodies.items() if key.startswith("digest-")]
    (digest,) = digests
    assert digest["count"] == 8
    sent = [a["event_id"] for a in digest["alerts"]] + [
        body["event_id"] for key, body in receiver.bodies.items() if not key.startswith("digest-")
    ]
    assert sorted(sent) == sorted(t.event_id for t in changes)


async def test_silenced_alerts_are_kept_but_not_sent_and_unknown_channels_are_dead_lettered(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    muted = transitions(1, ["hook"], rule_id="muted")
    other = transitions(1, ["nowhere"], rule_id="other")
    silence = Silence(id="s", rule_id="mut*", until=int(time.time() * 1000) + 60_000)
    async with setup(db_settings, muted + other, [silence], channels=hook(receiver)):

        async def settled() -> bool:
            return {r["status"] for r in await outbox(db_settings)} == {"silenced", "dead"}

        await eventually(settled, timeout=10)
    rows = {r["event_id"]: r for r in await outbox(db_settings)}
    assert {rows[t.event_id]["status"] for t in muted} == {"silenced"}
    assert {rows[t.event_id]["last_error"] for t in other} == {
        "unknown channel 'nowhere' (not in ALERTS_CHANNELS)"
    }
    assert receiver.requests == []


@pytest.mark.parametrize("channel", ["log"])
async def test_the_log_channel_logs_each_alert(
    db_settings: DatabaseSettings, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    changes = transitions(1, [channel])
    with caplog.at_level("INFO", logger="pairstream_alerts.notifier"):
        async with setup(db_settings, changes):
            await eventually(_all_status(db_settings, "sent"), timeout=10)
    logged = [r.getMessage() for r in caplog.records if r.name == "pairstream_alerts.notifier"]
    assert logged == [f"alert {t.message}" for t in changes]


async def test_an_apprise_channel_delivers_through_apprise(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    """apprise's generic ``json://`` notifier, pointed at the local receiver."""
    changes = transitions(1, ["chat"])[:1]
    url = receiver.url.replace("http://", "json://")
    async with setup(db_settings, changes, channels={"chat": {"url": url}}):
        await eventually(_all_status(db_settings, "sent"), timeout=15)
    assert len(receiver.requests) == 1
    (body,) = receiver.bodies.values()
    assert body["title"] == "pairstream warning: usdm:BTCUSDT-usdm:ETHUSDT"
    assert body["message"] == changes[0].message


async def test_a_slow_channel_does_not_delay_another(
    db_settings: DatabaseSettings, receiver: WebhookReceiver
) -> None:
    slow = WebhookReceiver("s3cret")
    slow.delay_s = 3.0
    await slow.start()
    try:
        changes = transitions(2, ["slow", "hook"])
        channels = {**hook(receiver), "slow": {"url": slow.url, "secret": "s3cret"}}
        async with setup(db_settings, changes, channels=channels):
            started = time.monotonic()
            await eventually(lambda: len(receiver.keys) == len(changes), timeout=10)
            fast_took = time.monotonic() - started
            await eventually(lambda: len(slow.keys) == len(changes), timeout=30)
    finally:
        await slow.stop()
    assert fast_took < slow.delay_s  # the fast channel did not wait behind a slow request
