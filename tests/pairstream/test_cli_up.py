"""`pairstream up` as a user runs it: a real process, real infrastructure, SIGTERM to stop."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pairstream.infra.manager import port_in_use

pytestmark = pytest.mark.integration


def test_up_with_no_services_reports_addresses_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL")
    }
    env["PAIRSTREAM_STATE_DIR"] = str(tmp_path / "state")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pairstream", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    exports = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("export "):
            exports = line
        if "Ctrl-C or SIGTERM stops everything" in line:
            break
    assert exports is not None, "".join(seen)
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", exports)]
    assert len(ports) == 3
    assert all(port_in_use("127.0.0.1", p) for p in ports)
    assert "schema public (plain): applied [1]" in "".join(seen)
    family = psutil.Process(proc.pid).children(recursive=True)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=15)
    took = time.monotonic() - started
    assert proc.returncode == 0, "".join(seen) + rest
    assert took < 10, f"stopping took {took:.1f}s"
    assert not any(port_in_use("127.0.0.1", p) for p in ports)
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert "stopped" in rest
