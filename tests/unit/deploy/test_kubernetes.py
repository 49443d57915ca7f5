"""``deploy/kubernetes``: every manifest is valid for the cluster it goes to, checked
offline, and says the same as the code (queue names, settings, probes, ports, commands).

Core kinds are checked against the Kubernetes OpenAPI schemas that kubernetes-validate
bundles, strictly (an unknown field fails). KEDA's kinds are checked against the JSON
Schema of cloudcoil's models, which are generated from KEDA's CRDs, made strict here
(``additionalProperties: false`` on every object with known fields).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

from assetsync.__main__ import available
from producers.bulk_sync.__main__ import request_parser
from schemas.topology import Topology
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
BASE = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes the manifests are for (CronJob timeZone is GA from 1.27), and
# the newest the validator knows.
KUBERNETES_VERSIONS = ("1.27", kubernetes_validate.latest_version())
KEDA_MODELS = {"ScaledObject": ScaledObject, "TriggerAuthentication": TriggerAuthentication}
# The rabbitmq scaler's trigger parameters (KEDA docs, "RabbitMQ Queue" scaler); the CRD
# allows any string map, so a misspelt one would only fail in the cluster.
RABBITMQ_TRIGGER_PARAMETERS = {
    "host",
    "protocol",
    "queueName",
    "mode",
    "value",
    "activationValue",
    "vhostName",
    "useRegex",
    "excludeUnacknowledged",
    "pageSize",
    "operation",
    "timeout",
    "unsafeSsl",
}


def kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((BASE / "kustomization.yaml").read_text()))


def manifests() -> list[dict[str, Any]]:
    docs = []
    for name in kustomization()["resources"]:
        docs += [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]
    return docs


def the(kind: str, name: str | None = None) -> dict[str, Any]:
    [found] = [
        d for d in manifests() if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    return found


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in manifests():
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            yield f"{doc['kind']}/{doc['metadata']['name']}", spec["template"]["spec"]


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for where, pod in pod_specs():
        for container in pod["containers"]:
            yield f"{where}/{container['name']}", container


def settings_map() -> dict[str, str]:
    return dict(the("ConfigMap", "assetsync-settings")["data"])


# -------------------------------------------------------------------------- kustomize


def test_kustomization_lists_every_manifest_and_nothing_missing():
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}

    assert listed == on_disk


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for kustomize) not installed")
def test_kustomize_builds_the_base_into_the_listed_objects_in_one_namespace():
    built = subprocess.run(
        ["kubectl", "kustomize", str(BASE)], capture_output=True, text=True, timeout=60
    )

    assert built.returncode == 0, built.stderr
    objects = [d for d in yaml.safe_load_all(built.stdout) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in objects) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in manifests()
    )
    namespaced = [d for d in objects if d["kind"] != "Namespace"]
    assert {d["metadata"]["namespace"] for d in namespaced} == {"assetsync"}
    tag = kustomization()["images"][0]["newTag"]
    images = {c["image"] for d in objects for c in _containers_of(d)}
    assert images == {f"assetsync:{tag}"}


def _containers_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return list(spec.get("template", {}).get("spec", {}).get("containers", []))


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_kinds_are_valid_kubernetes_objects_strictly(version):
    core = [d for d in manifests() if d["kind"] not in KEDA_MODELS]

    for doc in core:
        kubernetes_validate.validate(doc, version, strict=True)
    assert {d["kind"] for d in core} >= {"Deployment", "Job", "CronJob", "ConfigMap"}


@cache
def keda_schema(kind: str) -> dict[str, Any]:
    schema = KEDA_MODELS[kind].model_json_schema(by_alias=True)

    def strict(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("properties"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(schema)
    return schema


def keda_errors(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(keda_schema(doc["kind"]))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]


def test_keda_kinds_match_the_crd_schema_strictly():
    keda = [d for d in manifests() if d["kind"] in KEDA_MODELS]

    assert sorted(d["kind"] for d in keda) == ["ScaledObject", "TriggerAuthentication"]
    for doc in keda:
        assert doc["apiVersion"] == "keda.sh/v1alpha1"
        assert keda_errors(doc) == [], doc["kind"]


def test_the_validators_would_catch_a_misspelt_field_or_a_number_for_a_string():
    scaled = copy.deepcopy(the("ScaledObject"))
    scaled["spec"]["maxReplicas"] = 10
    numeric = copy.deepcopy(the("ScaledObject"))
    numeric["spec"]["triggers"][0]["metadata"]["value"] = 1000
    deployment = copy.deepcopy(the("Deployment", "assetsync-worker"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = (
        "/"
    )

    assert any("maxReplicas" in e for e in keda_errors(scaled))
    assert any("is not of type 'string'" in e for e in keda_errors(numeric))
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# ------------------------------------------------------------------ agree with code


def test_every_setting_named_is_one_the_code_reads_and_its_value_is_valid(monkeypatch):
    for where, container in containers():
        fields = {f"ASSETSYNC_{name.upper()}" for name in Settings.model_fields}
        named = {e["name"] for e in container.get("env", [])}
        if container.get("envFrom"):
            named |= set(settings_map())
        assert named <= fields | set(settings_map()), (where, named - fields)
    worker_fields = {f"ASSETSYNC_{name.upper()}" for name in Settings.model_fields}
    assert set(settings_map()) <= worker_fields
    for name, value in settings_map().items():
        monkeypatch.setenv(name, value)
    Settings()  # raises on a value the worker would refuse at start


SECRET_KEYS = {
    "ASSETSYNC_AMQP_URL": "amqp-url",
    "ASSETSYNC_DATABASE_URL": "database-url",
    "ASSETSYNC_JIRA_TOKEN": "jira-token",
    "ASSETSYNC_WEBHOOK_SECRET": "webhook-secret",
    "ASSETSYNC_CONSOLE_SECRET": "console-secret",
}


# Each component's Secret and the settings it takes from it: only its own credentials.
COMPONENT_SECRETS = {
    "Job/assetsync-migrate/migrate": ("assetsync-worker", {"ASSETSYNC_DATABASE_URL"}),
    "Deployment/assetsync-worker/worker": (
        "assetsync-worker",
        {"ASSETSYNC_AMQP_URL", "ASSETSYNC_DATABASE_URL", "ASSETSYNC_JIRA_TOKEN"},
    ),
    "CronJob/assetsync-bulk-sync/bulk-sync": (
        "assetsync-scheduler",
        {"ASSETSYNC_AMQP_URL", "ASSETSYNC_DATABASE_URL"},
    ),
    "Deployment/assetsync-webhooks/webhooks": (
        "assetsync-webhooks",
        {"ASSETSYNC_AMQP_URL", "ASSETSYNC_WEBHOOK_SECRET"},
    ),
    "Deployment/assetsync-console/console": (
        "assetsync-console",
        {
            "ASSETSYNC_AMQP_URL",
            "ASSETSYNC_DATABASE_URL",
            "ASSETSYNC_JIRA_TOKEN",
            "ASSETSYNC_CONSOLE_SECRET",
        },
    ),
}


def test_each_component_takes_only_its_own_credentials_from_a_secret_of_its_own():
    assert not set(SECRET_KEYS) & set(settings_map())
    found = {}
    for where, container in containers():
        refs = {
            (
                e["name"],
                e["valueFrom"]["secretKeyRef"]["name"],
                e["valueFrom"]["secretKeyRef"]["key"],
            )
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert not container.get("envFrom", []) or all(
            "secretRef" not in source for source in container["envFrom"]
        ), where
        found[where] = ({s for _, s, _ in refs}, {n for n, _, _ in refs})
        # Each setting comes from one key wherever it is used.
        assert {(n, k) for n, _, k in refs} <= set(SECRET_KEYS.items()), where
    assert found == {w: ({secret}, names) for w, (secret, names) in COMPONENT_SECRETS.items()}
    # The receiver has no database and no Jira token; the scheduler no Jira token.
    assert {"ASSETSYNC_DATABASE_URL", "ASSETSYNC_JIRA_TOKEN"}.isdisjoint(
        COMPONENT_SECRETS["Deployment/assetsync-webhooks/webhooks"][1]
    )
    # KEDA reads queue lengths with the workers' URL.
    [auth] = the("TriggerAuthentication")["spec"]["secretTargetRef"]
    assert (auth["parameter"], auth["name"], auth["key"]) == (
        "host",
        "assetsync-worker",
        "amqp-url",
    )


def test_network_policies_let_in_only_prometheus_to_workers_and_the_ingress_to_the_receiver():
    policies = {
        p["metadata"]["name"]: p["spec"] for p in manifests() if p["kind"] == "NetworkPolicy"
    }
    deny = policies.pop("assetsync-default-deny")
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}  # everything else: nothing in
    pods = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"][
            "template"
        ]
        for d in manifests()
        if d["kind"] == "Deployment"
    }
    allowed = {}
    for spec in policies.values():
        [component] = [
            c
            for c, t in pods.items()
            if spec["podSelector"]["matchLabels"].items() <= t["metadata"]["labels"].items()
        ]
        [rule] = spec["ingress"]
        sources = {
            s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for s in rule["from"]
        }
        ports = {p["port"] for p in rule["ports"]}
        declared = {
            p["name"] for c in pods[component]["spec"]["containers"] for p in c.get("ports", [])
        }
        assert ports <= declared, component  # named ports the pods have
        allowed[component] = (sources, ports)
    assert allowed == {
        "worker": ({"monitoring"}, {"metrics"}),
        "webhooks": ({"ingress-nginx", "monitoring"}, {"http"}),
        "console": ({"ingress-nginx"}, {"http"}),
    }


def test_autoscaling_follows_the_login_and_per_user_queues_of_this_prefix():
    topology = Topology(prefix=settings_map().get("ASSETSYNC_AMQP_PREFIX", "assetsync"))
    scaled = the("ScaledObject")
    triggers = scaled["spec"]["triggers"]

    assert {t["metadata"]["queueName"] for t in triggers} == {
        topology.user_sync_queue,
        topology.login_queue,
    }
    for trigger in triggers:
        assert trigger["type"] == "rabbitmq"
        assert set(trigger["metadata"]) <= RABBITMQ_TRIGGER_PARAMETERS
        assert (
            trigger["authenticationRef"]["name"] == the("TriggerAuthentication")["metadata"]["name"]
        )
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert int(trigger["metadata"]["value"]) > 0
    assert (
        scaled["spec"]["scaleTargetRef"]["name"]
        == the("Deployment", "assetsync-worker")["metadata"]["name"]
    )
    # At least one replica must always be there to take bulk requests, which no trigger
    # follows; the Deployment leaves the count to KEDA.
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert "replicas" not in the("Deployment", "assetsync-worker")["spec"]


def test_probes_and_metrics_port_match_the_settings():
    pod = the("Deployment", "assetsync-worker")["spec"]["template"]
    [worker] = pod["spec"]["containers"]
    port = int(settings_map()["ASSETSYNC_METRICS_PORT"])
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}

    assert ports == {"metrics": port}
    probes = {
        kind: worker[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {kind: p["path"] for kind, p in probes.items()} == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    assert {p["port"] for p in probes.values()} == {"metrics"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_shutdown_grace_covers_the_sigterm_contract():
    grace = the("Deployment", "assetsync-worker")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    page = (ROOT / "docs" / "architecture.md").read_text()
    shutdown = re.search(r"\*\*Shutdown\.\*\*(.*?)(?:\n\n|\Z)", page, re.S)
    assert shutdown is not None, "docs/architecture.md has a Shutdown paragraph"
    bound = re.search(r"within (\d+) s", " ".join(shutdown[1].split()))

    assert bound is not None, "the Shutdown paragraph states how long a worker takes"
    assert grace > int(bound[1])


def test_commands_are_ones_the_image_runs():
    commands = {where: c["command"] for where, c in containers()}

    for where, command in commands.items():
        assert command[0] == "assetsync", where
        assert command[1] in available(), where
    assert commands["Deployment/assetsync-worker/worker"] == ["assetsync", "worker"]
    assert commands["Job/assetsync-migrate/migrate"] == ["assetsync", "migrate"]
    scheduled = commands["CronJob/assetsync-bulk-sync/bulk-sync"]
    assert scheduled[1] == "sync"
    args = request_parser().parse_args(scheduled[2:])  # exits (fails the test) if unknown
    assert args.unless_recent is not None and not (args.prefix or args.group or args.dry_run)


def test_pods_run_as_the_images_unprivileged_user_with_a_read_only_root():
    uid = re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid is not None

    for where, pod in pod_specs():
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] == int(uid[1]), where
        assert pod["serviceAccountName"] == "assetsync", where
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}, where
            assert "memory" in container["resources"]["limits"], where
    assert the("ServiceAccount")["automountServiceAccountToken"] is False


def test_the_worker_can_write_its_health_file_on_a_read_only_root(monkeypatch):
    for name, value in settings_map().items():
        monkeypatch.setenv(name, value)
    health_file = Settings().health_file
    [worker] = the("Deployment", "assetsync-worker")["spec"]["template"]["spec"]["containers"]
    writable = [Path(m["mountPath"]) for m in worker["volumeMounts"] if not m.get("readOnly")]

    assert health_file is not None
    assert any(health_file.is_relative_to(path) for path in writable)


def test_the_console_is_served_over_tls_through_its_ingress():
    ingress = the("Ingress", "assetsync-console")
    [tls] = ingress["spec"]["tls"]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] in tls["hosts"] and tls["secretName"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = the("Service", backend["name"])
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "console"
    [console] = the("Deployment", "assetsync-console")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in console["env"]}
    # Listening beyond loopback, its session cookies are Secure: HTTPS only, and shared
    # between replicas through one key.
    assert env["ASSETSYNC_CONSOLE_BIND"] == "0.0.0.0"
    assert "ASSETSYNC_CONSOLE_SECRET" in env
    assert console["readinessProbe"]["httpGet"]["path"] == "/readyz"
