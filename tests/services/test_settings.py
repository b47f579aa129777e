"""Service settings: defaults, environment and file sources, and rejection of unknown or invalid keys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from siamstream_services.settings import (
    EmbeddedInference,
    MemoryStoreUrl,
    RedisUrl,
    ServiceSettings,
    TritonInference,
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SIAMSTREAM_"):
            monkeypatch.delenv(name)


def test_defaults_run_with_no_external_server() -> None:
    settings = ServiceSettings()
    assert (settings.listen_address, settings.store_url, settings.inference_backend, settings.device) == (
        "127.0.0.1:50051",
        MemoryStoreUrl(),
        EmbeddedInference(),
        "cpu",
    )
    assert settings.api_keys == []


def test_every_field_has_a_description() -> None:
    assert all(field.description for field in ServiceSettings.model_fields.values())


def test_environment_overrides_and_parses_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMSTREAM_STORE_URL", "redis://redis:6379/2")
    monkeypatch.setenv("siamstream_metrics_port", "0")
    monkeypatch.setenv("SIAMSTREAM_API_KEYS", json.dumps(["k" * 32]))

    settings = ServiceSettings()

    assert (str(settings.store_url), settings.metrics_port) == ("redis://redis:6379/2", 0)
    assert [key.get_secret_value() for key in settings.api_keys] == ["k" * 32]
    assert "k" * 32 not in repr(settings)


def test_unknown_prefixed_environment_variable_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIAMSTREAM_LISTEN_ADRESS", "0.0.0.0:1")
    with pytest.raises(ValidationError, match="siamstream_listen_adress"):
        ServiceSettings()


def test_unrelated_environment_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTHER_LISTEN_ADDRESS", "nonsense")
    assert ServiceSettings().listen_address == "127.0.0.1:50051"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.toml", 'store_url = "redis://db:6379/0"\nsession_idle_ttl_s = 60\n'),
        ("c.json", '{"store_url": "redis://db:6379/0", "session_idle_ttl_s": 60}'),
        ("c.env", "SIAMSTREAM_STORE_URL=redis://db:6379/0\nSIAMSTREAM_SESSION_IDLE_TTL_S=60\n"),
    ],
)
def test_config_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.setenv("SIAMSTREAM_SESSION_IDLE_TTL_S", "30")

    from_argument = ServiceSettings(config_file=path)
    monkeypatch.setenv("SIAMSTREAM_CONFIG_FILE", str(path))
    from_environment = ServiceSettings()

    for settings in (from_argument, from_environment):
        assert (str(settings.store_url), settings.session_idle_ttl_s) == ("redis://db:6379/0", 30)


@pytest.mark.parametrize(
    ("name", "text"),
    [("c.toml", "bogus = 1\n"), ("c.json", '{"bogus": 1}'), ("c.env", "SIAMSTREAM_BOGUS=1\n")],
)
def test_unknown_key_in_a_config_file_is_rejected(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValidationError, match="bogus"):
        ServiceSettings(config_file=path)


def test_missing_or_unsupported_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ServiceSettings(config_file=tmp_path / "absent.toml")
    (tmp_path / "c.yaml").write_text("a: 1\n")
    with pytest.raises(ValueError, match="unsupported suffix"):
        ServiceSettings(config_file=tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "values",
    [
        {"listen_address": "localhost"},
        {"listen_address": "127.0.0.1:70000"},
        {"health_listen_address": "localhost"},
        {"health_listen_address": "127.0.0.1:0"},
        {"store_url": "postgres://db/0"},
        {"store_url": "redis://db:6379/zero"},
        {"inference_backend": "triton://host"},
        {"inference_backend": "onnx"},
        {"device": "tpu"},
        {"session_idle_ttl_s": 0},
        {"batch_max_size": 0},
        {"api_keys": ["short"]},
        {"tls_cert_file": "cert.pem"},
        {"tls_client_ca_file": "ca.pem"},
    ],
)
def test_invalid_values_are_rejected(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(**values)


SECRET = "hunter2-do-not-print"


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("SIAMSTREAM_STORE_URL", f"redis://:{SECRET}@db:6379/zero", "database must be a number"),
        ("SIAMSTREAM_STORE_URL", f"postgres://admin:{SECRET}@db/0", "got scheme 'postgres'"),
        ("SIAMSTREAM_STORE_URL", f"redis://:{SECRET}@/0", "names no host"),
        ("SIAMSTREAM_API_KEYS", json.dumps([SECRET[:15]]), "at least 16 characters"),
        ("SIAMSTREAM_STORE_UR", f"redis://:{SECRET}@db:6379/0", "siamstream_store_ur"),
    ],
    ids=["store-url-database", "store-url-scheme", "store-url-host", "short-api-key", "misspelt-variable"],
)
def test_a_refused_setting_is_explained_without_printing_secrets(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    """pydantic quotes the refused input by default: the Redis password or an API key would be printed."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        ServiceSettings()
    assert reason in str(refused.value)
    assert SECRET[:15] not in str(refused.value)


def test_valid_alternatives_are_accepted() -> None:
    settings = ServiceSettings(
        listen_address="[::]:50051",
        store_url="rediss://cache.internal:6380/3",
        inference_backend="triton://triton:8001",
        device="cuda",
        tls_cert_file="cert.pem",
        tls_key_file="key.pem",
        tls_client_ca_file="ca.pem",
        health_listen_address="[::]:50052",
    )
    assert settings.inference_backend == TritonInference(address="triton:8001")
    assert settings.store_url == RedisUrl(
        url="rediss://cache.internal:6380/3", host="cache.internal", port=6380, db=3, tls=True
    )


@pytest.mark.parametrize(
    ("listen", "health"),
    [
        ("127.0.0.1:50051", "127.0.0.1:50051"),
        # A wildcard bind takes the port on every host, so these would collide at start-up too.
        ("0.0.0.0:50051", "127.0.0.1:50051"),
        ("10.0.0.5:50051", "[::]:50051"),
    ],
)
def test_health_address_must_not_take_the_listen_port(
    monkeypatch: pytest.MonkeyPatch, listen: str, health: str
) -> None:
    monkeypatch.setenv("SIAMSTREAM_LISTEN_ADDRESS", listen)
    monkeypatch.setenv("SIAMSTREAM_HEALTH_LISTEN_ADDRESS", health)
    with pytest.raises(ValidationError, match="port of its own"):
        ServiceSettings()


def test_health_address_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().health_listen_address is None
    monkeypatch.setenv("SIAMSTREAM_LISTEN_ADDRESS", "0.0.0.0:50051")
    monkeypatch.setenv("SIAMSTREAM_HEALTH_LISTEN_ADDRESS", "0.0.0.0:50052")
    assert ServiceSettings().health_listen_address == "0.0.0.0:50052"
