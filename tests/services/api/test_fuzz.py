"""Schemathesis over real HTTP, from the API's own OpenAPI: every operation, positive
and negative cases and stateful links, bounded in examples and time: no server error,
every response as documented.

Reads are closed (``API_OPEN_READS=false``) so the declared security holds for every
operation. ``positive_data_acceptance`` is left out: the API checks meaning a JSON
Schema cannot state (a pair's legs differ, a date exists, a subject parses) and answers
422 for such schema-valid input, by design. One worker: Hypothesis parses lambdas with
``ast`` and CPython 3.11's ``ast`` is not safe across threads (a ``SystemError`` about the
"AST constructor recursion depth", gh-106905) — two workers crashed the fuzzer itself."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.timeout(600)
async def test_the_whole_openapi_fuzzed_gives_no_server_error_and_conforms(
    api: Callable[..., Any], keys: dict[str, str], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    async with api(rate_limit="1000000/minute", open_reads=False) as server:
        command = [
            str(SCHEMATHESIS), "run", f"{server.url}/openapi.json",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            "--mode", "all", "--max-examples", "25", "--max-time", "120",
            "--seed", "20261202", "--workers", "1", "--request-timeout", "10",
            "--generation-database", "none", "--no-color",
            "-H", f"Authorization: Bearer {keys['write']}",
            "--report", "junit", "--report-dir", str(tmp_path),
        ]  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=560, cwd=tmp_path
        )
    output = done.stdout + done.stderr
    server_errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert done.returncode == 0, output[-12000:] + "\n".join(server_errors)[-4000:]
    tested = re.search(r"Tested: (\d+)", output)
    assert tested is not None
    assert int(tested.group(1)) >= 25  # every operation
    assert not server_errors
    links = re.search(r"API Links: +(\d+) covered", output)  # the stateful phase ran on them
    assert links is not None
    assert int(links.group(1)) >= 8, output[-6000:]
