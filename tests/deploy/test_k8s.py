"""The Kubernetes manifests (k8s/): both overlays render with kubectl kustomize, pass
kubernetes-validate --strict, and hold what the deployment plan asks for. Offline: no cluster."""

from __future__ import annotations

import base64
import importlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("cpu", "gpu")
KUBERNETES_VERSION = "1.31.0"  # a version kubernetes-validate ships schemas for
MODEL_SERVICES = ("vad", "llm", "tts")
PARLEY_SERVICES = ("edge", *MODEL_SERVICES)
GRPC_PORTS = {"vad": 50051, "llm": 50052, "tts": 50053}
METRICS_PORTS = {"vad": 9051, "llm": 9052, "tts": 9053, "edge": 8006}
GPU = "nvidia.com/gpu"
# Secrets the manifests use but do not generate (made with kubectl or cert-manager; k8s/README.md).
EXTERNAL_SECRETS = {"parley-edge-tls"}
SECRET_ENV = re.compile(r"TOKEN|CREDENTIAL|PASSWORD|SECRET|API_?KEY|PRIVATE", re.IGNORECASE)
SECRET_FLAGS = ("--api-token", "--ice-credential", "--ice-username")

Doc = dict[str, Any]


def _kubectl() -> str:
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not kubectl:
        pytest.fail(
            "kubectl is not installed, so the Kubernetes manifests cannot be rendered: install kubectl "
            "(Debian: apt-get install kubernetes-client) or point KUBECTL at one"
        )
    return kubectl


def _kubernetes_validate() -> str:
    beside_python = Path(sys.executable).parent / "kubernetes-validate"
    tool = str(beside_python) if beside_python.exists() else shutil.which("kubernetes-validate")
    if not tool:
        pytest.fail(
            "kubernetes-validate is not installed in this environment: "
            f"{sys.executable} -m pip install kubernetes-validate==1.37.0"
        )
    return tool


