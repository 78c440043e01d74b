"""``pairstream --help`` stays quick: it imports typer, not the services' heavy dependencies.

Not timed (the machines are shared): the modules a help run imports are checked
instead, from ``python -X importtime`` of the real command. Typer (0.2x) itself
imports pydantic to coerce option values as soon as a subcommand is parsed (the
root's ``--help`` included), so only ``pairstream --help`` is pydantic-free.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

HEAVY = (
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "faust",
    "mode",
    "aiokafka",
    "asyncpg",
    "redis",
    "aiohttp",
    "websockets",
    "prometheus_client",
    "msgspec",
    "pydantic_settings",
    "psutil",
    "pairstream.infra",
    "pairstream.settings",
)


def imported_by(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pairstream", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Usage" in proc.stdout
    return {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("up", "--help"),
        ("analyze", "--help"),
        ("bench", "--help"),
        ("ingest", "--help"),
    ],
)
def test_help_imports_no_heavy_module(args: tuple[str, ...]) -> None:
    modules = imported_by(*args)
    assert "typer" in modules  # the measurement works
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == [], f"`pairstream {' '.join(args)}` imports {heavy}"


def test_the_top_level_help_imports_no_pydantic_either() -> None:
    modules = imported_by("--help")
    assert not {"pydantic", "pydantic_core", "rich.markdown"} & modules
