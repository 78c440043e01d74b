"""Helpers for the tests of pairstream and of every service (shipped, so all share them)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from pairstream.messages import Bar, Market, timeframe_ms
from pairstream.settings import TopicSettings

if TYPE_CHECKING:
    from pairstream.messages import Message
    from pairstream.settings import KafkaSettings

T = TypeVar("T")


def unique(prefix: str) -> str:
    """A name no other test uses: ``<prefix>-<12 hex digits>`` (``_`` for SQL identifiers)."""
    sep = "_" if "_" in prefix else "-"
    return f"{prefix}{sep}{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def served(app: Any, port: int = 0) -> AsyncIterator[str]:
    """An ASGI app under uvicorn in this process on a socket of its own (``port`` 0: the
    kernel's choice; reused at once when given), until the block ends: its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done(), timeout=60)
        if task.done():
            task.result()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


def topics_under(tag: str) -> TopicSettings:
    """Every contract topic named ``<tag>.<topic>``: topics no other run shares."""
    return TopicSettings(
        ticks=f"{tag}.ticks", bars_template=f"{tag}.bars.{{tf}}", spread=f"{tag}.spread",
        zscore=f"{tag}.zscore", stats=f"{tag}.stats", analytics_bars=f"{tag}.analytics-bars",
        scan=f"{tag}.scan", alerts=f"{tag}.alerts", dead_letter=f"{tag}.dead-letter",
    )  # fmt: skip


class ServiceProcess:
    """``pairstream <command>`` as its own process, its output kept in ``log``."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._file = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pairstream", command],
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM (a clean stop), SIGKILL after 20 s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._file.close()
        return self.proc.returncode


async def eventually(
    check: Callable[[], T | Awaitable[T]],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str | None = None,
) -> T:
    """Call ``check`` until it returns a truthy value without raising ``AssertionError``.

    Returns that value; after ``timeout`` seconds re-raises the last assertion, or
    fails with ``what`` when the check only ever returned a falsy value.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            failure: AssertionError = AssertionError(
                f"not true within {timeout}s: {what or getattr(check, '__name__', check)} "
                f"returned {result!r}"
            )
        except AssertionError as error:
            failure = error
        if time.monotonic() >= deadline:
            raise failure
        await asyncio.sleep(interval)


async def recreate_topics(kafka: KafkaSettings, names: list[str]) -> None:
    """Delete ``names`` and create them again, empty, with as many partitions."""
    from aiokafka.admin import AIOKafkaAdminClient

    from pairstream.kafka import TopicRequest, ensure_topics

    admin = AIOKafkaAdminClient(bootstrap_servers=str(kafka.bootstrap))
    await admin.start()
    try:
        described = await admin.describe_topics(names)
        counts = {t["topic"]: len(t["partitions"]) for t in described}
        await admin.delete_topics(names)

        async def gone() -> bool:
            return not set(names) & set(await admin.list_topics())

        deleted: bool = await eventually(gone, timeout=30)
        assert deleted
    finally:
        await admin.close()
    await ensure_topics([TopicRequest(name, counts[name]) for name in names], kafka)


def example_messages() -> dict[type[Message], Message]:
    """One valid message of every topic type, with realistic values (BTCUSDT July 2024)."""
    from pairstream.messages import (
        Alert,
        Bar,
        DeadLetter,
        PairBar,
        ScanEntry,
        ScanUpdate,
        SpreadUpdate,
        StatsUpdate,
        TickRun,
        Trade,
        ZScoreUpdate,
    )

    t0 = 1_721_347_200_000  # 2024-07-19 00:00 UTC, aligned to every timeframe
    bar = Bar(
        market="usdm",
        symbol="BTCUSDT",
        tf="1m",
        start=t0,
        open=63957.5,
        high=63990.0,
        low=63900.1,
        close=63980.2,
        volume=112.4,
        quote_volume=7_190_000.5,
        trades=1_204,
        vwap=63967.0,
        buy_volume=60.2,
        first_trade_id=5182005737,
        last_trade_id=5182006940,
        revision=0,
        final=True,
        ts_event=t0 + 59_998,
        ts_init=t0 + 61_002,
    )
    return {
        TickRun: TickRun(
            market="usdm",
            symbol="BTCUSDT",
            source="live",
            ts_ingest=t0 + 1_450,
            trades=[
                Trade(
                    trade_id=5182005737,
                    ts_event=t0 + 2_956,
                    price=63957.5,
                    qty=0.004,
                    is_buyer_maker=True,
                ),
                Trade(
                    trade_id=5182005738,
                    ts_event=t0 + 2_956,
                    price=63957.4,
                    qty=0.12,
                    is_buyer_maker=True,
                ),
                Trade(
                    trade_id=5182005740,
                    ts_event=t0 + 3_001,
                    price=63957.6,
                    qty=0.05,
                    is_buyer_maker=False,
                    first_trade_id=5182005739,
                    last_trade_id=5182005741,
                ),
            ],
        ),
        Bar: bar,
        SpreadUpdate: SpreadUpdate(
            pair="usdm:BTCUSDT-usdm:ETHUSDT",
            tf="1m",
            ts=t0,
            method="ols",
            hedge_ratio=18.61,
            intercept=215.3,
            spread=-12.75,
            ts_event=t0 + 59_998,
            ts_init=t0 + 61_010,
        ),
        ZScoreUpdate: ZScoreUpdate(
            pair="usdm:BTCUSDT-usdm:ETHUSDT",
            tf="1m",
            ts=t0,
            window=60,
            spread=-12.75,
            mean=1.2,
            std=8.4,
            zscore=-1.66,
            ts_event=t0 + 59_998,
            ts_init=t0 + 61_010,
        ),
        StatsUpdate: StatsUpdate(
            pair="usdm:BTCUSDT-usdm:ETHUSDT",
            tf="1m",
            ts=t0,
            correlation=0.93,
            adf_stat=-3.41,
            adf_pvalue=0.011,
            half_life=14.2,
            ts_event=t0 + 59_998,
            ts_init=t0 + 61_020,
        ),
        Alert: Alert(
            alert_id="5b0e8d1c-3f57-5b8e-9d43-8c1f0f0c2a11",
            event_id="0c9f3b7e-7a55-5d0a-a0a4-3d1c8e2f6b90",
            rule_id="z-entry",
            rule_version=1,
            state="firing",
            severity="warning",
            kind="threshold",
            subject="usdm:BTCUSDT-usdm:ETHUSDT",
            tf="1m",
            method="ols",
            value=-2.31,
            threshold=-2.0,
            started_ts=t0,
            ts_event=t0,
            ts_init=t0 + 61_030,
            message="zscore -2.31 outside [-2, 2]",
        ),
        DeadLetter: DeadLetter(
            source="binance-ws",
            service="ingest",
            reason="price: must be a finite number > 0",
            raw='{"e":"trade","p":"-1"}',
            original_key="usdm:BTCUSDT",
            ts_init=t0 + 61_040,
        ),
        PairBar: PairBar(pair="usdm:BTCUSDT-usdm:ETHUSDT", leg="y", bar=bar),
        ScanUpdate: ScanUpdate(
            tf="1m",
            ts=t0,
            window=1_000,
            adf_lag=1,
            instruments=["usdm:BTCUSDT", "usdm:ETHUSDT"],
            entries=[
                ScanEntry(
                    y="usdm:BTCUSDT",
                    x="usdm:ETHUSDT",
                    nobs=1_000,
                    correlation=0.91,
                    hedge_ratio=18.62,
                    coint_stat=-3.6,
                    coint_pvalue=0.025,
                )
            ],
            ts_event=t0 + 60_000,
            ts_init=t0 + 61_050,
        ),
    }


def bar_messages(table: Any, symbol: str, market: Market = "usdm", tf: str = "1s") -> list[Bar]:
    """Final :class:`Bar` messages of a DataFrame of bars (the batch reference's columns)."""
    tf_ms = timeframe_ms(tf)
    return [
        Bar(
            market=market,
            symbol=symbol,
            tf=tf,
            start=int(r.start),
            open=r.open,
            high=r.high,
            low=r.low,
            close=r.close,
            volume=r.volume,
            quote_volume=r.quote_volume,
            trades=int(r.trades),
            vwap=min(max(r.vwap, r.low), r.high),
            buy_volume=r.buy_volume,
            first_trade_id=int(r.first_trade_id),
            last_trade_id=int(r.last_trade_id),
            final=True,
            ts_event=int(r.start) + tf_ms - 1,
            ts_init=int(r.start) + tf_ms + tf_ms // 2,
        )
        for r in table.itertuples(index=False)
    ]


class WebhookReceiver:
    """A local webhook endpoint (aiohttp) that counts accepted deliveries per
    Idempotency-Key and checks the ``X-Pairstream-Signature`` against ``secret``.
    ``answers`` (statuses, consumed one per request, then ``status``) and ``retry_after``
    shape its replies; :meth:`stop` and :meth:`start` take it down and bring it back on
    the same port."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.keys: Counter[str] = Counter()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.bad_signatures = 0
        self.status = 200
        self.answers: list[int] = []
        self.retry_after: str | None = None
        self.delay_s = 0.0  # how long each answer takes
        self.requests: list[tuple[str, int]] = []  # (key, status answered)
        self.port = 0
        self._runner: Any = None

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        body = await request.read()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        key = request.headers.get("Idempotency-Key", "")
        status = self.answers.pop(0) if self.answers else self.status
        self.requests.append((key, status))
        if status >= 300:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return web.Response(status=status, text="nope", headers=headers)
        want = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, request.headers.get("X-Pairstream-Signature", "")):
            self.bad_signatures += 1
        self.keys[key] += 1
        self.bodies[key] = orjson.loads(body)
        return web.Response(status=204)

    async def start(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port after :meth:`stop`."""
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop listening (connections are refused until :meth:`start`)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
