"""The cameras of the deployment in Redis: their targets, their sessions, their status and their results.

Layout (every key under the settings' prefix):
- `cameras`: set of camera ids;
- `camera:<id>`: hash with `url`, `owner` and one `target:<target id>` field per target (a `TargetSpec`);
- `camera-sessions:<id>`: hash target id -> session id, written by the worker that starts the sessions;
- `camera-boxes:<id>`: hash target id -> last published box (JSON `[x, y, w, h]`), so a worker taking the
  camera over restarts a target whose session expired where it was last seen;
- `camera-status:<id>`: hash written by the worker holding the camera (state, worker, reconnects, last
  frame time), expiring three leases after its last report;
- `camera-results:<id>`: stream of serialized `CameraTrackResult`s, trimmed to about `results_maxlen`.
Attach and detach are Lua scripts, so a camera is never half-registered and the limits hold under races.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from .config import IngestSettings

# KEYS: camera hash, camera set. ARGV: owner, url, target field, target JSON, max cameras, max targets.
# Returns 1 attached, -1 another owner's camera, -2 another URL, -3 too many cameras, -4 too many targets.
_ATTACH = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner then
  if owner ~= ARGV[1] then return -1 end
  if redis.call('HGET', KEYS[1], 'url') ~= ARGV[2] then return -2 end
  if redis.call('HLEN', KEYS[1]) - 2 >= tonumber(ARGV[6]) then return -4 end
else
  if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[5]) then return -3 end
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'url', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[7])
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
return 1
"""

# KEYS: camera hash, camera set, sessions hash, status hash, boxes hash, results stream. ARGV: owner, target
# id ('' = all), camera id, target field. Returns 1 detached, 0 no such camera or target (or another owner's).
_DETACH = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then
  if redis.call('HDEL', KEYS[1], ARGV[4]) == 0 then return 0 end
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('HDEL', KEYS[5], ARGV[2])
  if redis.call('HLEN', KEYS[1]) > 2 then return 1 end
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('SREM', KEYS[2], ARGV[3])
return 1
"""

TARGET_FIELD_PREFIX = "target:"
# A watcher notices a detach or a draining replica within this; it is also the idle XREAD rate per watcher.
WATCH_BLOCK_MS = 1000
# Bounds every other command; above WATCH_BLOCK_MS so that a blocking XREAD is never cut short.
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 0.5

Box = tuple[float, float, float, float]


def is_redis_url(url: str) -> bool:
    """Whether a settings `store_url` names Redis, where the cameras and the leases live."""
    return url.startswith(("redis://", "rediss://"))


class TargetSpec(BaseModel):
    """One target as attached: its tracker, its box and the frame the box is on.

    The box is `(x, y, w, h)` in image pixels. With `nearest` False the box is on the first frame received
    at or after `anchor_unix` (the attach time); with `nearest` True on the frame received nearest it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_id: str = Field(description="Server-assigned id.")
    tracker: str = Field(description="Registered tracker name.")
    box: Box = Field(description="xywh in image pixels.")
    options_json: str = Field(default="{}", description="The TrackOptions overrides, as JSON.")
    anchor_unix: float = Field(description="Wall-clock seconds the box refers to.")
    nearest: bool = Field(default=False, description="Frame nearest anchor_unix rather than first after.")


@dataclass(frozen=True)
class CameraSpec:
    """A camera as registered: its URL, its owner and its targets by id."""

    camera_id: str
    url: str
    owner: str
    targets: dict[str, TargetSpec]


@dataclass(frozen=True)
class CameraStatus:
    """What the worker holding a camera last reported; `last_frame_unix` is wall-clock seconds."""

    state: str
    worker_id: str
    reconnects: int
    last_frame_unix: float | None


class AttachRefused(Exception):
    """An attach the directory refuses; `reason` is one of the constants below."""

    ANOTHER_OWNER = -1
    ANOTHER_URL = -2
    TOO_MANY_CAMERAS = -3
    TOO_MANY_TARGETS = -4

    def __init__(self, reason: int) -> None:
        super().__init__(reason)
        self.reason = reason


