"""Certificates for the TLS tests, made with the openssl command line (the tests skip where it is missing)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def run_openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> Path:
    """Into `d`: a CA (`ca.pem`, `ca.key`), a server certificate for 127.0.0.1 (`server.pem`, `server.key`)
    and a client certificate (`client.pem`, `client.key`), all signed by the CA; returns `d`."""
    key_and_request = ["-newkey", "rsa:2048", "-nodes", "-subj"]
    run_openssl(
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
        run_openssl(
            "req", *key_and_request, f"/CN={name}", "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr"
        )
        (d / f"{name}.ext").write_text(extension + "\n")
        run_openssl(
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
