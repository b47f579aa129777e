"""How a `SessionRecord` is laid out in one Redis hash (field name -> bytes)."""

from __future__ import annotations

from siamstream_services.store.record import IMMUTABLE_FIELDS, SessionRecord

# Hash field of each record attribute; the embedding bytes live in the same hash as the state, so one
# write stores both and one read returns a consistent pair.
_FIELD_NAMES = {
    "session_id": "session_id",
    "owner": "owner",
    "tracker": "tracker",
    "package_id": "package_id",
    "options_json": "options",
    "state_json": "state",
    "embedding": "embedding",
    "embedding_dtype": "embedding_dtype",
    "embedding_shape": "embedding_shape",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "last_client_frame": "last_client_frame",
    "version": "version",
}
VERSION_FIELD = _FIELD_NAMES["version"]
OWNER_FIELD = _FIELD_NAMES["owner"]


def _encode_value(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if value is None:
        return b""
    if isinstance(value, tuple):
        return ",".join(str(side) for side in value).encode()
    # repr() of a float reads back to the same float; str() of an int or str is exact.
    return (repr(value) if isinstance(value, float) else str(value)).encode()


def encode_fields(record: SessionRecord, *, mutable_only: bool) -> list[bytes]:
    """Flat `[field, value, ...]` of the record without its version (the store's scripts set it)."""
    flat: list[bytes] = []
    for attribute, field in _FIELD_NAMES.items():
        if attribute == "version" or (mutable_only and attribute in IMMUTABLE_FIELDS):
            continue
        flat += [field.encode(), _encode_value(getattr(record, attribute))]
    return flat


def decode_record(fields: dict[bytes, bytes]) -> SessionRecord:
    """The record stored in a hash read with HGETALL; raises KeyError/ValueError on a malformed hash."""
    raw = {attribute: fields[field.encode()] for attribute, field in _FIELD_NAMES.items()}
    shape = raw["embedding_shape"].decode()
    last_frame = raw["last_client_frame"].decode()
    return SessionRecord(
        session_id=raw["session_id"].decode(),
        owner=raw["owner"].decode(),
        tracker=raw["tracker"].decode(),
        package_id=raw["package_id"].decode(),
        options_json=raw["options_json"].decode(),
        state_json=raw["state_json"].decode(),
        embedding=raw["embedding"],
        embedding_dtype=raw["embedding_dtype"].decode(),
        embedding_shape=tuple(int(side) for side in shape.split(",")) if shape else (),
        created_at=float(raw["created_at"]),
        updated_at=float(raw["updated_at"]),
        last_client_frame=int(last_frame) if last_frame else None,
        version=int(raw["version"]),
    )
