"""Filling trade-id gaps over Binance REST, within the request-weight budget.

With an API key, ``historicalTrades`` gives the exact missing trades. Without
one, ``aggTrades`` gives aggregates (one price, one taker, consecutive trade
ids); each is published as one trade carrying ``first_trade_id`` /
``last_trade_id``, trimmed to the ids still missing, its quantity reduced by
what was already published or is waiting inside its range, so no quantity is
ever counted twice (:func:`trim_aggregates`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import aiohttp
import msgspec
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from pairstream.clock import Clock
from pairstream.instruments import instrument
from pairstream.messages import Market, Trade
from pairstream_ingest.metrics import IngestMetrics
from pairstream_ingest.pipeline import Pipeline
from pairstream_ingest.sequencer import Sequencer, UnknownQuantityError, span

log = logging.getLogger(__name__)


# {"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,"T":1498793709153,"m":true}
class RestAggTrade(msgspec.Struct, frozen=True):
    """One aggregate of ``GET …/aggTrades``."""

    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 (Binance's field name)
    T: int
    m: bool


# {"id":28457,"price":"4.00000100","qty":"12.00000000","quoteQty":"48.000012",
#  "time":1499865549590,"isBuyerMaker":true}
class RestTrade(msgspec.Struct, frozen=True, rename="camel"):
    """One trade of ``GET …/historicalTrades``."""

    id: int
    price: str
    qty: str
    time: int
    is_buyer_maker: bool


_aggs = msgspec.json.Decoder(list[RestAggTrade])
_trades = msgspec.json.Decoder(list[RestTrade])

#: path, weight and page size of each endpoint, per market
ENDPOINTS: dict[Market, dict[str, tuple[str, int, int]]] = {
    "usdm": {
        "aggTrades": ("/fapi/v1/aggTrades", 20, 1000),
        "historicalTrades": ("/fapi/v1/historicalTrades", 20, 500),
    },
    "spot": {
        "aggTrades": ("/api/v3/aggTrades", 4, 1000),
        "historicalTrades": ("/api/v3/historicalTrades", 25, 1000),
    },
}
HOUR_MS = 3_600_000
#: Binance's request-weight limit per minute and IP
EXCHANGE_LIMIT: dict[Market, int] = {"usdm": 2_400, "spot": 6_000}


class RestError(RuntimeError):
    """Binance answered with an error that retrying will not fix."""


class TransientRestError(RuntimeError):
    """A network error, a 5xx, or a rate-limit answer: worth retrying later."""


class WeightLimiter:
    """Token bucket of request weight per minute; Binance's own counters tighten it."""

    def __init__(self, per_minute: int, clock: Clock) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.tokens = float(per_minute)
        self.updated = clock.monotonic()
        self.blocked_until = 0.0

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self.tokens = min(
            self.per_minute, self.tokens + (now - self.updated) * self.per_minute / 60
        )
        self.updated = now

    async def acquire(self, weight: int) -> None:
        """Wait until ``weight`` fits the budget, then spend it."""
        while True:
            self._refill()
            wait = self.blocked_until - self.clock.monotonic()
            if wait <= 0 and self.tokens >= weight:
                self.tokens -= weight
                return
            if wait <= 0:
                wait = (weight - self.tokens) * 60 / self.per_minute
            await self.clock.sleep(wait)

    def used(self, used_weight: int, exchange_limit: int) -> None:
        """Binance reported ``used_weight`` of its ``exchange_limit`` this minute."""
        self._refill()
        self.tokens = min(self.tokens, max(0.0, exchange_limit - used_weight))

    def block(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a 429/418 answer's ``Retry-After``)."""
        self.blocked_until = max(self.blocked_until, self.clock.monotonic() + seconds)
        self.tokens = 0.0


class BinanceRest:
    """The two public trade-history endpoints, rate-limited by weight and retried."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        market: Market,
        limiter: WeightLimiter,
        api_key: str | None = None,
        metrics: IngestMetrics | None = None,
        attempts: int = 5,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.market: Market = market
        self.limiter = limiter
        self.api_key = api_key
        self.metrics = metrics
        self.attempts = attempts

    async def _get(self, endpoint: str, params: dict[str, Any]) -> bytes:
        path, weight, _ = ENDPOINTS[self.market][endpoint]
        headers = {"X-MBX-APIKEY": self.api_key} if self.api_key else {}
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientRestError),
            wait=wait_random_exponential(multiplier=0.5, max=30),
            stop=stop_after_attempt(self.attempts),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.limiter.acquire(weight)
                return await self._request(endpoint, path, params, headers)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request(
        self, endpoint: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> bytes:
        try:
            async with self.session.get(
                self.base_url + path, params=params, headers=headers
            ) as response:
                body = await response.read()
                status = response.status
                used = response.headers.get("X-MBX-USED-WEIGHT-1M")
                retry_after = response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError) as error:
            self._count(endpoint, "error")
            raise TransientRestError(f"{endpoint}: {error!r}") from error
        self._count(endpoint, str(status))
        if used is not None and used.isdigit():
            self.limiter.used(int(used), EXCHANGE_LIMIT[self.market])
            if self.metrics is not None:
                self.metrics.rest_weight.set(int(used))
        if status in (418, 429):
            self.limiter.block(float(retry_after) if retry_after else 60.0)
            raise TransientRestError(
                f"{endpoint}: rate limited ({status}), retry after {retry_after}"
            )
        if status >= 500:
            raise TransientRestError(f"{endpoint}: HTTP {status}: {body[:200]!r}")
        if status != 200:
            raise RestError(f"{endpoint}: HTTP {status}: {body[:200]!r}")
        return body

    def _count(self, endpoint: str, status: str) -> None:
        if self.metrics is not None:
            self.metrics.rest_requests.labels(endpoint, status).inc()

    async def agg_trades(
        self,
        symbol: str,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[RestAggTrade]:
        """One page of aggregates: by aggregate id, or by a time range under an hour."""
        params: dict[str, Any] = {"symbol": symbol, "limit": self.page("aggTrades")}
        if from_id is not None:
            params["fromId"] = from_id
        else:
            params["startTime"], params["endTime"] = start_ms, end_ms
        return _aggs.decode(await self._get("aggTrades", params))

    async def historical_trades(self, symbol: str, from_id: int, limit: int) -> list[RestTrade]:
        """Up to ``limit`` trades from trade id ``from_id`` (needs an API key)."""
        params = {"symbol": symbol, "fromId": from_id, "limit": limit}
        return _trades.decode(await self._get("historicalTrades", params))

    def page(self, endpoint: str) -> int:
        return ENDPOINTS[self.market][endpoint][2]


def trim_aggregates(
    aggregates: list[RestAggTrade],
    gap: tuple[int, int],
    known_qty: Callable[[int, int], Decimal],
    waiting_ids: Callable[[int, int], int],
) -> list[Trade]:
    """Backfill trades for the missing ids ``gap`` from aggregates around it.

    Each aggregate overlapping the gap becomes one trade over the part of its
    range that is missing. The ids before the gap are published; their
    quantity (``known_qty``) is taken off. The ids after the gap are taken off
    too when every one of them is waiting (``waiting_ids`` counts them);
    otherwise the trade keeps them (the waiting trades inside become
    duplicates and are dropped), so each id's quantity is counted once.
    """
    first, last = gap
    out: list[Trade] = []
    for agg in sorted(aggregates, key=lambda a: a.f):
        if agg.l < first or agg.f > last:
            continue
        lo, hi = max(agg.f, first), agg.l
        qty = Decimal(agg.q)
        if agg.f < lo:
            qty -= known_qty(agg.f, lo - 1)
        if agg.l > last and waiting_ids(last + 1, agg.l) == agg.l - last:
            qty -= known_qty(last + 1, agg.l)
            hi = last
        if qty <= 0:
            raise UnknownQuantityError(
                f"aggregate {agg.a}: {agg.q} minus known trades leaves {qty}"
            )
        out.append(
            Trade(
                trade_id=lo,
                ts_event=agg.T,
                price=float(agg.p),
                qty=float(qty),
                is_buyer_maker=agg.m,
                first_trade_id=lo,
                last_trade_id=hi,
            )
        )
        if hi > last:
            break  # the trades after this one start past the gap
    return out


class Backfiller:
    """Watches the pipeline for trade-id gaps and fills them over REST."""

    def __init__(
        self,
        pipeline: Pipeline,
        rest: BinanceRest,
        clock: Clock,
        grace_s: float = 0.5,
        retry_s: float = 2.0,
        give_up_s: float = 600.0,
        metrics: IngestMetrics | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.rest = rest
        self.clock = clock
        self.grace_s = grace_s
        self.retry_s = retry_s
        self.give_up_s = give_up_s
        self.metrics = metrics
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Start a filler for each symbol that has a gap, forever; a filler's crash propagates."""
        async with asyncio.TaskGroup() as group:
            while True:
                await self.pipeline.gap_found.wait()
                self.pipeline.gap_found.clear()
                for symbol in self.pipeline.gapped | self.pipeline.catch_up:
                    task = self._tasks.get(symbol)
                    if task is None or task.done():
                        self._tasks[symbol] = group.create_task(
                            self._fill(symbol), name=f"backfill-{symbol}"
                        )

    async def _fill(self, symbol: str) -> None:
        seq = self.pipeline.sequencer(symbol)
        await self.clock.sleep(self.grace_s)  # late frames may still close it
        if symbol in self.pipeline.catch_up:
            self.pipeline.catch_up.discard(symbol)
            await self._catch_up(seq)
        started = self.clock.monotonic()
        while (gap := seq.gap()) is not None:
            try:
                trades = await self.fetch(seq, gap)
            except (RestError, TransientRestError, UnknownQuantityError) as error:
                log.warning("%s: backfill of ids %s failed: %s", symbol, gap, error)
                trades = []
            for trade in trades:
                self.pipeline.offer(symbol, trade, "backfill")
            if seq.gap() != gap:
                self._filled(symbol, gap, sum(_size(t) for t in trades))
                continue
            if self.clock.monotonic() - started > self.give_up_s:
                log.error(
                    "ALARM %s: trade ids %s..%s could not be backfilled in %.0f s; giving them up",
                    symbol, gap[0], gap[1], self.give_up_s,
                )  # fmt: skip
                self.pipeline.skip_gap(symbol)
                continue
            await self.clock.sleep(self.retry_s)

    async def _catch_up(self, seq: Sequencer) -> None:
        """After a reconnect: whatever REST has past the last released trade, gap or not."""
        if seq.next_id is None or seq.gap() is not None:
            return  # nothing released yet, or the gap filler is on it
        gap = (seq.next_id, 2**62)
        try:
            trades = await self.fetch(seq, gap, end_ms=self.clock.now_ms())
        except (RestError, TransientRestError, UnknownQuantityError) as error:
            log.warning("%s: catch-up after reconnect failed: %s", seq.symbol, error)
            return
        current = seq.gap()
        for trade in trades:
            if current is not None and span(trade)[0] > current[1]:
                break  # live trades took over from here
            self.pipeline.offer(seq.symbol, trade, "backfill")
        if trades:
            self._filled(seq.symbol, gap, sum(_size(t) for t in trades))

    def _filled(self, symbol: str, gap: tuple[int, int], ids: int) -> None:
        name = instrument(self.rest.market, symbol)
        if self.metrics is not None:
            self.metrics.gap_ids_filled.labels(name).inc(ids)
        log.info("%s: backfilled %d missing trade ids from %d", name, ids, gap[0])

    async def fetch(
        self, seq: Sequencer, gap: tuple[int, int], end_ms: int | None = None
    ) -> list[Trade]:
        """Trades that fill (part of) ``gap``: exact with an API key, else aggregates."""
        if self.rest.api_key:
            return await self._exact(seq.symbol, gap)
        return await self._aggregated(seq, gap, end_ms)

    async def _exact(self, symbol: str, gap: tuple[int, int]) -> list[Trade]:
        first, last = gap
        out: list[Trade] = []
        while first <= last:
            page = await self.rest.historical_trades(
                symbol, first, min(self.rest.page("historicalTrades"), last - first + 1)
            )
            for t in page:
                if first <= t.id <= last:
                    out.append(
                        Trade(
                            trade_id=t.id,
                            ts_event=t.time,
                            price=float(t.price),
                            qty=float(t.qty),
                            is_buyer_maker=t.is_buyer_maker,
                        )
                    )
            if not page or page[-1].id < first:
                break  # not published by REST yet
            first = page[-1].id + 1
        return out

    async def _aggregated(
        self, seq: Sequencer, gap: tuple[int, int], end_ms: int | None = None
    ) -> list[Trade]:
        first, last = gap
        start_ms = seq.last_ts
        if end_ms is None:
            end_ms = seq.first_waiting_ts()
        if start_ms is None:
            raise UnknownQuantityError(f"{seq.symbol}: nothing released yet")
        found: list[RestAggTrade] = []
        page = await self.rest.agg_trades(
            seq.symbol, start_ms=start_ms, end_ms=min(end_ms, start_ms + HOUR_MS - 1)
        )
        while page:
            found.extend(a for a in page if a.l >= first and a.f <= last)
            if page[-1].l >= last:
                break
            page = await self.rest.agg_trades(seq.symbol, from_id=page[-1].a + 1)
        return trim_aggregates(found, gap, seq.known_qty, seq.waiting_ids)


def _size(trade: Trade) -> int:
    lo, hi = span(trade)
    return hi - lo + 1
