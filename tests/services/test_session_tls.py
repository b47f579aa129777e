"""TLS and mutual TLS on the service port, with certificates made by the openssl command line, and the
plaintext health port that probes use while the service port speaks TLS."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from siamstream_services.grpc_api.cli import run_health
from siamstream_services.grpc_api.server import SERVICE_NAME
from siamstream_services.grpc_api.tls import TlsFilesError, server_credentials
from siamstream_services.testing.ports import free_port
from siamstream_services.v1 import tracking_pb2 as pb
from siamstream_services.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.pki import run_openssl
from tests.services.session_fixtures import (
    API_KEY_A,
    Service,
    auth,
    memory_service,
    running_service,
    status_of,
)

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="openssl is not installed (run scripts/install_deploy_tools.sh)"
)


def tls_files(pki: Path) -> dict[str, Path]:
    return {"tls_cert_file": pki / "server.pem", "tls_key_file": pki / "server.key"}


def trusting(pki: Path) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())


async def _list(port: int, credentials: grpc.ChannelCredentials) -> object:
    async with aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = pb_grpc.TrackingServiceStub(channel)
        return await stub.ListTracks(pb.ListTracksRequest(), metadata=auth(API_KEY_A), timeout=10)


async def test_tls_serves_clients_that_trust_the_ca(pki: Path, package_dir: Path) -> None:
    async with running_service(package_dir, **tls_files(pki)) as service:
        assert await _list(service.port, trusting(pki)) == pb.ListTracksResponse()


async def test_mutual_tls_refuses_clients_without_a_certificate(pki: Path, package_dir: Path) -> None:
    tls = {**tls_files(pki), "tls_client_ca_file": pki / "ca.pem"}
    async with running_service(package_dir, **tls) as service:
        ca = (pki / "ca.pem").read_bytes()
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        code, _ = await status_of(_list(service.port, anonymous))
        assert code == grpc.StatusCode.UNAVAILABLE
        with_certificate = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=(pki / "client.key").read_bytes(),
            certificate_chain=(pki / "client.pem").read_bytes(),
        )
        assert await _list(service.port, with_certificate) == pb.ListTracksResponse()


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest_asyncio.fixture
async def tls_service(pki: Path, package_dir: Path) -> AsyncIterator[tuple[Service, str]]:
    """A service with TLS on its port and the plaintext health port, and the health port's address."""
    health_address = f"127.0.0.1:{free_port()}"
    async with running_service(
        package_dir, **tls_files(pki), health_listen_address=health_address
    ) as service:
        yield service, health_address


