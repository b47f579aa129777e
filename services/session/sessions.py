"""Session lifecycle: start, push a frame, stop, get, list, with the state in an injected store.

Every frame is read-modify-write of one record: load it, check the caller owns it and that the frame
advances it, run the shared tracking step (`siamstream.tracking.step`) with the injected inference
backend, and write it back with `compare_and_set` on the version that was loaded. Within one replica a
per-session lock serialises pushes (no wasted work); across replicas a lost race reloads the record and
checks the frame order again, so two writers never silently overwrite each other.

With the template update on (the `template_update` option, or a package whose config enables it), a
frame that scores at least the gate also runs the package's update stage on that frame's search
features (`siamstream.tracking.template_update`, as `OfflineTracker` does); the new embedding is written
with the new state in the same compare-and-set, so a lost race discards both together.

A frame's client number, when given, must exceed the session's last one; a duplicate or older frame is
FAILED_PRECONDITION ("stale frame N, session is at M") and changes nothing, which makes retrying a push
whose answer was lost safe. FAILED_PRECONDITION rather than ABORTED because retrying the same frame can
never succeed; ABORTED is kept for writers that kept losing the race, where a retry can.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np

from siamstream.config import TrackerConfig
from siamstream.tracking.state import TrackResult, TrackStatus
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.tracking.template_update import plan_template_update
from siamstream_services.inference.backend import (
    BackendUnavailable,
    InferenceBackend,
    InferenceError,
    UnknownTracker,
)
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.errors import InvalidPageToken, StoreUnavailable
from siamstream_services.store.protocol import SessionStore
from siamstream_services.store.record import MAX_PAGE_SIZE, SessionRecord

from .errors import Aborted, FailedPrecondition, InvalidArgument, NotFound, ServiceError, Unavailable
from .frames import FrameImage, FrameLimits, decode_frame
from .locks import KeyedLocks
from .metrics import ServiceMetrics
from .options import TrackOptions, apply_options, effective_options
from .state import FrameOutcome, SessionState, SessionView
from .timings import StageTimings

T = TypeVar("T")

log = logging.getLogger(__name__)

# A lost race means another replica wrote the session meanwhile; a handful of rounds absorbs any real
# contention (one client pushing through two replicas) while bounding the work of one call.
MAX_WRITE_ATTEMPTS = 5
# A store answers in well under a millisecond when healthy; a second means it is not.
STORE_TIMEOUT_S = 2.0
# Covers a batch wait plus a model run under load; beyond that the frame is late for a live stream anyway.
INFERENCE_TIMEOUT_S = 5.0
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class ServedTracker:
    """A tracker this replica serves: its package's config, and the package's identity.

    `package_id` is stored with each session: a session's template embedding only makes sense to the
    search stage of the package that produced it. `template_update`: the package has the template update
    stage (`update.pt`, and search features from its search stage).
    """

    config: TrackerConfig
    package_id: str
    template_update: bool = False


@dataclass(frozen=True)
class FrameInput:
    """One frame as received: its image and the client's optional frame number."""

    image: FrameImage
    client_frame_number: int | None = None


