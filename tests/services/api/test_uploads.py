"""Uploaded bar datasets and ``POST /api/v1/analyze``.

The parser on the real data.binance.vision klines (``tests/fixtures/binance/klines_1m``,
USD-M with a header row, spot without; see PROVENANCE.md) and on crafted bad files,
every problem named by line and column; then over real HTTP: uploads of both formats
stored exactly, all or nothing, listed, paged and deleted; limits and keys; and
``analyze`` equal to ``pairstream analyze`` on the same CSVs, and to the core on the
stocked schema's bars."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import gzip
import io
import logging
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from pairstream.analytics.batch import OUTPUT_COLUMNS
from pairstream.analytics.batch import analyze as batch_analyze
from pairstream.cli import app as cli
from pairstream.db import connection
from pairstream.testing import unique
from pairstream_api.dataset_models import AnalyzeRow
from pairstream_api.uploads import (
    KLINE_COLUMNS,
    MAX_PROBLEMS,
    ParsedBars,
    UploadInvalidError,
    UploadTooLargeError,
    parse_upload,
)

from ..conftest import Stocked

KLINES = Path(__file__).parents[2] / "fixtures" / "binance" / "klines_1m"
REFERENCE = Path(__file__).parents[2] / "fixtures" / "binance" / "usdm_BTCUSDT_20240718-19_1m.csv"
PROBLEM = "application/problem+json"
#: ETHUSDT 2022-08-14 moved 22 days on, onto BTCUSDT 2022-09-05 (a real price path, see
#: tests/conftest.py `kline_bars`)
SHIFT_MS = 22 * 86_400_000
OPTIONS = {
    "hedge_window": 120, "zscore_window": 30, "flow_window": 40, "stats_window": 100,
    "tests_every": 7, "adf_lag": 2, "entry_z": 1.5, "exit_z": 0.25, "price_transform": "log",
    "intercept": True, "kalman_delta": 1e-6, "kalman_obs_var": 0.5, "kalman_initial_var": 1e5,
}  # fmt: skip


def parse(data: bytes, tf: str | None = None) -> ParsedBars:
    return parse_upload(data, tf=tf, max_rows=100_000, max_bytes=10_000_000)


def zipped(day: str, symbol: str = "BTCUSDT") -> bytes:
    return (KLINES / f"{symbol}-1m-{day}.zip").read_bytes()


def unzipped(day: str, symbol: str = "BTCUSDT") -> bytes:
    with zipfile.ZipFile(KLINES / f"{symbol}-1m-{day}.zip") as archive:
        return archive.read(archive.namelist()[0])


def kline_rows(raw: bytes) -> list[list[str]]:
    """The data rows of a klines CSV, as strings (no header)."""
    rows = list(csv.reader(io.StringIO(raw.decode())))
    return rows[1:] if rows[0][0] == "open_time" else rows


def as_csv(rows: list[list[str]], header: list[str] | None = None) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def shifted_eth() -> bytes:
    """ETHUSDT 2022-08-14 (spot klines, no header) moved onto 2022-09-05."""
    rows = kline_rows(unzipped("2022-08-14", "ETHUSDT"))
    for row in rows:
        row[0] = str(int(row[0]) + SHIFT_MS)
        row[6] = str(int(row[6]) + SHIFT_MS)
    return as_csv(rows)


def pandas_klines(raw: bytes) -> pd.DataFrame:
    """A klines CSV read by pandas, independently of the parser."""
    header = 0 if raw.startswith(b"open_time") else None
    return pd.read_csv(io.BytesIO(raw), header=header, names=list(KLINE_COLUMNS))


def bars_of_klines(raw: bytes) -> bytes:
    """pairstream's bar columns from a klines CSV, the decimal strings unchanged (the
    input `pairstream analyze --bars` reads)."""
    return as_csv(
        [[r[0], r[1], r[2], r[3], r[4], r[5], r[7], r[8], r[9], "1m"] for r in kline_rows(raw)],
        ["start", "open", "high", "low", "close", "volume", "quote_volume", "trades",
         "buy_volume", "tf"],
    )  # fmt: skip


# --- the parser ---------------------------------------------------------------------


@pytest.mark.parametrize(("symbol", "day"), [("BTCUSDT", "2022-09-05"), ("ETHUSDT", "2022-08-14")])
def test_real_klines_parse_zipped_or_not_with_or_without_a_header(symbol: str, day: str) -> None:
    raw = unzipped(day, symbol)
    assert raw.startswith(b"open_time") == (symbol == "BTCUSDT")  # USD-M header, spot none
    parsed = parse(zipped(day, symbol))
    assert parse(raw) == parsed
    assert parse(gzip.compress(raw)) == parsed
    want = pandas_klines(raw)
    assert (parsed.source_format, parsed.tf, parsed.tf_ms, len(parsed)) == (
        "klines", "1m", 60_000, 1440,
    )  # fmt: skip
    assert parsed.start == want["open_time"].tolist()
    for ours, theirs in [("open", "open"), ("high", "high"), ("low", "low"), ("close", "close"),
                         ("volume", "volume"), ("quote_volume", "quote_volume"),
                         ("trades", "count"), ("buy_volume", "taker_buy_volume")]:  # fmt: skip
        assert getattr(parsed, ours) == want[theirs].tolist(), ours
    volumes = zip(parsed.quote_volume, parsed.volume, strict=True)
    assert parsed.vwap == [q / v if v > 0 else None for q, v in volumes]


def test_microsecond_klines_of_2025_spot_files_are_read_as_milliseconds() -> None:
    rows = kline_rows(unzipped("2022-09-05"))
    micros = [[str(int(r[0]) * 1000), *r[1:6], str(int(r[6]) * 1000 + 999), *r[7:]] for r in rows]
    in_ms = parse(as_csv(rows))
    assert parse(as_csv(micros)) == in_ms
    # a file across the switch (ms up to 2024-12-31, µs from 2025-01-01) reads as one
    switched = parse(as_csv(rows[:700] + micros[700:]))
    assert switched == in_ms


def test_bar_columns_in_any_order_with_binance_names_iso_times_and_ignored_columns() -> None:
    reference = parse(REFERENCE.read_bytes())  # open_time, count, partial_minute…
    table = pd.read_csv(REFERENCE)
    assert reference.source_format == "bars"
    assert reference.tf == "1m"
    assert reference.start == table["open_time"].tolist()
    assert reference.trades == table["count"].tolist()
    assert reference.buy_volume == table["taker_buy_volume"].tolist()
    export = (
        b"close,start,buy_volume,high,low,open,volume,quote_volume,vwap,revision,final,tf\n"
        b"100.5,2024-07-18T23:59:00Z,1,101,99,100,2,201,100.25,0,true,1m\n"
        b"101,2024-07-19T00:00:00+00:00,0,101.5,100,100.5,0,0,,0,true,1m\n"
        b'"101.5",2024-07-19 00:02:00,0.5,102,100.5,101,1,101.5,101.5,1,true,1m\n'
    )
    bars = parse(export)
    assert bars.start == [1721347140000, 1721347200000, 1721347320000]  # a gap is fine
    assert bars.close == [100.5, 101.0, 101.5]
    assert bars.trades == [None, None, None]
    assert bars.vwap == [100.25, None, 101.5]  # as given; none without volume


def test_the_timeframe_is_given_or_inferred_and_must_agree_with_the_file() -> None:
    rows = kline_rows(unzipped("2022-09-05"))[:10]
    assert parse(as_csv(rows), "1m").tf == "1m"
    assert parse(as_csv(rows), "60s").tf_ms == 60_000
    plain = [[r[0], *r[1:6], r[7], r[9]] for r in rows]
    header = ["start", "open", "high", "low", "close", "volume", "quote_volume", "buy_volume"]
    assert parse(as_csv(plain[::2], header)).tf == "2m"  # the smallest step
    assert parse(as_csv(plain[:1] + plain[3:], header)).tf == "1m"
    cases = {
        (as_csv(rows), "5m"): "line 2, column open_time: 1662336060000 is not a multiple of "
        "the timeframe 5m (300,000 ms)",
        (as_csv(rows), "1s"): "line 1, column close_time: 1662336059999 (ms) is not inside "
        "the 1s bar starting at 1662336000000",
        (as_csv(plain[:1], header), None): "column tf: a single bar does not tell its "
        "timeframe: give tf",
        (as_csv(plain[:3], header), "2x"): "column tf: '2x' is not a timeframe like 1s, 1m, 1h",
    }
    for (data, tf), want in cases.items():
        with pytest.raises(UploadInvalidError) as caught:
            parse(data, tf)
        assert str(caught.value.problems[0]) == want


BASE = [
    ["start", "open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "trades",
     "vwap", "tf"],
    ["1662336000000", "100", "101", "99", "100.5", "2", "201", "1", "10", "100.5", "1m"],
    ["1662336060000", "100.5", "101.5", "100", "101", "3", "303", "1.5", "12", "101", "1m"],
    ["1662336120000", "101", "102", "100.5", "101.5", "1", "101.5", "0.5", "5", "101.5", "1m"],
    ["1662336180000", "101.5", "102", "101", "101", "4", "406", "2", "7", "101.5", "1m"],
]  # fmt: skip
BAD_CELLS = [
    (3, "high", "100.7", "100.7 is below close 101"),
    (4, "low", "101.2", "101.2 is above open 101"),
    (2, "volume", "-1", "-1 is negative"),
    (5, "close", "0", "0 is not a positive price"),
    (2, "open", "nan", "'nan' is not a number"),
    (2, "open", "1_00", "'1_00' is not a number"),
    (2, "open", "1e999", "1e999 is not a finite number"),
    (3, "quote_volume", "", "empty (a number is needed)"),
    (4, "buy_volume", "1.5", "1.5 is above volume 1"),
    (4, "start", "1662336060000", "1662336060000 is a second bar at this start (also on line 3)"),
    (4, "start", "1662335940000", "1662335940000 is before the start on line 3 (bars go oldest "
     "first)"),
    (4, "start", "1662336150000", "1662336150000 is not a multiple of the timeframe 1m "
     "(60,000 ms)"),
    (4, "start", "yesterday", "'yesterday' is not epoch ms, µs or ISO-8601"),
    (4, "start", "1662336120000001", "1662336120000001 µs is not a whole millisecond"),
    (2, "trades", "1.5", "'1.5' is not a trade count"),
    (2, "vwap", "0", "0 is not a positive price"),
    (3, "tf", "5m", "5m is not the file's timeframe 1m"),
    (3, "tf", "2x", "'2x' is not a timeframe like 1s, 1m, 1h"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "column", "value", "message"), BAD_CELLS)
def test_a_bad_cell_is_one_problem_naming_its_line_and_column(
    line: int, column: str, value: str, message: str
) -> None:
    assert len(parse(as_csv(BASE))) == 4
    rows = [list(r) for r in BASE]
    rows[line - 1][BASE[0].index(column)] = value
    with pytest.raises(UploadInvalidError) as caught:
        parse(as_csv(rows))
    assert [str(p) for p in caught.value.problems] == [f"line {line}, column {column}: {message}"]
    assert (caught.value.problems[0].line, caught.value.problems[0].column) == (line, column)


def test_bad_klines_rows_are_named_by_the_files_own_columns() -> None:
    rows = kline_rows(unzipped("2022-08-14", "ETHUSDT"))  # spot: no header, line 1 = bar 1
    rows[16][2] = "1"  # line 17: high below open and close
    rows[8][8] = "x"  # line 9: count
    rows[4][6] = str(int(rows[4][0]) + 60_000)  # line 5: close_time in the next bar
    rows[29][9] = str(float(rows[29][5]) * 2)  # line 30: taker buys above volume
    rows[40] = rows[40][:11]  # line 41: a field short
    with pytest.raises(UploadInvalidError) as caught:
        parse(as_csv(rows))
    got = [str(p) for p in caught.value.problems]
    assert got == [
        "line 9, column count: 'x' is not a trade count",
        f"line 17, column high: 1 is below open {rows[16][1]}",
        f"line 30, column taker_buy_volume: {rows[29][9]} is above volume {rows[29][5]}",
        "line 41: 11 fields, the header has 12",
        f"line 5, column close_time: {rows[4][6]} (ms) is not inside the 1m bar starting at "
        f"{rows[4][0]}",
    ]


def test_files_that_are_not_bars_get_a_clear_problem() -> None:
    two = io.BytesIO()
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    header = ",".join(BASE[0]).encode()
    cases = {
        b"": "the file is empty",
        b" \n\n\r\n": "the file is empty",
        header + b"\n": "the file has a header row but no bars",
        header + b"\n" + ",".join(BASE[1]).encode() + b"\n1662336060000,\xff\n": (
            "line 3: not UTF-8 text (byte 0xff); upload the CSV as UTF-8 (or plain ASCII)"
        ),
        b"1662336000000,1,2,3\n": "line 1: no header row, and 4 fields: a file without a "
        "header must be a Binance klines CSV (12 fields); else start with a header row "
        "naming the columns (start,open,high,low,close,volume,quote_volume,buy_volume…)",
        b"start,open,high,low,close,volume\n1,1,1,1,1,1\n": (
            "line 1: the header lacks column(s) quote_volume, buy_volume"
        ),
        header + b",open_time\n": "line 1, column open_time: a second start column (columns 1 "
        "and 12)",
        header + b",colour\n": "line 1, column colour: unknown column (accepted: start, open, "
        "high, low, close, volume, quote_volume, buy_volume, trades, vwap, tf, close_time; or "
        "the 12 Binance klines columns)",
        header + b'\n"1662336000000"x,1\n': "line 2: not valid CSV: ',' expected after '\"'",
        b"PK\x03\x04 not really": "not a readable zip archive: File is not a zip file",
        two.getvalue(): "a zip upload must hold exactly one CSV; this one holds 2 files "
        "(a.csv, b.csv)",
        b"\x1f\x8b\x08\x00garbage": "not readable gzip data: Compressed file ended before the "
        "end-of-stream marker was reached",
    }
    for data, want in cases.items():
        with pytest.raises(UploadInvalidError) as caught:
            parse(data)
        assert str(caught.value.problems[0]) == want, data[:40]


def test_problems_are_collected_up_to_the_limit() -> None:
    rows = [list(r) for r in BASE[:2]]
    for i in range(1, 100):
        rows.append([str(1662336000000 + 60_000 * i), "1", "0.5", "1", "1", "1", "1", "1", "1",
                     "1", "1m"])  # fmt: skip
    with pytest.raises(UploadInvalidError) as caught:
        parse(as_csv(rows))
    assert len(caught.value.problems) == MAX_PROBLEMS
    assert caught.value.truncated
    assert caught.value.problems[0].line == 3
    assert f"the first {MAX_PROBLEMS}; parsing stopped there" in str(caught.value)


def test_limits_of_bytes_rows_and_unzipped_bytes() -> None:
    raw = unzipped("2022-09-05")
    with pytest.raises(UploadTooLargeError, match="more than 1,000 bars"):
        parse_upload(raw, max_rows=1_000, max_bytes=10**7)
    with pytest.raises(UploadTooLargeError, match="the file is over 100,000 bytes"):
        parse_upload(raw, max_rows=10**6, max_bytes=100_000)
    assert len(zipped("2022-09-05")) < 100_000 < len(raw)
    in_zip = r"the CSV in the zip \(.+\) is over 100,000 bytes"
    with pytest.raises(UploadTooLargeError, match=in_zip):
        parse_upload(zipped("2022-09-05"), max_rows=10**6, max_bytes=100_000)
    bomb = gzip.compress(b"0" * 50_000_000)
    with pytest.raises(UploadTooLargeError, match="gzip-compressed CSV is over"):
        parse_upload(bomb, max_rows=10**6, max_bytes=1_000_000)


# --- over HTTP ------------------------------------------------------------------------


async def counts(stocked: Stocked) -> tuple[int, int]:
    async with connection(stocked.db) as conn:
        datasets = await conn.fetchval("SELECT count(*) FROM datasets")
        bars = await conn.fetchval("SELECT count(*) FROM dataset_bars")
    return int(datasets), int(bars)


def form(name: str, data: bytes, filename: str = "bars.csv", **fields: str) -> dict[str, Any]:
    return {"data": {"name": name, **fields}, "files": {"file": (filename, data, "text/csv")}}


async def test_uploads_of_both_formats_are_stored_exactly_listed_paged_and_deleted(
    api: Callable[..., Any], keys: dict[str, str], stocked: Stocked
) -> None:
    btc, eth = unique("btc"), unique("eth")
    async with api() as server, server.client(keys["write"]) as client:
        first = await client.post(
            "/api/v1/uploads",
            **form(btc, zipped("2022-09-05"), "BTCUSDT-1m-2022-09-05.zip", market="usdm",
                   symbol="btcusdt"),
        )  # fmt: skip
        second = await client.post("/api/v1/uploads", **form(eth, shifted_eth(), "../eth.csv"))
        listed = (await client.get("/api/v1/uploads")).json()
        one = await client.get(f"/api/v1/uploads/{btc}")
        pages, cursor, items = 0, None, []
        while True:
            query = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"/api/v1/uploads/{btc}/bars", params=query)).json()
            items += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        ranged = (
            await client.get(
                f"/api/v1/uploads/{eth}/bars",
                params={"start": "2022-09-05T01:00:00Z", "end": "1662343200000"},
            )
        ).json()
        deleted = await client.delete(f"/api/v1/uploads/{btc}")
        gone = [await client.get(f"/api/v1/uploads/{btc}"),
                await client.get(f"/api/v1/uploads/{btc}/bars"),
                await client.delete(f"/api/v1/uploads/{btc}")]  # fmt: skip
        await client.delete(f"/api/v1/uploads/{eth}")
    assert first.status_code == 201, first.text
    assert first.headers["location"] == f"/api/v1/uploads/{btc}"
    summary = first.json()
    assert summary == one.json()
    assert {k: summary[k] for k in ("name", "instrument", "market", "symbol", "tf", "rows",
                                    "first_start", "last_start", "source_format", "filename")} == {
        "name": btc, "instrument": "usdm:BTCUSDT", "market": "usdm", "symbol": "BTCUSDT",
        "tf": "1m", "rows": 1440, "first_start": 1662336000000,
        "last_start": 1662336000000 + 1439 * 60_000, "source_format": "klines",
        "filename": "BTCUSDT-1m-2022-09-05.zip",
    }  # fmt: skip
    assert len(summary["sha256"]) == 64
    assert summary["created_by"] == keys["write"].split("_")[1]
    assert second.status_code == 201, second.text
    assert second.json()["filename"] == "eth.csv"
    assert second.json()["instrument"] is None
    assert {btc, eth} <= {d["name"] for d in listed}
    assert pages == 3
    want = pandas_klines(unzipped("2022-09-05"))
    assert [i["start"] for i in items] == want["open_time"].tolist()
    assert [i["high"] for i in items] == want["high"].tolist()
    assert [i["trades"] for i in items] == want["count"].tolist()
    assert [i["buy_volume"] for i in items] == want["taker_buy_volume"].tolist()
    assert [r["start"] for r in ranged["items"]] == list(range(1662339600000, 1662343200000,
                                                             60_000))  # fmt: skip
    assert deleted.status_code == 204
    assert [r.status_code for r in gone] == [404, 404, 404]
    async with connection(stocked.db) as conn:
        left = await conn.fetchval(
            "SELECT count(*) FROM dataset_bars WHERE dataset = ANY($1::text[])", [btc, eth]
        )
    assert left == 0  # the bars went with their datasets


async def test_one_bad_row_is_a_422_naming_its_line_and_nothing_is_stored(
    api: Callable[..., Any], keys: dict[str, str], stocked: Stocked
) -> None:
    raw = unzipped("2022-09-05")
    lines = raw.decode().split("\n")
    cells = lines[16].split(",")  # line 17 (the header is line 1)
    close = cells[4]
    cells[2] = str(float(close) - 0.5)
    lines[16] = ",".join(cells)
    bad = "\n".join(lines).encode()
    kept = unique("kept")
    async with api() as server, server.client(keys["write"]) as client:
        assert (await client.post("/api/v1/uploads", **form(kept, raw))).status_code == 201
        before = await counts(stocked)
        response = await client.post("/api/v1/uploads", **form(unique("bad"), bad, "day.csv"))
        replaced = await client.post("/api/v1/uploads", params={"replace": "true"},
                                     **form(kept, bad))  # fmt: skip
        after = await counts(stocked)
        still = (await client.get(f"/api/v1/uploads/{kept}")).json()
        await client.delete(f"/api/v1/uploads/{kept}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    message = f"{float(close) - 0.5} is below open {cells[1]}"
    if float(cells[1]) <= float(close):
        message = f"{float(close) - 0.5} is below close {close}"
    assert body["errors"] == [{"field": "high", "in": "file", "line": "17", "message": message}]
    assert body["detail"] == f"day.csv: 1 problem: line 17, column high: {message}"
    assert replaced.status_code == 422
    assert after == before  # nothing stored, nothing replaced
    assert still["rows"] == 1440


async def test_limits_keys_names_and_replacing(
    api: Callable[..., Any], keys: dict[str, str], stocked: Stocked
) -> None:
    raw = unzipped("2022-09-05")
    name = unique("limits")
    async with api(upload_max_bytes=150_000, upload_max_rows=1_000) as server:
        async with server.client(keys["write"]) as client:
            big = await client.post("/api/v1/uploads", **form(name, raw))
            many = await client.post(
                "/api/v1/uploads", **form(name, as_csv(kline_rows(raw)[:1100]))
            )
            small = as_csv(kline_rows(raw)[:600])
            created = await client.post("/api/v1/uploads", **form(name, small))
            again = await client.post("/api/v1/uploads", **form(name, small))
            fewer = small[: small.index(b"\n", 20_000) + 1]
            replaced = await client.post(
                "/api/v1/uploads", params={"replace": "true"}, **form(name, fewer)
            )
            bad_name = await client.post("/api/v1/uploads", **form("Bad Name", small))
            bad_tf = await client.post("/api/v1/uploads", **form(unique("x"), small, tf="1d"))
            no_file = await client.post("/api/v1/uploads", data={"name": unique("x")})
            wrong_tf = await client.post("/api/v1/uploads", **form(unique("x"), small, tf="1h"))
        async with server.client(keys["read"]) as reader:
            read_only = await reader.post("/api/v1/uploads", **form(unique("x"), small))
            read_delete = await reader.delete(f"/api/v1/uploads/{name}")
            read_get = await reader.get(f"/api/v1/uploads/{name}")
        async with server.client() as anonymous:
            nobody = await anonymous.post("/api/v1/uploads", **form(unique("x"), small))
        async with server.client(keys["write"]) as client:
            await client.delete(f"/api/v1/uploads/{name}")
    async with api(max_body_bytes=50_000) as server, server.client(keys["write"]) as client:
        body_limit = await client.post("/api/v1/uploads", **form(unique("x"), raw))
    for response, status in [(big, 413), (many, 413), (created, 201), (again, 409),
                             (replaced, 201), (bad_name, 422), (bad_tf, 422), (no_file, 422),
                             (wrong_tf, 422), (read_only, 403), (read_delete, 403),
                             (read_get, 200), (nobody, 401), (body_limit, 413)]:  # fmt: skip
        assert response.status_code == status, response.text
        if status >= 400:
            assert response.headers["content-type"] == PROBLEM
    assert "API_UPLOAD_MAX_BYTES" in big.json()["detail"]
    assert "more than 1,000 bars (API_UPLOAD_MAX_ROWS)" in many.json()["detail"]
    assert "?replace=true" in again.json()["detail"]
    assert replaced.json()["rows"] < created.json()["rows"] == 600
    assert read_get.json()["rows"] == replaced.json()["rows"]
    assert "name" in bad_name.json()["detail"]
    assert "tf" in bad_tf.json()["detail"]
    assert "file" in no_file.json()["detail"]
    assert "is not a multiple of the timeframe 1h" in wrong_tf.json()["detail"]


def _rows_equal(got: list[dict[str, Any]], want: pd.DataFrame) -> None:
    """JSON rows equal a table of :data:`OUTPUT_COLUMNS` exactly (NaN as null)."""
    assert len(got) == len(want)
    for row, record in zip(got, want.to_dict("records"), strict=True):
        for column in OUTPUT_COLUMNS:
            value = record[column]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert row[column] is None, column
            elif column in ("ts", "tests_ts"):
                assert row[column] == int(value), column
            else:
                assert row[column] == value, column


async def test_analyze_of_two_uploads_equals_pairstream_analyze_on_the_same_csvs(
    api: Callable[..., Any], keys: dict[str, str], tmp_path: Path
) -> None:
    btc_raw, eth_raw = unzipped("2022-09-05"), shifted_eth()
    y_path, x_path, out = tmp_path / "btc.csv", tmp_path / "eth.csv", tmp_path / "out.csv"
    y_path.write_bytes(bars_of_klines(btc_raw))
    x_path.write_bytes(bars_of_klines(eth_raw))
    args = ["analyze", "--bars", str(y_path), "--bars", str(x_path), "--out", str(out)]
    for option, value in OPTIONS.items():
        if option == "intercept":
            args.append("--intercept" if value else "--no-intercept")
        else:
            args += [f"--{option.replace('_', '-')}", str(value)]
    for method in ("ols", "huber", "kalman"):
        args += ["--method", method]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # the CLI sets up logging to its (then closed) stderr: put pytest's back after
        done = await asyncio.to_thread(CliRunner().invoke, cli, args)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert done.exit_code == 0, done.output
    y, x = unique("y"), unique("x")
    body = {"y": {"dataset": y}, "x": {"dataset": x},
            "methods": ["ols", "huber", "kalman"], **OPTIONS}  # fmt: skip
    async with api() as server, server.client(keys["write"]) as client:
        for name, data in ((y, zipped("2022-09-05")), (x, eth_raw)):
            assert (await client.post("/api/v1/uploads", **form(name, data))).status_code == 201
        as_csv_ = await client.post("/api/v1/analyze", json={**body, "format": "csv"})
        negotiated = await client.post("/api/v1/analyze", json=body,
                                       headers={"Accept": "text/csv"})  # fmt: skip
        as_json = await client.post("/api/v1/analyze", json=body)
        for name in (y, x):
            await client.delete(f"/api/v1/uploads/{name}")
    assert as_csv_.status_code == 200, as_csv_.text
    assert as_csv_.headers["content-type"].startswith("text/csv")
    assert as_csv_.content == out.read_bytes()  # byte for byte
    assert negotiated.content == out.read_bytes()
    assert as_json.status_code == 200, as_json.text
    result = as_json.json()
    want = pd.read_csv(out)  # pandas 3 reads floats exactly (round trip)
    assert set(want["method"]) == {"ols", "huber", "kalman"}
    assert len(want) > 2 * 1440
    assert want["zscore"].notna().sum() > 3000
    assert want["adf_pvalue"].notna().sum() > 100
    _rows_equal(result["rows"], want)
    assert result["count"] == len(want)
    assert result["tf"] == "1m"
    assert result["y"] == {"source": "dataset", "name": y, "tf": "1m", "bars": 1440,
                           "first_start": 1662336000000, "last_start": 1662422340000}  # fmt: skip
    assert result["options"] == {"methods": ["ols", "huber", "kalman"], **OPTIONS}
    assert set(AnalyzeRow.model_fields) == set(OUTPUT_COLUMNS)


async def test_analyze_over_stored_instruments_equals_the_core_on_those_bars(
    api: Callable[..., Any], stocked: Stocked, recorded_bars: Any
) -> None:
    legs = {"y": {"instrument": "usdm:BTCUSDT", "tf": "1s"}, "x": {"instrument": "ETHUSDT",
                                                                   "tf": "1s"}}  # fmt: skip
    start = int(recorded_bars.y["start"].iloc[60])
    end = int(recorded_bars.y["start"].iloc[-40])
    cut = {k: {**v, "start": str(start), "end": str(end)} for k, v in legs.items()}
    async with api() as server, server.client() as client:
        whole = await client.post("/api/v1/analyze", json=legs)
        ranged = await client.post("/api/v1/analyze", json={**cut, "window": 30},
                                   headers={"Accept": "text/csv"})  # fmt: skip
    settings = stocked.analytics
    want = batch_analyze(recorded_bars.y, recorded_bars.x, 1_000, settings.pair_config(),
                         settings.methods)  # fmt: skip
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["options"]["methods"] == ["ols", "kalman"]  # ANALYTICS_* of the service
    assert body["options"]["hedge_window"] == settings.hedge_window
    assert body["y"]["name"] == "usdm:BTCUSDT"
    assert body["x"]["name"] == "usdm:ETHUSDT"
    assert body["y"]["bars"] == len(recorded_bars.y)
    assert len(want) >= 2 * stocked.outputs
    _rows_equal(body["rows"], want)

    def within(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[(frame["start"] >= start) & (frame["start"] < end)]

    config = dataclasses.replace(
        settings.pair_config(), hedge_window=30, stats_window=30, zscore_window=30, flow_window=30
    )
    cut_want = batch_analyze(within(recorded_bars.y), within(recorded_bars.x), 1_000, config,
                             settings.methods)  # fmt: skip
    assert ranged.status_code == 200, ranged.text
    assert ranged.text == cut_want.to_csv(index=False, float_format="%.17g")


async def test_analyze_errors_are_problems_naming_the_field(
    api: Callable[..., Any], keys: dict[str, str], stocked: Stocked
) -> None:
    btc = {"instrument": "usdm:BTCUSDT", "tf": "1s"}
    eth = {"instrument": "usdm:ETHUSDT", "tf": "1s"}
    name = unique("minute")
    heavy = {"stats_window": 100_000, "tests_every": 1, "methods": ["ols", "huber", "kalman"]}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"y": {"dataset": unique("none")}, "x": eth}, 404, "y.dataset: no dataset"),
        ({"y": btc, "x": {"dataset": name}}, 422, "x: its timeframe 1m is not y's 1s"),
        ({"y": btc, "x": eth, "adf_lag": 40}, 422, "adf_lag"),
        ({"y": btc, "x": eth, "entry_z": 1.0, "exit_z": 1.0}, 422, "exit_z"),
        ({"y": btc, "x": eth, "hedge_window": 2}, 422, "hedge_window"),
        ({"y": btc, "x": eth, "hedge_window": "60"}, 422, "hedge_window"),  # strict JSON types
        ({"y": btc, "x": eth, "methods": ["ridge"]}, 422, "methods"),
        ({"y": {"instrument": "usdm:BTCUSDT"}, "x": eth}, 422, "tf"),
        ({"y": {"symbol": "BTCUSDT"}, "x": eth}, 422, "y"),
        ({"y": {**btc, "start": "soon"}, "x": eth}, 422, "y.instrument.start"),
        ({"y": {**btc, "start": "2024-07-19", "end": "2024-07-18"}, "x": eth}, 422, "y.end"),
        (
            {"y": {**btc, "start": "2030-01-01"}, "x": eth},
            404,
            "y: no stored final 1s bars of usdm:BTCUSDT in the range",
        ),
        ({"y": {"instrument": "spot:BTCUSDT", "tf": "1s"}, "x": eth}, 404, "spot:BTCUSDT"),
        ({"y": btc, "x": eth, "format": "xml"}, 422, "format"),
        ({"y": btc, "x": eth, **heavy}, 422, "stats_window 100,000 are about "),
    ]
    async with api(upload_max_rows=2_000) as server, server.client(keys["write"]) as client:
        minutes = as_csv(kline_rows(unzipped("2022-09-05"))[:100])
        assert (await client.post("/api/v1/uploads", **form(name, minutes))).status_code == 201
        answers = [await client.post("/api/v1/analyze", json=body) for body, _, _ in cases]
        await client.delete(f"/api/v1/uploads/{name}")
    async with api(upload_max_rows=100) as server, server.client() as client:
        capped = await client.post("/api/v1/analyze", json={"y": btc, "x": eth})
    async with api(open_reads=False) as server, server.client() as client:
        closed = await client.post("/api/v1/analyze", json={"y": btc, "x": eth})
    for (body, status, field), response in zip(cases, answers, strict=True):
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert field in response.json()["detail"], (body, response.json())
    assert capped.status_code == 422
    assert "more than 100 bars of usdm:BTCUSDT (API_UPLOAD_MAX_ROWS)" in capped.json()["detail"]
    assert closed.status_code == 401