class Rendered:
    """One overlay rendered by kubectl kustomize: the file and its documents."""

    def __init__(self, overlay: str, path: Path) -> None:
        self.overlay, self.path = overlay, path
        self.text = path.read_text()
        self.docs: list[Doc] = [doc for doc in yaml.safe_load_all(self.text) if doc]

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def get(self, kind: str, name: str) -> Doc:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert found, f"{self.overlay}: no {kind} named {name!r}"
        return found[0]

    def deployments(self) -> Iterator[tuple[str, Doc]]:
        for doc in self.of_kind("Deployment"):
            yield doc["metadata"]["name"], doc

    def container(self, deployment: str) -> Doc:
        (container,) = [
            c
            for c in self.get("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
            if c["name"] == deployment
        ]
        return container


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return _render(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def cpu(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return _render("cpu", tmp_path_factory)


@pytest.fixture(scope="module")
def gpu(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return _render("gpu", tmp_path_factory)


def _render(overlay: str, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    result = subprocess.run(
        [_kubectl(), "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"kubectl kustomize k8s/overlays/{overlay} failed:\n{result.stderr}"
    assert result.stderr.strip() == "", f"kustomize warns about k8s/overlays/{overlay}:\n{result.stderr}"
    path = tmp_path_factory.mktemp(f"k8s-{overlay}") / f"{overlay}.yaml"
    path.write_text(result.stdout)
    return Rendered(overlay, path)


def _containers(deployment: Doc) -> list[Doc]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _gpu_amount(container: Doc) -> object:
    resources = container.get("resources", {})
    return resources.get("limits", {}).get(GPU, resources.get("requests", {}).get(GPU))


def test_kubernetes_validate_strict(rendered: Rendered) -> None:
    result = subprocess.run(
        [_kubernetes_validate(), "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(rendered.path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (
        f"kubernetes-validate --strict rejected k8s/overlays/{rendered.overlay}:\n{result.stdout}{result.stderr}"
    )


def test_one_deployment_and_service_per_service(rendered: Rendered) -> None:
    deployments = dict(rendered.deployments())
    for name in (*PARLEY_SERVICES, "turn"):
        assert name in deployments, f"{rendered.overlay}: no Deployment {name}"
        service = rendered.get("Service", name)
        assert service["spec"].get("clusterIP") != "None", f"Service {name} should be a normal (ClusterIP) Service"
    # Every Service selects the pods of a Deployment.
    for service in rendered.of_kind("Service"):
        selector = service["spec"]["selector"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in deployments.values()
        ), f"Service {service['metadata']['name']} selects no Deployment's pods: {selector}"


def test_gpu_overlay_puts_each_model_service_on_its_own_gpu(gpu: Rendered) -> None:
    for name in MODEL_SERVICES:
        pod = gpu.get("Deployment", name)["spec"]["template"]["spec"]
        assert pod.get("nodeSelector"), f"gpu: {name} has no nodeSelector"
        assert any(t.get("key") == GPU and t.get("effect") == "NoSchedule" for t in pod.get("tolerations", [])), (
            f"gpu: {name} does not tolerate the {GPU} NoSchedule taint"
        )
        assert str(_gpu_amount(gpu.container(name))) == "1", f"gpu: {name} must have resources.limits {GPU}: 1"
    llm_env = {e["name"]: e.get("value") for e in gpu.container("llm").get("env", [])}
    assert llm_env["PARLEY_LLM_BACKEND"] == "vllm"
    assert llm_env["PARLEY_LLM_MODEL"], "gpu: the llm names no model"
    assert llm_env["PARLEY_LLM_MODEL_CACHE_DIR"] == "/models"
    assert any(m["mountPath"] == "/models" for m in gpu.container("llm")["volumeMounts"])
    # The edge and the TURN server take no GPU.
    for name in ("edge", "turn"):
        assert _gpu_amount(gpu.container(name)) is None, f"gpu: {name} should not take a GPU"


def test_cpu_overlay_asks_for_no_gpu(cpu: Rendered) -> None:
    for name, deployment in cpu.deployments():
        pod = deployment["spec"]["template"]["spec"]
        for container in _containers(deployment):
            assert _gpu_amount(container) is None, f"cpu: {name} asks for a GPU"
        assert not any("nvidia" in key for key in pod.get("nodeSelector", {})), f"cpu: {name} selects GPU nodes"
        assert not any(t.get("key") == GPU for t in pod.get("tolerations", [])), f"cpu: {name} tolerates GPU taints"
    assert cpu.container("llm")["env"][0] == {"name": "PARLEY_LLM_BACKEND", "value": "transformers"}


def test_probes_and_resources(rendered: Rendered) -> None:
    for name, deployment in rendered.deployments():
        for container in _containers(deployment):
            where = f"{rendered.overlay}: {name}/{container['name']}"
            assert container.get("livenessProbe"), f"{where} has no liveness probe"
            assert container.get("readinessProbe"), f"{where} has no readiness probe"
            requests = container.get("resources", {}).get("requests", {})
            limits = container.get("resources", {}).get("limits", {})
            assert {"cpu", "memory"} <= requests.keys(), f"{where} needs cpu and memory requests"
            assert "memory" in limits, f"{where} needs a memory limit"


def test_grpc_services_use_native_grpc_probes(rendered: Rendered) -> None:
    for name in MODEL_SERVICES:
        container = rendered.container(name)
        probes = {kind: container.get(kind) for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
        for kind, probe in probes.items():
            if probe is None:
                continue
            assert probe.get("grpc", {}).get("port") == GRPC_PORTS[name], f"{name} {kind} is not a gRPC probe"
    assert rendered.container("llm").get("startupProbe"), "the llm loads for a while: it needs a startupProbe"
    edge = rendered.container("edge")
    assert edge["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert edge["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Bound beyond loopback the edge serves HTTPS only.
    assert edge["livenessProbe"]["httpGet"]["scheme"] == edge["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_llm_replicas_headless_service(rendered: Rendered) -> None:
    service = rendered.get("Service", "llm-replicas")
    assert service["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in service["spec"]["ports"]] == [GRPC_PORTS["llm"]]
    pod_labels = rendered.get("Deployment", "llm")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_autoscalers_and_disruption_budgets(rendered: Rendered) -> None:
    metrics = {"edge": "parley_edge_active_sessions", "llm": "parley_llm_sessions_active"}
    for name, metric in metrics.items():
        hpa = rendered.get("HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        (pods,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
        assert pods["metric"]["name"] == metric
        assert pods["target"]["type"] == "AverageValue" and pods["target"]["averageValue"]
        # The HPA owns the replica count: a fixed one in the Deployment would fight it.
        assert "replicas" not in rendered.get("Deployment", name)["spec"], f"{name}: leave replicas to the HPA"
    for name in ("edge", "llm"):
        pdb = rendered.get("PodDisruptionBudget", name)
        labels = rendered.get("Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_pods_run_as_non_root_and_locked_down(rendered: Rendered) -> None:
    for name, deployment in rendered.deployments():
        pod = deployment["spec"]["template"]["spec"]
        security = pod.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
        assert security.get("runAsUser") == 10001, f"{name}: runs as the fixed UID 10001"
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: seccomp RuntimeDefault"
        for container in _containers(deployment):
            where = f"{name}/{container['name']}"
            context = container.get("securityContext", {})
            assert context.get("runAsUser", 10001) != 0 and context.get("runAsNonRoot", True), f"{where} runs as root"
            assert context.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation false"
            assert context.get("readOnlyRootFilesystem") is True, f"{where}: read-only root filesystem"
            assert context.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL capabilities"
            assert not context.get("privileged"), f"{where} is privileged"
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: a writable /tmp (emptyDir) under a read-only root"


def test_no_secret_in_plain_text(rendered: Rendered) -> None:
    secrets = rendered.of_kind("Secret")
    values = []
    for secret in secrets:
        assert "stringData" not in secret, f"Secret {secret['metadata']['name']} carries stringData"
        for key, encoded in secret.get("data", {}).items():
            value = base64.b64decode(encoded).decode()
            # Only the committed placeholders (k8s/base/secrets.example.env) may be rendered from git.
            assert value.startswith("EXAMPLE-ONLY-"), f"Secret key {key} holds something other than a placeholder"
            values.append(value)
    others = yaml.safe_dump_all([doc for doc in rendered.docs if doc["kind"] != "Secret"])
    for value in values:
        assert value not in others, "a secret value appears in plain text outside its Secret"
    for config_map in rendered.of_kind("ConfigMap"):
        for key in config_map.get("data", {}):
            assert not SECRET_ENV.search(key), f"ConfigMap {config_map['metadata']['name']} holds {key}"

    generated = {s["metadata"]["name"] for s in secrets}
    for name, deployment in rendered.deployments():
        pod = deployment["spec"]["template"]["spec"]
        referenced = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        for container in _containers(deployment):
            for env in container.get("env", []):
                if SECRET_ENV.search(env["name"]):
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    assert ref and "value" not in env, f"{name}: {env['name']} must come from a Secret"
                if ref := env.get("valueFrom", {}).get("secretKeyRef"):
                    referenced.add(ref["name"])
            argv = [*container.get("command", []), *container.get("args", [])]
            assert not any(a.split("=")[0] in SECRET_FLAGS for a in argv), f"{name}: a secret passed as a flag"
        assert referenced <= generated | EXTERNAL_SECRETS, f"{name} refers to unknown Secrets {referenced}"


def test_namespace_labels_images_and_metrics(rendered: Rendered) -> None:
    for doc in rendered.docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        assert doc["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "parley", name
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "parley", f"{name} is not in the namespace parley"
    for name, deployment in rendered.deployments():
        assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == name
        for container in _containers(deployment):
            image = container["image"]
            assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), f"{name}: unpinned image {image}"
    for name in PARLEY_SERVICES:
        assert rendered.container(name)["image"].startswith(f"parley/{name}:")
        annotations = rendered.get("Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(METRICS_PORTS[name])
        assert annotations["prometheus.io/path"] == "/metrics"
    edge = rendered.get("Deployment", "edge")["spec"]["template"]["spec"]
    assert edge["hostNetwork"] is True and edge["dnsPolicy"] == "ClusterFirstWithHostNet"


def _environment(rendered: Rendered, container: Doc) -> dict[str, str]:
    """The container's environment as the kubelet would build it (secrets as stand-ins)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config_map = rendered.get("ConfigMap", source["configMapRef"]["name"])
        env.update(config_map["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), item["value"])
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = "192.0.2.10"
        else:
            env[item["name"]] = "stand-in"
    return env


SETTINGS = {
    "vad": ("services.vad.settings", "VadSettings"),
    "llm": ("services.llm.settings", "LlmSettings"),
    "tts": ("services.tts.settings", "TtsSettings"),
    "edge": ("services.edge.settings", "EdgeSettings"),
}


@pytest.mark.parametrize("service", PARLEY_SERVICES)
def test_services_accept_their_flags_and_environment(
    rendered: Rendered, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every flag and PARLEY_* variable in the manifests is one the service knows, with a valid
    value, and the ports it then listens on are the ones the manifests declare."""
    from services.common.settings import parse_settings

    module, class_name = SETTINGS[service]
    settings_cls = getattr(importlib.import_module(module), class_name)
    container = rendered.container(service)
    command = container["command"]
    assert command[1:] == ["-m", f"services.{service}"], f"{service}: unexpected command {command}"
    env = _environment(rendered, container)
    prefix = f"PARLEY_{service.upper()}_"
    unknown = [
        k for k in env if k.startswith(prefix) and k.removeprefix(prefix).lower() not in settings_cls.model_fields
    ]
    assert not unknown, f"{service}: variables that match no setting: {unknown}"
    for key in [k for k in os.environ if k.startswith("PARLEY_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("PARLEY_"):
            monkeypatch.setenv(key, value)
    settings = parse_settings(settings_cls, container.get("args", []))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.host == "0.0.0.0"
    assert settings.log_format == "json"
    if service == "edge":
        assert settings.port == ports["https"] == METRICS_PORTS["edge"]
        assert (settings.vad_address, settings.llm_dns, settings.tts_address) == (
            "vad:50051",
            "llm-replicas:50052",  # every llm pod, from the headless Service
            "tts:50053",
        )
        assert settings.api_token and settings.ice_credential, "edge: token and TURN credential from the Secret"
        assert settings.ice_servers and all(
            url.startswith(("stun:", "turn:", "turns:")) for url in settings.ice_servers
        )
        assert settings.ice_host_addresses == ["192.0.2.10"], "edge: ICE host candidates are the node's address"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert settings.tls_cert and settings.tls_cert.parent.as_posix() in mounts
    else:
        assert settings.port == ports["grpc"] == GRPC_PORTS[service]
        assert settings.metrics_port == ports["metrics"] == METRICS_PORTS[service]
