"""The cluster files in ``cluster/``: Ray's own validation and structural consistency.

The cluster-launcher YAMLs go through the same ``prepare_config`` + ``validate_config`` that
``ray up`` runs before it talks to a cloud; the KubeRay manifests are checked for the fields
KubeRay requires and for consistency (one image, one Ray version, GPU resources where the
GPU work runs, the entrypoint module present).
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
LAUNCHER_FILES = sorted(CLUSTER.glob("*.yaml"))
KUBERAY = CLUSTER / "kuberay"
ENTRYPOINT_MODULE = "mtal_ray.launch"
TORCH_PIN = "torch==2.13.0"


def _load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return yaml.safe_load(handle)


def _ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """What ``ray up`` does before contacting the provider: fill defaults, then validate."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def _gpu_count(node_type: dict[str, Any]) -> int:
    return int(node_type["resources"].get("GPU", 0))


def test_launcher_files_cover_aws_and_gcp() -> None:
    providers = {_load(path)["provider"]["type"] for path in LAUNCHER_FILES}
    assert providers == {"aws", "gcp"}


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_launcher_config_passes_ray_validation(path: Path) -> None:
    prepared = _ray_validate(_load(path))
    assert prepared["head_node_type"] in prepared["available_node_types"]


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_ray_validation_rejects_a_broken_copy(path: Path) -> None:
    """The validator bites: a node type without ``resources`` is refused by Ray's schema."""
    broken = _load(path)
    del broken["available_node_types"]["gpu_worker"]["resources"]
    with pytest.raises(jsonschema.ValidationError, match="resources"):
        _ray_validate(broken)


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_launcher_node_types(path: Path) -> None:
    config = _load(path)
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    assert _gpu_count(head) == 0 and head["resources"].get("CPU") == 0, "head must run no tasks"
    gpu = [t for t in workers.values() if _gpu_count(t) >= 1]
    cpu = [t for t in workers.values() if _gpu_count(t) == 0 and t["resources"].get("CPU", 0) > 0]
    assert len(gpu) == 1 and len(cpu) == 1, "one GPU and one CPU worker type"
    for node_type in workers.values():
        assert node_type["max_workers"] > node_type.get("min_workers", 0), "must autoscale"
    assert sum(t["max_workers"] for t in workers.values()) <= config["max_workers"]


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_launcher_images_match_installed_ray(path: Path) -> None:
    config = _load(path)
    images = [config["docker"]["image"]] + [
        t["docker"]["worker_image"]
        for t in config["available_node_types"].values()
        if "worker_image" in t.get("docker", {})
    ]
    for image in images:
        assert image.startswith(f"rayproject/ray:{ray.__version__}-py311-"), image
    gpu_type = next(t for t in config["available_node_types"].values() if _gpu_count(t))
    assert gpu_type["docker"]["worker_image"].endswith("-gpu")
    assert "--gpus all" in gpu_type["docker"]["worker_run_options"]


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_launcher_installs_pinned_torch_then_mtal_ray(path: Path) -> None:
    commands = _load(path)["setup_commands"]
    torch_at = next(i for i, c in enumerate(commands) if TORCH_PIN in c)
    package_at = next(i for i, c in enumerate(commands) if "pip install" in c and "mtal_ray" in c)
    assert torch_at < package_at
    words = shlex.split(commands[torch_at].replace(";", " "))
    assert "torch" not in words, "torch is always pinned"
    mounts = _load(path)["file_mounts"]
    package_dir = next(remote for remote, local in mounts.items() if local == ".")
    assert package_dir in commands[package_at]


@pytest.mark.parametrize("path", LAUNCHER_FILES, ids=lambda p: p.name)
def test_launcher_keeps_ports_closed_and_auth_on(path: Path) -> None:
    config = _load(path)
    head_start = " ".join(config["head_start_ray_commands"])
    worker_start = " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    text = path.read_text()
    assert "0.0.0.0" not in text, "nothing binds to every interface"
    assert "RAY_AUTH_MODE=token" in head_start and "RAY_AUTH_MODE=token" in worker_start
    assert "~/.ray/auth_token" in config["file_mounts"].values()
    for key in ("IpPermissions", "firewall", "sourceRanges"):
        assert key not in text, f"{path.name} must not open ports ({key})"


