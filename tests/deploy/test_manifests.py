"""Static checks of the deployment files: docker-compose.yml, the Dockerfile and deploy/k8s.

No cluster and no Docker: the files are parsed with PyYAML and held to the
rules every service added later must follow as well. Each rule is a function
returning the problems it finds, tested once against a bad example (so a rule
cannot silently pass everything) and then against every real manifest.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
LONG_RUNNING_KINDS = {"Deployment", "StatefulSet", "DaemonSet"}
WORKLOAD_KINDS = LONG_RUNNING_KINDS | {"Job", "CronJob"}
CONNECTION_SETTINGS = ("KAFKA_BOOTSTRAP", "DATABASE_URL", "REDIS_URL")
PAIRSTREAM_UID = 10001
#: ports a developer machine may already use for Kafka, PostgreSQL and Redis
DEFAULT_PORTS = {9092, 5432, 6379}

Doc = dict[str, Any]


# -- loading ----------------------------------------------------------------------


def load_documents(path: Path) -> list[Doc]:
    """Every non-empty YAML document of ``path``."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def is_kustomization(path: Path) -> bool:
    return path.name in KUSTOMIZATION_NAMES


def kustomization_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if is_kustomization(p))


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if not is_kustomization(p))


def k8s_documents() -> list[tuple[Path, Doc]]:
    return [(path, doc) for path in manifest_files() for doc in load_documents(path)]


