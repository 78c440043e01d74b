"""`pairstream up` as a user runs it: a real process, real infrastructure, SIGTERM to stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TypeVar

import httpx
import psutil
import pytest

from pairstream.codec import Codec
from pairstream.db import connection
from pairstream.db.migrate import load_migrations
from pairstream.infra.manager import port_in_use
from pairstream.kafka import create_consumer
from pairstream.messages import Alert, Bar, Message, SpreadUpdate, TickRun
from pairstream.settings import DatabaseSettings, KafkaSettings, TopicSettings
from pairstream.testing import eventually

pytestmark = pytest.mark.integration

M = TypeVar("M", bound=Message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def first_message(bootstrap: str, topic: str, codec: Codec[M], timeout: float = 45) -> M:
    consumer = create_consumer([topic], None, KafkaSettings(bootstrap=bootstrap))
    await consumer.start()
    got: list[M] = []
    try:

        async def arrived() -> bool:
            batch = await consumer.getmany(timeout_ms=200)
            got.extend(codec.decode(r.value) for records in batch.values() for r in records)
            return bool(got)

        await eventually(arrived, timeout=timeout)
    finally:
        await consumer.stop()
    return got[0]


async def dashboard_keys(database_url: str) -> list[tuple[str, bool]]:
    """The dashboard's keys: (scope, revoked)."""
    async with connection(DatabaseSettings(DATABASE_URL=database_url)) as conn:
        rows = await conn.fetch("SELECT scope, revoked_at IS NOT NULL AS revoked FROM api_keys "
                                "WHERE name = 'dashboard (pairstream up)'")  # fmt: skip
    return [(r["scope"], r["revoked"]) for r in rows]


