"""`pairstream infra up|status|down` on the real embedded servers, including their failures."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from pairstream.cli import app
from pairstream.infra import InfraError
from pairstream.infra.manager import InfraManager, free_port, port_in_use
from pairstream.settings import InfraSettings

pytestmark = pytest.mark.integration


def manager_for(state: Path, **settings: object) -> InfraManager:
    return InfraManager(InfraSettings(PAIRSTREAM_STATE_DIR=state, **settings), external={})


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[InfraManager]:
    m = manager_for(tmp_path / "state")
    yield m
    m.down()


def gone(pid: int, timeout: float = 5.0) -> bool:
    """The process has exited (a zombie waiting for init to reap it counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def server_pids(m: InfraManager) -> dict[str, int]:
    return {name: rec.pid for name, rec in m.records().items()}


def test_up_is_healthy_within_30s_and_status_checks_each_part(manager: InfraManager) -> None:
    started = time.monotonic()
    reports = manager.up()
    took = time.monotonic() - started
    assert took < 30, f"infra up took {took:.1f}s"
    assert [(r.name, r.state) for r in reports] == [
        ("kafka", "started"),
        ("postgres", "started"),
        ("redis", "started"),
    ]
    status = {r.name: r for r in manager.status()}
    assert all(r.state == "running" for r in status.values())
    assert "metadata ok" in status["kafka"].detail
    assert "SELECT 1 ok" in status["postgres"].detail
    assert "PING ok" in status["redis"].detail


def test_up_twice_does_not_start_a_second_copy(manager: InfraManager) -> None:
    manager.up()
    before = server_pids(manager)
    again = manager.up()
    assert {r.state for r in again} == {"running"}
    assert server_pids(manager) == before
    tansu = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any("tansu" in part for part in (p.info["cmdline"] or []))
        and str(manager.records()["kafka"].port) in " ".join(p.info["cmdline"] or [])
    ]
    assert len(tansu) == 1


def test_killed_broker_is_reported_down_and_down_cleans_up(manager: InfraManager) -> None:
    manager.up()
    records = manager.records()
    os.kill(records["kafka"].pid, signal.SIGKILL)
    assert gone(records["kafka"].pid)
    status = {r.name: r for r in manager.status()}
    assert status["kafka"].state == "down"
    assert f"process {records['kafka'].pid} is not running" in status["kafka"].detail
    assert status["postgres"].state == "running"
    result = CliRunner().invoke(
        app, ["infra", "status"], env={"PAIRSTREAM_STATE_DIR": str(manager.home)}
    )
    assert result.exit_code == 1
    reports = {r.name: r.state for r in manager.down()}
    assert reports == {"kafka": "stale", "postgres": "stopped", "redis": "stopped"}
    for record in records.values():
        assert gone(record.pid)
        assert not port_in_use("127.0.0.1", record.port)
    assert manager.records() == {}
    assert postgres_children(manager) == []


def postgres_children(m: InfraManager) -> list[psutil.Process]:
    data = str(m.home / "postgres" / "data")
    return [
        p for p in psutil.process_iter(["cmdline"]) if data in " ".join(p.info["cmdline"] or [])
    ]


def test_down_leaves_no_process_and_no_listening_port(manager: InfraManager) -> None:
    manager.up()
    records = manager.records()
    manager.down()
    for record in records.values():
        assert gone(record.pid)
        assert not port_in_use("127.0.0.1", record.port)
    assert postgres_children(manager) == []
    assert manager.status()[0].state == "down"


def test_restart_after_down_keeps_postgres_data(manager: InfraManager) -> None:
    import asyncio

    import asyncpg

    async def write_then_read(url: str, write: bool) -> int:
        conn = await asyncpg.connect(url)
        try:
            if write:
                await conn.execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
            return int(await conn.fetchval("SELECT x FROM kept"))
        finally:
            await conn.close()

    first = {r.name: r.url for r in manager.up()}
    assert asyncio.run(write_then_read(str(first["postgres"]), write=True)) == 42
    manager.down()
    second = {r.name: r.url for r in manager.up()}
    assert asyncio.run(write_then_read(str(second["postgres"]), write=False)) == 42


def test_taken_port_gives_a_clear_error_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        m = manager_for(tmp_path / "state", redis_port=taken)
        with pytest.raises(InfraError, match=f"port 127.0.0.1:{taken} is already taken"):
            m.up()
    assert m.records() == {}  # kafka and postgres, started before redis failed, were stopped
    assert postgres_children(m) == []


def test_stale_record_of_a_dead_server_is_replaced_on_up(manager: InfraManager) -> None:
    manager.up()
    old = manager.records()["redis"]
    os.kill(old.pid, signal.SIGKILL)
    assert gone(old.pid)
    reports = {r.name: r for r in manager.up()}
    assert reports["redis"].state == "started"
    assert reports["kafka"].state == "running"
    assert manager.records()["redis"].pid != old.pid


def test_external_part_is_checked_but_never_started_or_stopped(tmp_path: Path) -> None:
    base = manager_for(tmp_path / "base")
    base.up()
    try:
        redis_url = base.records()["redis"].url
        other = InfraManager(
            InfraSettings(PAIRSTREAM_STATE_DIR=tmp_path / "other"), external={"redis": redis_url}
        )
        reports = {r.name: r for r in other.up()}
        assert reports["redis"].state == "external"
        assert set(other.records()) == {"kafka", "postgres"}
        down = {r.name: r.state for r in other.down()}
        assert down["redis"] == "external"
        assert {r.name: r.state for r in base.status()}["redis"] == "running"
    finally:
        base.down()


def test_free_port_is_not_in_use() -> None:
    assert not port_in_use("127.0.0.1", free_port("127.0.0.1"))
