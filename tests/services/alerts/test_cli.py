"""``pairstream alerts rules|silence|test`` as a user runs them, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from pairstream.analytics.batch import analyze
from pairstream.cli import app
from pairstream.db import connection
from pairstream.db.migrate import migrate
from pairstream.settings import DatabaseSettings
from pairstream_analytics.config import AnalyticsSettings

EXAMPLE: dict[str, Any] = {
    "id": "z-btc-eth",
    "name": "|z| above 2",
    "subject": "BTCUSDT-ETHUSDT",
    "tf": "1s",
    "method": "ols",
    "condition": {"kind": "threshold", "field": "zscore", "op": "outside", "lo": -2, "hi": 2},
    "for_bars": 1,
    "severity": "warning",
}


@pytest.fixture
def cli_db(db_settings: DatabaseSettings, monkeypatch: pytest.MonkeyPatch) -> DatabaseSettings:
    monkeypatch.setenv("DATABASE_URL", str(db_settings.url))
    monkeypatch.setenv("DB_SCHEMA", db_settings.schema_name)
    return db_settings


async def run(*args: str, code: int = 0) -> str:
    """The command's output, whitespace folded (rich wraps long lines)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, ["alerts", *args])
    assert result.exit_code == code, result.output
    return " ".join(result.output.split()) if code else result.output


def write(path: Path, data: Any) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


async def versions(db: DatabaseSettings) -> list[tuple[str, int, bool]]:
    async with connection(db) as conn:
        rows = await conn.fetch("SELECT id, version, deleted FROM alert_rules ORDER BY 1, 2")
    return [(r["id"], r["version"], r["deleted"]) for r in rows]


async def test_the_example_rule_round_trips_and_every_change_is_a_version(
    cli_db: DatabaseSettings, tmp_path: Path
) -> None:
    path = write(tmp_path / "rule.json", EXAMPLE)
    assert "z-btc-eth v1" in await run("rules", "add", str(path))
    assert "z-btc-eth v1" in await run("rules", "add", str(path))  # the same again: no new version
    shown = orjson.loads(await run("rules", "show", "z-btc-eth"))
    assert shown["subject"] == "usdm:BTCUSDT-usdm:ETHUSDT"
    assert shown["version"] == 1
    assert "v2: disabled" in await run("rules", "disable", "z-btc-eth")
    listed = orjson.loads(await run("rules", "list", "--json"))
    assert [(r["id"], r["version"], r["enabled"]) for r in listed] == [("z-btc-eth", 2, False)]
    assert "removed" in await run("rules", "rm", "z-btc-eth")
    assert orjson.loads(await run("rules", "list", "--json")) == []
    assert "no rule 'z-btc-eth'" in await run("rules", "show", "z-btc-eth", code=1)
    assert orjson.loads(await run("rules", "show", "z-btc-eth", "--version", "1"))["enabled"]
    assert await versions(cli_db) == [
        ("z-btc-eth", 1, False),
        ("z-btc-eth", 2, False),
        ("z-btc-eth", 3, True),
    ]


async def test_a_yaml_file_of_rules_with_one_bad_rule_stores_nothing(
    cli_db: DatabaseSettings, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "- id: ok\n  name: fine\n  subject: BTCUSDT-ETHUSDT\n"
        "  condition: {kind: half_life, hi: 100}\n"
        "- id: bad\n  name: broken\n  subject: BTCUSDT-ETHUSDT\n  for_bars: 0\n"
        "  condition: {kind: expression, expr: 'zscore.__class__ > 1'}\n"
    )
    out = await run("rules", "add", str(path), code=1)
    assert "rule 2: invalid rule, nothing stored" in out
    assert "attributes are not allowed" in out
    assert "for_bars" in out
    async with connection(cli_db) as conn:
        await migrate(conn, cli_db)
    assert await versions(cli_db) == []


async def test_unreadable_rule_files_are_clear_errors(
    cli_db: DatabaseSettings, tmp_path: Path
) -> None:
    assert "No such file" in await run("rules", "add", str(tmp_path / "missing.json"), code=1)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "not valid JSON" in await run("rules", "add", str(broken), code=1)
    assert "expected a rule object" in await run(
        "rules", "add", str(write(tmp_path / "n.json", 3)), code=1
    )


async def test_silences_are_listed_until_removed(cli_db: DatabaseSettings) -> None:
    out = await run(
        "silence", "--for", "1h", "--rule", "z-*", "--reason", "maintenance", "--id", "s1"
    )
    assert "s1: z-* on * silenced for 1h" in out
    assert "s1: rule z-*, subject *" in await run("silences")
    await run("unsilence", "s1")
    assert "s1" not in await run("silences")
    assert "no silence 's1'" in await run("unsilence", "s1", code=1)
    assert "not a duration" in await run("silence", "--for", "soon", code=2)


async def test_alerts_test_prints_what_a_rule_would_have_raised_on_stored_analytics(
    cli_db: DatabaseSettings, tmp_path: Path, recorded_bars: Any
) -> None:
    settings = AnalyticsSettings(pairs="BTCUSDT-ETHUSDT", methods="ols")  # type: ignore[arg-type]
    table = analyze(recorded_bars.y, recorded_bars.x, 1_000, settings.pair_config(), ("ols",))
    async with connection(cli_db) as conn:
        await migrate(conn, cli_db)
        await conn.executemany(
            'INSERT INTO analytics_zscore (pair, tf, ts, method, "window", spread, mean, std, '
            "zscore, position, ts_init) VALUES ($1, '1s', to_timestamp($2 / 1000.0), 'ols', "
            "60, 0, 0, 1, $3, 'flat', now())",
            [
                ("usdm:BTCUSDT-usdm:ETHUSDT", int(r.ts), None if r.zscore != r.zscore else r.zscore)
                for r in table.itertuples()
            ],
        )
    path = write(tmp_path / "rule.json", {k: v for k, v in EXAMPLE.items() if k != "id"})
    lines = (await run("test", str(path), "--pair", "BTCUSDT-ETHUSDT", "--json")).splitlines()
    alerts = [orjson.loads(line) for line in lines if line.startswith("{")]
    crossings, firing = 0, False  # the lifecycle by hand: nulls change nothing
    for v in table["zscore"]:
        if v != v:
            continue
        if abs(v) >= 2 and not firing:
            crossings, firing = crossings + 1, True
        elif abs(v) < 2:
            firing = False
    fired = [a for a in alerts if a["state"] == "firing"]
    assert len(fired) == crossings > 0
    assert all(abs(a["value"]) >= 2 for a in fired)
    text = await run(
        "test", str(path), "--from", "2024-07-18T00:00:00", "--to", "2024-07-18T00:00:01"
    )
    assert "0 alerts would have fired" in text