def test_up_runs_every_service_offline_raises_a_default_alert_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL", "UI_API_KEY")
    }
    env["PAIRSTREAM_STATE_DIR"] = str(tmp_path / "state")
    env["INGEST_METRICS_PORT"] = str(free_port())
    env["RESAMPLER_METRICS_PORT"] = str(free_port())
    env["ANALYTICS_METRICS_PORT"] = str(free_port())
    env["ALERTS_METRICS_PORT"] = str(free_port())
    env["API_PORT"] = "0"  # `up` picks a free one and prints it
    env["UI_PORT"] = "0"  # and gives the dashboard the API's address
    proc = subprocess.Popen(
        [sys.executable, "-m", "pairstream", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        exports = api = dashboard = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # up to the API's and the dashboard's URLs
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("export "):
                exports = line
            api = api or re.fullmatch(
                r"api: (http://127\.0\.0\.1:(\d+))/docs \(health: \1/health/ready\)\n", line
            )
            dashboard = dashboard or re.fullmatch(
                r"dashboard: (http://127\.0\.0\.1:\d+)/ \(health: \1/health/live\)\n", line
            )
            if api and dashboard:
                break
        assert exports is not None, "".join(seen)
        # keep reading its output: a full pipe would block every service's logging
        drained = len(seen)
        reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")),
                                  daemon=True)  # fmt: skip
        reader.start()
        ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", exports)]
        assert len(ports) == 3
        assert all(port_in_use("127.0.0.1", p) for p in ports)
        versions = [m.version for m in load_migrations()]
        assert f"schema public (plain): applied {versions}" in "".join(seen)
        assert (
            "services: ingest, resampler, analytics, alerts, api, ui. "
            "Ctrl-C or SIGTERM stops everything.\n"
        ) in seen
        assert api is not None, "".join(seen)
        base, api_port = api[1], int(api[2])
        # the API on the same embedded infrastructure: each dependency checked for real
        ready = httpx.get(f"{base}/health/ready", timeout=5, trust_env=False)
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready", ready.text
        assert {c["status"] for c in ready.json()["checks"].values()} == {"ok"}
        assert dashboard is not None, "".join(seen)
        page = httpx.get(f"{dashboard[1]}/", timeout=5, trust_env=False)
        assert page.status_code == 200
        assert "<title>pairstream</title>" in page.text
        # the dashboard was given a write key of its own for this run (its rule editor)
        database_url = re.search(r"DATABASE_URL=(\S+)", exports)
        assert database_url is not None
        assert asyncio.run(dashboard_keys(database_url[1].strip("'\""))) == [("write", False)]
        pairs = httpx.get(f"{base}/api/v1/pairs", timeout=5, trust_env=False)
        assert pairs.status_code == 200, pairs.text
        assert [p["pair"] for p in pairs.json()] == ["usdm:BTCUSDT-usdm:ETHUSDT"]
        bootstrap, topics = f"127.0.0.1:{ports[0]}", TopicSettings()
        run = asyncio.run(first_message(bootstrap, topics.ticks, Codec(topics.ticks, TickRun)))
        assert run.source == "synthetic"
        assert run.key in ("usdm:BTCUSDT", "usdm:ETHUSDT")
        bar = asyncio.run(
            first_message(bootstrap, topics.bars("1s"), Codec(topics.bars("1s"), Bar))
        )
        assert bar.key in ("usdm:BTCUSDT", "usdm:ETHUSDT")
        assert bar.trades >= 1
        spread = asyncio.run(
            first_message(bootstrap, topics.spread, Codec(topics.spread, SpreadUpdate))
        )
        assert spread.pair == "usdm:BTCUSDT-usdm:ETHUSDT"
        assert spread.method == "kalman"  # the windowed methods need 300 bars first
        # the default rule: |z| >= ANALYTICS_ENTRY_Z on the Kalman z-score, once its 60-bar
        # window is full (a minute of 1s bars)
        try:
            alert = asyncio.run(
                first_message(bootstrap, topics.alerts, Codec(topics.alerts, Alert), timeout=180)
            )
        except AssertionError:
            print("".join(seen[-200:]))  # what the services said meanwhile
            raise
        assert (alert.rule_id, alert.state, alert.method) == (
            "default-zscore-1s",
            "firing",
            "kalman",
        )
        assert alert.value is not None
        assert abs(alert.value) >= 2.0
        family = psutil.Process(proc.pid).children(recursive=True)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        took = time.monotonic() - started
        reader.join(timeout=5)
        rest = "".join(seen[drained:])
        assert proc.returncode == 0, "".join(seen)
        assert took < 10, f"stopping took {took:.1f}s"
        assert not any(port_in_use("127.0.0.1", p) for p in [*ports, api_port])
        assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert "stopped" in rest
    finally:
        _stop_everything(proc)


def test_up_with_the_api_port_taken_fails_before_starting_anything(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL", "UI_API_KEY")
    }
    env["PAIRSTREAM_STATE_DIR"] = str(tmp_path / "state")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env["API_PORT"] = str(port)
        result = subprocess.run(
            [sys.executable, "-m", "pairstream", "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"api: port 127.0.0.1:{port} is already taken by another program" in " ".join(
        result.stderr.split()
    )
    assert "API_PORT=0" in result.stderr
    assert not (tmp_path / "state" / "infra.json").exists()  # no infrastructure started
    assert "export " not in result.stdout


def assignments(lines: list[str]) -> dict[str, set[int]]:
    """Each resampler replica's newest assignment of ticks partitions, from its log."""
    out = {}
    for line in lines:
        found = re.match(r"(resampler-\d) \| .* assigned partitions \[([\d, ]*)\] of ticks", line)
        if found:
            out[found[1]] = {int(p) for p in found[2].split(",") if p.strip()}
    return out


def test_up_scaled_runs_replicas_that_split_their_consumer_groups_partitions(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL", "UI_API_KEY")
    }
    env["PAIRSTREAM_STATE_DIR"] = str(tmp_path / "state")
    for var in ("INGEST", "RESAMPLER", "ANALYTICS", "ALERTS"):
        env[f"{var}_METRICS_PORT"] = str(free_port())
    env["API_PORT"] = env["UI_PORT"] = "0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pairstream", "up", "--scale", "resampler=2,analytics=2,alerts=2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen: list[str] = []
        replicas: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(replicas) < 3:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.fullmatch(r"(\w+-2): metrics on http://127\.0\.0\.1:(\d+)/metrics "
                                 r"\(\w+_METRICS_PORT\)\n", line)  # fmt: skip
            if found:
                replicas[found[1]] = int(found[2])
        assert set(replicas) == {"resampler-2", "analytics-2", "alerts-2"}, "".join(seen)
        assert (
            "services: ingest, resampler-1, resampler-2, analytics-1, analytics-2, alerts-1, "
            "alerts-2, api, ui. Ctrl-C or SIGTERM stops everything.\n"
        ) in seen
        reader = threading.Thread(target=lambda: seen.extend(iter(proc.stdout.readline, "")),
                                  daemon=True)  # fmt: skip
        reader.start()

        async def split() -> bool:  # both own partitions, together all of them, once each
            owned = assignments(list(seen))
            a, b = owned.get("resampler-1", set()), owned.get("resampler-2", set())
            return bool(a) and bool(b) and not a & b and a | b == set(range(6))

        try:
            asyncio.run(eventually(split, timeout=90))
        except AssertionError:
            print("".join(seen[-200:]))
            raise
        for name in ("resampler-2", "analytics-2", "alerts-2"):
            answer = httpx.get(f"http://127.0.0.1:{replicas[name]}/metrics", timeout=3,
                               trust_env=False)  # fmt: skip
            assert answer.status_code == 200, name
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        reader.join(timeout=5)
        assert proc.returncode == 0, "".join(seen[-100:])
    finally:
        _stop_everything(proc)


def _stop_everything(proc: subprocess.Popen[str]) -> None:
    """Whatever the test saw: stop ``up`` and its services (they run in their own sessions)."""
    if proc.poll() is not None:
        return
    family = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    for child in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
