"""Runs services as separate processes: prefixed logs, restarts with backoff, clean stop.

Used by ``pairstream up``. Each child runs in its own session so a Ctrl-C in the
terminal reaches only the supervisor, which then stops children in order:
SIGTERM to each child's process group, SIGKILL to whatever is left after the
grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pairstream.clock import Clock, SystemClock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service process: its name (the log prefix), command line and the environment it
    gets beyond the supervisor's."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)


def service_command(name: str, *args: str) -> list[str]:
    """``python -m pairstream <name> …`` with this interpreter."""
    return [sys.executable, "-m", "pairstream", name, *args]


def suite(
    scale: Mapping[str, int] | None = None, free_port: Callable[[], int] | None = None
) -> tuple[ServiceSpec, ...]:
    """The services ``pairstream up`` runs, in start order: every registered
    :class:`pairstream.services.Service` with an ``up`` command line, ``scale[name]`` times
    (``resampler-1``, ``resampler-2``, …; each replica after the first on a metrics port
    from ``free_port``). Only services with a ``metrics_port_env`` scale."""
    from pairstream.services import services

    scale = dict(scale or {})
    specs = []
    for s in services():
        if not s.up:
            continue
        replicas = scale.pop(s.name, 1)
        if replicas == 1:
            specs.append(ServiceSpec(s.name, service_command(*s.up)))
            continue
        if s.metrics_port_env is None or free_port is None:
            raise ValueError(f"{s.name} does not scale: one process serves it")
        specs += [
            ServiceSpec(f"{s.name}-{k}", service_command(*s.up),
                        {} if k == 1 else {s.metrics_port_env: str(free_port())})
            for k in range(1, replicas + 1)
        ]  # fmt: skip
    if scale:
        raise ValueError(f"no service {', '.join(sorted(scale))} to scale")
    return tuple(specs)


def __getattr__(name: str) -> tuple[ServiceSpec, ...]:
    # ``SERVICES``: :func:`suite`, read from the entry points on first use
    if name == "SERVICES":
        return suite()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter; reset after a child ran ``stable_s`` seconds."""

    base_s: float = 0.5
    cap_s: float = 30.0
    stable_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failures: int) -> float:
        return self.rng.uniform(0, min(self.cap_s, self.base_s * 2 ** max(0, failures - 1)))


@dataclass(slots=True)
class ChildState:
    """What the supervisor knows about one child."""

    spec: ServiceSpec
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    failures: int = 0
    last_exit: int | str | None = None


class Supervisor:
    """Keeps a set of service processes running until :meth:`stop` is called."""

    def __init__(
        self,
        services: Sequence[ServiceSpec],
        env: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        grace_s: float = 6.0,
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.children = {spec.name: ChildState(spec) for spec in services}
        self.env = dict(os.environ if env is None else env)
        self.backoff = backoff or Backoff()
        self.clock = clock or SystemClock()
        self.grace_s = grace_s
        self.out = out or (lambda line: print(line, flush=True))
        self._stopping = asyncio.Event()
        self._width = max((len(name) for name in self.children), default=0)

    async def run(self) -> None:
        """Run every child until :meth:`stop`; then stop them all."""
        tasks = [asyncio.create_task(self._keep_running(c)) for c in self.children.values()]
        try:
            await self._stopping.wait()
        finally:
            await self._stop_children()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Ask :meth:`run` to stop every child and return."""
        self._stopping.set()

    async def _keep_running(self, child: ChildState) -> None:
        while not self._stopping.is_set():
            started = self.clock.monotonic()
            try:
                child.process = await asyncio.create_subprocess_exec(
                    *child.spec.argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env={**self.env, **child.spec.env},
                    start_new_session=True,
                )
            except OSError as error:  # e.g. a missing executable: retry like a crash
                log.error("cannot start %s: %s", child.spec.name, error)
                code: int | str = f"not started ({error.strerror})"
            else:
                child.starts += 1
                log.info("started %s (pid %d)", child.spec.name, child.process.pid)
                await self._pump(child)
                code = await child.process.wait()
            child.last_exit = code
            if self._stopping.is_set():
                return
            if self.clock.monotonic() - started >= self.backoff.stable_s:
                child.failures = 0
            child.failures += 1
            delay = self.backoff.delay(child.failures)
            log.warning(
                "%s exited with code %s; restart %d in %.1fs",
                child.spec.name,
                code,
                child.failures,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)

    async def _pump(self, child: ChildState) -> None:
        assert child.process is not None
        assert child.process.stdout is not None
        prefix = f"{child.spec.name:<{self._width}} | "
        async for line in child.process.stdout:
            self.out(prefix + line.decode(errors="replace").rstrip("\n"))

    async def _stop_children(self) -> None:
        running = [
            c.process
            for c in self.children.values()
            if c.process is not None and c.process.returncode is None
        ]
        for process in running:
            _signal_group(process.pid, signal.SIGTERM)
        if not running:
            return
        waits = [asyncio.create_task(p.wait()) for p in running]
        _, pending = await asyncio.wait(waits, timeout=self.grace_s)
        for process in running:
            if process.returncode is None:
                log.warning(
                    "pid %d ignored SIGTERM for %.0fs; killing it", process.pid, self.grace_s
                )
                _signal_group(process.pid, signal.SIGKILL)
        if pending:
            await asyncio.wait(pending, timeout=2)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