class CameraDirectory:
    """Reads and writes the camera keys; `client` must NOT decode responses (results are bytes)."""

    def __init__(self, client: Redis, settings: IngestSettings) -> None:
        self.settings = settings
        self._redis = client
        self._prefix = settings.key_prefix
        self._attach = client.register_script(_ATTACH)
        self._detach = client.register_script(_DETACH)

    @classmethod
    def from_url(cls, url: str, settings: IngestSettings) -> CameraDirectory:
        """A directory on its own client of the Redis at `url` (`redis://` or `rediss://`); close it with
        `aclose()`."""
        client = Redis.from_url(
            url,
            decode_responses=False,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
        )
        return cls(client, settings)

    async def aclose(self) -> None:
        await self._redis.aclose()

    @property
    def client(self) -> Redis:
        return self._redis

    def _key(self, kind: str, camera_id: str = "") -> str:
        return f"{self._prefix}{kind}:{camera_id}" if camera_id else f"{self._prefix}{kind}"

    async def attach(self, owner: str, camera_id: str, url: str, spec_without_id: TargetSpec) -> str:
        """Register the target (and the camera on its first target); return the new target id."""
        target_id = uuid.uuid4().hex[:16]
        spec = spec_without_id.model_copy(update={"target_id": target_id})
        outcome = await self._attach(
            [self._key("camera", camera_id), self._key("cameras")],
            [
                owner,
                url,
                TARGET_FIELD_PREFIX + target_id,
                spec.model_dump_json(),
                self.settings.max_cameras,
                self.settings.max_targets_per_camera,
                camera_id,
            ],
        )
        if outcome != 1:
            raise AttachRefused(int(outcome))
        return target_id

    async def detach(self, owner: str, camera_id: str, target_id: str) -> dict[str, str] | None:
        """Remove a target (`target_id` '': the camera); return the sessions to stop, None when absent."""
        sessions = await self.sessions(camera_id)
        keys = [
            self._key("camera", camera_id),
            self._key("cameras"),
            self._key("camera-sessions", camera_id),
            self._key("camera-status", camera_id),
            self._key("camera-boxes", camera_id),
            self._key("camera-results", camera_id),
        ]
        field = TARGET_FIELD_PREFIX + target_id
        if await self._detach(keys, [owner, target_id, camera_id, field]) != 1:
            return None
        if target_id:
            return {target_id: sessions[target_id]} if target_id in sessions else {}
        return sessions

    async def camera_ids(self) -> list[str]:
        return sorted(member.decode() for member in await self._redis.smembers(self._key("cameras")))

    async def camera(self, camera_id: str) -> CameraSpec | None:
        fields = {
            k.decode(): v.decode()
            for k, v in (await self._redis.hgetall(self._key("camera", camera_id))).items()
        }
        if "owner" not in fields:
            return None
        targets = {
            name.removeprefix(TARGET_FIELD_PREFIX): TargetSpec.model_validate_json(value)
            for name, value in fields.items()
            if name.startswith(TARGET_FIELD_PREFIX)
        }
        return CameraSpec(camera_id, fields["url"], fields["owner"], targets)

    async def sessions(self, camera_id: str) -> dict[str, str]:
        stored = await self._redis.hgetall(self._key("camera-sessions", camera_id))
        return {k.decode(): v.decode() for k, v in stored.items()}

    async def set_session(self, camera_id: str, target_id: str, session_id: str) -> None:
        await self._redis.hset(self._key("camera-sessions", camera_id), target_id, session_id)

    async def report_status(self, camera_id: str, status: CameraStatus) -> None:
        key = self._key("camera-status", camera_id)
        mapping = {
            "state": status.state,
            "worker": status.worker_id,
            "reconnects": status.reconnects,
            "last_frame_unix": "" if status.last_frame_unix is None else repr(status.last_frame_unix),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, 3 * self.settings.lease_ttl_ms)
            await pipe.execute()

    async def status(self, camera_id: str) -> CameraStatus | None:
        fields = {
            k.decode(): v.decode()
            for k, v in (await self._redis.hgetall(self._key("camera-status", camera_id))).items()
        }
        if not fields:
            return None
        last = fields.get("last_frame_unix", "")
        return CameraStatus(
            state=fields.get("state", ""),
            worker_id=fields.get("worker", ""),
            reconnects=int(fields.get("reconnects", "0")),
            last_frame_unix=float(last) if last else None,
        )

    async def publish(self, camera_id: str, target_id: str, payload: bytes, box: Box) -> None:
        """Append one serialized result to the camera's stream (trimmed to about `results_maxlen`) and
        record its `box` (xywh, image pixels) as the target's last one, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(
                self._key("camera-results", camera_id),
                {"target": target_id, "result": payload},
                maxlen=self.settings.results_maxlen,
                approximate=True,
            )
            pipe.hset(self._key("camera-boxes", camera_id), target_id, json.dumps(list(box)))
            await pipe.execute()

    async def last_box(self, camera_id: str, target_id: str) -> Box | None:
        """The target's last published box (xywh, image pixels), by whichever worker; None before any."""
        stored = await self._redis.hget(self._key("camera-boxes", camera_id), target_id)
        if stored is None:
            return None
        x, y, w, h = json.loads(stored)
        return float(x), float(y), float(w), float(h)

    async def watch(
        self, camera_id: str, target_id: str, stop: asyncio.Event, block_ms: int = WATCH_BLOCK_MS
    ) -> AsyncIterator[bytes]:
        """The target's serialized results from now on; ends once the target is detached or `stop` is set.

        Each XREAD blocks at most `block_ms`; between reads the target's presence and `stop` are checked,
        so a detach or a stop ends the stream within about `block_ms`, with no command cut off midway.
        """
        stream = self._key("camera-results", camera_id)
        camera = self._key("camera", camera_id)
        field = TARGET_FIELD_PREFIX + target_id
        # The stream's last id, taken once, then the ids read: "$" on every XREAD would lose the entries
        # added between two reads.
        newest = await self._redis.xrevrange(stream, count=1)
        last_id = newest[0][0] if newest else b"0-0"
        while not stop.is_set() and await self._redis.hexists(camera, field):
            answer = await self._redis.xread({stream: last_id}, count=100, block=block_ms)
            for _, entries in answer:
                for entry_id, fields in entries:
                    last_id = entry_id
                    if fields.get(b"target") == target_id.encode():
                        yield fields[b"result"]
