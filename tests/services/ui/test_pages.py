"""Every page in the browser against the real API over the recorded pair."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..conftest import PAIR

# the points of a chart's first trace
POINTS = """(id) => { const g = document.querySelector(id + ' .js-plotly-plot');
    return g && g.data && g.data[0] && g.data[0].x ? g.data[0].x.length : 0; }"""


async def points(page: Any, chart: str) -> int:
    return int(await page.evaluate(POINTS, chart))


async def drawn(page: Any, chart: str, at_least: int = 1, timeout_s: float = 20) -> int:
    """Once ``chart`` (a dcc.Graph's id, ``#…``) draws ``at_least`` points: how many."""
    await page.wait_for_function(f"(id) => ({POINTS})(id) >= {at_least}", arg=chart,
                                 polling=50, timeout=timeout_s * 1000)  # fmt: skip
    return await points(page, chart)


async def test_every_page_draws_the_recorded_pair_without_console_errors(
    ui: tuple[Any, str], new_page: Any, artifacts: Path
) -> None:
    _, url = ui
    async with new_page(url) as p:
        await p.open("/?instrument=usdm:BTCUSDT&tf=1s")
        assert await drawn(p.page, "#market-candles") > 100
        await p.shot(artifacts, "market")
        await p.open(f"/pair?pair={PAIR}&tf=1s&method=ols")
        assert await drawn(p.page, "#pair-zscore") > 100
        await p.shot(artifacts, "pair")
        await p.open("/scan?tf=1s")
        await p.page.wait_for_timeout(1500)
        await p.shot(artifacts, "scan")
        await p.open("/system")
        await p.page.wait_for_selector("#system-table", timeout=10_000)
        await p.shot(artifacts, "system")
        assert p.errors == []
