"""Rate limits (429 with Retry-After, counted in Redis across API processes, per key)
and keys that are never logged."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from pairstream.testing import unique


async def test_rate_limit_is_per_key_shared_by_api_processes_and_says_when_to_retry(
    api: Callable[..., Any], keys: dict[str, str]
) -> None:
    limit = "5/minute"
    async with (
        api(rate_limit=limit) as first,
        api(rate_limit=limit) as second,
        first.client(keys["read"]) as a,
        second.client(keys["read"]) as b,
        first.client(keys["write"]) as other,
    ):
        # a fresh window per test run: the limit counts per key and the keys are shared
        statuses = [(await (a if i % 2 else b).get("/api/v1/pairs")).status_code for i in range(5)]
        limited = await a.get("/api/v1/pairs")
        other_key = await other.get("/api/v1/pairs")
        health = await a.get("/health/live")
    assert statuses == [200] * 5
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["content-type"] == "application/problem+json"
    assert "5/minute" in limited.json()["detail"]
    assert other_key.status_code == 200
    assert health.status_code == 200  # probes are never limited


async def test_a_key_is_never_logged(
    api: Callable[..., Any], keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = keys["write"][:-4] + "abcd"
    async with api(rate_limit="1/minute") as server:
        for token in (keys["write"], wrong):
            async with server.client(token) as client:
                await client.get("/api/v1/pairs")
                await client.get("/api/v1/pairs")
                await client.post("/api/v1/alerts/rules", json={"id": unique("x")})
    secret = keys["write"].split("_", 2)[2]
    assert secret not in caplog.text
    assert wrong.split("_", 2)[2] not in caplog.text


async def test_a_body_over_the_limit_is_refused_with_413_declared_or_streamed(
    api: Callable[..., Any], keys: dict[str, str]
) -> None:
    body = b'{"name": "' + b"x" * 4_000 + b'"}'

    async def chunks() -> Any:
        for i in range(0, len(body), 500):
            yield body[i : i + 500]

    async with api(max_body_bytes=1024) as server, server.client(keys["write"]) as client:
        declared = await client.post("/api/v1/alerts/rules", content=body,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        streamed = await client.post("/api/v1/alerts/rules", content=chunks(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"


async def test_every_operation_documented_as_keyed_refuses_a_caller_without_a_key(
    api: Callable[..., Any],
) -> None:
    # the OpenAPI document declares the key schemes by path (the guards read the headers
    # themselves): each of those operations must really check a key
    async with api(open_reads=False) as server, server.client() as client:
        document = (await client.get("/openapi.json")).json()
        keyed = [
            (method, re.sub(r"\{[^}]+\}", "x1", path))
            for path, operations in document["paths"].items()
            for method, operation in operations.items()
            if operation.get("security")
        ]
        statuses = {(m, p): (await client.request(m, p)).status_code for m, p in keyed}
    assert len(keyed) >= 30
    assert set(statuses.values()) == {401}, statuses


def test_every_resource_route_takes_exactly_one_key_dependency_which_rate_limits() -> None:
    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    from pairstream_api.deps import read_access, write_access
    from pairstream_api.main import ROUTERS

    def calls(dependant: Dependant) -> list[Any]:
        return [c for d in dependant.dependencies for c in (d.call, *calls(d))]

    routes = [r for router in ROUTERS for r in router.routes
              if isinstance(r, APIRoute) and r.path.startswith("/api/v1")]  # fmt: skip
    assert len(routes) > 30
    for route in routes:
        keys = [c for c in calls(route.dependant) if c in (read_access, write_access)]
        assert len(keys) == 1, (route.path, route.methods, keys)  # limited once, not twice