def pod_spec(doc: Doc) -> Doc | None:
    """The pod spec of a workload, or None for other kinds."""
    kind = doc.get("kind")
    if kind not in WORKLOAD_KINDS:
        return None
    template = doc["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else doc["spec"]
    spec: Doc = template["template"]["spec"]
    return spec


def workload_containers(doc: Doc) -> list[tuple[Doc, Doc]]:
    """``(container, pod spec)`` for every container and init container of a workload."""
    spec = pod_spec(doc)
    if spec is None:
        return []
    containers = [*spec.get("initContainers", []), *spec.get("containers", [])]
    return [(container, spec) for container in containers]


def k8s_containers() -> list[tuple[str, Doc, Doc, Doc]]:
    """``(id, workload, container, pod spec)`` for every container under deploy/k8s."""
    found = []
    for path, doc in k8s_documents():
        for container, spec in workload_containers(doc):
            label = f"{path.relative_to(K8S)}:{doc['kind']}/{doc['metadata']['name']}"
            found.append((f"{label}:{container['name']}", doc, container, spec))
    return found


def image_name(image: str) -> str:
    """``registry.example.com/team/pairstream-api:1.2`` → ``pairstream-api``."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def is_pairstream_image(image: str) -> bool:
    """One of the Dockerfile's targets: ``pairstream-api:latest``, …"""
    return image_name(image).startswith("pairstream-")


def compose() -> Doc:
    (doc,) = load_documents(COMPOSE_FILE)
    return doc


def compose_services() -> dict[str, Doc]:
    services: dict[str, Doc] = compose()["services"]
    return services


def is_one_shot(service: Doc) -> bool:
    """A compose job that runs to completion (`restart: "no"`) rather than a server."""
    return service.get("restart") == "no"


def is_pairstream_service(service: Doc) -> bool:
    return "build" in service or is_pairstream_image(str(service.get("image", "")))


# -- rules --------------------------------------------------------------------------


def resource_problems(container: Doc) -> list[str]:
    """Missing cpu/memory requests or limits."""
    resources = container.get("resources") or {}
    return [
        f"no resources.{section}.{name}"
        for section in ("requests", "limits")
        for name in ("cpu", "memory")
        if name not in (resources.get(section) or {})
    ]


def probe_problems(kind: str, container: Doc, *, init: bool = False) -> list[str]:
    """A long-running container without readiness or liveness probe."""
    if kind not in LONG_RUNNING_KINDS or init:
        return []
    return [
        f"no {probe}" for probe in ("readinessProbe", "livenessProbe") if probe not in container
    ]


def effective_security(container: Doc, spec: Doc, key: str) -> Any:
    """A securityContext field as the kubelet applies it: the container's, else the pod's."""
    own = container.get("securityContext") or {}
    if key in own:
        return own[key]
    return (spec.get("securityContext") or {}).get(key)


def non_root_problems(container: Doc, spec: Doc) -> list[str]:
    """A pairstream container that may run as root."""
    if not is_pairstream_image(str(container.get("image", ""))):
        return []
    problems = []
    if effective_security(container, spec, "runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if effective_security(container, spec, "runAsUser") != PAIRSTREAM_UID:
        problems.append(f"runAsUser is not {PAIRSTREAM_UID} (the Dockerfile's user)")
    return problems


def hardening_problems(container: Doc) -> list[str]:
    """A pairstream container that can write its image, escalate or keep capabilities."""
    if not is_pairstream_image(str(container.get("image", ""))):
        return []
    context = container.get("securityContext") or {}
    problems = []
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append("readOnlyRootFilesystem is not true")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
        problems.append("capabilities.drop lacks ALL")
    return problems


def referenced_paths(kustomization: Doc) -> Iterator[tuple[str, str]]:
    """``(field, local path)`` for every file or folder a kustomization names."""
    for field in (
        "resources",
        "components",
        "bases",
        "crds",
        "generators",
        "transformers",
        "validators",
        "patchesStrategicMerge",
    ):
        for entry in kustomization.get(field) or []:
            if isinstance(entry, str) and "\n" not in entry:  # not an inline patch
                yield field, entry
    for field in ("patches", "patchesJson6902", "replacements"):
        for entry in kustomization.get(field) or []:
            if isinstance(entry, dict) and "path" in entry:
                yield field, entry["path"]
    for field in ("configMapGenerator", "secretGenerator"):
        for generator in kustomization.get(field) or []:
            for entry in generator.get("files") or []:
                yield field, entry.split("=", 1)[-1]  # `key=path` or `path`
            envs = list(generator.get("envs") or [])
            if generator.get("env"):
                envs.append(generator["env"])
            for entry in envs:
                yield field, entry


def is_remote(reference: str) -> bool:
    return "://" in reference or reference.startswith(("github.com/", "git@"))


def kustomization_in(folder: Path) -> Path | None:
    for name in KUSTOMIZATION_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def reference_problems(kustomization_path: Path) -> list[str]:
    """Names in a kustomization that do not exist (or are the wrong kind of folder)."""
    (kustomization,) = load_documents(kustomization_path)
    problems = []
    for field, reference in referenced_paths(kustomization):
        if is_remote(reference):
            continue
        target = (kustomization_path.parent / reference).resolve()
        if not target.exists():
            problems.append(f"{field}: {reference} does not exist")
        elif target.is_dir():
            inner = kustomization_in(target)
            if inner is None:
                problems.append(f"{field}: {reference} has no kustomization.yaml")
                continue
            kind = load_documents(inner)[0].get("kind", "Kustomization")
            wanted = "Component" if field == "components" else "Kustomization"
            if kind != wanted:
                problems.append(f"{field}: {reference} is a {kind}, not a {wanted}")
    return problems


def healthcheck_problems(service: Doc) -> list[str]:
    """A long-running compose service whose health nobody can wait for."""
    if is_one_shot(service):
        return []
    check = service.get("healthcheck") or {}
    if not check.get("test") or check.get("disable") or check.get("test") == ["NONE"]:
        return ["no healthcheck"]
    return []


def dependency_problems(services: dict[str, Doc], name: str) -> list[str]:
    """Dependencies that do not wait for readiness.

    A server dependency must be `service_healthy`, a job dependency
    `service_completed_successfully`; a one-shot job needs at least one
    dependency it waits on to be healthy.
    """
    service = services[name]
    depends_on = service.get("depends_on") or {}
    if isinstance(depends_on, list):
        return [f"depends_on {depends_on} has no conditions (only waits for a start)"]
    problems = []
    for dependency, options in depends_on.items():
        condition = (options or {}).get("condition")
        wanted = (
            "service_completed_successfully"
            if is_one_shot(services.get(dependency, {}))
            else "service_healthy"
        )
        if condition != wanted:
            problems.append(f"depends on {dependency} with {condition}, not {wanted}")
    healthy = [d for d, o in depends_on.items() if (o or {}).get("condition") == "service_healthy"]
    if is_one_shot(service) and not healthy:
        problems.append("one-shot job does not wait for a service_healthy dependency")
    return problems


def environment(service: Doc) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def published_ports(service: Doc) -> list[tuple[str, int]]:
    """``(host ip, host port)`` of every published port ("" = every interface)."""
    found = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            found.append((str(entry.get("host_ip", "")), int(entry.get("published", 0))))
            continue
        parts = str(entry).split("/", 1)[0].split(":")
        if len(parts) == 3:
            found.append((parts[0], int(parts[1])))
        elif len(parts) == 2:
            found.append(("", int(parts[0])))
        else:
            found.append(("", 0))  # container port only: a random host port on every interface
    return found


# -- the rules catch what they are meant to catch -------------------------------------


def test_resource_rule_rejects_container_with_requests_but_no_limits() -> None:
    container = {"name": "c", "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}
    assert resource_problems(container) == ["no resources.limits.cpu", "no resources.limits.memory"]


def test_probe_rule_rejects_deployment_container_without_liveness_probe() -> None:
    container = {"name": "c", "readinessProbe": {"tcpSocket": {"port": 1}}}
    assert probe_problems("Deployment", container) == ["no livenessProbe"]
    assert probe_problems("Job", container) == []


def test_non_root_rule_rejects_pairstream_container_without_run_as_non_root() -> None:
    container = {"name": "c", "image": "registry.example.com/x/pairstream-api:1.0"}
    assert "runAsNonRoot is not true" in non_root_problems(container, {})
    pod_level = {"securityContext": {"runAsNonRoot": True, "runAsUser": PAIRSTREAM_UID}}
    assert non_root_problems(container, pod_level) == []
    overridden = {**container, "securityContext": {"runAsNonRoot": False}}
    assert "runAsNonRoot is not true" in non_root_problems(overridden, pod_level)


def test_reference_rule_reports_file_missing_next_to_kustomization(tmp_path: Path) -> None:
    (tmp_path / "present.yaml").write_text("kind: ConfigMap\n")
    (tmp_path / "kustomization.yaml").write_text(
        "resources: [present.yaml, absent.yaml]\n"
        "secretGenerator: [{name: s, files: [key=gone.txt]}]\n"
    )
    assert reference_problems(tmp_path / "kustomization.yaml") == [
        "resources: absent.yaml does not exist",
        "secretGenerator: gone.txt does not exist",
    ]


def test_compose_rules_reject_server_without_healthcheck_and_job_not_waiting_healthy() -> None:
    services: dict[str, Doc] = {
        "db": {"image": "postgres"},
        "job": {"restart": "no", "depends_on": {"db": {"condition": "service_started"}}},
    }
    assert healthcheck_problems(services["db"]) == ["no healthcheck"]
    assert dependency_problems(services, "job") == [
        "depends on db with service_started, not service_healthy",
        "one-shot job does not wait for a service_healthy dependency",
    ]


# -- Kubernetes ---------------------------------------------------------------------

CONTAINERS = k8s_containers()
CONTAINER_IDS = [c[0] for c in CONTAINERS]


def test_k8s_tree_holds_setup_jobs_and_infrastructure_workloads() -> None:
    workloads = {
        (doc["kind"], doc["metadata"]["name"]) for _, doc in k8s_documents() if pod_spec(doc)
    }
    assert {
        ("Job", "db-migrate"),
        ("Job", "topics-create"),
        ("StatefulSet", "kafka"),
        ("StatefulSet", "timescaledb"),
        ("Deployment", "redis"),
    } <= workloads


@pytest.mark.parametrize(("label", "doc", "container", "spec"), CONTAINERS, ids=CONTAINER_IDS)
def test_k8s_container_without_resource_requests_and_limits_fails(
    label: str, doc: Doc, container: Doc, spec: Doc
) -> None:
    assert resource_problems(container) == [], label


@pytest.mark.parametrize(("label", "doc", "container", "spec"), CONTAINERS, ids=CONTAINER_IDS)
def test_long_running_k8s_container_without_readiness_and_liveness_probes_fails(
    label: str, doc: Doc, container: Doc, spec: Doc
) -> None:
    init = container in (spec.get("initContainers") or [])
    assert probe_problems(doc["kind"], container, init=init) == [], label


@pytest.mark.parametrize(("label", "doc", "container", "spec"), CONTAINERS, ids=CONTAINER_IDS)
def test_pairstream_container_that_may_run_as_root_fails(
    label: str, doc: Doc, container: Doc, spec: Doc
) -> None:
    assert non_root_problems(container, spec) == [], label
    assert hardening_problems(container) == [], label


def test_k8s_setup_jobs_run_the_pairstream_commands_with_config_and_secret() -> None:
    jobs = {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == "Job"}
    expected = {"db-migrate": ["db", "migrate"], "topics-create": ["topics", "create"]}
    for name, args in expected.items():
        spec = jobs[name]["spec"]
        assert spec.get("backoffLimit", 0) > 0, name
        assert spec.get("ttlSecondsAfterFinished") is not None, name
        (container,) = spec["template"]["spec"]["containers"]
        assert container["args"] == args
        sources = {
            ref["name"] for env in container["envFrom"] for ref in env.values() if "name" in ref
        }
        assert sources == {"pairstream-config", "pairstream-db"}, name


def test_k8s_configmap_lacking_connection_settings_fails() -> None:
    (config,) = load_documents(K8S / "base" / "configmap.yaml")
    assert config["metadata"]["name"] == "pairstream-config"
    missing = [name for name in CONNECTION_SETTINGS if not config["data"].get(name)]
    assert missing == []
    assert config["data"]["KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert "@timescaledb:5432/" in config["data"]["DATABASE_URL"]
    assert config["data"]["REDIS_URL"].startswith("redis://redis:6379")


def test_k8s_secret_generator_supplies_the_database_password() -> None:
    (kustomization,) = load_documents(K8S / "base" / "kustomization.yaml")
    (generator,) = [g for g in kustomization["secretGenerator"] if g["name"] == "pairstream-db"]
    assert any(literal.startswith("PGPASSWORD=") for literal in generator["literals"])


@pytest.mark.parametrize(
    "path", kustomization_files(), ids=lambda p: str(p.parent.relative_to(K8S))
)
def test_kustomization_referencing_a_missing_file_fails(path: Path) -> None:
    assert reference_problems(path) == []


def test_k8s_manifest_not_listed_in_any_kustomization_fails() -> None:
    listed = {
        (path.parent / reference).resolve()
        for path in kustomization_files()
        for _, reference in referenced_paths(load_documents(path)[0])
        if not is_remote(reference)
    }
    assert [str(p.relative_to(K8S)) for p in manifest_files() if p.resolve() not in listed] == []


def test_dev_overlay_adds_infra_component_and_prod_overlay_autoscaling() -> None:
    (component,) = load_documents(K8S / "components" / "infra" / "kustomization.yaml")
    assert component["kind"] == "Component"
    (dev,) = load_documents(K8S / "overlays" / "dev" / "kustomization.yaml")
    (prod,) = load_documents(K8S / "overlays" / "prod" / "kustomization.yaml")
    assert dev["resources"] == ["../../base"]
    assert dev["components"] == ["../../components/infra"]
    assert prod["resources"] == ["../../base"]
    assert prod["components"] == ["../../components/autoscaling"]  # no in-cluster stores


# -- docker compose --------------------------------------------------------------------

SERVICES = compose_services()


def test_compose_defines_infrastructure_and_setup_jobs() -> None:
    assert {"kafka", "timescaledb", "redis", "migrate", "topics"} <= set(SERVICES)
    assert {name for name, service in SERVICES.items() if is_one_shot(service)} >= {
        "migrate",
        "topics",
    }


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_server_without_healthcheck_fails(name: str) -> None:
    assert healthcheck_problems(SERVICES[name]) == []


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_dependency_not_waiting_for_healthy_or_completed_fails(name: str) -> None:
    assert dependency_problems(SERVICES, name) == []


def test_compose_setup_jobs_wait_for_the_infrastructure_they_use() -> None:
    assert SERVICES["migrate"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert SERVICES["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["command"] == ["db", "migrate"]
    assert SERVICES["topics"]["command"] == ["topics", "create"]
    assert str(environment(SERVICES["migrate"])["DB_TIMESCALE"]) == "on"


def test_compose_shared_env_lacking_connection_settings_fails() -> None:
    shared = compose()["x-pairstream-env"]
    assert [name for name in CONNECTION_SETTINGS if not shared.get(name)] == []
    assert shared["KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert "@timescaledb:5432/pairstream" in shared["DATABASE_URL"]
    assert shared["REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize(
    "name",
    sorted(n for n, s in SERVICES.items() if is_pairstream_service(s) and n != "ui"),
)  # the dashboard reads only the API: its settings are checked with the deployments
def test_compose_pairstream_service_without_connection_settings_fails(name: str) -> None:
    env = environment(SERVICES[name])
    assert [setting for setting in CONNECTION_SETTINGS if not env.get(setting)] == []


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_port_on_every_interface_or_a_default_port_fails(name: str) -> None:
    for host_ip, port in published_ports(SERVICES[name]):
        assert host_ip == "127.0.0.1", f"{name} publishes {port} on {host_ip or 'every interface'}"
        assert port not in DEFAULT_PORTS, f"{name} takes the default port {port}"


# -- the services, in both ---------------------------------------------------------------


def base_documents() -> dict[tuple[str, str], Doc]:
    """``(kind, name)`` → document of every manifest under deploy/k8s/base."""
    return {
        (doc["kind"], doc["metadata"]["name"]): doc
        for path, doc in k8s_documents()
        if path.is_relative_to(K8S / "base")
    }


def test_every_service_pairstream_up_runs_is_deployed_by_compose_and_k8s() -> None:
    from pairstream.services import services

    names = {s.name: list(s.up) for s in services() if s.up}
    assert set(names) >= {"ingest", "resampler", "analytics", "alerts", "api"}
    long_running = {
        name
        for name, service in SERVICES.items()
        if is_pairstream_service(service) and not is_one_shot(service)
    }
    assert long_running == set(names)
    deployments = {
        name: doc for (kind, name), doc in base_documents().items() if kind == "Deployment"
    }
    assert set(deployments) == set(names)
    for name, args in names.items():
        assert SERVICES[name]["command"][: len(args)] == args, name
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert is_pairstream_image(container["image"]), name
        assert container["args"] == args, name
        sources = {
            ref["name"]
            for env in container.get("envFrom", [])
            for ref in env.values()
            if "name" in ref
        }
        if name == "ui":  # it reads the API only: no database, Redis or Kafka address
            assert not sources, name
            assert not set(environment(SERVICES[name])) & {
                "DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP"
            }  # fmt: skip
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["UI_API_URL"] == str(environment(SERVICES[name])["UI_API_URL"])
        else:
            assert {"pairstream-config", "pairstream-db"} <= sources, name


def test_api_listens_on_8000_with_liveness_and_readiness_in_compose_and_k8s() -> None:
    api = SERVICES["api"]
    assert api["command"] == ["api", "--host", "0.0.0.0"]
    assert published_ports(api) == [("127.0.0.1", 8000)]
    assert "http://127.0.0.1:8000/health/live" in " ".join(api["healthcheck"]["test"])
    assert "curl" not in " ".join(api["healthcheck"]["test"])  # not in the image
    for store in ("timescaledb", "redis", "kafka"):
        assert api["depends_on"][store]["condition"] == "service_healthy", store
    for job in ("migrate", "topics"):
        assert api["depends_on"][job]["condition"] == "service_completed_successfully", job
    assert str(environment(api)["API_FETCH_MAX_WAIT_MS"]) == "500"

    docs = base_documents()
    pod = docs[("Deployment", "api")]["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False  # else the `api` Service sets API_PORT=tcp://…
    (container,) = pod["containers"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000}]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["API_HOST"] == "0.0.0.0"
    assert env.get("API_PORT", "8000") == "8000"
    probes = {
        probe: (container[probe]["httpGet"]["path"], container[probe]["httpGet"]["port"])
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes == {
        "startupProbe": ("/health/live", "http"),
        "readinessProbe": ("/health/ready", "http"),  # 503 only when PostgreSQL is down
        "livenessProbe": ("/health/live", "http"),
    }
    assert container["readinessProbe"]["timeoutSeconds"] > 1  # each dependency gets 1 s
    service = docs[("Service", "api")]["spec"]
    assert service["selector"] == {"app.kubernetes.io/name": "api"}
    assert service["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]
    (config,) = load_documents(K8S / "base" / "configmap.yaml")
    assert config["data"]["API_FETCH_MAX_WAIT_MS"] == "500"


# -- Dockerfile ------------------------------------------------------------------------


IMAGES = ("setup", "ingest", "resampler", "analytics", "alerts", "api", "ui")


def dockerfile_stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Stage name → its (instruction, value) lines, from the Dockerfile's own parser."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            current = stages.setdefault(words[-1] if len(words) == 3 else words[0], [])
        if item["instruction"] != "COMMENT":
            current.append((item["instruction"], item["value"]))
    return stages


def image_problems(text: str) -> list[str]:
    """Each image target must: build on the non-root runtime, copy a venv holding exactly its
    hash-checked lock file and the project without dependencies, say what it is, and check
    its health (a server) or declare it has none (the setup jobs)."""
    stages = dockerfile_stages(text)
    problems = []
    runtime = dict(stages.get("runtime", []))
    if runtime.get("USER", "").split(":")[0] != str(PAIRSTREAM_UID):
        problems.append(f"runtime: not USER {PAIRSTREAM_UID}")
    if runtime.get("ENTRYPOINT") != '["pairstream"]':
        problems.append("runtime: ENTRYPOINT is not pairstream")
    for image in IMAGES:
        lines = stages.get(image)
        if lines is None:
            problems.append(f"no target {image}")
            continue
        if lines[0] != ("FROM", f"runtime AS {image}"):
            problems.append(f"{image}: not FROM runtime")
        if ("COPY", f"--from=venv-{image} /opt/venv /opt/venv") not in lines:
            problems.append(f"{image}: does not copy venv-{image}")
        if not any(i == "LABEL" and f"pairstream-{image}" in v for i, v in lines):
            problems.append(f"{image}: no org.opencontainers.image.title")
        if not any(i == "HEALTHCHECK" for i, _ in lines):
            problems.append(f"{image}: no HEALTHCHECK")
        venv = stages.get(f"venv-{image}", [])
        runs = " ".join(v for i, v in venv if i == "RUN")
        if (("COPY", f"requirements/{image}.txt /tmp/requirements.txt") not in venv
                or "--require-hashes -r /tmp/requirements.txt" not in runs
                or "--no-deps /wheels/" not in runs):  # fmt: skip
            problems.append(f"venv-{image}: not its hash-checked lock, then the wheel alone")
    return problems


def healthcheck_url(text: str, image: str) -> str | None:
    for instruction, value in dockerfile_stages(text)[image]:
        if instruction == "HEALTHCHECK":
            found = re.search(r"http://127\.0\.0\.1:\d+/[\w/]+", value)
            return found[0] if found else None
    return None


def test_image_rules_reject_a_target_on_the_wrong_lock_or_without_its_healthcheck() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    bad = text.replace("COPY requirements/ui.txt", "COPY requirements/dev.txt", 1)
    assert image_problems(bad) == ["venv-ui: not its hash-checked lock, then the wheel alone"]
    lines = text.splitlines()
    at = lines.index("FROM runtime AS alerts")
    check = next(k for k in range(at, len(lines)) if lines[k].startswith("HEALTHCHECK"))
    no_check = "\n".join(lines[:check] + lines[check + 2 :])  # the instruction's two lines
    assert image_problems(no_check) == ["alerts: no HEALTHCHECK"]


def test_every_image_is_its_own_target_on_its_locked_extra_and_non_root() -> None:
    assert image_problems(DOCKERFILE.read_text(encoding="utf-8")) == []
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv"} <= set(ignored)


def test_each_image_checks_the_health_endpoint_compose_checks() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    for image in IMAGES[1:]:
        compose = " ".join(SERVICES[image]["healthcheck"]["test"])
        url = healthcheck_url(text, image)
        assert url is not None, image
        assert url in compose, image
