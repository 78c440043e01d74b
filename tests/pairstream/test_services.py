"""Services join the suite through entry points; the shared package imports none of them."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from pairstream.services import ENTRY_POINT_GROUP, Service, services
from pairstream.supervisor import SERVICES, service_command, suite

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
SHARED = ROOT / "src" / "pairstream"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def service_folders() -> dict[str, str]:
    """``services/<name>/`` → its package (the one folder in it holding ``__init__.py``)."""
    found = {}
    for folder in sorted(p for p in (ROOT / "services").iterdir() if p.is_dir()):
        packages = [p.name for p in folder.iterdir() if (p / "__init__.py").is_file()]
        assert len(packages) == 1, f"{folder}: one package per service folder, found {packages}"
        found[folder.name] = packages[0]
    return found


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_shared_package_imports_no_service() -> None:
    packages = set(service_folders().values())
    assert packages, "no service packages found under services/"
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in SHARED.rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in packages or name.split(".")[0].startswith("pairstream_")
    }
    assert not offenders, "src/pairstream must find services through entry points"


def test_every_service_folder_is_registered_packaged_and_checked() -> None:
    points = PYPROJECT["project"]["entry-points"][ENTRY_POINT_GROUP]
    registered = {s.name: s for s in services()}
    where = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["where"]
    mypy = PYPROJECT["tool"]["mypy"]
    for folder, package in service_folders().items():
        assert points.get(folder) == f"{package}.service:SERVICE", folder
        assert folder in registered, f"{folder}: entry point not installed (reinstall: ./dev)"
        assert f"services/{folder}" in where, folder
        assert f"services/{folder}" in PYPROJECT["tool"]["ruff"]["src"], folder
        assert package in mypy["packages"], folder
        assert f"services/{folder}" in mypy["mypy_path"].split(":"), folder
    assert set(registered) == set(service_folders())


def test_services_are_service_objects_in_start_order() -> None:
    found = services()
    assert all(isinstance(s, Service) for s in found)
    assert [s.name for s in found] == ["ingest", "resampler", "analytics", "alerts", "api", "ui"]
    assert [s.order for s in found] == sorted(s.order for s in found)


def test_pairstream_up_runs_the_registered_services_in_order() -> None:
    assert [(s.name, list(s.argv)) for s in SERVICES] == [
        (s.name, service_command(*s.up)) for s in services() if s.up
    ]
    assert [s.name for s in SERVICES] == [
        "ingest", "resampler", "analytics", "alerts", "api", "ui"
    ]  # fmt: skip


def test_scaled_workers_run_as_numbered_replicas_each_after_the_first_on_a_free_port() -> None:
    ports = iter(range(40001, 40100))
    specs = suite({"resampler": 3, "alerts": 2}, lambda: next(ports))
    assert [s.name for s in specs] == [
        "ingest", "resampler-1", "resampler-2", "resampler-3", "analytics", "alerts-1",
        "alerts-2", "api", "ui",
    ]  # fmt: skip
    env = {s.name: dict(s.env) for s in specs}
    assert env["resampler-1"] == {}  # its configured port
    assert env["alerts-1"] == {}
    assert env["resampler-2"] == {"RESAMPLER_METRICS_PORT": "40001"}
    assert env["resampler-3"] == {"RESAMPLER_METRICS_PORT": "40002"}
    assert env["alerts-2"] == {"ALERTS_METRICS_PORT": "40003"}
    assert {s.argv[-1] for s in specs if s.name.startswith("resampler")} == {"resampler"}


@pytest.mark.parametrize(
    ("scale", "error"),
    [({"api": 2}, "api does not scale"), ({"ingest": 2}, "ingest does not scale"),
     ({"nosuch": 2}, "no service nosuch")],
)  # fmt: skip
def test_a_service_that_cannot_scale_or_does_not_exist_is_refused(
    scale: dict[str, int], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        suite(scale, lambda: 1)


def test_settings_groups_come_from_the_services() -> None:
    from pairstream.cli import all_settings_groups
    from pairstream.settings import SETTINGS_GROUPS

    groups = all_settings_groups()
    assert groups[: len(SETTINGS_GROUPS)] == SETTINGS_GROUPS
    prefixes = [g.model_config.get("env_prefix") for g in groups[len(SETTINGS_GROUPS) :]]
    assert prefixes == ["INGEST_", "RESAMPLER_", "ANALYTICS_", "ALERTS_", "API_", "UI_"]


def test_every_service_command_is_on_the_cli() -> None:
    import typer.main

    from pairstream.cli import app

    root = typer.main.get_command(app)
    commands = set(root.commands)  # type: ignore[attr-defined]
    bench = set(root.commands["bench"].commands)  # type: ignore[attr-defined]
    expected = {
        "ingest", "replay", "resampler", "analytics", "analyze", "alerts", "api", "ui", "up",
        "settings",
    }  # fmt: skip
    assert expected <= commands
    assert bench == {"ingest", "resampler", "analytics", "alerts", "api", "ui"}
