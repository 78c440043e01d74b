"""The API stopped under an open page: a banner, the page stays usable; the API back on
the same address: the banner goes and the charts and the live feed come back by
themselves. And the dashboard process connects to nothing but the API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import psutil

from pairstream.infra.manager import free_port
from pairstream.testing import eventually
from pairstream_ui.config import UiSettings

from ..conftest import PAIR, Server
from .conftest import dashboard
from .test_pages import drawn

LIVE = "window.pairstreamLive && window.pairstreamLive.status === '%s'"


async def test_the_api_stopped_shows_a_banner_and_the_page_recovers_when_it_is_back(
    api: Callable[..., AbstractAsyncContextManager[Server]], new_page: Any, artifacts: Path
) -> None:
    async with contextlib.AsyncExitStack() as running:
        server = await running.enter_async_context(api())
        port = int(server.url.rsplit(":", 1)[1])
        async with dashboard(server.url) as url, new_page(url) as p:
            await p.open(f"/pair?pair={PAIR}&tf=1s&method=ols")
            await drawn(p.page, "#pair-zscore")

            await p.page.wait_for_function(LIVE % "live", polling=50)
            await running.aclose()  # the API is gone
            await p.page.wait_for_selector("#api-banner.down", timeout=10_000)
            assert "does not answer" in await p.page.inner_text("#api-banner")
            await p.page.wait_for_function(LIVE % "down", polling=50, timeout=10_000)
            await p.shot(artifacts, "api-down")
            assert await drawn(p.page, "#pair-zscore") > 100  # what was drawn stays
            await p.page.click("#nav-system")  # and the page stays usable
            await p.page.wait_for_selector("#system-table .status-down", timeout=10_000)
            async with api(port=port):
                await p.page.wait_for_selector("#api-banner.hidden", state="attached",
                                               timeout=15_000)  # fmt: skip
                await p.page.wait_for_selector("#system-table .status-ready", timeout=10_000)
                await p.page.click("#nav-pair")
                await drawn(p.page, "#pair-zscore", at_least=100)
                await p.page.wait_for_function(LIVE % "live", polling=50, timeout=15_000)
                await p.shot(artifacts, "api-back")
            assert p.errors == []


BANNER = {  # the banner's callback as the browser calls it: it reads the API's readiness
    "output": "..api-banner.children...api-banner.className...api-state.data...api-epoch.data..",
    "outputs": [{"id": "api-banner", "property": "children"},
                {"id": "api-banner", "property": "className"},
                {"id": "api-state", "property": "data"}, {"id": "api-epoch", "property": "data"}],
    "inputs": [{"id": "health-tick", "property": "n_intervals", "value": 1}],
    "state": [{"id": "api-state", "property": "data", "value": {"up": None}},
              {"id": "api-epoch", "property": "data", "value": 0}],
    "changedPropIds": ["health-tick.n_intervals"],
}  # fmt: skip


async def test_the_dashboard_has_no_database_redis_or_kafka_setting_and_talks_only_to_the_api(
    api: Callable[..., AbstractAsyncContextManager[Server]], tmp_path: Path
) -> None:
    names = set(UiSettings.model_fields)
    assert not {n for n in names if any(w in n for w in ("database", "db", "redis", "kafka"))}
    port = free_port("127.0.0.1")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_", "DB_", "REDIS_", "KAFKA_", "TOPIC_"))}  # fmt: skip
    async with api() as server:
        env.update({"UI_PORT": str(port), "UI_API_URL": server.url,
                    "PAIRSTREAM_STATE_DIR": str(tmp_path / "no-state")})  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pairstream", "ui", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10, trust_env=False) as http:

                async def serving() -> bool:
                    assert proc.returncode is None, "pairstream ui exited"
                    with contextlib.suppress(httpx.HTTPError):
                        return (await http.get("/health/live")).is_success
                    return False

                await eventually(serving, timeout=60)
                answer = await http.post("/_dash-update-component", json=BANNER)
            assert answer.status_code == 200, answer.text
            assert "banner hidden" in answer.text  # it reached the API, which is ready
            api_port = int(server.url.rsplit(":", 1)[1])
            # what it connected to (sockets accepted on its own port, from this test's
            # client, may still be closing: they are not its connections)
            remote = {c.raddr.port for c in psutil.Process(proc.pid).net_connections("inet")
                      if c.raddr and c.laddr.port != port}  # fmt: skip
            assert remote == {api_port}  # its pooled connection to the API, and nothing else
        finally:
            proc.terminate()
            await proc.wait()
