"""``pairstream infra up|down|status``: start, check and stop the embedded servers.

State lives in ``<state_dir>/infra.json`` (guarded by a lock file), one record
per part this tool started: pid and process start time (so a recycled pid is
never mistaken for ours), port and URL. A part whose URL is given in the
environment is *external*: it is checked, never started or stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import orjson

from pairstream.infra import InfraError
from pairstream.infra.parts import PARTS, Launched, Part, process_alive
from pairstream.settings import DatabaseSettings, InfraSettings, KafkaSettings, RedisSettings

State = Literal["started", "running", "external", "down", "unhealthy", "stopped", "stale"]


@dataclass(frozen=True, slots=True)
class Record:
    """What ``up`` remembers about a server it started."""

    pid: int
    create_time: float
    port: int
    url: str
    log: str

    @property
    def launched(self) -> Launched:
        return Launched(self.pid, self.create_time)


@dataclass(frozen=True, slots=True)
class PartReport:
    """The outcome of up/status/down for one part."""

    name: str
    env_var: str
    state: State
    url: str | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.state in ("started", "running", "external", "stopped")


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str) -> int:
    """A port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def external_urls() -> dict[str, str | None]:
    """URLs given in the environment, by part name."""
    return {
        "kafka": KafkaSettings().bootstrap,
        "postgres": DatabaseSettings().url,
        "redis": RedisSettings().url,
    }


