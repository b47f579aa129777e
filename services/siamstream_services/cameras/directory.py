"""The cameras of the deployment in Redis: their targets, their sessions, their status and their results.

A camera is stored under its key, `<owner id>/<camera id>` (`camera_key`): camera ids are chosen by the
callers, so each API key has its own, and one key's camera id never names, reveals or blocks another's.
Layout (every key under the settings' prefix):
- `cameras`: set of camera keys;
- `owner-cameras:<owner id>`: set of the owner's camera ids (listing, and the per-owner limit);
- `camera:<key>`: hash with `url`, `owner` and one `target:<target id>` field per target (a `TargetSpec`);
- `camera-sessions:<key>`: hash target id -> session id, written by the worker that starts the sessions;
- `camera-boxes:<key>`: hash target id -> last published box (JSON `[x, y, w, h]`), so a worker taking the
  camera over restarts a target whose session expired where it was last seen;
- `camera-status:<key>`: hash written by the worker holding the camera (state, worker, reconnects, last
  frame time), expiring three leases after its last report;
- `camera-results:<key>`: stream of serialized `CameraTrackResult`s, trimmed to about `results_maxlen`.
Attach and detach are Lua scripts, so a camera is never half-registered and the limits hold under races.
A worker's writes (results, boxes, sessions, status) are scripts too, each made only while the target or
camera is still attached: a runner that has not yet heard of a detach, or of its camera's move, never
recreates the keys that the detach or move removed (they would stay forever, with no TTL).
Cameras registered by a release before keys were scoped (key = bare camera id, no owner set) are moved
to their scoped keys by `scope_unscoped`, which the workers run on every claim round and the camera API
before its first call.
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

# KEYS: camera hash, camera set, owner's camera set. ARGV: owner, url, target field, target JSON, max
# cameras, max targets, camera key, max cameras per owner, camera id. Returns 1 attached, -2 another URL,
# -3 too many cameras, -4 too many targets, -5 too many cameras of the owner.
_ATTACH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'url') ~= ARGV[2] then return -2 end
  if redis.call('HLEN', KEYS[1]) - 2 >= tonumber(ARGV[6]) then return -4 end
else
  if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[8]) then return -5 end
  if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[5]) then return -3 end
  redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'url', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[7])
  redis.call('SADD', KEYS[3], ARGV[9])
end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
return 1
"""

# KEYS: camera hash, camera set, sessions hash, status hash, boxes hash, results stream, owner's camera set.
# ARGV: target id ('' = all), camera key, target field, camera id. Returns 1 detached, 0 no such camera or
# target.
_DETACH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' then
  if redis.call('HDEL', KEYS[1], ARGV[3]) == 0 then return 0 end
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[5], ARGV[1])
  if redis.call('HLEN', KEYS[1]) > 2 then return 1 end
end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[7], ARGV[4])
return 1
"""

# KEYS: an unscoped camera's hash, sessions, boxes, status and results; the same five of its scoped key; the
# camera set; the owner's camera set. ARGV: owner, unscoped key, scoped key, camera id. Returns 1 moved, 0
# when the camera is gone or any key of the scoped camera exists (its owner attached that id through a new
# release, or a runner left results there): RENAME would overwrite it.
_SCOPE = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
for i = 6, 10 do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 0 end
end
for i = 1, 5 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 5]) end
end
redis.call('SREM', KEYS[11], ARGV[2])
redis.call('SADD', KEYS[11], ARGV[3])
redis.call('SADD', KEYS[12], ARGV[4])
return 1
"""

# KEYS: camera hash, results stream, boxes hash. ARGV: target field, target id, result, box JSON, stream
# length. Returns 1 written, 0 when the target is no longer attached.
_PUBLISH = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'target', ARGV[2], 'result', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
return 1
"""

# KEYS: camera hash, sessions hash. ARGV: target field, target id, session id. Returns 1 written, 0 when
# the target is no longer attached.
_SET_SESSION = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# KEYS: camera hash, status hash. ARGV: state, worker, reconnects, last frame time, TTL (ms). Returns 1
# written, 0 when the camera is no longer attached.
_REPORT_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'state', ARGV[1], 'worker', ARGV[2], 'reconnects', ARGV[3],
  'last_frame_unix', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""

TARGET_FIELD_PREFIX = "target:"
# A watcher notices a detach or a draining replica within this; it is also the idle XREAD rate per watcher.
WATCH_BLOCK_MS = 1000
# Bounds every other command; above WATCH_BLOCK_MS so that a blocking XREAD is never cut short.
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 0.5

Box = tuple[float, float, float, float]


def _bytes(reply: object) -> bytes:
    """One value of a reply, which is bytes because the directory's client does not decode responses."""
    if not isinstance(reply, bytes):
        raise TypeError(f"expected bytes from Redis, got {type(reply).__name__}: use decode_responses=False")
    return reply


