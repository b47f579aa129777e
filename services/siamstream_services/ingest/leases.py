"""Leases on cameras in Redis, so that exactly one worker reads a camera and a dead worker's cameras move.

A lease is a key holding the worker's id with a TTL: claimed with SET NX PX, renewed by a script that
extends it only while it still holds our id (compare-and-extend), released by a script that deletes it
only then. A worker that stops renewing loses its cameras when the TTL runs out.
"""

from __future__ import annotations

from redis.asyncio import Redis

# KEYS: lease. ARGV: worker id, TTL ms. 1 extended, 0 held by another worker or expired.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: worker id. 1 released, 0 not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class CameraLeases:
    """One worker's leases; `client` must decode responses to str."""

    def __init__(self, client: Redis, worker_id: str, ttl_ms: int, key_prefix: str) -> None:
        self.worker_id = worker_id
        self.ttl_ms = ttl_ms
        self._redis = client
        self._prefix = key_prefix
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def key(self, camera_id: str) -> str:
        return f"{self._prefix}camera-lease:{camera_id}"

    async def claim(self, camera_id: str) -> bool:
        """Take the camera if no worker holds it."""
        return bool(await self._redis.set(self.key(camera_id), self.worker_id, nx=True, px=self.ttl_ms))

    async def renew(self, camera_id: str) -> bool:
        """Extend our lease by the TTL; False when it expired or another worker holds it."""
        return await self._renew([self.key(camera_id)], [self.worker_id, self.ttl_ms]) == 1

    async def release(self, camera_id: str) -> bool:
        """Give the camera up now (graceful stop), if we still hold it."""
        return await self._release([self.key(camera_id)], [self.worker_id]) == 1

    async def holder(self, camera_id: str) -> str | None:
        """Id of the worker holding the camera, or None."""
        holder = await self._redis.get(self.key(camera_id))
        return holder.decode() if isinstance(holder, bytes) else holder
