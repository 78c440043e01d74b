"""The Alerts page in the browser against the real API and the real alerts worker: a rule
written in the editor (its API validation errors shown next to the fields first) is
stored through the API, tested on history, fires on a z-score published to Kafka, and
its alert reaches the live feed; then it is disabled, silenced and deleted from the
rules table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from pairstream.alerts.history import replay_rules
from pairstream.alerts.rules import Rule
from pairstream.alerts.store import rule_id_for
from pairstream.clock import SystemClock
from pairstream.db import connection
from pairstream.kafka import MessageProducer
from pairstream.messages import ZScoreUpdate
from pairstream.testing import eventually, unique
from pairstream_alerts.config import AlertsSettings
from pairstream_alerts.worker import AlertsWorker

from ..conftest import PAIR, Server, Stocked
from .conftest import dashboard


@pytest.fixture
async def alerts_worker(stocked: Stocked) -> AsyncIterator[AlertsWorker]:
    """The alerts service over the stocked schema and topics (no default rule)."""
    settings = AlertsSettings(
        group_id=unique("alerts"), metrics_port=0, timeframes="1s",  # type: ignore[arg-type]
        default_rules=False, session_timeout_s=3.0, heartbeat_interval_s=0.5,
    )  # fmt: skip
    worker = AlertsWorker(settings, SystemClock(), kafka=stocked.kafka, topics=stocked.topics,
                          db=stocked.db)  # fmt: skip
    task = asyncio.create_task(worker.run())
    await eventually(lambda: worker.ready or task.done(), timeout=60)
    try:
        yield worker
    finally:
        if task.done():
            task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def fill(page: Any, values: dict[str, str]) -> None:
    for field, value in values.items():
        await page.fill(f"#alerts-{field}", value)


async def shown_error(page: Any, field: str, text: str) -> None:
    """Waits until the error under ``field`` says ``text``."""
    await page.locator(f"#alerts-error-{field}", has_text=text).wait_for(timeout=10_000)


async def test_a_rule_written_in_the_editor_fires_into_the_live_feed_and_is_managed_from_the_table(
    api: Callable[..., AbstractAsyncContextManager[Server]], keys: dict[str, str],
    stocked: Stocked, alerts_worker: AlertsWorker, new_page: Any, artifacts: Path,
    clean_cache: None,
) -> None:  # fmt: skip
    name = unique("ui z above")
    rule_id = rule_id_for(name)
    async with (
        api() as server,
        dashboard(server.url, api_key=keys["write"]) as url,
        new_page(url) as p,
        server.client() as client,
    ):
        await p.open("/alerts")
        await p.page.wait_for_selector("#alerts-rules", timeout=10_000)
        # the API's validation, next to the fields it names
        await fill(p.page, {"name": name, "subject": PAIR, "for_bars": "0"})
        await p.page.click("#alerts-save")
        await shown_error(p.page, "for_bars", "greater than or equal to 1")
        await fill(p.page, {"subject": "usdm:BTCUSDT-usdm:SOLUSDT", "for_bars": "1"})
        await p.page.click("#alerts-save")
        await shown_error(p.page, "subject", "matches no configured pair")
        assert await p.page.locator("#alerts-error-for_bars").is_hidden()  # cleared
        await fill(p.page, {"subject": PAIR, "condition": "{"})
        await p.page.click("#alerts-save")
        await shown_error(p.page, "condition", "not JSON")
        await fill(p.page, {"condition": '{"kind": "threshold", "field": "zscore", '
                                         '"op": ">", "value": "high"}'})  # fmt: skip
        await p.page.click("#alerts-save")
        await shown_error(p.page, "condition", "threshold.value: Input should be a valid number")
        await p.shot(artifacts, "alerts-errors")

        # "test on history": what the engine over the stored analytics fires
        await fill(p.page, {"condition": '{"kind": "threshold", "field": "zscore", '
                                         '"op": ">", "value": 1.5}'})  # fmt: skip
        await p.page.click("#alerts-test")
        await p.page.wait_for_selector("#alerts-test-table", timeout=30_000)
        shown = await p.page.inner_text("#alerts-test-result")
        probe = Rule.model_validate({"id": "probe", "name": name, "subject": PAIR,
                                     "condition": {"kind": "threshold", "field": "zscore",
                                                   "op": ">", "value": 1.5}})  # fmt: skip
        async with connection(stocked.db) as conn:
            expected = await replay_rules(conn, [probe], None, None, None)
        firing = sum(t.state == "firing" for t in expected)
        assert firing > 0
        assert f"{firing} firing transitions, {len(expected)} in all" in shown

        # saved: stored through the API, and live in the worker within a second or so
        await fill(p.page, {"condition": '{"kind": "threshold", "field": "zscore", '
                                         '"op": ">", "value": 50}'})  # fmt: skip
        await p.page.click("#alerts-save")
        await p.page.wait_for_selector(f"#alerts-rules-table >> text={rule_id}",
                                       timeout=10_000)  # fmt: skip
        stored = (await client.get(f"/api/v1/alerts/rules/{rule_id}")).json()
        assert stored["condition"] == {"kind": "threshold", "field": "zscore", "op": ">",
                                       "value": 50.0, "lo": None, "hi": None}  # fmt: skip
        assert (stored["subject"], stored["version"], stored["enabled"]) == (PAIR, 1, True)
        await eventually(lambda: any(r.id == rule_id for r in alerts_worker.engine.rules.rules),
                         timeout=10)  # fmt: skip

        # a z-score beyond it, on the analytics topic → an alert in the feed
        ts = max(b.start for b in stocked.bars) + 5_000
        z = ZScoreUpdate(pair=PAIR, tf="1s", ts=ts, window=20, spread=60.0, mean=0.0, std=1.0,
                         zscore=60.0, ts_event=ts + 999, ts_init=ts + 1000)  # fmt: skip
        async with MessageProducer(stocked.kafka) as producer:
            await (await producer.send(stocked.topics.zscore, z))
        row = p.page.locator("#alerts-feed .feed-row.state-firing", has_text=rule_id)
        await row.wait_for(timeout=30_000)
        assert "warning" in await row.inner_text()
        stored_alert = p.page.locator("#alerts-history-table tr", has_text=rule_id)
        await stored_alert.wait_for(timeout=30_000)  # the history refreshes by itself
        assert "firing" in await stored_alert.inner_text()
        await p.shot(artifacts, "alerts-feed")

        # disable, silence, delete from the table
        await p.page.click(f"#alerts-rules-table tr:has-text('{rule_id}') >> text=disable")
        await p.page.wait_for_selector("#alerts-status >> text=disabled (version 2)",
                                       timeout=10_000)  # fmt: skip
        assert (await client.get(f"/api/v1/alerts/rules/{rule_id}")).json()["enabled"] is False
        await p.page.click(f"#alerts-rules-table tr:has-text('{rule_id}') >> text=silence 1 h")
        await p.page.wait_for_selector("#alerts-status >> text=silenced until", timeout=10_000)
        silences = (await client.get("/api/v1/alerts/silences")).json()
        assert [s["rule_id"] for s in silences if s["rule_id"] == rule_id] == [rule_id]
        await p.page.click(f"#alerts-rules-table tr:has-text('{rule_id}') >> text=unsilence")
        await p.page.wait_for_selector("#alerts-status >> text=no longer silenced", timeout=10_000)
        silences = (await client.get("/api/v1/alerts/silences")).json()
        assert [s for s in silences if s["rule_id"] == rule_id] == []
        await p.page.click(f"#alerts-rules-table tr:has-text('{rule_id}') >> text=delete")
        await p.page.wait_for_selector("#alerts-status >> text=deleted", timeout=10_000)
        assert (await client.get(f"/api/v1/alerts/rules/{rule_id}")).status_code == 404
        assert p.errors == []
