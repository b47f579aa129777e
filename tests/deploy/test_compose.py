"""The local compose stack: the expected services, pinned images, and paths that exist in the repository."""

from __future__ import annotations

import yaml

from tests.deploy.dockerfile import stages
from tests.deploy.tools import PINNED_IMAGE, ROOT

COMPOSE = ROOT / "deploy" / "compose.yaml"


def test_compose_stack() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"session", "ingest", "redis", "triton", "prometheus"} <= set(services)
    for name, service in services.items():
        assert PINNED_IMAGE.match(service["image"]), f"{name}: {service['image']}"
        if "build" in service:
            assert (COMPOSE.parent / service["build"]["context"] / "Dockerfile").is_file()
            assert service["build"]["target"] in stages()
    # The anchors merged: both processes see the store, the model server and their packages.
    for name in ("session", "ingest"):
        environment = services[name]["environment"]
        assert environment["SIAMSTREAM_STORE_URL"] == "redis://redis:6379/0"
        assert environment["SIAMSTREAM_INFERENCE_BACKEND"] == "triton://triton:8001"
        assert services[name]["read_only"] is True
        assert environment["SIAMSTREAM_LOG_FORMAT"] == "json"  # what a log collector reads
    assert services["session"]["environment"]["SIAMSTREAM_LISTEN_ADDRESS"] == "0.0.0.0:50051"
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    for volume in services["prometheus"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("./"):
            assert (COMPOSE.parent / source).is_file(), source
    # Published ports stay on loopback.
    published = [port for service in services.values() for port in service.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published)
