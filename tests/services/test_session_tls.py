"""TLS and mutual TLS on the service port, with certificates made by the openssl command line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc import aio

from siamstream.v1 import tracking_pb2 as pb
from siamstream.v1 import tracking_pb2_grpc as pb_grpc
from tests.services.session_fixtures import API_KEY_A, auth, export_test_package, running_service, status_of

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    key_and_request = ["-newkey", "rsa:2048", "-nodes", "-subj"]
    _openssl(
        "req",
        "-x509",
        *key_and_request,
        "/CN=test-ca",
        "-days",
        "1",
        "-keyout",
        f"{d}/ca.key",
        "-out",
        f"{d}/ca.pem",
    )
    extensions = {"server": "subjectAltName=IP:127.0.0.1", "client": "extendedKeyUsage=clientAuth"}
    for name, extension in extensions.items():
        _openssl(
            "req", *key_and_request, f"/CN={name}", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr"
        )
        (d / f"{name}.ext").write_text(extension + "\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{d}/{name}.csr",
            "-CA",
            f"{d}/ca.pem",
            "-CAkey",
            f"{d}/ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            f"{d}/{name}.ext",
            "-out",
            f"{d}/{name}.pem",
        )
    return d


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("packages")
    export_test_package(directory)
    return directory


async def _list(port: int, credentials: grpc.ChannelCredentials) -> object:
    async with aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        stub = pb_grpc.TrackingServiceStub(channel)
        return await stub.ListTracks(pb.ListTracksRequest(), metadata=auth(API_KEY_A), timeout=10)


async def test_tls_serves_clients_that_trust_the_ca(pki: Path, package_dir: Path) -> None:
    tls = {"tls_cert_file": pki / "server.pem", "tls_key_file": pki / "server.key"}
    async with running_service(package_dir, **tls) as service:
        trusted = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
        assert await _list(service.port, trusted) == pb.ListTracksResponse()


async def test_mutual_tls_refuses_clients_without_a_certificate(pki: Path, package_dir: Path) -> None:
    tls = {
        "tls_cert_file": pki / "server.pem",
        "tls_key_file": pki / "server.key",
        "tls_client_ca_file": pki / "ca.pem",
    }
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
