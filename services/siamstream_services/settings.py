"""Validated configuration of the SiamStream processes: every knob of the service, one source each.

Values come from, highest priority first: keyword arguments, `SIAMSTREAM_*` environment variables, and
an optional config file (`.json`, `.toml` or `.env`) named by `config_file` / `SIAMSTREAM_CONFIG_FILE`.
Unknown keys are rejected in every source, so a misspelt variable fails at start-up instead of being
silently ignored. Lists (`api_keys`, `tracker_packages`) are given as JSON in environment variables:
`SIAMSTREAM_API_KEYS='["key-one...", "key-two..."]'`. Two namespaces belong to other settings classes,
which check them in turn: `SIAMSTREAM_INGEST_*` to camera ingestion
(`siamstream_services.cameras.config.IngestSettings`) and `SIAMSTREAM_TRITON_*` to the batching of the
Triton model repository (`TritonBatchingSettings`, read by `siamstream triton-repository` and the service
benchmark's Triton server, which pass them to the generator).

The store URL and the inference backend are parsed once, here, into typed values (`RedisUrl` or
`MemoryStoreUrl`, `TritonInference` or `EmbeddedInference`): the processes dispatch on their types and
never read the strings again. Their variables keep their string form (`redis://HOST:PORT/DB`,
`triton://HOST:PORT`).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    JsonConfigSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "SIAMSTREAM_"
# The ingest worker reads both settings classes from one environment: each class checks only its own names.
INGEST_ENV_PREFIX = f"{ENV_PREFIX}INGEST_"
# Read by `siamstream triton-repository` and the service benchmark (TritonBatchingSettings); the service
# leaves them alone.
TRITON_ENV_PREFIX = f"{ENV_PREFIX}TRITON_"
# Read by `siamstream demo` alone (siamstream_services.demo.packages), so that a shell can point it at its
# trained package once; the service leaves it alone.
DEMO_PACKAGE_ENV = f"{ENV_PREFIX}DEMO_PACKAGE"

_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(?P<port>\d{1,5})$")
# Hosts that bind every interface, so a port bound on one of them is taken on every other host too.
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "[::]"})


class StrictEnvSource(EnvSettingsSource):
    """The environment source, plus every unknown variable under the settings' prefix, so that
    `extra="forbid"` rejects it.

    pydantic-settings 2.16 looks up only the names of known fields in `os.environ` and silently drops the
    rest (a misspelt `SIAMSTREAM_LISTEN_ADRESS` would be ignored), although its dotenv source rejects them.
    Variables under one of `foreign_prefixes` belong to another settings class and are left to it.
    """

    def __init__(self, settings_cls: type[BaseSettings], foreign_prefixes: tuple[str, ...] = ()) -> None:
        super().__init__(settings_cls)
        self._foreign_prefixes = tuple(self._apply_case_sensitive(p) for p in foreign_prefixes)

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        prefix = self._apply_case_sensitive(self.env_prefix)
        known = {f"{prefix}{self._apply_case_sensitive(name)}" for name in self.settings_cls.model_fields}
        for env_name, value in self.env_vars.items():
            foreign = env_name.startswith(self._foreign_prefixes)
            if env_name.startswith(prefix) and env_name not in known and not foreign:
                data[env_name] = value
        return data


class StrictEnvSettings(BaseSettings):
    """Settings whose environment source rejects unknown variables under their prefix (`StrictEnvSource`);
    the sources are otherwise pydantic-settings' defaults, in their order."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, StrictEnvSource(settings_cls), dotenv_settings, file_secret_settings


def _config_file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    """The pydantic-settings source reading `path`, chosen by its suffix."""
    # pydantic-settings skips missing files silently; a named config file that is absent is an error.
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    if path.suffix == ".json":
        return JsonConfigSettingsSource(settings_cls, json_file=path)
    if path.suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    if path.suffix == ".env":
        return DotEnvSettingsSource(settings_cls, env_file=path)
    raise ValueError(f"config file {path}: unsupported suffix {path.suffix!r} (use .json, .toml or .env)")


