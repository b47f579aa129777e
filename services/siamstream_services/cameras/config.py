"""Validated settings of camera ingestion (`SIAMSTREAM_INGEST_*` environment variables).

Every bound is here so that an outage is detected and ridden over within known times: a read never blocks
longer than `read_timeout_ms`, a camera without frames is STALE after `stale_after_s`, a dead worker's
cameras move within `lease_ttl_ms` plus one `claim_interval_s`.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from pydantic import Field, IPvAnyAddress, IPvAnyNetwork, model_validator
from pydantic_settings import SettingsConfigDict

from siamstream_services.settings import INGEST_ENV_PREFIX, StrictEnvSettings

from .urls import CameraNetworks


class IngestSettings(StrictEnvSettings):
    """Settings of one ingest worker and of the camera API.

    Unknown `SIAMSTREAM_INGEST_*` variables are rejected, as `ServiceSettings` rejects the other unknown
    `SIAMSTREAM_*` ones; the worker reads both.
    """

    model_config = SettingsConfigDict(env_prefix=INGEST_ENV_PREFIX, extra="forbid", frozen=True)

    # Opening an RTSP stream on a LAN takes ~0.3 s (DESCRIBE, SETUP, PLAY, first keyframe); 5 s rides
    # over a slow camera without leaving a dead one blocking the reader for long.
    open_timeout_ms: int = Field(default=5000, ge=100, le=60_000, description="Bound on opening a stream.")
    # Several frame intervals: a live camera always delivers within it, a hung one is dropped and reopened.
    read_timeout_ms: int = Field(default=3000, ge=100, le=60_000, description="Bound on reading one frame.")
    # Shorter than the read timeout, so a hung camera shows as STALE before its reader gives up on it.
    stale_after_s: float = Field(default=2.0, gt=0.0, le=60.0, description="No frame for this long: STALE.")
    backoff_initial_s: float = Field(default=0.5, gt=0.0, le=60.0, description="First reconnect delay.")
    backoff_multiplier: float = Field(default=2.0, ge=1.0, le=10.0, description="Delay growth per failure.")
    # Ten seconds bounds how long a camera that comes back waits for its reader to try again.
    backoff_max_s: float = Field(default=10.0, gt=0.0, le=300.0, description="Longest reconnect delay.")
    # Spreads the reconnects of many cameras behind one failed switch so they do not retry in lockstep.
    backoff_jitter: float = Field(
        default=0.3, ge=0.0, lt=1.0, description="Fraction of a delay removed at random (full jitter = 1)."
    )
    # Frames kept for attaches whose box refers to an earlier frame (`box_time`): one second at 30 fps.
    history_frames: int = Field(default=30, ge=1, le=600, description="Recent frames kept per camera.")
    # A dead worker's cameras are taken over after this; renewals come three times within it.
    lease_ttl_ms: int = Field(default=10_000, ge=300, le=600_000, description="Lease on a camera.")
    claim_interval_s: float = Field(
        default=2.0, gt=0.0, le=60.0, description="How often a worker renews leases and claims cameras."
    )
    max_cameras_per_worker: int = Field(default=16, ge=1, le=1024, description="Cameras one worker reads.")
    # Camera ids become metric labels: the deployment-wide limit keeps the label set bounded.
    max_cameras: int = Field(default=256, ge=1, le=10_000, description="Cameras in the whole deployment.")
    # One worker's worth: a single API key can neither take the whole deployment's cameras nor its workers.
    max_cameras_per_owner: int = Field(
        default=16, ge=1, le=10_000, description="Cameras one API key may have attached at a time."
    )
    max_targets_per_camera: int = Field(default=16, ge=1, le=256, description="Targets on one camera.")
    # Empty: cameras may be anywhere not denied. A production site lists its camera networks here.
    allowed_camera_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="CIDRs cameras may be in (every resolved address must be); empty allows every one.",
    )
    # Additions only: link-local, the cloud metadata addresses and "this host" are denied whatever this
    # says (urls.ALWAYS_DENIED_NETWORKS), so that adding one network cannot drop them. Loopback stays
    # allowed (a camera relay on the same host, the tests' RTSP server); a deployment adds its own service
    # networks (Redis, Triton, the pods) here.
    denied_camera_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description=(
            "CIDRs no camera may be in, over allowed_camera_networks, in addition to the networks always "
            "denied (link-local, the cloud metadata addresses, 0.0.0.0/8 and ::)."
        ),
    )
    # About a minute of results at 30 fps per camera: enough for a watcher that reconnects.
    results_maxlen: int = Field(default=2000, ge=10, le=1_000_000, description="Results kept per camera.")
    key_prefix: str = Field(default="siamstream:v1:", description="Prefix of every Redis key.")
    # Every interface: the worker's one endpoint is the read-only /metrics, which the kubelet's probes and
    # Prometheus reach on the pod's address (its port is the shared SIAMSTREAM_METRICS_PORT).
    metrics_host: IPvAnyAddress = Field(
        default=IPv4Address("0.0.0.0"), description="Address the worker's /metrics endpoint binds."
    )

    @property
    def camera_networks(self) -> CameraNetworks:
        return CameraNetworks(tuple(self.allowed_camera_networks), tuple(self.denied_camera_networks))

    @model_validator(mode="after")
    def _renewal_fits_in_lease(self) -> IngestSettings:
        # Two renewals must fit in one lease, or a single slow round would let another worker take over.
        if 2 * self.claim_interval_s * 1000 >= self.lease_ttl_ms:
            raise ValueError(
                f"claim_interval_s ({self.claim_interval_s}) must be under half of lease_ttl_ms "
                f"({self.lease_ttl_ms} ms)"
            )
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must be at most backoff_max_s")
        return self