class InfraManager:
    """Starts, checks and stops the embedded servers recorded under one state directory."""

    def __init__(
        self,
        settings: InfraSettings | None = None,
        external: dict[str, str | None] | None = None,
        parts: Sequence[Part] = PARTS,
    ) -> None:
        self.settings = settings or InfraSettings()
        self.home = self.settings.state_dir
        self.external = external if external is not None else external_urls()
        self.parts = tuple(parts)

    # -- state file -------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.home / "infra.json"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "infra.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def records(self) -> dict[str, Record]:
        """The servers recorded as started by ``up``."""
        if not self.state_file.exists():
            return {}
        try:
            raw = orjson.loads(self.state_file.read_bytes())
            return {name: Record(**rec) for name, rec in raw.get("parts", {}).items()}
        except (orjson.JSONDecodeError, TypeError) as error:
            raise InfraError(
                f"state file {self.state_file} is corrupt ({error}); stop leftover servers by hand "
                "and delete it"
            ) from error

    def _save(self, records: dict[str, Record]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_bytes(
            orjson.dumps(
                {"parts": {k: asdict(v) for k, v in records.items()}}, option=orjson.OPT_INDENT_2
            )
        )
        tmp.replace(self.state_file)

    def urls(self) -> dict[str, str]:
        """URL of each part: the environment's, else the recorded embedded server's."""
        recorded = self.records()
        out: dict[str, str] = {}
        for part in self.parts:
            url = self.external.get(part.name) or (
                recorded[part.name].url if part.name in recorded else None
            )
            if url:
                out[part.name] = url
        return out

    # -- up ---------------------------------------------------------------

    def up(self) -> list[PartReport]:
        """Start every part that is neither external nor already running; wait until healthy.

        On failure, stops what this call started and raises :class:`InfraError`.
        """
        with self._locked():
            records = self.records()
            reports: list[PartReport] = []
            started: list[str] = []
            try:
                for part in self.parts:
                    reports.append(self._up_one(part, records, started))
            except BaseException:
                for name in reversed(started):
                    part = self._part(name)
                    part.stop(self.home, records[name].launched)
                    del records[name]
                self._save(records)
                raise
            self._save(records)
            return reports

    def _part(self, name: str) -> Part:
        return next(p for p in self.parts if p.name == name)

    def _up_one(self, part: Part, records: dict[str, Record], started: list[str]) -> PartReport:
        url = self.external.get(part.name)
        if url:
            detail = self._wait_healthy(part, url, timeout=self.settings.start_timeout_s)
            return PartReport(part.name, part.env_var, "external", url, detail)
        record = records.get(part.name)
        if record is not None:
            if process_alive(record.launched):
                detail = self._wait_healthy(part, record.url, self.settings.start_timeout_s)
                return PartReport(
                    part.name,
                    part.env_var,
                    "running",
                    record.url,
                    f"already running (pid {record.pid}): {detail}",
                )
            del records[part.name]  # stale: its process has gone
        port = self._choose_port(part)
        launched = part.launch(self.home, self.settings.host, port)
        url = part.url(self.settings.host, port)
        records[part.name] = Record(
            launched.pid, launched.create_time, port, url, str(part.log_path(self.home))
        )
        started.append(part.name)
        self._save(records)  # so `down` can stop it even if we die while waiting
        try:
            detail = self._wait_healthy(part, url, self.settings.start_timeout_s, launched)
        except InfraError as error:
            raise InfraError(f"{error}\n{self._log_tail(part)}") from error
        return PartReport(part.name, part.env_var, "started", url, f"pid {launched.pid}: {detail}")

    def _choose_port(self, part: Part) -> int:
        wanted = int(getattr(self.settings, f"{part.name}_port"))
        if wanted == 0:
            return free_port(self.settings.host)
        if port_in_use(self.settings.host, wanted):
            raise InfraError(
                f"{part.name}: port {self.settings.host}:{wanted} is already taken by another "
                f"program; set INFRA_{part.name.upper()}_PORT=0 for a free port, or point "
                f"{part.env_var} at the server that is there"
            )
        return wanted

    def _wait_healthy(
        self, part: Part, url: str, timeout: float, launched: Launched | None = None
    ) -> str:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if launched is not None and not process_alive(launched):
                raise InfraError(f"{part.name}: server process {launched.pid} exited during start")
            try:
                return asyncio.run(asyncio.wait_for(part.probe(url), timeout=5))
            except Exception as error:  # any failure means "not healthy yet"
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() >= deadline:
                raise InfraError(f"{part.name} at {url} not healthy after {timeout:.0f}s: {last}")
            time.sleep(0.1)

    def _log_tail(self, part: Part, lines: int = 15) -> str:
        log = part.log_path(self.home)
        if not log.exists():
            return f"({part.name} wrote no log)"
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        return f"last lines of {log}:\n" + "\n".join(tail)

    # -- status -----------------------------------------------------------

    def status(self) -> list[PartReport]:
        """Check every part for real: process alive and a real request answered."""
        records = self.records()
        return [self._status_one(part, records.get(part.name)) for part in self.parts]

    def _status_one(self, part: Part, record: Record | None) -> PartReport:
        url = self.external.get(part.name)
        state: State = "external"
        if not url:
            if record is None:
                return PartReport(part.name, part.env_var, "down", None, "not started")
            url = record.url
            if not process_alive(record.launched):
                return PartReport(
                    part.name, part.env_var, "down", url, f"process {record.pid} is not running"
                )
            state = "running"
        try:
            detail = asyncio.run(asyncio.wait_for(part.probe(url), timeout=5))
        except Exception as error:  # report, never raise: status is a diagnosis
            return PartReport(
                part.name, part.env_var, "unhealthy", url, f"{type(error).__name__}: {error}"
            )
        return PartReport(part.name, part.env_var, state, url, detail)

    # -- down -------------------------------------------------------------

    def down(self, only: Sequence[str] | None = None) -> list[PartReport]:
        """Stop the servers ``up`` started (all, or those named in ``only``)."""
        with self._locked():
            records = self.records()
            reports: list[PartReport] = []
            for part in self.parts:
                if only is not None and part.name not in only:
                    continue
                record = records.get(part.name)
                if record is None:
                    state: State = "external" if self.external.get(part.name) else "down"
                    reports.append(
                        PartReport(
                            part.name,
                            part.env_var,
                            state,
                            self.external.get(part.name),
                            "not started by pairstream; left alone",
                        )
                    )
                    continue
                if not process_alive(record.launched):
                    reports.append(
                        PartReport(
                            part.name,
                            part.env_var,
                            "stale",
                            record.url,
                            f"process {record.pid} had already exited; record removed",
                        )
                    )
                else:
                    part.stop(self.home, record.launched)
                    if process_alive(record.launched):
                        raise InfraError(f"{part.name}: process {record.pid} would not stop")
                    reports.append(
                        PartReport(
                            part.name,
                            part.env_var,
                            "stopped",
                            record.url,
                            f"stopped process {record.pid}",
                        )
                    )
                self._wait_port_closed(record.port)
                del records[part.name]
                self._save(records)
            return reports

    def _wait_port_closed(self, port: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while port_in_use(self.settings.host, port):
            if time.monotonic() > deadline:
                raise InfraError(f"port {port} still accepts connections after its server stopped")
            time.sleep(0.05)


def exports(reports: Sequence[PartReport]) -> str:
    """``export KAFKA_BOOTSTRAP=… DATABASE_URL=… REDIS_URL=…`` for a shell."""
    pairs = [f"{r.env_var}={r.url}" for r in reports if r.url]
    return "export " + " ".join(pairs)


__all__ = ["InfraError", "InfraManager", "PartReport", "exports"]
