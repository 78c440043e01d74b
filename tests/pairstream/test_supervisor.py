"""The supervisor runs real child processes: prefixed logs, restarts with backoff, bounded stop."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import psutil

from pairstream.supervisor import Backoff, ServiceSpec, Supervisor
from pairstream.testing import eventually


def python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


async def test_child_output_is_prefixed_with_its_service_name() -> None:
    lines: list[str] = []
    sup = Supervisor(
        [ServiceSpec("ingest", python("print('hello'); import time; time.sleep(60)"))],
        out=lines.append,
    )
    runner = asyncio.create_task(sup.run())
    await eventually(lambda: "ingest | hello" in lines, timeout=10)
    sup.stop()
    await asyncio.wait_for(runner, timeout=10)


async def test_crashing_child_is_restarted_with_growing_backoff(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    code = f"import time; open({str(starts)!r}, 'a').write(f'{{time.monotonic()}}\\n'); exit(3)"
    sup = Supervisor(
        [ServiceSpec("flaky", python(code))],
        out=lambda _: None,
        backoff=Backoff(base_s=0.2, cap_s=0.8),
    )
    sup.backoff.rng.seed(1)
    runner = asyncio.create_task(sup.run())
    child = sup.children["flaky"]
    # Checked before stop(): stopping may SIGTERM a child that has not exited yet.
    await eventually(lambda: child.failures >= 3, timeout=20)
    assert child.last_exit == 3
    sup.stop()
    await asyncio.wait_for(runner, timeout=10)
    assert len(starts.read_text().split()) >= 3
    assert child.starts >= 3
    delays = [sup.backoff.delay(n) for n in (1, 2, 3, 10)]
    assert all(0 <= d <= cap for d, cap in zip(delays, (0.2, 0.4, 0.8, 0.8), strict=True))


async def test_stop_kills_a_child_that_ignores_sigterm_within_the_grace_period() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(600)"
    )
    lines: list[str] = []
    sup = Supervisor(
        [
            ServiceSpec("stubborn", python(code)),
            ServiceSpec("polite", python("import time; print('ready'); time.sleep(600)")),
        ],
        out=lines.append,
        grace_s=1.0,
    )
    runner = asyncio.create_task(sup.run())
    await eventually(lambda: sum("ready" in line for line in lines) == 2, timeout=10)
    pids = [c.process.pid for c in sup.children.values() if c.process]
    started = time.monotonic()
    sup.stop()
    await asyncio.wait_for(runner, timeout=10)
    assert time.monotonic() - started < 4
    for pid in pids:
        assert not psutil.pid_exists(pid)


async def test_a_service_that_cannot_be_started_is_retried_not_dropped(tmp_path: Path) -> None:
    lines: list[str] = []
    sup = Supervisor(
        [ServiceSpec("missing", [str(tmp_path / "no-such-binary")])],
        out=lines.append,
        backoff=Backoff(base_s=0.05, cap_s=0.1),
    )
    runner = asyncio.create_task(sup.run())
    await eventually(lambda: sup.children["missing"].failures >= 3, timeout=10)
    sup.stop()
    await asyncio.wait_for(runner, timeout=10)
    assert str(sup.children["missing"].last_exit).startswith("not started")
    assert sup.children["missing"].starts == 0