def _check_host_port(value: str, what: str) -> str:
    match = _HOST_PORT.match(value)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError(f"{what} must be HOST:PORT with a port in 1..65535, got {value!r}")
    return value


def _same_port(address: str, other: str) -> bool:
    """Whether binding the HOST:PORT `address` would take the port that binding `other` takes."""
    host, port = address.rsplit(":", 1)
    other_host, other_port = other.rsplit(":", 1)
    same_host = host == other_host or bool(_WILDCARD_HOSTS & {host, other_host})
    return same_host and int(port) == int(other_port)


class MemoryStoreUrl(BaseModel):
    """`memory://`: the in-process session store, for one process alone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["memory"] = "memory"

    def __str__(self) -> str:
        return "memory://"


class RedisUrl(BaseModel):
    """A checked `redis://HOST[:PORT][/DB]` or `rediss://...` (TLS) URL.

    `url` is the URL as written, password and query included, for the Redis clients; it is left out of
    the repr, which `public()` stands in for in logs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["redis"] = "redis"
    url: str = Field(repr=False, description="The URL as written.")
    host: str = Field(description="Host name or address.")
    port: int = Field(ge=0, le=65535, description="Port (6379 when the URL names none).")
    db: int = Field(ge=0, description="Database number (0 when the URL names none).")
    tls: bool = Field(description="rediss://: the connection is TLS.")

    def public(self) -> str:
        """The URL without user name, password and query: what logs may show."""
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"

    def __str__(self) -> str:
        return self.url


def _parse_store_url(value: object) -> object:
    """A `store_url` string as its typed value; a typed value as it is. The messages never quote the URL,
    which may hold a password."""
    if not isinstance(value, str):
        return value
    if value == "memory://":
        return MemoryStoreUrl()
    url = urlsplit(value)
    if url.scheme not in ("redis", "rediss"):
        raise ValueError(f"store_url must be memory:// or redis://HOST:PORT/DB, got scheme {url.scheme!r}")
    if not url.hostname:
        raise ValueError("store_url names no host: use redis://HOST:PORT/DB")
    database = url.path[1:]
    if database and not database.isdigit():
        raise ValueError(f"store_url database must be a number, got {database!r}")
    try:
        port = url.port
    except ValueError:
        raise ValueError("store_url port must be a number in 0..65535") from None
    return RedisUrl(
        url=value,
        host=url.hostname,
        port=6379 if port is None else port,
        db=int(database or 0),
        tls=url.scheme == "rediss",
    )


# Written and read as the URL string (`NoDecode`: an environment value is a URL, not JSON).
StoreUrl = Annotated[
    MemoryStoreUrl | RedisUrl,
    Field(discriminator="kind"),
    BeforeValidator(_parse_store_url),
    PlainSerializer(str, return_type=str),
    NoDecode,
]


class EmbeddedInference(BaseModel):
    """`embedded`: the tracker packages run in this process (TorchScript, CPU or CUDA)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["embedded"] = "embedded"

    def __str__(self) -> str:
        return "embedded"


class TritonInference(BaseModel):
    """`triton://HOST:PORT`: a Triton Inference Server's gRPC endpoint serves the tracker packages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["triton"] = "triton"
    address: str = Field(description="HOST:PORT of Triton's gRPC endpoint.")

    @field_validator("address")
    @classmethod
    def _address_is_host_port(cls, value: str) -> str:
        return _check_host_port(value, "inference_backend address")

    def __str__(self) -> str:
        return f"triton://{self.address}"


def _parse_inference_backend(value: object) -> object:
    """An `inference_backend` string as its typed value; a typed value as it is."""
    if not isinstance(value, str):
        return value
    if value == "embedded":
        return EmbeddedInference()
    scheme, _, address = value.partition("://")
    if scheme != "triton":
        raise ValueError(f"inference_backend must be embedded or triton://HOST:PORT, got {value!r}")
    # Checked here too, so that a bad address is refused in the words of this setting.
    return TritonInference(address=_check_host_port(address, "inference_backend address"))


