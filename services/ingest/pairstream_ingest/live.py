"""Live Binance trade streams: sharded connections that never give up and never lose a trade.

Each :class:`Connection` serves one shard of at most
``max_streams_per_connection`` streams. It subscribes with numbered
SUBSCRIBE messages (paced below Binance's control-message limit), checks
every answer and the LIST_SUBSCRIPTIONS result, and then reads frames into the
:class:`~pairstream_ingest.pipeline.Pipeline`. It reconnects forever, with
exponential backoff and full jitter (websockets' own reconnect loop), when the
socket closes, resets, stalls (keepalive pings unanswered) or goes silent (no
frame for ``silent_after_s``: alarmed). Before Binance's 24 h limit a successor
connection is opened; both stream for ``rotation_overlap_s`` (the sequencer
drops the overlap) and the old one unsubscribes and closes. Whatever was missed
while disconnected shows up as a trade-id gap, filled by the backfill.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Generator, Sequence

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI

from pairstream.clock import Clock
from pairstream.supervisor import Backoff
from pairstream_ingest.config import IngestSettings
from pairstream_ingest.metrics import IngestMetrics
from pairstream_ingest.pipeline import Pipeline

log = logging.getLogger(__name__)


def stream_names(symbols: Sequence[str], stream: str) -> list[str]:
    """``["btcusdt@trade", …]``: Binance stream names are lower case."""
    return [f"{symbol.lower()}@{stream}" for symbol in symbols]


def shards(streams: Sequence[str], per_connection: int) -> list[list[str]]:
    """Streams split over as few connections as the per-connection limit allows."""
    return [list(streams[i : i + per_connection]) for i in range(0, len(streams), per_connection)]


class SubscribeError(RuntimeError):
    """A SUBSCRIBE/LIST_SUBSCRIPTIONS answer was an error, missing or wrong."""


class SilentStreamError(RuntimeError):
    """Subscribed, but no frame for longer than allowed."""


class ControlPacer:
    """Spaces control messages at most ``rate`` per second (Binance counts them per connection)."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self._next = 0.0

    async def wait(self) -> None:
        now = self.clock.monotonic()
        if self._next > now:
            await self.clock.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval


def _retry_everything(error: Exception) -> Exception | None:
    """websockets' reconnect policy: every failure is worth retrying but a malformed URL."""
    if isinstance(error, InvalidURI):
        return error
    log.warning("connect failed: %r", error)
    return None


