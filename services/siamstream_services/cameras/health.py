"""Per-camera connection health as pure functions of the time: states, reconnect backoff, staleness.

The reader thread feeds events (`connecting`, `frame_received`, `connection_failed`) with the time read from
an injected monotonic clock; the watchdog asks `observed_state` at any time. Nothing here sleeps or reads a
clock, so the tests move time by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class CameraState(StrEnum):
    """Connection state of one camera."""

    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALE = "stale"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class BackoffPolicy:
    """Reconnect delays: `initial_s * multiplier**(failures-1)` capped at `max_s`, less up to `jitter`."""

    initial_s: float
    multiplier: float
    max_s: float
    jitter: float


def backoff_delay(policy: BackoffPolicy, failures: int, unit_random: float) -> float:
    """Seconds to wait after `failures` consecutive failures (>= 1); `unit_random` is uniform on [0, 1).

    The jitter only shortens a delay, so `policy.max_s` bounds every wait.
    """
    if failures < 1:
        raise ValueError(f"failures must be at least 1, got {failures}")
    base = min(policy.max_s, policy.initial_s * policy.multiplier ** (failures - 1))
    return base * (1.0 - policy.jitter * unit_random)


@dataclass(frozen=True)
class CameraHealth:
    """What the reader knows about its camera; times are seconds of the injected monotonic clock.

    `failures` counts consecutive failed connections or lost streams (0 while streaming); `retry_at` is
    when the next connection may be opened; `connections` counts captures opened, the first included.
    """

    state: CameraState = CameraState.CONNECTING
    since: float = 0.0
    last_frame_at: float | None = None
    failures: int = 0
    retry_at: float = 0.0
    connections: int = 0

    @property
    def reconnects(self) -> int:
        """Captures opened after the first one."""
        return max(0, self.connections - 1)


def connecting(health: CameraHealth, now: float) -> CameraHealth:
    """A new capture is being opened: CONNECTING the first time, RECONNECTING after that."""
    state = CameraState.CONNECTING if health.connections == 0 else CameraState.RECONNECTING
    return replace(health, state=state, since=now, connections=health.connections + 1)


def frame_received(health: CameraHealth, now: float) -> CameraHealth:
    """A frame arrived: STREAMING, failures forgiven."""
    if health.state is CameraState.STREAMING:
        return replace(health, last_frame_at=now)
    return replace(health, state=CameraState.STREAMING, since=now, last_frame_at=now, failures=0)


def connection_failed(
    health: CameraHealth, now: float, policy: BackoffPolicy, unit_random: float
) -> CameraHealth:
    """Opening failed or the stream ended: RECONNECTING, next attempt after the backoff delay."""
    failures = health.failures + 1
    return replace(
        health,
        state=CameraState.RECONNECTING,
        since=now,
        failures=failures,
        retry_at=now + backoff_delay(policy, failures, unit_random),
    )


def stopped(health: CameraHealth, now: float) -> CameraHealth:
    return replace(health, state=CameraState.STOPPED, since=now)


def observed_state(health: CameraHealth, now: float, stale_after_s: float) -> CameraState:
    """The state to report at `now`: a STREAMING camera with no frame for `stale_after_s` is STALE."""
    if (
        health.state is CameraState.STREAMING
        and health.last_frame_at is not None
        and now - health.last_frame_at > stale_after_s
    ):
        return CameraState.STALE
    return health.state


def lease_expired(renewed_at: float | None, now: float, ttl_s: float, margin_s: float) -> bool:
    """Whether a lease last renewed at `renewed_at` may already be held by another worker at `now`.

    `margin_s` is subtracted from the TTL to absorb the difference between our clock and Redis's: a
    worker stops tracking a little before its lease can possibly pass to another one.
    """
    return renewed_at is None or now - renewed_at >= ttl_s - margin_s