InferenceBackendSetting = Annotated[
    EmbeddedInference | TritonInference,
    Field(discriminator="kind"),
    BeforeValidator(_parse_inference_backend),
    PlainSerializer(str, return_type=str),
    NoDecode,
]


class ServiceSettings(BaseSettings):
    """Settings of the session service and its runtime pieces (store, inference backend, limits, security)."""

    # Inputs carry secrets (API keys, the Redis password in store_url), and pydantic quotes the input of a
    # field it refuses: hidden, so that a misconfiguration never prints them. The validators' messages say
    # what is wrong without quoting a secret.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
        hide_input_in_errors=True,
    )

    config_file: Path | None = Field(
        default=None,
        description="JSON, TOML or .env file with further settings; environment variables override it.",
    )
    # Loopback by default so that a service started by hand is never reachable, unauthenticated, from
    # the network; containers set 0.0.0.0:50051.
    listen_address: str = Field(
        default="127.0.0.1:50051", description="HOST:PORT the gRPC server binds ([::] form for IPv6)."
    )
    # Kubernetes' gRPC probes and Docker's health check speak plaintext only: with TLS on listen_address
    # they need a port of their own. It serves nothing but health, so it needs neither TLS nor a key.
    health_listen_address: str | None = Field(
        default=None,
        description=(
            "HOST:PORT of a second, plaintext gRPC server with grpc.health.v1 only (no API key); "
            "None serves health on listen_address alone."
        ),
    )
    # 9464 is the port registered for Prometheus exporters by OpenTelemetry; it avoids Triton's
    # 8000-8002 and node-exporter's 9100 when processes share a host.
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of the Prometheus /metrics endpoint; 0 disables it."
    )
    # In-process by default so that one process runs with no external server; replicas need Redis.
    store_url: StoreUrl = Field(
        default=MemoryStoreUrl(),
        description="Session store: memory:// (one process only) or redis://HOST:PORT/DB (rediss:// = TLS).",
    )
    # A store answers in well under a millisecond when healthy; a second means it is not.
    store_timeout_s: float = Field(
        default=2.0,
        gt=0.0,
        le=60.0,
        description="Seconds a session store call may take before the frame is refused UNAVAILABLE.",
    )
    # A lost race means another replica wrote the session meanwhile; a handful of rounds absorbs any real
    # contention (one client pushing through two replicas) while bounding the work of one call.
    max_write_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Tries at writing a frame's session against concurrent writers before ABORTED.",
    )
    inference_backend: InferenceBackendSetting = Field(
        default=EmbeddedInference(),
        description="embedded (in-process TorchScript) or triton://HOST:PORT (Triton's gRPC endpoint).",
    )
    # Covers a batch wait plus a model run under load; beyond that the frame is late for a live stream
    # anyway. Triton gets the same bound on each model call: its client's own 1 s default failed healthy
    # but loaded servers (a first call on a busy host takes over a second).
    inference_timeout_s: float = Field(
        default=5.0,
        gt=0.0,
        le=300.0,
        description="Seconds one model call may take before the frame is refused UNAVAILABLE.",
    )
    package_dir: Path = Field(
        default=Path("packages"), description="Directory holding one subdirectory per tracker package."
    )
    tracker_packages: list[str] = Field(
        default_factory=list,
        description="Names of the packages in package_dir to load; empty loads every package there.",
    )
    # CPU by default: it is the device every machine has; the embedded backend on a GPU host sets cuda.
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="Device of the embedded backend.")
    # Five minutes outlives a camera reconnect or a paused client, yet frees abandoned sessions promptly.
    session_idle_ttl_s: int = Field(
        default=300, ge=1, le=86_400, description="Seconds without a frame after which a session expires."
    )
    # One API key must not take the store and the model for everyone: 256 is 16 full batches of 16, room
    # for a client's streams plus its cameras' targets (16 cameras by default, a target or two each).
    max_sessions_per_owner: int = Field(
        default=256,
        ge=1,
        le=1_000_000,
        description="Live sessions one API key may have, camera targets included; more: RESOURCE_EXHAUSTED.",
    )
    # 32 MiB admits one raw 4K UHD BGR frame (3840*2160*3 = 24.9 MB) with room for its message; the gRPC
    # server's max_receive_message_length must be at least this.
    max_frame_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1, description="Largest encoded or raw frame accepted, in bytes."
    )
    # 4K UHD: larger frames cost decode time without helping a tracker that crops around the target.
    max_frame_pixels: int = Field(
        default=3840 * 2160, ge=1, description="Largest frame accepted, in pixels (width * height)."
    )
    # 16 sessions fill a model server's batch well at 30 fps without a long queue per stream.
    batch_max_size: int = Field(
        default=16, ge=1, le=256, description="Most search crops sent to the model in one batched call."
    )
    # A 2 ms wait is small against a 33 ms frame interval; the batcher waits only once calls have come
    # together (its last run batched several), so a lone stream never waits.
    batch_max_wait_ms: float = Field(
        default=2.0,
        ge=0.0,
        le=100.0,
        description="Longest wait for a batch to fill, in milliseconds, once calls have come together.",
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Accepted API keys (metadata 'authorization: Bearer KEY'); empty turns auth off.",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM server certificate chain; None serves plaintext."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        default=None, description="PEM CA bundle; when set, clients must present a certificate it signed."
    )
    # A client whose host vanished (power loss, a network partition: no FIN reaches the service) would hold
    # its open streams, and a WatchTrack's Redis read, until TCP gave up hours later; a ping unanswered
    # within the timeout ends its connection and its calls. A minute of silence costs an idle stream one
    # small frame per minute.
    keepalive_interval_s: float = Field(
        default=60.0,
        gt=0.0,
        le=7200.0,
        description="Seconds of silence on a client connection after which the service pings the client.",
    )
    keepalive_timeout_s: float = Field(
        default=20.0,
        gt=0.0,
        le=600.0,
        description="Seconds a client has to answer a ping before its connection and its calls are ended.",
    )
    # Shorter than Kubernetes' default 30 s termination grace, so in-flight frames finish before SIGKILL.
    drain_grace_s: float = Field(
        default=20.0, ge=0.0, le=600.0, description="Seconds given to in-flight calls after SIGTERM."
    )
    # Probes read the status from memory, so they never wait on the store or the backend; a replica that
    # loses either is reported NOT_SERVING within one interval plus one probe timeout.
    health_interval_s: float = Field(
        default=2.0,
        gt=0.0,
        le=300.0,
        description="Seconds between two readiness checks of the store and the inference backend.",
    )
    health_probe_timeout_s: float = Field(
        default=1.0,
        gt=0.0,
        le=60.0,
        description="Seconds a readiness check may take before the replica is reported NOT_SERVING.",
    )
    # Text for a terminal; json for a log collector (one object per line, extra fields as keys).
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text or as one JSON object per line."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        description="Least severe log level written; DEBUG adds one line per tracked frame.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then the strict environment, then `_env_file`, then the config file."""
        foreign = (INGEST_ENV_PREFIX, TRITON_ENV_PREFIX, DEMO_PACKAGE_ENV)
        env = StrictEnvSource(settings_cls, foreign_prefixes=foreign)
        config_file = init_settings().get("config_file") or env().get("config_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env, dotenv_settings]
        if config_file:
            sources.append(_config_file_source(settings_cls, Path(config_file)))
        return tuple(sources)

    @field_validator("listen_address")
    @classmethod
    def _listen_address_is_host_port(cls, value: str) -> str:
        return _check_host_port(value, "listen_address")

    @field_validator("health_listen_address")
    @classmethod
    def _health_listen_address_is_host_port(cls, value: str | None) -> str | None:
        return value if value is None else _check_host_port(value, "health_listen_address")

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_in_upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("api_keys")
    @classmethod
    def _api_keys_are_strong(cls, value: list[SecretStr]) -> list[SecretStr]:
        # A short key can be guessed; `secrets.token_urlsafe(32)` makes a good one.
        if any(len(key.get_secret_value()) < 16 for key in value):
            raise ValueError("every API key must be at least 16 characters long")
        return value

    @model_validator(mode="after")
    def _tls_files_are_complete(self) -> ServiceSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file and tls_key_file")
        return self

    @model_validator(mode="after")
    def _health_address_has_its_own_port(self) -> ServiceSettings:
        if self.health_listen_address is not None and _same_port(
            self.health_listen_address, self.listen_address
        ):
            raise ValueError(
                f"health_listen_address {self.health_listen_address} takes the port of listen_address "
                f"{self.listen_address}: give the health server a port of its own"
            )
        return self


class TritonBatchingSettings(StrictEnvSettings):
    """Scheduling of every model that `siamstream triton-repository` writes (`config.pbtxt`: the batch
    bound, the dynamic batcher, the instances); its command-line flags override these."""

    model_config = SettingsConfigDict(env_prefix=TRITON_ENV_PREFIX, extra="forbid", frozen=True)

    # The service's own batch bound (batch_max_size): a full batch of its streams is one Triton run. At most
    # 256, where the generator once took any positive size: a model's max_batch_size sizes each shared-memory
    # region of the Triton client (every input and output of that many rows: tens of MB per region for a
    # 255-pixel search crop at 256) and the batch the server warms up at load, and no replica sends more
    # rows in one call than its batch_max_size, itself at most 256.
    max_batch_size: int = Field(
        default=16, ge=1, le=256, description="max_batch_size of every model: most rows in one run."
    )
    # Powers of two up to the bound: the sizes TorchScript is warmed up and fast at, formed without waiting.
    preferred_batch_sizes: tuple[PositiveInt, ...] = Field(
        default=(4, 8, 16),
        description="Batch sizes the dynamic batcher runs without waiting (above max_batch_size: left out).",
    )
    # Extra latency a lone request may wait for company; keep it below one frame's budget.
    max_queue_delay_microseconds: int = Field(
        default=500,
        ge=0,
        le=10_000_000,
        description="Longest a request waits in the dynamic batcher for others, in microseconds.",
    )
    instance_count: int = Field(
        default=1, ge=1, le=64, description="Instances of each model (GPU in the production form)."
    )


Settings = TypeVar("Settings", bound=BaseSettings)


class SettingsError(ValueError):
    """Settings that do not validate; the message names the environment variable of each bad value."""


def env_name(settings_cls: type[BaseSettings], field: str) -> str:
    """The environment variable of `field` (`listen_address` -> SIAMSTREAM_LISTEN_ADDRESS)."""
    return f"{settings_cls.model_config.get('env_prefix', '')}{field}".upper()


def load_settings(settings_cls: type[Settings], **values: Any) -> Settings:
    """`settings_cls(**values)`; a validation error is raised as `SettingsError`, one line per problem,
    each naming the variable to set, so that a process refusing to start says how to fix it."""
    try:
        return settings_cls(**values)
    except ValidationError as error:
        problems = [_describe(settings_cls, problem) for problem in error.errors(include_input=False)]
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems)) from None


def _describe(settings_cls: type[BaseSettings], problem: Any) -> str:
    message = problem["msg"].removeprefix("Value error, ")
    fields = settings_cls.model_fields
    if not problem["loc"]:
        # A check across fields: its message names the fields, and this their variables.
        named = [env_name(settings_cls, name) for name in fields if re.search(rf"\b{name}\b", message)]
        return f"{message} ({', '.join(named)})" if named else message
    key = str(problem["loc"][0])
    if key in fields:
        return f"{env_name(settings_cls, key)} ({key} in a config file): {message}"
    # An unknown key: the environment source reports its variable's name, a config file its own key.
    if key.upper().startswith(ENV_PREFIX):
        unknown, known = key.upper(), [env_name(settings_cls, name) for name in fields]
    else:
        unknown, known = key, list(fields)
    close = difflib.get_close_matches(unknown, known, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{unknown}: not a setting of {settings_cls.__name__}{hint}"