class SessionManager:
    """Tracking sessions of many clients, over an injected store and inference backend.

    `owner` arguments are the caller's owner id (see `auth.ApiKeys.owner_of`); a session of another owner is
    reported exactly like a missing one. `clock` gives the Unix time stamped on records.
    """

    def __init__(
        self,
        store: SessionStore,
        backend: InferenceBackend,
        trackers: Mapping[str, ServedTracker],
        settings: ServiceSettings,
        *,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._backend = backend
        self._trackers = dict(trackers)
        self._limits = FrameLimits(max_bytes=settings.max_frame_bytes, max_pixels=settings.max_frame_pixels)
        self._idle_ttl_s = float(settings.session_idle_ttl_s)
        self._metrics = metrics
        self._clock = clock
        self._locks = KeyedLocks()
        self._recent: dict[str, float] = {}
        self._session_config = functools.lru_cache(maxsize=256)(self._build_config)
        if metrics is not None:
            metrics.active_sessions.set_function(self.active_session_count)

    @property
    def tracker_names(self) -> list[str]:
        return sorted(self._trackers)

    async def start(
        self,
        owner: str,
        tracker: str,
        frame: FrameInput,
        box_xywh: tuple[float, float, float, float],
        options: TrackOptions,
    ) -> FrameOutcome:
        """Start a session on `frame` with the target at `box_xywh` (image pixels, top-left, w, h)."""
        try:
            return await self._start(owner, tracker, frame, box_xywh, options)
        except ServiceError as error:
            self._count_error(tracker if tracker in self._trackers else "", error)
            raise

    async def push(self, owner: str, session_id: str, frame: FrameInput) -> FrameOutcome:
        """Track the session's target into `frame`."""
        async with self._locks.hold(session_id):
            tracker = ""
            try:
                timings = StageTimings()
                with timings.stage("decode"):
                    image = await asyncio.to_thread(decode_frame, frame.image, self._limits)
                for _ in range(MAX_WRITE_ATTEMPTS):
                    with timings.stage("store"):
                        record = await self._load(owner, session_id)
                    tracker = record.tracker
                    outcome = await self._track(record, image, frame.client_frame_number, timings)
                    if outcome is not None:
                        self._observe(record.tracker, session_id, outcome.timings)
                        return outcome
                raise Aborted(f"session {session_id} kept changing under concurrent writers; retry the frame")
            except ServiceError as error:
                self._count_error(tracker, error)
                raise

    async def stop(self, owner: str, session_id: str) -> SessionView:
        """Delete the session and return it as it was."""
        record = await self._load(owner, session_id)
        if not await self._store_call(self._store.delete(session_id)):
            raise NotFound(f"session {session_id} not found")
        self._recent.pop(session_id, None)
        return self._view(record)

    async def get(self, owner: str, session_id: str) -> SessionView:
        return self._view(await self._load(owner, session_id))

    async def list(self, owner: str, page_size: int, page_token: str) -> tuple[list[SessionView], str]:
        """One page of the owner's sessions; `page_size` 0 means 50, larger than 100 means 100."""
        if page_size < 0:
            raise InvalidArgument(f"page_size must not be negative, got {page_size}")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        try:
            page = await self._store_call(self._store.list(owner, size, page_token))
        except InvalidPageToken:
            raise InvalidArgument(f"invalid page_token {page_token!r}") from None
        return [self._view(record) for record in page.records], page.next_page_token

    def active_session_count(self) -> int:
        """Sessions this replica started or served within the idle TTL."""
        horizon = time.monotonic() - self._idle_ttl_s
        for session_id in [s for s, seen in self._recent.items() if seen < horizon]:
            del self._recent[session_id]
        return len(self._recent)

    async def _start(
        self,
        owner: str,
        tracker: str,
        frame: FrameInput,
        box_xywh: tuple[float, float, float, float],
        options: TrackOptions,
    ) -> FrameOutcome:
        served = self._trackers.get(tracker)
        if served is None:
            raise InvalidArgument(
                f"unknown tracker {tracker!r}; this service runs: {', '.join(self.tracker_names)}"
            )
        config = apply_options(served.config, options)
        if config.template_update.enabled and not served.template_update:
            raise InvalidArgument(
                f"option template_update: the {tracker} package was exported without the template update "
                "stage (update.pt); export it with template_update enabled to use the option"
            )
        timings = StageTimings()
        with timings.stage("decode"):
            image = await asyncio.to_thread(decode_frame, frame.image, self._limits)
        with timings.stage("crop"):
            try:
                tracker_state, template_request = init_track(config, image, box_xywh)
            except ValueError as error:
                raise InvalidArgument(f"invalid start: {error}") from None
        with timings.stage("inference"):
            embedding = await self._infer(
                tracker, self._backend.template(tracker, template_request.crop, template_request.box_prior)
            )
        result = TrackResult(
            frame_index=0, bbox=tuple(map(float, box_xywh)), score=1.0, status=TrackStatus.TRACKING
        )
        state = SessionState(
            tracker_state=tracker_state,
            last_result=result,
            last_result_client_frame=frame.client_frame_number,
        )
        now = self._clock()
        embedding = np.ascontiguousarray(embedding)
        record = SessionRecord(
            session_id=uuid.uuid4().hex,
            owner=owner,
            tracker=tracker,
            package_id=served.package_id,
            options_json=options.model_dump_json(exclude_none=True),
            state_json=state.model_dump_json(),
            embedding=embedding.tobytes(),
            embedding_dtype=str(embedding.dtype),
            embedding_shape=tuple(embedding.shape),
            created_at=now,
            updated_at=now,
            last_client_frame=frame.client_frame_number,
        )
        with timings.stage("store"):
            await self._store_call(self._store.create(record))
        outcome = FrameOutcome(record.session_id, result, frame.client_frame_number, timings.finish())
        self.active_session_count()  # prunes the sessions gone idle, bounding the table by the TTL
        self._observe(tracker, record.session_id, outcome.timings)
        return outcome

    async def _track(
        self, record: SessionRecord, image: np.ndarray, number: int | None, timings: StageTimings
    ) -> FrameOutcome | None:
        """One read-modify-write round on a loaded record; None when another writer won the race."""
        if number is not None and record.last_client_frame is not None and number <= record.last_client_frame:
            raise FailedPrecondition(f"stale frame {number}, session is at {record.last_client_frame}")
        served = self._trackers.get(record.tracker)
        if served is None or served.package_id != record.package_id:
            raise FailedPrecondition(
                f"session {record.session_id} runs {record.tracker} package {record.package_id}, which this "
                "service no longer serves; start a new track"
            )
        config = self._session_config(record.tracker, record.options_json)
        state = SessionState.model_validate_json(record.state_json)
        tracker_state = state.tracker_state
        if image.shape[:2] != (tracker_state.image_height, tracker_state.image_width):
            raise InvalidArgument(
                f"frame is {image.shape[1]}x{image.shape[0]} but the session started on a "
                f"{tracker_state.image_width}x{tracker_state.image_height} frame"
            )
        with timings.stage("crop"):
            request = prepare_search(config, tracker_state, image)
        template_embedding = np.frombuffer(record.embedding, dtype=record.embedding_dtype).reshape(
            record.embedding_shape
        )
        embedding = template_embedding
        crops = request.crops.shape[0]
        if crops != embedding.shape[0]:  # SiamFC searches several scales against the one template
            embedding = np.repeat(embedding, crops, axis=0)
        with timings.stage("inference"):
            if config.template_update.enabled:  # only these sessions pay for the search features
                search = self._backend.search(record.tracker, embedding, request.crops, search_features=True)
            else:
                search = self._backend.search(record.tracker, embedding, request.crops)
            outputs = await self._infer(record.tracker, search)
        with timings.stage("postprocess"):
            previous = tracker_state
            tracker_state, result = finish_search(config, previous, request, outputs)
            tracker_state, template_update = plan_template_update(
                config, previous, request, tracker_state, outputs
            )
        last_client_frame = number if number is not None else record.last_client_frame
        updated = replace(
            record,
            state_json=SessionState(
                tracker_state=tracker_state, last_result=result, last_result_client_frame=number
            ).model_dump_json(),
            updated_at=self._clock(),
            last_client_frame=last_client_frame,
        )
        if template_update is not None:
            with timings.stage("inference"):
                update = self._backend.update(
                    record.tracker,
                    template_embedding,
                    template_update.search_features,
                    template_update.roi,
                    template_update.rate,
                )
                new_embedding = np.ascontiguousarray(await self._infer(record.tracker, update))
            updated = replace(
                updated,
                embedding=new_embedding.tobytes(),
                embedding_dtype=str(new_embedding.dtype),
                embedding_shape=tuple(new_embedding.shape),
            )
        with timings.stage("store"):
            written = await self._store_call(
                self._store.compare_and_set(updated, expected_version=record.version)
            )
        if not written:
            return None
        return FrameOutcome(record.session_id, result, number, timings.finish())

    async def _load(self, owner: str, session_id: str) -> SessionRecord:
        record = await self._store_call(self._store.get(session_id)) if session_id else None
        if record is None or record.owner != owner:
            raise NotFound(f"session {session_id!r} not found")
        return record

    def _build_config(self, tracker: str, options_json: str) -> TrackerConfig:
        return apply_options(self._trackers[tracker].config, TrackOptions.model_validate_json(options_json))

    def _view(self, record: SessionRecord) -> SessionView:
        state = SessionState.model_validate_json(record.state_json)
        if record.tracker in self._trackers:
            options = effective_options(self._session_config(record.tracker, record.options_json))
        else:  # a tracker this replica does not serve: report the overrides alone
            options = TrackOptions.model_validate_json(record.options_json)
        return SessionView(
            session_id=record.session_id,
            tracker=record.tracker,
            options=options,
            created_at=record.created_at,
            updated_at=record.updated_at,
            frame_count=state.tracker_state.frame_index + 1,
            last_result=state.last_result,
            last_result_client_frame=state.last_result_client_frame,
        )

    async def _store_call(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(STORE_TIMEOUT_S):
                return await call
        except (StoreUnavailable, TimeoutError) as error:
            raise Unavailable(f"session store unavailable: {error or 'timed out'}") from None

    async def _infer(self, tracker: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(INFERENCE_TIMEOUT_S):
                return await call
        except (BackendUnavailable, TimeoutError) as error:
            raise Unavailable(f"inference backend unavailable: {error or 'timed out'}") from None
        except UnknownTracker:
            raise Unavailable(f"tracker {tracker} is not loaded by the inference backend") from None
        except InferenceError:
            # A model error or malformed tensors: a fault of this deployment, not of the request.
            log.exception("inference failed for tracker %s", tracker)
            raise ServiceError(f"inference failed for tracker {tracker}") from None

    def _observe(self, tracker: str, session_id: str, timings: StageTimings) -> None:
        if self._metrics is not None:
            self._recent[session_id] = time.monotonic()
            self._metrics.observe_frame(tracker, timings)

    def _count_error(self, tracker: str, error: ServiceError) -> None:
        if self._metrics is not None:
            self._metrics.observe_frame_error(tracker, error.code)
