"""Serving without guesswork: `siamstream serve --help` and docs/configuration.md list every setting with
its default, and a setting that stops the service names the variable to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from siamstream_services.cameras.config import IngestSettings
from siamstream_services.settings import ServiceSettings, SettingsError, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SIAMSTREAM = [sys.executable, "-m", "siamstream.cli"]


def serve(*arguments: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """`siamstream serve ARGUMENTS` with only the given SIAMSTREAM_* variables (a stray one could fail it)."""
    outside = {name: value for name, value in os.environ.items() if not name.startswith("SIAMSTREAM_")}
    return subprocess.run(
        [*SIAMSTREAM, "serve", *arguments],
        env={**outside, **settings},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_help_lists_every_setting_with_its_default() -> None:
    completed = serve("--help")

    assert completed.returncode == 0, completed.stderr
    listed = {line.split("=", 1)[0].strip() for line in completed.stdout.splitlines() if "=" in line}
    every = {f"SIAMSTREAM_{name.upper()}" for name in ServiceSettings.model_fields} | {
        f"SIAMSTREAM_INGEST_{name.upper()}" for name in IngestSettings.model_fields
    }
    assert every <= listed
    for line in (
        "SIAMSTREAM_LISTEN_ADDRESS=127.0.0.1:50051",
        "SIAMSTREAM_METRICS_PORT=9464  [>= 0, <= 65535]",
        "SIAMSTREAM_STORE_URL=memory://",
        "SIAMSTREAM_API_KEYS=[]",
        "SIAMSTREAM_DEVICE=cpu  [cpu or cuda]",
        "SIAMSTREAM_TLS_CERT_FILE=(unset)",
        "SIAMSTREAM_INGEST_LEASE_TTL_MS=10000  [>= 300, <= 600000]",
        "SIAMSTREAM_INGEST_METRICS_HOST=0.0.0.0",
    ):
        assert f"  {line}\n" in completed.stdout


def test_serve_with_a_bad_value_names_its_variable() -> None:
    completed = serve(SIAMSTREAM_LISTEN_ADDRESS="localhost", SIAMSTREAM_METRICS_PORT="0")

    assert completed.returncode == 2
    assert "SIAMSTREAM_LISTEN_ADDRESS" in completed.stderr
    assert "must be HOST:PORT with a port in 1..65535, got 'localhost'" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_serve_with_a_misspelt_variable_suggests_the_right_one() -> None:
    completed = serve(SIAMSTREAM_LISTEN_ADRESS="127.0.0.1:50051", SIAMSTREAM_METRICS_PORT="0")

    assert completed.returncode == 2
    assert "SIAMSTREAM_LISTEN_ADRESS: not a setting" in completed.stderr
    assert "did you mean SIAMSTREAM_LISTEN_ADDRESS?" in completed.stderr


def test_serve_without_packages_names_the_package_variables(tmp_path: Path) -> None:
    empty = serve(SIAMSTREAM_PACKAGE_DIR=str(tmp_path), SIAMSTREAM_METRICS_PORT="0")
    unknown = serve(
        SIAMSTREAM_PACKAGE_DIR=str(tmp_path),
        SIAMSTREAM_TRACKER_PACKAGES='["siamrpn_alex"]',
        SIAMSTREAM_METRICS_PORT="0",
    )

    assert empty.returncode == 2 and "SIAMSTREAM_PACKAGE_DIR" in empty.stderr
    assert f"no tracker packages in {tmp_path}" in empty.stderr
    assert unknown.returncode == 2
    assert "SIAMSTREAM_TRACKER_PACKAGES names siamrpn_alex, not in" in unknown.stderr


def test_ingest_settings_errors_name_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMSTREAM_INGEST_LEASE_TTL_MS", "100")
    monkeypatch.setenv("SIAMSTREAM_INGEST_MAX_CAMERAZ", "3")

    with pytest.raises(SettingsError) as refused:
        load_settings(IngestSettings)

    message = str(refused.value)
    assert "SIAMSTREAM_INGEST_LEASE_TTL_MS (lease_ttl_ms in a config file): Input should be" in message
    assert "did you mean SIAMSTREAM_INGEST_MAX_CAMERAS?" in message


def test_a_check_across_settings_names_each_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(ServiceSettings, tls_cert_file=tmp_path / "cert.pem")

    variables = "(SIAMSTREAM_TLS_CERT_FILE, SIAMSTREAM_TLS_KEY_FILE)"
    assert str(refused.value).endswith(f"tls_cert_file and tls_key_file must be set together {variables}")


def test_a_misspelt_config_file_key_suggests_the_key(tmp_path: Path) -> None:
    config = tmp_path / "service.json"
    config.write_text('{"listen_adress": "127.0.0.1:50051"}')

    with pytest.raises(
        SettingsError, match="listen_adress: not a setting of ServiceSettings; did you mean listen_address"
    ):
        load_settings(ServiceSettings, config_file=config)
