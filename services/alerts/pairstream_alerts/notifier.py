"""Delivers the outbox: one loop per channel, so a slow or failing channel never delays
evaluation or another channel.

A row is claimed by pushing its ``next_attempt`` a lease ahead (``FOR UPDATE SKIP
LOCKED``: several workers never take the same row), then delivered:

* ``log``: one INFO line.
* webhook (``http(s)://``): a JSON POST of the ``alerts`` message, signed
  ``X-Pairstream-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>``,
  ``Idempotency-Key: <event_id>`` (a receiver drops a retry it already has). 2xx is
  delivered; 5xx, 429, timeouts and connection errors are retried with capped
  full-jitter backoff (at least ``Retry-After``) until ``ALERTS_NOTIFY_RETRY_FOR_S``
  after the alert, then dead-lettered with the reason; any other status is final.
* anything else: an apprise URL (Slack, Telegram, e-mail, …), retried the same way.

Each channel sends at most ``per_minute`` messages a minute; when more are due, the
rest go out as one digest (one message listing them).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import hashlib
import hmac
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import asyncpg
import orjson

from pairstream.clock import Clock
from pairstream.db import through_outages
from pairstream.supervisor import Backoff

from .config import AlertsSettings, Channel
from .metrics import AlertsMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH = 100  # rows claimed at a time per channel
LEASE_S = 60.0  # a claim, renewed while its rows are sent: a crashed worker's rows free up
MAX_WAIT_S = 86_400.0  # no Retry-After or backoff waits longer than a day


@dataclass(frozen=True, slots=True)
class Due:
    """One claimed outbox row."""

    event_id: str
    payload: bytes
    attempts: int
    created_at: datetime


class Retry(Exception):  # noqa: N818 - control flow, not an error
    """Delivery failed in a way worth retrying, at least ``after`` seconds later."""

    def __init__(self, reason: str, after: float = 0.0) -> None:
        super().__init__(reason)
        self.after = after


class Final(Exception):  # noqa: N818
    """Delivery failed for good (e.g. HTTP 400): dead-letter now."""


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the body with the channel's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _retry_after(value: str | None, now: datetime) -> float:
    if not value:
        return 0.0
    with contextlib.suppress(ValueError):
        seconds = float(value)
        return min(MAX_WAIT_S, seconds) if seconds >= 0 else 0.0
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return min(MAX_WAIT_S, max(0.0, (when - now).total_seconds()))
    return 0.0


class Notifier:
    """Runs one delivery loop per channel until cancelled."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: AlertsSettings,
        clock: Clock,
        metrics: AlertsMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.channels: dict[str, Channel | None] = {"log": None, **settings.channels}
        self._session: aiohttp.ClientSession | None = None
        self._sent: dict[str, list[float]] = {}

    async def run(self) -> None:
        """Deliver until cancelled."""
        timeout = aiohttp.ClientTimeout(total=self.settings.notify_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            # a TaskGroup: one loop failing cancels the others (gather would leave them on)
            async with asyncio.TaskGroup() as loops:
                for name in self.channels:
                    loops.create_task(self._loop(name), name=f"notify-{name}")
                loops.create_task(self._unknown_loop(), name="notify-unknown")

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)

    # ------------------------------------------------------------------ claiming

    async def _db(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        backoff = Backoff(self.settings.retry_base_s, self.settings.retry_cap_s)
        return await through_outages(
            what, operation, backoff.delay, on_failure=self.metrics.db_failures.inc
        )

    async def _claim(self, channel: str, limit: int) -> list[Due]:
        now = self._now()
        rows = await self._db(
            "claiming notifications",
            lambda: self.pool.fetch(
                """
            UPDATE alert_outbox o SET next_attempt = $3, attempts = o.attempts + 1
            FROM (SELECT event_id, channel FROM alert_outbox
                  WHERE channel = $1 AND status = 'pending' AND next_attempt <= $2
                  ORDER BY next_attempt, seq LIMIT $4 FOR UPDATE SKIP LOCKED) due
            WHERE o.event_id = due.event_id AND o.channel = due.channel
            RETURNING o.seq, o.event_id::text AS event_id, o.payload::text AS payload,
                      o.attempts, o.created_at
            """,
                channel,
                now,
                now + timedelta(seconds=LEASE_S),
                limit,
            ),
        )
        rows = sorted(rows, key=lambda r: r["seq"])  # in the order they were raised
        return [
            Due(r["event_id"], r["payload"].encode(), r["attempts"], r["created_at"]) for r in rows
        ]

    async def _renew(self, channel: str, due: Sequence[Due]) -> None:
        until = self._now() + timedelta(seconds=LEASE_S)
        ids = [d.event_id for d in due]
        await self._db("renewing a claim", lambda: self.pool.execute(
            "UPDATE alert_outbox SET next_attempt = $3 "
            "WHERE channel = $1 AND event_id = ANY($2::uuid[]) AND status = 'pending'",
            channel, ids, until,
        ))  # fmt: skip

    async def _settle(
        self, channel: str, due: Sequence[Due], status: str, error: str | None = None,
        retry_in: float | None = None,
    ) -> None:  # fmt: skip
        now = self._now()
        ids = [d.event_id for d in due]
        if retry_in is not None:
            later = now + timedelta(seconds=min(retry_in, MAX_WAIT_S))
            await self._db("rescheduling notifications", lambda: self.pool.execute(
                "UPDATE alert_outbox SET next_attempt = $3, last_error = $4 "
                "WHERE channel = $1 AND event_id = ANY($2::uuid[])",
                channel, ids, later, error,
            ))  # fmt: skip
            return
        sent_at = now if status == "sent" else None
        await self._db("settling notifications", lambda: self.pool.execute(
            "UPDATE alert_outbox SET status = $3, sent_at = $4, last_error = $5 "
            "WHERE channel = $1 AND event_id = ANY($2::uuid[])",
            channel, ids, status, sent_at, error,
        ))  # fmt: skip

    # ------------------------------------------------------------------ loops

    async def _unknown_loop(self) -> None:
        """Rows of channels nobody configured: dead-lettered with the reason."""
        while True:
            rows = await self._db("reading notifications", lambda: self.pool.fetch(
                "SELECT event_id::text AS event_id, channel FROM alert_outbox "
                "WHERE status = 'pending' AND NOT (channel = ANY($1::text[])) LIMIT 1000",
                list(self.channels),
            ))  # fmt: skip
            for r in rows:
                reason = f"unknown channel {r['channel']!r} (not in ALERTS_CHANNELS)"
                await self._db("dead-lettering a notification", functools.partial(
                    self.pool.execute,
                    "UPDATE alert_outbox SET status = 'dead', last_error = $3 "
                    "WHERE event_id = $1::uuid AND channel = $2",
                    r["event_id"], r["channel"], reason,
                ))  # fmt: skip
                self.metrics.notifications.labels(channel=r["channel"], outcome="dead").inc()
                log.error("notification %s dead-lettered: %s", r["event_id"], reason)
            await self.clock.sleep(max(self.settings.notify_poll_s, 1.0))

    def _allowance(self, name: str, per_minute: int) -> int:
        now = self.clock.monotonic()
        recent = [t for t in self._sent.get(name, []) if now - t < 60.0]
        self._sent[name] = recent
        return max(0, per_minute - len(recent))

    async def _loop(self, name: str) -> None:
        channel = self.channels[name]
        per_minute = channel.per_minute if channel is not None else 1_000_000
        while True:
            allowed = self._allowance(name, per_minute)
            due = await self._claim(name, BATCH) if allowed else []
            if not due:
                await self.clock.sleep(self.settings.notify_poll_s)
                continue
            if len(due) > allowed:  # the rest as one digest
                batches = [[d] for d in due[: allowed - 1]] + [due[allowed - 1 :]]
            else:
                batches = [[d] for d in due]
            claimed = self.clock.monotonic()
            for n, batch in enumerate(batches):
                if self.clock.monotonic() - claimed > LEASE_S / 2:  # still ours while we send
                    await self._renew(name, [d for b in batches[n:] for d in b])
                    claimed = self.clock.monotonic()
                await self._deliver(name, channel, batch)
                self._sent.setdefault(name, []).append(self.clock.monotonic())

    async def _deliver(self, name: str, channel: Channel | None, due: list[Due]) -> None:
        body = due[0].payload if len(due) == 1 else self._digest(due)
        key = due[0].event_id if len(due) == 1 else self._digest_key(due)
        try:
            if channel is None:
                log.info("alert %s", orjson.loads(body).get("message", body.decode()))
            elif channel.webhook:
                await self._webhook(channel, body, key)
            else:
                await self._apprise(channel, body)
        except Retry as retry:
            oldest = min(d.created_at for d in due)
            attempts = max(d.attempts for d in due)
            if (self._now() - oldest).total_seconds() >= self.settings.notify_retry_for_s:
                reason = f"gave up after {attempts} attempts: {retry}"
                await self._settle(name, due, "dead", reason)
                self.metrics.notifications.labels(channel=name, outcome="dead").inc(len(due))
                log.error("notification %s on %s dead-lettered: %s", key, name, reason)
                return
            cap = self.settings.notify_backoff_cap_s
            base = self.settings.notify_backoff_base_s
            wait = self.rng.uniform(0, min(cap, base * 2 ** min(attempts - 1, 60)))
            await self._settle(name, due, "pending", str(retry), retry_in=max(wait, retry.after))
            self.metrics.notifications.labels(channel=name, outcome="retried").inc(len(due))
            return
        except Final as final:
            await self._settle(name, due, "dead", str(final))
            self.metrics.notifications.labels(channel=name, outcome="dead").inc(len(due))
            log.error("notification %s on %s dead-lettered: %s", key, name, final)
            return
        await self._settle(name, due, "sent")
        self.metrics.notifications.labels(channel=name, outcome="sent").inc(len(due))
        for d in due:
            delay = (self._now() - d.created_at).total_seconds()
            self.metrics.notify_seconds.labels(channel=name).observe(max(0.0, delay))

    @staticmethod
    def _digest(due: list[Due]) -> bytes:
        alerts = [orjson.loads(d.payload) for d in due]
        return orjson.dumps({"digest": True, "count": len(alerts), "alerts": alerts})

    @staticmethod
    def _digest_key(due: list[Due]) -> str:
        joined = ",".join(sorted(d.event_id for d in due))
        return "digest-" + hashlib.blake2b(joined.encode(), digest_size=16).hexdigest()

    async def _webhook(self, channel: Channel, body: bytes, key: str) -> None:
        assert self._session is not None
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": key,
            "X-Pairstream-Signature": signature(channel.secret, body),
        }
        try:
            async with self._session.post(channel.url, data=body, headers=headers) as response:
                text = (await response.text())[:200]
                status = response.status
                after = _retry_after(response.headers.get("Retry-After"), self._now())
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise Retry(f"{type(error).__name__}: {error}") from error
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            raise Retry(f"HTTP {status}: {text}", after)
        raise Final(f"HTTP {status}: {text}")

    async def _apprise(self, channel: Channel, body: bytes) -> None:
        import apprise

        data: Any = orjson.loads(body)
        if data.get("digest"):
            title = f"pairstream: {data['count']} alerts"
            text = "\n".join(a["message"] for a in data["alerts"])
        else:
            title = f"pairstream {data['severity']}: {data['subject']}"
            text = data["message"]
        notifier = apprise.Apprise()
        if not notifier.add(channel.url):
            raise Final(
                f"apprise cannot use the URL of this channel ({channel.url.split(':')[0]}://…)"
            )
        if not await notifier.async_notify(body=text, title=title):
            raise Retry("apprise could not deliver")
