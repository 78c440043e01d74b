"""Each service's image installs only its extra (``pairstream[<service>]``, locked in
``requirements/<service>.txt``): what the service imports must fit it.

Statically, every import of the service's modules (module level and inside functions,
followed through the shared package) is mapped to the distribution that provides it,
which must be in the extra's requirement closure; dynamically, ``pairstream <service>
--help`` and an import of every module run with everything else made unimportable.
Developer-only modules (benchmarks, test helpers, the embedded infrastructure, what
``pairstream up`` does on one machine) are not part of any image's closure.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]
SERVICES = ("ingest", "resampler", "analytics", "alerts", "api", "ui")
#: run by developer commands only, never in a service's process
DEV_ONLY = re.compile(
    r"pairstream(_\w+)?\.(bench|up)|pairstream\.testing|pairstream\.infra\.(manager|parts)"
)
#: the one-shot jobs' image (`pairstream db migrate`, `pairstream topics create`)
SETUP_ROOTS = ("pairstream.db", "pairstream.db.migrate", "pairstream.kafka", "pairstream.topics")
#: what an image must not carry (dependencies of other services)
NOT_IN = {
    "ui": {"faust-streaming", "statsmodels", "aiokafka", "asyncpg", "redis"},
    "ingest": {"dash", "fastapi", "faust-streaming", "statsmodels", "asyncpg"},
    "resampler": {"dash", "statsmodels", "fastapi"},
    "analytics": {"dash", "faust-streaming", "fastapi"},
    "alerts": {"dash", "faust-streaming", "statsmodels", "fastapi"},
    "api": {"dash", "faust-streaming"},
    "setup": {"dash", "faust-streaming", "statsmodels", "fastapi", "numpy"},
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# -- the extras' requirement closures (from the installed metadata) -----------------------


@cache
def closure_of(extra: str) -> frozenset[str]:
    """Every distribution ``pip install pairstream[extra]`` installs on this platform."""
    seen: set[tuple[str, frozenset[str]]] = set()
    found: set[str] = set()
    todo = [("pairstream", frozenset({extra}))]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        found.add(name)
        for line in metadata.distribution(name).requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(
                req.marker.evaluate({"extra": e}) for e in (*extras, "")
            ):
                continue
            todo.append((canonical(req.name), frozenset(req.extras)))
    return frozenset(found)


@cache
def distributions_of_modules() -> dict[str, frozenset[str]]:
    """Top-level import name → the distributions installing it."""
    return {
        top: frozenset(canonical(d) for d in dists)
        for top, dists in metadata.packages_distributions().items()
    }


# -- the import closure of the code --------------------------------------------------------


def module_path(module: str) -> Path | None:
    top = module.split(".")[0]
    if top == "pairstream":
        base = ROOT / "src"
    elif top.startswith("pairstream_"):
        base = ROOT / "services" / top.removeprefix("pairstream_")
    else:
        return None
    path = base.joinpath(*module.split("."))
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").exists() else None


def imports_of(module: str, path: Path) -> Iterator[str]:
    """Every module ``module`` imports, anywhere in it (``from a import b``: ``a`` and
    ``a.b``, which may be a module)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_closure(roots: list[str]) -> dict[str, str]:
    """Third-party top-level modules reachable from ``roots`` → a module importing each."""
    third: dict[str, str] = {}
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module in seen or DEV_ONLY.fullmatch(module):
            continue
        seen.add(module)
        path = module_path(module)
        if path is None:
            continue
        for name in imports_of(module, path):
            top = name.split(".")[0]
            if top == "pairstream" or top.startswith("pairstream_"):
                parts = name.split(".")
                todo.extend(".".join(parts[:k]) for k in range(1, len(parts) + 1))
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.setdefault(top, module)
    return third


def service_modules(service: str) -> list[str]:
    package = ROOT / "services" / service / f"pairstream_{service}"
    names = [
        ".".join((f"pairstream_{service}", *p.relative_to(package).with_suffix("").parts))
        for p in sorted(package.rglob("*.py"))
    ]
    return [n.removesuffix(".__init__") for n in names if not DEV_ONLY.fullmatch(n)]


def roots_of(image: str) -> list[str]:
    return list(SETUP_ROOTS) if image == "setup" else service_modules(image)


def misfits(image: str, imports: dict[str, str]) -> list[str]:
    """Of ``imports`` (module → where it is imported), those ``image``'s extra does not
    install."""
    allowed = closure_of(image)
    out = []
    for top, where in sorted(imports.items()):
        dists = distributions_of_modules().get(top)
        if dists is None:
            out.append(f"{where} imports {top}, which no installed distribution provides")
        elif not dists & allowed:
            out.append(f"{where} imports {top} ({', '.join(sorted(dists))}), not in [{image}]")
    return out


# -- the rules, each shown to catch a bad case ---------------------------------------------


def test_an_import_outside_the_extra_is_reported() -> None:
    imports = {**import_closure(roots_of("ingest")), "dash": "pairstream_ingest.live"}
    assert misfits("ingest", imports) == [
        "pairstream_ingest.live imports dash (dash), not in [ingest]"
    ]


def test_imports_inside_functions_and_relative_ones_are_followed() -> None:
    third = import_closure(["pairstream_ui.cli"])  # its command imports the server lazily
    assert third["uvicorn"] == "pairstream_ui.server"
    assert "dash" in third  # through `.app` (relative) and the pages


@pytest.mark.parametrize("image", [*SERVICES, "setup"])
def test_every_import_of_an_image_s_code_is_installed_by_its_extra(image: str) -> None:
    assert misfits(image, import_closure(roots_of(image))) == []


@pytest.mark.parametrize("image", sorted(NOT_IN))
def test_an_extra_carries_no_other_service_s_dependencies(image: str) -> None:
    assert closure_of(image) & NOT_IN[image] == set()


@pytest.mark.parametrize("image", [*SERVICES, "setup"])
def test_the_image_s_lock_file_pins_exactly_its_extra(image: str) -> None:
    """requirements/<image>.txt, as `./dev lock` wrote it, on this platform (a stale lock
    after an extra changed fails here)."""
    pinned = set()
    for line in (ROOT / "requirements" / f"{image}.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==[^ ;\\]+(?: ; (.+?))?(?: \\)?$", line)
        if match and (match[2] is None or Marker(match[2]).evaluate()):
            pinned.add(canonical(match[1]))
    assert pinned == closure_of(image) - {"pairstream"}


BLOCKER = """
import importlib.abc, importlib.metadata, re, sys
allowed = set(sys.argv[1].split(","))
owners = {top: {re.sub(r"[-_.]+", "-", d).lower() for d in dists}
          for top, dists in importlib.metadata.packages_distributions().items()}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in owners and not owners[top] & allowed:
            raise ModuleNotFoundError(f"{name} is not in the image's extra", name=name)
        return None
sys.meta_path.insert(0, Block())
for module in sys.argv[3].split(","):
    if module:
        importlib.import_module(module)
from pairstream.cli import main
sys.argv = ["pairstream", *sys.argv[2].split()]
main()
"""


@pytest.mark.parametrize("image", [*SERVICES, "setup"])
def test_the_image_s_command_runs_with_only_its_extra_importable(image: str) -> None:
    command = "db migrate --help" if image == "setup" else f"{image} --help"
    modules = ",".join(roots_of(image))
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(closure_of(image)), command, modules],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Usage: pairstream" in done.stdout


def test_the_blocker_refuses_what_the_extra_lacks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(closure_of("ui")), "ui --help",
         "pairstream_resampler.app"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "aiokafka is not in the image's extra" in done.stderr  # faust's first import
