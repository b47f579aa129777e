"""Kubernetes manifests: every overlay renders, validates strictly against the API schemas and follows
the project's rules (pinned images, probes, non-root, read-only root, resources, whole GPUs).

kubernetes-validate has no schemas for CRDs; the ServiceMonitor is checked structurally here instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
import yaml

from tests.deploy.tools import PINNED_IMAGE, ROOT, require_tool, run_tool

OVERLAYS = ("dev-cpu", "gpu")
# A release the bundled schemas cover, with gRPC probes GA (1.27) and autoscaling/v2, policy/v1.
KUBERNETES_VERSION = "1.30.0"
CRD_KINDS = {"ServiceMonitor"}
POD_KINDS = {"Deployment", "StatefulSet"}
GPU = "nvidia.com/gpu"


def render(overlay: str) -> list[dict]:
    kubectl = require_tool("kubectl")
    result = run_tool([kubectl, "kustomize", str(ROOT / "k8s" / "overlays" / overlay)])
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def pod_specs(resources: list[dict]) -> Iterator[tuple[str, dict]]:
    for resource in resources:
        if resource["kind"] in POD_KINDS:
            yield f"{resource['kind']}/{resource['metadata']['name']}", resource["spec"]["template"]["spec"]


def test_overlay_passes_strict_schema_validation(rendered: tuple[str, list[dict]]) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (run scripts/install_deploy_tools.sh)",
    )
    _, resources = rendered
    validated = 0
    for resource in resources:
        if resource["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        validated += 1
    assert validated == len(resources) - sum(r["kind"] in CRD_KINDS for r in resources) > 10


def test_validation_rejects_a_misspelt_field() -> None:
    """The strict schemas do catch what a typo in these manifests would be (guards the test above)."""
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (run scripts/install_deploy_tools.sh)",
    )
    session = by_kind(render("dev-cpu"), "Deployment")["siamstream-session"]
    session["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(session, KUBERNETES_VERSION, strict=True)


def test_overlay_holds_the_expected_resources(rendered: tuple[str, list[dict]]) -> None:
    overlay, resources = rendered
    kinds = {(r["kind"], r["metadata"]["name"]) for r in resources}
    common = {
        ("Deployment", "siamstream-session"),
        ("Service", "siamstream-session"),
        ("HorizontalPodAutoscaler", "siamstream-session"),
        ("PodDisruptionBudget", "siamstream-session"),
        ("Deployment", "siamstream-ingest"),
        ("StatefulSet", "redis"),
        ("Service", "redis"),
        ("ConfigMap", "siamstream-settings"),
        ("NetworkPolicy", "default-deny-ingress"),
        ("ServiceMonitor", "siamstream"),
    }
    assert common <= kinds
    assert (("Deployment", "triton") in kinds) == (overlay == "gpu")
    namespaces = {r["metadata"].get("namespace") for r in resources}
    assert namespaces == {"siamstream-dev" if overlay == "dev-cpu" else "siamstream"}


def test_images_are_pinned_by_tag(rendered: tuple[str, list[dict]]) -> None:
    _, resources = rendered
    images = [
        container["image"]
        for _, spec in pod_specs(resources)
        for container in spec.get("initContainers", []) + spec["containers"]
    ]
    assert images
    unpinned = [image for image in images if not PINNED_IMAGE.match(image)]
    assert not unpinned, f"images without a pinned tag: {unpinned}"


def test_every_container_is_probed_limited_and_unprivileged(rendered: tuple[str, list[dict]]) -> None:
    _, resources = rendered
    for where, spec in pod_specs(resources):
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["automountServiceAccountToken"] is False, where
        for container in spec.get("initContainers", []) + spec["containers"]:
            name = f"{where}/{container['name']}"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert security.get("runAsUser", spec["securityContext"].get("runAsUser", 0)) != 0, name
            resources_ = container["resources"]
            assert {"cpu", "memory"} <= set(resources_["requests"]) <= set(resources_["limits"]), name
        # Init containers run to completion and may not have probes; every long-running one has both.
        for container in spec["containers"]:
            name = f"{where}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, name


def test_gpu_requests_are_whole_and_equal_to_limits(rendered: tuple[str, list[dict]]) -> None:
    overlay, resources = rendered
    gpu_containers = []
    for where, spec in pod_specs(resources):
        for container in spec.get("initContainers", []) + spec["containers"]:
            requests = container["resources"].get("requests", {})
            limits = container["resources"].get("limits", {})
            if GPU in requests or GPU in limits:
                assert requests.get(GPU) == limits.get(GPU), f"{where}: {GPU} request != limit"
                assert int(limits[GPU]) >= 1
                gpu_containers.append(where)
                assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
                assert spec["nodeSelector"]
    assert gpu_containers == (["Deployment/triton"] if overlay == "gpu" else [])


def test_session_probes_use_grpc_health(rendered: tuple[str, list[dict]]) -> None:
    _, resources = rendered
    session = by_kind(resources, "Deployment")["siamstream-session"]
    container = session["spec"]["template"]["spec"]["containers"][0]
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert container["readinessProbe"]["grpc"] == {"port": grpc_port}
    assert container["startupProbe"]["grpc"] == {"port": grpc_port}
    env = {e["name"]: e for e in container["env"]}
    assert env["SIAMSTREAM_LISTEN_ADDRESS"]["value"].endswith(f":{grpc_port}")
    # The API keys are a reference to a Secret, never a value in the manifests.
    assert env["SIAMSTREAM_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "siamstream-api-keys"
    hpa = by_kind(resources, "HorizontalPodAutoscaler")["siamstream-session"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "siamstream-session"


def test_settings_are_known_to_the_service(rendered: tuple[str, list[dict]]) -> None:
    """ServiceSettings rejects unknown SIAMSTREAM_* names at start-up: the config must hold none."""
    from siamstream_services.cameras.config import IngestSettings
    from siamstream_services.settings import ENV_PREFIX, ServiceSettings

    _, resources = rendered
    config_maps = by_kind(resources, "ConfigMap")
    fields = {f"{ENV_PREFIX}{name.upper()}" for name in ServiceSettings.model_fields}
    assert set(config_maps["siamstream-settings"]["data"]) <= fields
    # Production logs go to a collector: one JSON object per line (docs/deploy.md, "Logs").
    assert config_maps["siamstream-settings"]["data"]["SIAMSTREAM_LOG_FORMAT"] == "json"
    ingest_prefix = IngestSettings.model_config["env_prefix"]
    ingest_fields = {f"{ingest_prefix}{name.upper()}" for name in IngestSettings.model_fields}
    assert set(config_maps["siamstream-ingest-settings"]["data"]) <= ingest_fields
    IngestSettings(
        **{
            k.removeprefix(ingest_prefix).lower(): v
            for k, v in config_maps["siamstream-ingest-settings"]["data"].items()
        }
    )
    session = by_kind(resources, "Deployment")["siamstream-session"]["spec"]["template"]["spec"]
    env_names = {e["name"] for e in session["containers"][0]["env"] if e["name"].startswith(ENV_PREFIX)}
    assert env_names <= fields


def test_redis_persists_its_append_only_file(rendered: tuple[str, list[dict]]) -> None:
    _, resources = rendered
    redis = by_kind(resources, "StatefulSet")["redis"]
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--dir") + 1] == "/data"
    claims = {claim["metadata"]["name"] for claim in redis["spec"]["volumeClaimTemplates"]}
    mounts = {
        m["name"]: m["mountPath"] for m in redis["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    }
    assert mounts["data"] == "/data" and "data" in claims


def test_secrets_are_created_out_of_band_in_production(rendered: tuple[str, list[dict]]) -> None:
    overlay, resources = rendered
    referenced = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for _, spec in pod_specs(resources)
        for container in spec["containers"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert referenced == {"siamstream-api-keys", "siamstream-redis"}
    defined = set(by_kind(resources, "Secret"))
    assert defined == (referenced if overlay == "dev-cpu" else set())


def test_service_monitor_scrapes_every_metrics_port(rendered: tuple[str, list[dict]]) -> None:
    _, resources = rendered
    monitor = by_kind(resources, "ServiceMonitor")["siamstream"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    endpoint_ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    selector = monitor["spec"]["selector"]["matchLabels"]
    selected = [
        service
        for service in by_kind(resources, "Service").values()
        if selector.items() <= service["metadata"].get("labels", {}).items()
    ]
    expected = {"siamstream-session", "siamstream-ingest", "redis"} | (
        {"triton"} if "triton" in by_kind(resources, "Deployment") else set()
    )
    assert {service["metadata"]["name"] for service in selected} == expected
    for service in selected:
        assert endpoint_ports & {port["name"] for port in service["spec"]["ports"]}, service["metadata"][
            "name"
        ]


def test_every_service_selects_pods(rendered: tuple[str, list[dict]]) -> None:
    _, resources = rendered
    pod_labels = [r["spec"]["template"]["metadata"]["labels"] for r in resources if r["kind"] in POD_KINDS]
    for name, service in by_kind(resources, "Service").items():
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), name


# Where the ingest workers must never connect, whatever URL or redirect they are given.
METADATA_ADDRESSES = ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")


def _selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items() and not selector.get("matchExpressions")


def _in_block(address: str, block: dict) -> bool:
    ip = ipaddress.ip_address(address)
    cidr = ipaddress.ip_network(block["cidr"])
    return (
        ip.version == cidr.version
        and ip in cidr
        and not any(ip in ipaddress.ip_network(excepted) for excepted in block.get("except", []))
    )


def test_ingest_egress_reaches_dns_redis_and_cameras_only(rendered: tuple[str, list[dict]]) -> None:
    """The network is the boundary of where workers connect: FFmpeg follows RTSP redirects and resolves
    rtsps:// names past the camera URL check (docs/deploy.md). Every egress rule that applies to the
    ingest pods names its peers, and none reaches the cloud metadata addresses."""
    overlay, resources = rendered
    pod_labels = {
        resource["metadata"]["name"]: resource["spec"]["template"]["metadata"]["labels"]
        for resource in resources
        if resource["kind"] in POD_KINDS
    }
    ingest = pod_labels["siamstream-ingest"]
    policies = [
        policy
        for policy in by_kind(resources, "NetworkPolicy").values()
        if "Egress" in policy["spec"]["policyTypes"] and _selects(policy["spec"]["podSelector"], ingest)
    ]
    reached: dict[str, set[tuple[str, int | None]]] = {}
    for rule in (rule for policy in policies for rule in policy["spec"].get("egress", [])):
        assert rule.get("to"), f"an egress rule without peers reaches everywhere: {rule}"
        ports = {(port.get("protocol", "TCP"), port.get("port")) for port in rule.get("ports", [])}
        assert ports, f"an egress rule without ports reaches every port: {rule}"
        for peer in rule["to"]:
            if "ipBlock" in peer:
                for address in METADATA_ADDRESSES:
                    assert not _in_block(address, peer["ipBlock"]), (address, peer)
                name = "cameras"
            elif "podSelector" in peer:
                assert "namespaceSelector" not in peer, peer
                (name,) = [pod for pod, labels in pod_labels.items() if _selects(peer["podSelector"], labels)]
            else:
                assert peer["namespaceSelector"]["matchLabels"] == {
                    "kubernetes.io/metadata.name": "kube-system"
                }
                name = "dns"
            reached.setdefault(name, set()).update(ports)
    expected = {
        "dns": {("UDP", 53), ("TCP", 53)},
        "redis": {("TCP", 6379)},
        "cameras": {("TCP", None)},
    }
    if overlay == "gpu":
        expected["triton"] = {("TCP", 8001)}
    assert reached == expected
