"""The fake clock moves only when told and wakes sleepers exactly at their deadline."""

from __future__ import annotations

import asyncio

import pytest

from pairstream.clock import FakeClock, SystemClock


async def test_fake_clock_sleep_wakes_only_when_time_reaches_the_deadline() -> None:
    clock = FakeClock(start_ms=1_000)
    woke: list[int] = []

    async def sleeper(seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(clock.now_ms())

    tasks = [asyncio.create_task(sleeper(s)) for s in (2.0, 0.5)]
    await asyncio.sleep(0)
    assert clock.sleepers == 2
    clock.advance(0.4)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(0.1)
    await asyncio.sleep(0)
    assert woke == [1_500]
    clock.set_ms(5_000)
    await asyncio.gather(*tasks)
    assert woke == [1_500, 5_000]


def test_fake_clock_never_goes_backwards() -> None:
    clock = FakeClock(start_ms=10)
    with pytest.raises(ValueError, match="backwards"):
        clock.set_ms(9)


async def test_system_clock_reports_epoch_ms_and_monotonic_time() -> None:
    clock = SystemClock()
    assert clock.now_ms() > 1_700_000_000_000
    before = clock.monotonic()
    await clock.sleep(0.01)
    assert clock.monotonic() - before >= 0.009