# --- KubeRay ------------------------------------------------------------------------


def _containers(group: dict[str, Any]) -> list[dict[str, Any]]:
    return group["template"]["spec"]["containers"]


def _groups(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("head", spec["headGroupSpec"])] + [
        (group["groupName"], group) for group in spec["workerGroupSpecs"]
    ]


def _cluster_spec(document: dict[str, Any]) -> dict[str, Any]:
    if document["kind"] == "RayCluster":
        return document["spec"]
    assert document["kind"] == "RayJob"
    return document["spec"]["rayClusterSpec"]


KUBERAY_RAY_FILES = [KUBERAY / "raycluster.yaml", KUBERAY / "rayjob.yaml"]


@pytest.mark.parametrize("path", KUBERAY_RAY_FILES, ids=lambda p: p.name)
def test_kuberay_required_fields(path: Path) -> None:
    document = _load(path)
    assert document["apiVersion"] == "ray.io/v1"
    assert document["kind"] in {"RayCluster", "RayJob"}
    assert document["metadata"]["name"]
    spec = _cluster_spec(document)
    assert spec["rayVersion"] == ray.__version__
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["authOptions"]["mode"] == "token"
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP", "never exposed outside"
    names = [group["groupName"] for group in spec["workerGroupSpecs"]]
    assert len(names) == len(set(names))
    for name, group in _groups(spec):
        assert isinstance(group["rayStartParams"], dict), name
        for value in group["rayStartParams"].values():
            assert isinstance(value, str), f"{name}: rayStartParams values must be strings"
        assert _containers(group), name
        if name != "head":
            assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
            assert group["maxReplicas"] > group["minReplicas"], f"{name} must autoscale"


@pytest.mark.parametrize("path", KUBERAY_RAY_FILES, ids=lambda p: p.name)
def test_kuberay_images_and_resources_consistent(path: Path) -> None:
    spec = _cluster_spec(_load(path))
    images = {c["image"] for _, group in _groups(spec) for c in _containers(group)}
    assert len(images) == 1, f"one image for head and workers, got {images}"
    gpu_groups = []
    for name, group in _groups(spec):
        ray_container = _containers(group)[0]
        requests = ray_container["resources"]["requests"]
        limits = ray_container["resources"]["limits"]
        assert requests == limits, f"{name}: Ray wants requests == limits"
        assert {"cpu", "memory"} <= set(limits), name
        if "nvidia.com/gpu" in limits:
            gpu_groups.append(name)
    assert gpu_groups and "head" not in gpu_groups
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    cpu_only = [
        name
        for name, group in _groups(spec)[1:]
        if "nvidia.com/gpu" not in _containers(group)[0]["resources"]["limits"]
    ]
    assert cpu_only, "a CPU worker group for selection and data"


