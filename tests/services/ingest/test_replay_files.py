"""Reading replay files: frame files, trades/aggTrades CSVs (plain, gzip, zip), bad rows."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import pytest

from pairstream_ingest.replay import csv_items, frame_items, merged, symbol_from_name

FIXTURES = Path(__file__).parents[2] / "fixtures" / "binance"
FRAMES = FIXTURES / "usdm_BTC+ETH_20240718-19.interleaved.jsonl.gz"
BTC_CSV = FIXTURES / "usdm_BTCUSDT_20240718-19.csv.gz"
ETH_CSV = FIXTURES / "usdm_ETHUSDT_20240718-19.csv.gz"


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        ("usdm_BTCUSDT_20240718-19.csv.gz", "BTCUSDT"),
        ("BTCUSDT-trades-2024-07-18.zip", "BTCUSDT"),
        ("ETHUSDT-aggTrades-2022-08-14.csv", "ETHUSDT"),
    ],
)
def test_symbol_is_read_from_the_file_name(name: str, symbol: str) -> None:
    assert symbol_from_name(Path(name)) == symbol


def test_recorded_frame_file_yields_every_trade() -> None:
    items = list(frame_items(FRAMES))
    assert len(items) == 24_356
    assert all(i.error is None for i in items)
    assert {i.symbol for i in items} == {"BTCUSDT", "ETHUSDT"}


def test_csv_form_has_the_same_trades_as_the_frames() -> None:
    from_frames = {
        (i.symbol, i.trade.trade_id, i.trade.price, i.trade.qty, i.trade.ts_event)
        for i in frame_items(FRAMES)
        if i.trade
    }
    from_csv = {
        (i.symbol, i.trade.trade_id, i.trade.price, i.trade.qty, i.trade.ts_event)
        for i in merged([BTC_CSV, ETH_CSV], "usdm")
        if i.trade
    }
    assert from_csv == from_frames


def test_merge_orders_several_files_by_event_time() -> None:
    times = [i.ts for i in merged([BTC_CSV, ETH_CSV], "usdm")]
    assert times == sorted(times)
    assert len(times) == 24_356


def test_zip_headerless_and_aggtrades_csv(tmp_path: Path) -> None:
    rows = "5182005737,63943.90,0.003,191.83170,1721347022956,true\n"
    archive = tmp_path / "BTCUSDT-trades-2024-07-18.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("BTCUSDT-trades-2024-07-18.csv", rows)
    [item] = csv_items(archive, "usdm")
    assert item.trade is not None
    assert (item.trade.trade_id, item.trade.is_buyer_maker) == (5182005737, True)
    agg = tmp_path / "BTCUSDT-aggTrades-2024-07-18.csv.gz"
    with gzip.open(agg, "wt") as f:
        f.write(
            "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
            "is_buyer_maker\n2201,63943.9,0.02,5182005737,5182005738,1721347022956,false\n"
        )
    [item] = csv_items(agg, "usdm")
    assert item.trade is not None
    assert (item.trade.first_trade_id, item.trade.last_trade_id) == (5182005737, 5182005738)


def test_broken_csv_rows_become_errors_and_the_rest_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "usdm_BTCUSDT_x.csv"
    path.write_text(
        "id,price,qty,quote_qty,time,is_buyer_maker\n"
        "1,100.0,1.0,100.0,1721347022956,true\n"
        "2,-5,1.0,100.0,1721347022957,true\n"
        "3,100.0\n"
        "4,100.0,1.0,100.0,1721347022958,maybe\n"
        "5,nan,1.0,100.0,1721347022959,false\n"
        "6,100.0,1.0,100.0,1721347022960,false\n"
    )
    items = list(csv_items(path, "usdm"))
    assert [i.trade.trade_id for i in items if i.trade] == [1, 6]
    errors = [i.error for i in items if i.error]
    assert len(errors) == 4
    assert "price" in errors[0]
    assert "index" in errors[1]
    assert "is_buyer_maker" in errors[2]
    assert "price" in errors[3]