async def _check(channel: aio.Channel, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus:
    request = health_pb2.HealthCheckRequest(service=service)
    return (await health_pb2_grpc.HealthStub(channel).Check(request, timeout=10)).status


async def test_health_port_answers_plaintext_without_a_key_and_serves_nothing_else(
    pki: Path, tls_service: tuple[Service, str]
) -> None:
    service, health_address = tls_service
    async with aio.insecure_channel(health_address) as channel:
        assert [await _check(channel, name) for name in ("", SERVICE_NAME)] == [SERVING, SERVING]
        tracking = pb_grpc.TrackingServiceStub(channel)
        listed = tracking.ListTracks(pb.ListTracksRequest(), metadata=auth(API_KEY_A), timeout=10)
        assert (await status_of(listed))[0] == grpc.StatusCode.UNIMPLEMENTED
    # The service port still speaks TLS only, and serves the API there.
    code, _ = await status_of(_check(service.channel))
    assert code == grpc.StatusCode.UNAVAILABLE
    assert await _list(service.port, trusting(pki)) == pb.ListTracksResponse()


async def test_both_ports_turn_not_serving_when_the_drain_starts(
    pki: Path, tls_service: tuple[Service, str]
) -> None:
    service, health_address = tls_service
    request = health_pb2.HealthCheckRequest(service="")
    async with (
        aio.secure_channel(f"127.0.0.1:{service.port}", trusting(pki)) as main,
        aio.insecure_channel(health_address) as health,
    ):
        main_watch = health_pb2_grpc.HealthStub(main).Watch(request)
        health_watch = health_pb2_grpc.HealthStub(health).Watch(request)
        assert [(await main_watch.read()).status, (await health_watch.read()).status] == [SERVING] * 2
        drain = asyncio.ensure_future(service.server.drain(grace_s=10.0))
        assert [(await main_watch.read()).status, (await health_watch.read()).status] == [NOT_SERVING] * 2
        # The open watch on the service port holds its drain: probes still get an answer meanwhile.
        assert await _check(health) == NOT_SERVING
        main_watch.cancel()
        await asyncio.wait_for(drain, timeout=5.0)
        code, _ = await status_of(_check(health))
        assert code == grpc.StatusCode.UNAVAILABLE


def _listening(port: int) -> bool:
    """Whether something accepts TCP connections on loopback `port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    ("taken", "refusal"),
    [
        ("service", "cannot bind the service port on 127.0.0.1:"),
        ("health", "cannot bind the health-only port on 127.0.0.1:"),
        ("metrics", "Address already in use"),
    ],
    ids=["service", "health", "metrics"],
)
async def test_start_with_the_service_health_or_metrics_port_taken_leaves_nothing_listening(
    package_dir: Path, taken: str, refusal: str
) -> None:
    """Every port is bound before any serves: a replica must not serve without its health port (probes
    would restart it while it takes calls), nor hold ports it serves nothing on, when `start` fails."""
    with socket.socket() as occupant:  # no SO_REUSEPORT, which would let grpc bind the port as well
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        ports = {"service": free_port(), "health": free_port(), "metrics": free_port()}
        ports[taken] = occupant.getsockname()[1]
        server, _ = memory_service(
            package_dir,
            listen_address=f"127.0.0.1:{ports['service']}",
            health_listen_address=f"127.0.0.1:{ports['health']}",
            metrics_port=ports["metrics"],
        )
        try:
            with pytest.raises(OSError if taken == "metrics" else RuntimeError, match=refusal):
                await server.start()
            assert {name for name, port in ports.items() if _listening(port)} == {taken}
        finally:
            await server.drain(grace_s=0.0)


@pytest.mark.parametrize("taken", ["service", "health"])
async def test_a_second_service_on_a_port_the_first_serves_does_not_start(
    package_dir: Path, taken: str
) -> None:
    """grpc's default SO_REUSEPORT let a second replica bind the first's port and take some of its calls."""
    ports = {"service": free_port(), "health": free_port()}
    first, _ = memory_service(
        package_dir,
        listen_address=f"127.0.0.1:{ports['service']}",
        health_listen_address=f"127.0.0.1:{ports['health']}",
    )
    await first.start()
    other = {"service": free_port(), "health": free_port(), taken: ports[taken]}
    second, _ = memory_service(
        package_dir,
        listen_address=f"127.0.0.1:{other['service']}",
        health_listen_address=f"127.0.0.1:{other['health']}",
    )
    try:
        with pytest.raises(RuntimeError, match=f"cannot bind the {taken}.* port on 127.0.0.1:{ports[taken]}"):
            await second.start()
    finally:
        await second.drain(grace_s=0.0)
        await first.drain(grace_s=0.0)


def _unusable_files(pki: Path, garbage: Path) -> dict[str, tuple[dict[str, Path], str]]:
    """TLS settings that cannot serve, each with the start-up refusal it must get."""
    server = tls_files(pki)
    return {
        "key-of-another-certificate": (
            {**server, "tls_key_file": pki / "client.key"},
            "tls_key_file .*client.key is not the private key of the certificate in "
            "tls_cert_file .*server.pem",
        ),
        "swapped": (
            {"tls_cert_file": pki / "server.key", "tls_key_file": pki / "server.pem"},
            "tls_cert_file .*server.key holds a private key .* swapped",
        ),
        "garbage-certificate": (
            {**server, "tls_cert_file": garbage},
            "tls_cert_file .* holds no PEM certificate",
        ),
        "garbage-key": ({**server, "tls_key_file": garbage}, "tls_key_file .* holds no PEM private key"),
        "garbage-client-ca": (
            {**server, "tls_client_ca_file": garbage},
            "tls_client_ca_file .* holds no PEM certificate",
        ),
    }


@pytest.mark.parametrize(
    "case",
    ["key-of-another-certificate", "swapped", "garbage-certificate", "garbage-key", "garbage-client-ca"],
)
async def test_unusable_tls_files_are_named_before_any_port_is_bound(
    pki: Path, package_dir: Path, tmp_path: Path, case: str
) -> None:
    """grpc refused these only when binding, with an error that read like a taken port (issue 8)."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN NOTHING-----\nnot a certificate\n-----END NOTHING-----\n")
    files, refusal = _unusable_files(pki, garbage)[case]
    port = free_port()
    server, _ = memory_service(package_dir, listen_address=f"127.0.0.1:{port}", **files)
    try:
        with pytest.raises(TlsFilesError, match=refusal):
            await server.start()
        assert not _listening(port)
    finally:
        await server.drain(grace_s=0.0)


