"""One grpc.health.v1 Check of a running session service: what `siamstream health` runs in containers."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream_services.settings import ServiceSettings

# A server bound on every interface is reached over loopback from inside its own container.
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}


def probe_address(settings: ServiceSettings) -> str:
    """HOST:PORT to probe: the plaintext health port when one is set, else the main listen address."""
    host, port = (settings.health_listen_address or settings.listen_address).rsplit(":", 1)
    return f"{_LOOPBACK.get(host, host)}:{port}"


def check_health(address: str, timeout_s: float) -> str:
    """The overall serving status at `address` over plaintext ("SERVING", "NOT_SERVING", ...), or the
    gRPC status code name when the Check fails (e.g. "UNAVAILABLE": nothing listens, or the port is TLS).
    """
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError as error:
            return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