class Connection:
    """One shard of streams, over one WebSocket at a time (two while rotating)."""

    def __init__(
        self,
        name: str,
        streams: Sequence[str],
        pipeline: Pipeline,
        settings: IngestSettings,
        clock: Clock,
        metrics: IngestMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.streams = list(streams)
        self.pipeline = pipeline
        self.settings = settings
        self.clock = clock
        self.metrics = metrics
        self.backoff = Backoff(
            base_s=settings.reconnect_base_s,
            cap_s=settings.reconnect_cap_s,
            rng=rng or random.Random(),
        )
        self._ids = itertools.count(1)
        self._generations = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._handing_over: set[int] = set()
        self.subscribed = asyncio.Event()

    def _delays(self) -> Generator[float]:
        for failures in itertools.count(1):
            yield self.backoff.delay(failures)

    def _state(self, state: str) -> None:
        if self.metrics is not None:
            self.metrics.state.labels(self.name).state(state)

    async def run(self) -> None:
        """Stream forever (until cancelled)."""
        self._start_line()
        try:
            while self._tasks:
                done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._tasks.discard(task)
                    task.result()  # a bug in a line is not swallowed
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_line(self) -> None:
        generation = next(self._generations)
        task = asyncio.create_task(self._line(generation), name=f"{self.name}.g{generation}")
        self._tasks.add(task)

    async def _line(self, generation: int) -> None:
        """Connections one after another until one of them hands over to a successor."""
        origin = f"{self.name}.g{generation}"
        failures = 0
        self._state("connecting")
        async for ws in connect(
            self.settings.ws_base,
            process_exception=_retry_everything,
            reconnect_delays=self._delays,
            open_timeout=self.settings.open_timeout_s,
            ping_interval=self.settings.ping_interval_s,
            ping_timeout=self.settings.ping_timeout_s,
            close_timeout=2.0,
            max_queue=None,
            compression=None,
        ):
            opened = self.clock.monotonic()
            handed_over = False
            cause = "closed"
            try:
                handed_over = await self._session(ws, generation, opened)
                if handed_over:
                    return
            except ConnectionClosed as error:
                cause = "reset" if error.rcvd is None else f"closed {error.rcvd.code}"
                log.warning("%s: connection lost (%s); reconnecting", origin, error)
            except SilentStreamError as error:
                cause = "silent"
                log.error("ALARM %s: %s; reconnecting", origin, error)
                if self.metrics is not None:
                    self.metrics.silent_alarms.labels(self.name).inc()
            except SubscribeError as error:
                cause = "subscribe"
                log.error("%s: %s; reconnecting", origin, error)
            except TimeoutError:
                cause = "timeout"
                log.warning("%s: control answer timed out; reconnecting", origin)
            finally:
                if not handed_over:
                    self._state("connecting")
            if self.metrics is not None:
                self.metrics.reconnects.labels(self.name, cause.split()[0]).inc()
            if generation in self._handing_over:
                return  # the successor carries on
            if self.clock.monotonic() - opened < self.settings.stable_after_s:
                failures += 1
                await self.clock.sleep(self.backoff.delay(failures))
            else:
                failures = 0

    async def _session(self, ws: ClientConnection, generation: int, opened: float) -> bool:
        """Subscribe and read; ``True`` when retired by rotation (successor streaming)."""
        origin = f"{self.name}.g{generation}"
        self._state("subscribing")
        await self._subscribe(ws, origin)
        self._state("streaming")
        if self.subscribed.is_set():
            self.pipeline.resubscribed([stream.split("@")[0].upper() for stream in self.streams])
        self.subscribed.set()
        s = self.settings
        last_frame = self.clock.monotonic()
        successor = False
        handover_at = opened + s.connection_lifetime_s - s.rotation_overlap_s
        retire_at = opened + s.connection_lifetime_s
        while True:
            now = self.clock.monotonic()
            if now >= retire_at:
                await self._retire(ws, origin)
                return True
            if not successor and now >= handover_at:
                successor = True
                self._handing_over.add(generation)
                log.info("%s: connection %.0f s old; opening its successor", origin, now - opened)
                self._start_line()
            deadline = min(last_frame + s.silent_after_s, retire_at if successor else handover_at)
            try:
                async with asyncio.timeout(max(0.0, deadline - now)):
                    raw = await ws.recv(decode=False)
            except TimeoutError:
                if self.clock.monotonic() - last_frame >= s.silent_after_s:
                    self._state("silent")
                    raise SilentStreamError(
                        f"subscribed to {len(self.streams)} streams, no frame for "
                        f"{s.silent_after_s:.1f} s (wrong route or a stalled socket?)"
                    ) from None
                continue
            last_frame = self.clock.monotonic()
            answer = self.pipeline.on_frame(raw, origin, last_frame)
            if answer is not None:
                log.info("%s: unexpected control answer %s", origin, answer)

    async def _control(
        self, ws: ClientConnection, pacer: ControlPacer, method: str, params: list[str] | None
    ) -> int:
        await pacer.wait()
        request_id = next(self._ids)
        message: dict[str, object] = {"method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        await ws.send(orjson.dumps(message).decode())
        return request_id

    async def _answers(self, ws: ClientConnection, origin: str, ids: set[int]) -> dict[int, object]:
        """Read until every id in ``ids`` is answered; trade frames meanwhile go on as usual."""
        results: dict[int, object] = {}
        async with asyncio.timeout(self.settings.subscribe_timeout_s):
            while len(results) < len(ids):
                raw = await ws.recv(decode=False)
                answer = self.pipeline.on_frame(raw, origin, self.clock.monotonic())
                if answer is None:
                    continue
                if answer.id not in ids:
                    raise SubscribeError(f"answer to an id never sent: {answer}")
                if answer.error is not None:
                    raise SubscribeError(f"request {answer.id} refused: {answer.error}")
                results[answer.id] = answer.result
        return results

    async def _subscribe(self, ws: ClientConnection, origin: str) -> None:
        pacer = ControlPacer(self.settings.control_per_s, self.clock)
        batch = self.settings.streams_per_subscribe
        sent = set()
        for i in range(0, len(self.streams), batch):
            sent.add(await self._control(ws, pacer, "SUBSCRIBE", self.streams[i : i + batch]))
        answers = await self._answers(ws, origin, sent)
        wrong = {i: r for i, r in answers.items() if r is not None}
        if wrong:
            raise SubscribeError(f"SUBSCRIBE answered {wrong}, expected null results")
        listed = await self._answers(
            ws, origin, {await self._control(ws, pacer, "LIST_SUBSCRIPTIONS", None)}
        )
        result = next(iter(listed.values()))
        missing = set(self.streams) - set(result if isinstance(result, list) else [])
        if missing:
            raise SubscribeError(f"LIST_SUBSCRIPTIONS lacks {sorted(missing)[:5]}…")
        log.info("%s: subscribed to %d streams", origin, len(self.streams))

    async def _retire(self, ws: ClientConnection, origin: str) -> None:
        """Unsubscribe (answer checked) and close, after the successor has overlapped."""
        pacer = ControlPacer(self.settings.control_per_s, self.clock)
        try:
            await self._answers(
                ws, origin, {await self._control(ws, pacer, "UNSUBSCRIBE", self.streams)}
            )
        except (SubscribeError, TimeoutError, ConnectionClosed) as error:
            log.warning("%s: UNSUBSCRIBE on retirement: %s", origin, error)
        await ws.close()
        log.info("%s: retired after rotation", origin)


def connections(
    pipeline: Pipeline,
    settings: IngestSettings,
    clock: Clock,
    metrics: IngestMetrics | None = None,
) -> list[Connection]:
    """One :class:`Connection` per shard of the configured symbols' streams."""
    streams = stream_names(settings.symbols, settings.stream)
    return [
        Connection(f"{settings.market}-conn{i}", shard, pipeline, settings, clock, metrics)
        for i, shard in enumerate(shards(streams, settings.max_streams_per_connection))
    ]
