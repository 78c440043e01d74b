"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright
with ``executable_path``: no browser download), served in this process against the real
API over the stocked recorded pair.

Without the browser these tests skip with how to install it, except under ``CI=true``,
where a missing browser fails the run. Screenshots go to ``$UI_ARTIFACTS`` (default
``<basetemp>/ui-artifacts``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from pairstream.infra import Endpoints
from pairstream.testing import unique
from pairstream_ui.app import create_app
from pairstream_ui.bench import BROWSER_FLAGS
from pairstream_ui.config import UiSettings

from ..conftest import Server, Stocked, served


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("UI_ARTIFACTS")
    path = Path(where) if where else tmp_path_factory.getbasetemp() / "ui-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_path()
    if executable is None:
        message = (
            "no chromium: `apt-get install -y --no-install-recommends chromium "
            "chromium-driver fonts-dejavu-core` (as root) runs the dashboard tests"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:  # a fresh profile of its own each run
        browser = await playwright.chromium.launch(executable_path=executable, args=BROWSER_FLAGS)
        yield browser
        await browser.close()


@dataclass
class Page:
    """A browser page with what its console said (errors fail the test that reads them)."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)

    async def open(self, path: str) -> None:
        await self.page.goto(self.base + path)

    async def shot(self, artifacts: Path, name: str) -> Path:
        out = artifacts / f"{name}.png"
        await self.page.screenshot(path=str(out), full_page=True)
        return out


@pytest.fixture
def new_page(browser: Any, artifacts: Path) -> Callable[[str], AbstractAsyncContextManager[Page]]:
    failures = artifacts

    @asynccontextmanager
    async def make(base: str) -> AsyncIterator[Page]:
        context = await browser.new_context(viewport={"width": 1440, "height": 1000})
        page = await context.new_page()
        wrapped = Page(page, base)

        def console(message: Any) -> None:
            if message.type == "error":
                wrapped.errors.append(message.text)

        page.on("console", console)
        page.on("pageerror", lambda error: wrapped.errors.append(str(error)))
        try:
            yield wrapped
        except BaseException:  # what the page showed when the test failed, and its console
            with contextlib.suppress(Exception):
                await page.screenshot(path=str(failures / f"{unique('failed')}.png"),
                                      full_page=True)  # fmt: skip
            print("browser console:", *wrapped.errors, sep="\n  ")
            raise
        finally:
            await context.close()

    return make


@asynccontextmanager
async def dashboard(api_url: str, **settings: Any) -> AsyncIterator[str]:
    """The dashboard on a socket of its own, reading the API at ``api_url``."""
    app = create_app(UiSettings(api_url=api_url, port=0, health_interval_s=0.5, **settings))
    async with served(app.server) as url:
        yield url


@pytest.fixture
async def ui(
    api: Callable[..., AbstractAsyncContextManager[Server]],
) -> AsyncIterator[tuple[Server, str]]:
    """The API over the stocked pair and a dashboard reading it."""
    async with api() as server, dashboard(server.url) as url:
        yield server, url


@pytest.fixture
async def clean_cache(stocked: Stocked, endpoints: Endpoints) -> AsyncIterator[None]:
    """The live points go to the stocked schema's hot cache: emptied after, so the other
    tests' ``…/latest`` is PostgreSQL's again."""
    yield
    client = aioredis.from_url(endpoints.redis_url)
    try:
        keys = [k async for k in client.scan_iter(f"pairstream:{stocked.db.schema_name}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
