"""Liveness, readiness (each dependency checked for real, with its latency), metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pairstream.topics import CONTRACT_VERSION

from ..deps import ReadKey, State
from ..errors import problems
from ..models import Check, Ready
from . import PREFIX

router = APIRouter(tags=["health"])
#: ``/api/v1/version``: a constant answer behind the same key check and rate limit as
#: every resource (the baseline of ``pairstream bench api``)
versioned = APIRouter(prefix=PREFIX, tags=["health"],
                      responses=problems(401, 429))  # fmt: skip

CHECK_TIMEOUT_S = 1.0


async def _timed(probe: Callable[[], Awaitable[Any]]) -> Check:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_S)
    except Exception as error:  # any failure of a probe is "down", with its reason
        detail = "no answer within 1 s" if isinstance(error, TimeoutError) else repr(error)
        return Check(status="down", latency_ms=None, detail=detail[:300])
    return Check(status="ok", latency_ms=round((time.perf_counter() - started) * 1000, 3))


@versioned.get("/version", summary="API and topic contract versions")
async def version(_: ReadKey) -> dict[str, int]:
    """The API's version (the `/api/v1` prefix) and the topic contract's."""
    return {"api": 1, "contract": CONTRACT_VERSION}


@router.get("/health/live", summary="The process answers")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="PostgreSQL, Redis and Kafka, each checked",
    responses={503: {"model": Ready, "description": "PostgreSQL is down: nothing can be served."}},
)
async def ready(state: State) -> JSONResponse:
    """`ready`, `degraded` (Redis or Kafka down: REST answers from PostgreSQL) or
    `unavailable` (PostgreSQL down: 503)."""

    async def postgres() -> None:
        await state.db_pool().fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)

    async def redis() -> None:
        if state.redis_client is None:
            raise RuntimeError("no Redis client")
        await state.redis_client.ping()

    async def kafka() -> None:
        await state.kafka_metadata()

    checks = dict(
        zip(
            ("postgres", "redis", "kafka"),
            await asyncio.gather(_timed(postgres), _timed(redis), _timed(kafka)),
            strict=True,
        )
    )
    if checks["postgres"].status == "down":
        status = "unavailable"
    elif any(c.status == "down" for c in checks.values()):
        status = "degraded"
    else:
        status = "ready"
    body = Ready(status=status, checks=checks)
    return JSONResponse(
        body.model_dump(mode="json"), status_code=503 if status == "unavailable" else 200
    )


@router.get(
    "/metrics", summary="Prometheus metrics", response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Text exposition."}},
)  # fmt: skip
async def metrics(state: State) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