@pytest.fixture
def expired_certificate(pki: Path, tmp_path: Path) -> dict[str, Path]:
    """A server certificate and its key, signed by the CA, valid for one day in January 2020."""
    (tmp_path / "index.txt").write_text("")
    (tmp_path / "serial").write_text("01\n")
    config = [
        "[ca]",
        "default_ca = test_ca",
        "[test_ca]",
        f"database = {tmp_path}/index.txt",
        f"new_certs_dir = {tmp_path}",
        f"serial = {tmp_path}/serial",
        "default_md = sha256",
        "policy = any_name",
        "[any_name]",
        "commonName = supplied",
    ]
    (tmp_path / "ca.cnf").write_text("\n".join(config) + "\n")
    run_openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=expired",
        "-keyout", f"{tmp_path}/expired.key", "-out", f"{tmp_path}/expired.csr",
    )  # fmt: skip
    run_openssl(
        "ca", "-batch", "-notext", "-config", f"{tmp_path}/ca.cnf", "-cert", f"{pki}/ca.pem", "-keyfile",
        f"{pki}/ca.key", "-in", f"{tmp_path}/expired.csr", "-out", f"{tmp_path}/expired.pem",
        "-startdate", "20200101000000Z", "-enddate", "20200102000000Z",
    )  # fmt: skip
    return {"tls_cert_file": tmp_path / "expired.pem", "tls_key_file": tmp_path / "expired.key"}


async def test_an_expired_certificate_is_served_with_a_warning(
    pki: Path, package_dir: Path, expired_certificate: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    async with running_service(package_dir, **tls_files(pki)):
        assert "tls_cert_file" not in caplog.text  # a valid certificate starts silently
    async with running_service(package_dir, **expired_certificate) as service:
        expected = (
            f"tls_cert_file {expired_certificate['tls_cert_file']} is expired: valid from "
            "2020-01-01T00:00:00+00:00 to 2020-01-02T00:00:00+00:00; clients will refuse it"
        )
        assert expected in caplog.text
        code, _ = await status_of(_list(service.port, trusting(pki)))
        assert code == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_whose_validity_cannot_be_read_still_serves(
    pki: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The expiry check reads the first CERTIFICATE block it finds with a small DER reader. OpenSSL reads
    PEM blocks at line starts only and skips a line like the first one here, whose garbage body used to
    make the reader index past its end: the service refused to start over a warning it only meant to log."""
    chain = tmp_path / "server-with-comment.pem"
    garbage = "# -----BEGIN CERTIFICATE-----Z2FyYmFnZQ==-----END CERTIFICATE-----\n"
    chain.write_text(garbage + (pki / "server.pem").read_text())
    caplog.set_level(logging.DEBUG, logger="siamstream_services.grpc_api.tls")

    assert isinstance(server_credentials(chain, pki / "server.key", None), grpc.ServerCredentials)
    assert f"tls_cert_file {chain}: validity not read, no expiry check" in caplog.text
    assert "clients will refuse it" not in caplog.text


async def _health_command(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> int:
    """`siamstream health`'s exit status with `environment` (run in a thread: it blocks on its Check)."""
    for name in list(os.environ):
        if name.upper().startswith("SIAMSTREAM_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return await asyncio.to_thread(run_health, argparse.Namespace(timeout=5.0))


async def test_health_command_probes_the_health_port_of_a_tls_service(
    pki: Path, tls_service: tuple[Service, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, health_address = tls_service
    environment = {
        "SIAMSTREAM_LISTEN_ADDRESS": f"0.0.0.0:{service.port}",
        **{f"SIAMSTREAM_{name.upper()}": str(path) for name, path in tls_files(pki).items()},
    }
    # The plaintext probe cannot check the TLS port itself: that is what the health port is for.
    assert await _health_command(monkeypatch, environment) == 1
    health = {"SIAMSTREAM_HEALTH_LISTEN_ADDRESS": health_address}
    assert await _health_command(monkeypatch, environment | health) == 0
    closed = {"SIAMSTREAM_HEALTH_LISTEN_ADDRESS": f"127.0.0.1:{free_port()}"}
    assert await _health_command(monkeypatch, environment | closed) == 1