def test_dockerfile_builds_on_the_same_ray_image() -> None:
    text = (CLUSTER / "docker" / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{ray.__version__}-py311-gpu" in text
    assert f"pip install --no-cache-dir {TORCH_PIN}" in text
    for needed in ("COPY --chown=ray:users configs", "COPY --chown=ray:users mtal_ray"):
        assert needed in text


def test_rayjob_cluster_equals_raycluster() -> None:
    raycluster = _load(KUBERAY / "raycluster.yaml")
    rayjob = _load(KUBERAY / "rayjob.yaml")
    assert rayjob["spec"]["rayClusterSpec"] == raycluster["spec"]


def test_rayjob_entrypoint() -> None:
    spec = _load(KUBERAY / "rayjob.yaml")["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[:3] == ["python", "-m", ENTRYPOINT_MODULE]
    assert words[3] == "--config" and words[4].startswith("configs/")
    assert spec["shutdownAfterJobFinishes"] is True
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["working_dir"] == "/home/ray/mtal_ray"
    dockerfile = (CLUSTER / "docker" / "Dockerfile").read_text()
    assert "WORKDIR /home/ray/mtal_ray" in dockerfile


def _entrypoint_configs() -> list[str]:
    """Every ``--config`` path named by a cluster file or the cluster README."""
    texts = [p.read_text() for p in [*LAUNCHER_FILES, *KUBERAY_RAY_FILES, CLUSTER / "README.md"]]
    found: set[str] = set()
    for text in texts:
        for line in text.splitlines():
            if ENTRYPOINT_MODULE in line:
                found.update(re.findall(r"--config\s+([\w./-]+\.ya?ml)", line))
    return sorted(found)


def test_entrypoint_module_exists() -> None:
    import importlib.util

    spec = importlib.util.find_spec(ENTRYPOINT_MODULE)
    assert spec is not None and spec.origin is not None, f"{ENTRYPOINT_MODULE} not importable"
    assert Path(spec.origin).resolve().is_relative_to(REPO), spec.origin


@pytest.mark.parametrize("config", _entrypoint_configs())
def test_entrypoint_config_exists(config: str) -> None:
    assert (REPO / config).is_file(), f"an entrypoint names {config}, which does not exist"


def test_mlflow_manifest_is_internal_only() -> None:
    documents = {doc["kind"]: doc for doc in yaml.safe_load_all((KUBERAY / "mlflow.yaml").open())}
    assert set(documents) == {"PersistentVolumeClaim", "Deployment", "Service"}
    assert documents["Service"]["spec"]["type"] == "ClusterIP"
    container = documents["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    images = {
        c["image"]
        for _, group in _groups(_load(KUBERAY / "raycluster.yaml")["spec"])
        for c in _containers(group)
    }
    assert container["image"] in images
    args = container["args"]
    assert any(a.startswith("--artifacts-destination=") for a in args)
    assert any(a.startswith("--allowed-hosts=") for a in args)


def _policies() -> dict[str, dict[str, Any]]:
    documents = yaml.safe_load_all((KUBERAY / "networkpolicy.yaml").open())
    return {doc["metadata"]["name"]: doc for doc in documents}


@pytest.mark.parametrize("path", KUBERAY_RAY_FILES, ids=lambda p: p.name)
def test_network_policy_selects_every_ray_pod(path: Path) -> None:
    """The pods of every group carry the label the Ray NetworkPolicy selects, and the only
    non-Ray clients it admits are the operator and the submitter (8265) and Prometheus
    (8080, metrics without authentication)."""
    policy = _policies()["mtal-ray"]
    assert policy["kind"] == "NetworkPolicy" and policy["spec"]["policyTypes"] == ["Ingress"]
    selected = policy["spec"]["podSelector"]["matchLabels"]
    for name, group in _groups(_cluster_spec(_load(path))):
        labels = group["template"].get("metadata", {}).get("labels", {})
        assert selected.items() <= labels.items(), f"{name} pods escape the NetworkPolicy"
    rules = policy["spec"]["ingress"]
    open_ports = [rule for rule in rules if "ports" not in rule]
    assert open_ports == [{"from": [{"podSelector": {"matchLabels": selected}}]}]
    ports = sorted(port["port"] for rule in rules for port in rule.get("ports", []))
    assert ports == [8080, 8265]


def test_network_policy_admits_only_ray_pods_to_mlflow() -> None:
    policy = _policies()["mlflow"]["spec"]
    deployment = next(
        doc for doc in yaml.safe_load_all((KUBERAY / "mlflow.yaml").open())
        if doc["kind"] == "Deployment"
    )  # fmt: skip
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    ray_pods = _policies()["mtal-ray"]["spec"]["podSelector"]
    assert policy["ingress"] == [
        {"from": [{"podSelector": ray_pods}], "ports": [{"protocol": "TCP", "port": 5000}]}
    ]


@pytest.mark.parametrize("path", KUBERAY_RAY_FILES, ids=lambda p: p.name)
def test_every_interface_binding_says_what_protects_it(path: Path) -> None:
    """``dashboard-host: 0.0.0.0`` (and MLflow's ``--host=0.0.0.0``) stay only with a
    token, a ClusterIP Service and a comment pointing at the README's port table."""
    spec = _cluster_spec(_load(path))
    assert spec["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    assert spec["authOptions"]["mode"] == "token"
    assert spec["headGroupSpec"]["serviceType"] == "ClusterIP"
    for text in (path.read_text(), (KUBERAY / "mlflow.yaml").read_text()):
        assert 'cluster/README.md, "Ports"' in text
    assert "## Ports, interfaces and what protects them" in (CLUSTER / "README.md").read_text()
