"""The Backtest and Data pages in the browser against the real API over the recorded
pair: the form's numbers are the API's, its errors are shown next to the field; the CSV
of a view downloads through the dashboard byte for byte as the API exports it; an
upload with a bad row is refused with its line and column and stores nothing, a good
one is stored and analysed against a stored instrument exactly as ``/analyze`` does."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

from pairstream.messages import Bar
from pairstream.testing import unique

from ..conftest import PAIR, Stocked
from .test_pages import choose, drawn, in_url

BAR_COLUMNS = ["start", "open", "high", "low", "close", "volume", "quote_volume",
               "buy_volume", "trades", "vwap"]  # fmt: skip


def bars_csv(bars: list[Bar], broken_row: int | None = None) -> bytes:
    """pairstream's bar columns; ``broken_row`` (0-based) gets a low above its high."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BAR_COLUMNS)
    for i, b in enumerate(bars):
        low = b.high * 1.01 if i == broken_row else b.low
        writer.writerow([b.start, b.open, b.high, low, b.close, b.volume, b.quote_volume,
                         b.buy_volume, b.trades, b.vwap])  # fmt: skip
    return out.getvalue().encode()


async def upload(page: Any, data: bytes) -> None:
    file = {"name": "btc.csv", "mimeType": "text/csv", "buffer": data}
    await page.set_input_files("#data-upload input[type=file]", files=[file])


async def test_a_backtest_run_in_the_form_shows_the_apis_metrics_trades_and_field_errors(
    ui: tuple[Any, str], new_page: Any, artifacts: Path
) -> None:
    server, url = ui
    body = {"pair": PAIR, "tf": "1s", "method": "ols", "entry_z": 1.5, "exit_z": 0.3,
            "stop_z": 3.5, "fee_bps": 2.0, "slippage_bps": 1.0, "capital": 100_000.0}  # fmt: skip
    async with server.client() as client:
        want = (await client.post("/api/v1/backtest", json=body)).json()
    assert want["trades"]
    async with new_page(url) as p:
        await p.open(f"/backtest?pair={PAIR}&tf=1s&method=ols&entry_z=-1")
        await p.page.click("#backtest-run")
        await p.page.locator("#backtest-error-entry_z", has_text="greater than 0").wait_for(
            timeout=15_000)  # fmt: skip
        await p.page.fill("#backtest-entry_z", "1.5")
        await p.page.fill("#backtest-exit_z", "0.3")
        await p.page.fill("#backtest-stop_z", "3.5")
        await p.page.click("#backtest-run")
        await drawn(p.page, "#backtest-equity", at_least=want["bars"])
        metrics = await p.page.inner_text("#backtest-metrics")
        assert f"{want['metrics']['total_return']:+.2%}" in metrics
        assert f"{want['metrics']['max_drawdown']:.2%}" in metrics
        assert f"{want['metrics']['final_equity']:,.2f}" in metrics
        rows = await p.page.locator("#backtest-trades tr").count()
        assert rows == len(want["trades"]) + 1  # and the header
        assert await p.page.locator("#backtest-error-entry_z").is_hidden()
        await in_url(p.page, "entry_z=1.5")  # the form in the URL: a link reruns it
        await p.shot(artifacts, "backtest-run")
        assert p.errors == []


async def test_data_downloads_the_view_and_an_upload_is_validated_stored_and_analysed(
    ui: tuple[Any, str], keys: dict[str, str], new_page: Any, stocked: Stocked,
    artifacts: Path,
) -> None:  # fmt: skip
    from .conftest import dashboard

    server, _ = ui
    btc = [b for b in stocked.bars if b.symbol == "BTCUSDT"]
    name = unique("btc-1s")
    async with dashboard(server.url, api_key=keys["write"]) as url, new_page(url) as p:
        # the view's CSV, through the dashboard, is the API's export
        await p.open("/data?instrument=usdm:BTCUSDT&tf=1s")
        await p.page.wait_for_selector("#data-bars-csv")
        async with p.page.expect_download() as started:
            await p.page.click("#data-bars-csv")
        download = await started.value
        saved = await asyncio.to_thread(Path(await download.path()).read_bytes)
        async with server.client() as client:
            view = {"instrument": "usdm:BTCUSDT", "tf": "1s"}
            export = await client.get("/api/v1/export/bars.csv", params=view)
        assert saved == export.content
        assert saved.count(b"\n") == len(btc) + 1

        # a bad row: refused with its line and column, nothing stored
        await p.page.fill("#data-name", name)
        await upload(p.page, bars_csv(btc, broken_row=9))
        problems = p.page.locator("#data-upload-problems")
        await problems.wait_for(timeout=15_000)
        text = await problems.inner_text()
        assert "11\tlow" in text  # line 11 (the header is line 1), column low
        await p.shot(artifacts, "data-upload-refused")
        async with server.client() as client:
            assert (await client.get(f"/api/v1/uploads/{name}")).status_code == 404

        # the good file: stored, then analysed against the stored ETHUSDT bars
        await upload(p.page, bars_csv(btc))
        await p.page.wait_for_selector("#data-upload-stored", timeout=15_000)
        assert f"Stored {name}: {len(btc):,} 1s bars" in await p.page.inner_text(
            "#data-upload-stored")  # fmt: skip
        await choose(p.page, "#data-y", f"{name} (1s, {len(btc)} bars)")
        await choose(p.page, "#data-x", "usdm:ETHUSDT (stored bars)")
        await p.page.click("#data-analyse")
        async with server.client() as client:
            legs = {"y": {"instrument": "usdm:BTCUSDT", "tf": "1s"},
                    "x": {"instrument": "usdm:ETHUSDT", "tf": "1s"}}  # fmt: skip
            want = (await client.post("/api/v1/analyze", json={**legs, "methods": ["ols"]})).json()
        with_z = [r["zscore"] for r in want["rows"] if r["zscore"] is not None]
        assert with_z
        assert await drawn(p.page, "#data-zscore", at_least=len(with_z)) == len(with_z)
        drawn_z = await p.page.evaluate(
            "document.querySelector('#data-zscore .js-plotly-plot').data[0].y"
        )
        assert drawn_z == with_z  # the upload is the stored bars: the same analytics
        await p.shot(artifacts, "data-analysed")
        assert p.errors == []
        async with server.client(keys["write"]) as client:
            assert (await client.delete(f"/api/v1/uploads/{name}")).status_code == 204
