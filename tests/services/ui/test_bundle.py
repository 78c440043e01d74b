"""The dashboard's plotly.js bundle (``services/ui/plotly``, committed): built from the
plotly.js the plotly wheel carries, and holding every trace type the figures make."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs_version

from pairstream_ui import figures

BUNDLE = Path(figures.__file__).parent / "assets" / "vendor" / "plotly.min.js"
BAR = {"start": 1_720_000_000_000, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5,
       "vwap": 1.2, "volume": 3.0, "trades": 4}  # fmt: skip
CELL = {"y": "A", "x": "B", "correlation": 0.5, "coint_pvalue": 0.01}
CELL = {"y": "A", "x": "B", "correlation": 0.5, "coint_pvalue": 0.01}
POINT = {"ts": 1_720_000_000_000, "hedge_ratio": 1.0, "spread": 0.1, "mean": 0.0, "std": 1.0,
         "zscore": 2.5, "signal": "short", "correlation": 0.9}  # fmt: skip


def drawn_types() -> set[str]:
    """Every trace type the figures make."""
    made = [
        figures.candles([BAR], "X", "dark"),
        figures.normalised_legs([BAR], [BAR], ("Y", "X"), "dark"),
        figures.hedge_ratios({"ols": [POINT]}, "dark"),
        figures.spread([POINT], 2.0, "dark"),
        figures.zscore([POINT], 2.0, 0.5, "dark"),
        figures.correlation([POINT], "dark"),
        figures.heatmap({"instruments": ["A", "B"], "cells": [CELL]}, "dark"),
        figures.equity({"ts": [1, 2], "equity": [1.0, 1.1], "drawdown": [0.0, 0.0]}, "dark"),
    ]
    return {trace.type for fig in made for trace in fig.data}


def test_the_bundle_is_built_from_the_plotly_js_the_wheel_carries() -> None:
    banner = BUNDLE.read_text()[:300]
    found = re.search(r"plotly\.js v(\S+) custom bundle", banner)
    assert found is not None, banner
    assert found[1] == get_plotlyjs_version()  # else: services/ui/plotly/build.sh


async def test_every_trace_type_the_figures_make_is_in_the_bundle(browser: Any) -> None:
    context = await browser.new_context()
    try:
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.set_content("<div id='chart'></div>")
        await page.add_script_tag(content=await asyncio.to_thread(BUNDLE.read_text))
        bundled = set(await page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)"))
    finally:
        await context.close()
    assert errors == []
    assert drawn_types() == {"candlestick", "scatter", "bar", "heatmap"}
    assert drawn_types() <= bundled