def _text(reply: object) -> str:
    """One value of a reply, decoded (keys, ids and JSON are UTF-8)."""
    return _bytes(reply).decode()


def _text_hash(reply: dict[bytes | str, bytes | str]) -> dict[str, str]:
    """A hash reply, its fields and values decoded."""
    return {_text(name): _text(value) for name, value in reply.items()}


def camera_key(owner: str, camera_id: str) -> str:
    """The key the camera `camera_id` of `owner` (an owner id) is stored under, in Redis and in the workers'
    leases, logs and metric labels."""
    return f"{owner}/{camera_id}"


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
    """A camera as registered: its key (`camera_key`), its URL, its owner and its targets by id."""

    key: str
    url: str
    owner: str
    targets: dict[str, TargetSpec]

    @property
    def camera_id(self) -> str:
        """The id its owner gave it (owner ids and camera ids have no '/')."""
        return self.key.rpartition("/")[2]


@dataclass(frozen=True)
class CameraStatus:
    """What the worker holding a camera last reported; `last_frame_unix` is wall-clock seconds."""

    state: str
    worker_id: str
    reconnects: int
    last_frame_unix: float | None


class AttachRefused(Exception):
    """An attach the directory refuses; `reason` is one of the constants below."""

    ANOTHER_URL = -2
    TOO_MANY_CAMERAS = -3
    TOO_MANY_TARGETS = -4
    TOO_MANY_OWNER_CAMERAS = -5

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
        self._scope = client.register_script(_SCOPE)
        self._publish = client.register_script(_PUBLISH)
        self._set_session = client.register_script(_SET_SESSION)
        self._report_status = client.register_script(_REPORT_STATUS)

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

    def _key(self, kind: str, camera: str = "") -> str:
        return f"{self._prefix}{kind}:{camera}" if camera else f"{self._prefix}{kind}"

    def _camera_keys(self, camera: str) -> list[str]:
        """The Redis keys of the camera stored under `camera`: hash, sessions, boxes, status, results."""
        kinds = ("camera", "camera-sessions", "camera-boxes", "camera-status", "camera-results")
        return [self._key(kind, camera) for kind in kinds]

    async def attach(self, owner: str, camera_id: str, url: str, spec_without_id: TargetSpec) -> str:
        """Register the target (and the owner's camera `camera_id` on its first target); return the new
        target id."""
        target_id = uuid.uuid4().hex[:16]
        spec = spec_without_id.model_copy(update={"target_id": target_id})
        key = camera_key(owner, camera_id)
        outcome = await self._attach(
            [self._key("camera", key), self._key("cameras"), self._key("owner-cameras", owner)],
            [
                owner,
                url,
                TARGET_FIELD_PREFIX + target_id,
                spec.model_dump_json(),
                self.settings.max_cameras,
                self.settings.max_targets_per_camera,
                key,
                self.settings.max_cameras_per_owner,
                camera_id,
            ],
        )
        if outcome != 1:
            raise AttachRefused(int(outcome))
        return target_id

    async def detach(self, owner: str, camera_id: str, target_id: str) -> dict[str, str] | None:
        """Remove a target of the owner's camera `camera_id` (`target_id` '': the camera); return the
        sessions to stop, None when absent."""
        key = camera_key(owner, camera_id)
        sessions = await self.sessions(key)
        keys = [
            self._key("camera", key),
            self._key("cameras"),
            self._key("camera-sessions", key),
            self._key("camera-status", key),
            self._key("camera-boxes", key),
            self._key("camera-results", key),
            self._key("owner-cameras", owner),
        ]
        field = TARGET_FIELD_PREFIX + target_id
        if await self._detach(keys, [target_id, key, field, camera_id]) != 1:
            return None
        if target_id:
            return {target_id: sessions[target_id]} if target_id in sessions else {}
        return sessions

    async def camera_keys(self) -> list[str]:
        """The keys of every camera of the deployment."""
        return sorted(_text(member) for member in await self._redis.smembers(self._key("cameras")))

    async def camera_ids_of(self, owner: str) -> list[str]:
        """The ids of the owner's cameras."""
        members = await self._redis.smembers(self._key("owner-cameras", owner))
        return sorted(_text(member) for member in members)

    async def scope_unscoped(self, keys: list[str]) -> list[str]:
        """`keys` after moving every camera among them that an older release registered under its bare
        camera id to its scoped key, with its sessions, boxes, status and results. One that cannot be moved
        (a key of its scoped name exists: its owner attached the same id through a new release meanwhile)
        keeps its bare key and goes on being read, but the camera API no longer reaches it: an operator
        deletes its keys by hand."""
        scoped = []
        for key in keys:
            stored_owner = None if "/" in key else await self._redis.hget(self._key("camera", key), "owner")
            if stored_owner is None:
                scoped.append(key)
                continue
            owner = _text(stored_owner)
            new_key = camera_key(owner, key)
            moved = await self._scope(
                [
                    *self._camera_keys(key),
                    *self._camera_keys(new_key),
                    self._key("cameras"),
                    self._key("owner-cameras", owner),
                ],
                [owner, key, new_key, key],
            )
            scoped.append(new_key if moved == 1 else key)
        return sorted(scoped)

    async def camera(self, key: str) -> CameraSpec | None:
        fields = _text_hash(await self._redis.hgetall(self._key("camera", key)))
        if "owner" not in fields:
            return None
        targets = {
            name.removeprefix(TARGET_FIELD_PREFIX): TargetSpec.model_validate_json(value)
            for name, value in fields.items()
            if name.startswith(TARGET_FIELD_PREFIX)
        }
        return CameraSpec(key, fields["url"], fields["owner"], targets)

    async def sessions(self, key: str) -> dict[str, str]:
        stored = await self._redis.hgetall(self._key("camera-sessions", key))
        return _text_hash(stored)

    async def set_session(self, key: str, target_id: str, session_id: str) -> None:
        """Record the target's session; nothing once the target is detached."""
        await self._set_session(
            [self._key("camera", key), self._key("camera-sessions", key)],
            [TARGET_FIELD_PREFIX + target_id, target_id, session_id],
        )

    async def report_status(self, key: str, status: CameraStatus) -> None:
        """Record the camera's status, expiring three leases later; nothing once the camera is detached."""
        last_frame = "" if status.last_frame_unix is None else repr(status.last_frame_unix)
        await self._report_status(
            [self._key("camera", key), self._key("camera-status", key)],
            [status.state, status.worker_id, status.reconnects, last_frame, 3 * self.settings.lease_ttl_ms],
        )

    async def status(self, key: str) -> CameraStatus | None:
        fields = _text_hash(await self._redis.hgetall(self._key("camera-status", key)))
        if not fields:
            return None
        last = fields.get("last_frame_unix", "")
        return CameraStatus(
            state=fields.get("state", ""),
            worker_id=fields.get("worker", ""),
            reconnects=int(fields.get("reconnects", "0")),
            last_frame_unix=float(last) if last else None,
        )

    async def publish(self, key: str, target_id: str, payload: bytes, box: Box) -> None:
        """Append one serialized result to the camera's stream (trimmed to about `results_maxlen`) and
        record its `box` (xywh, image pixels) as the target's last one, in one round trip; nothing once the
        target is detached."""
        await self._publish(
            [self._key("camera", key), self._key("camera-results", key), self._key("camera-boxes", key)],
            [
                TARGET_FIELD_PREFIX + target_id,
                target_id,
                payload,
                json.dumps(list(box)),
                self.settings.results_maxlen,
            ],
        )

    async def last_box(self, key: str, target_id: str) -> Box | None:
        """The target's last published box (xywh, image pixels), by whichever worker; None before any."""
        stored = await self._redis.hget(self._key("camera-boxes", key), target_id)
        if stored is None:
            return None
        x, y, w, h = json.loads(stored)
        return float(x), float(y), float(w), float(h)

    async def watch(
        self, key: str, target_id: str, stop: asyncio.Event, block_ms: int = WATCH_BLOCK_MS
    ) -> AsyncIterator[bytes]:
        """The target's serialized results from now on; ends once the target is detached or `stop` is set.

        Each XREAD blocks at most `block_ms`; between reads the target's presence and `stop` are checked,
        so a detach or a stop ends the stream within about `block_ms`, with no command cut off midway.
        """
        stream = self._key("camera-results", key)
        camera = self._key("camera", key)
        field = TARGET_FIELD_PREFIX + target_id
        # The stream's last id, taken once, then the ids read: "$" on every XREAD would lose the entries
        # added between two reads.
        newest = await self._redis.xrevrange(stream, count=1)
        last_id = _bytes(newest[0][0]) if newest else b"0-0"
        while not stop.is_set() and await self._redis.hexists(camera, field):
            answer = await self._redis.xread({stream: last_id}, count=100, block=block_ms)
            # RESP2, this client's protocol: [[stream, [(entry id, {field: value}), ...]], ...].
            if not isinstance(answer, list):
                raise TypeError(f"expected a RESP2 XREAD reply, got {type(answer).__name__}")
            for _, entries in answer:
                for entry_id, fields in entries:
                    last_id = _bytes(entry_id)
                    if fields.get(b"target") == target_id.encode():
                        yield _bytes(fields[b"result"])
