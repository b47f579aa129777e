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

A frame's client number, when given, must exceed the session's last one, with one exception: a frame
carrying the number of the last pushed frame is a retry of it, and gets that frame's stored result
without being tracked again. A push whose answer was lost, or that was answered UNAVAILABLE although its
write reached the store, is therefore applied exactly once however often it is retried. Any other
duplicate or older frame is FAILED_PRECONDITION ("stale frame N, session is at M") and changes nothing;
FAILED_PRECONDITION rather than ABORTED because retrying it can never succeed; ABORTED is kept for
writers that kept losing the race, where a retry can. A frame without a number cannot be recognised as a
retry: it is tracked as a new frame.

Decoding, cropping and post-processing run in worker threads, so that one client's large frame never
holds up the event loop that answers every other client.
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

from siamstream.config import Precision, TrackerConfig
from siamstream.tracking.search_options import SearchPass, better_search, second_search_origin
from siamstream.tracking.state import TrackerState, TrackResult, TrackStatus
from siamstream.tracking.step import SearchRequest, finish_search, init_track, prepare_search
from siamstream.tracking.template_update import plan_template_update
from siamstream_services.inference.backend import (
    BackendUnavailable,
    InferenceBackend,
    InferenceError,
    SearchOutputs,
    UnknownTracker,
)
from siamstream_services.logs import bind_session_id
from siamstream_services.settings import ServiceSettings
from siamstream_services.store.errors import InvalidPageToken, OwnerLimitReached, StoreUnavailable
from siamstream_services.store.protocol import SessionStore
from siamstream_services.store.record import MAX_PAGE_SIZE, SessionRecord

from .errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from .frames import FrameImage, FrameLimits, decode_frame
from .locks import KeyedLocks
from .metrics import ServiceMetrics
from .options import TrackOptions, apply_options, effective_options, stored_options
from .state import FrameOutcome, SessionState, SessionView, TrackedFrame
from .timings import StageTimings

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class ServedTracker:
    """A tracker this replica serves: its package's config, and the package's identity.

    `package_id` is stored with each session: a session's template embedding only makes sense to the
    search stage of the package that produced it. `precision` and `weights_sha256` (empty for random
    weights) say what the package holds, for ListTrackers. `template_update`: the package has the template
    update stage (`update.pt`, and search features from its search stage).
    """

    config: TrackerConfig
    package_id: str
    precision: Precision
    weights_sha256: str
    template_update: bool = False


@dataclass(frozen=True)
class FrameInput:
    """One frame as received: its image and the client's optional frame number."""

    image: FrameImage
    client_frame_number: int | None = None


def _postprocess(
    config: TrackerConfig, origin: TrackerState, request: SearchRequest, outputs: SearchOutputs
) -> SearchPass:
    """The search of `request` from `origin` with its outputs, post-processed."""
    state, result = finish_search(config, origin, request, outputs)
    return SearchPass(origin, request, outputs, state, result)


class SessionManager:
    """Tracking sessions of many clients, over an injected store and inference backend.

    `owner` arguments are the caller's owner id (the gRPC API's `auth.ApiKeys.owner_of`, a camera's owner for
    the ingest worker); a session of another owner is reported exactly like a missing one. `settings` gives
    the frame limits, the owner limit, the idle TTL, the store and inference timeouts and the write
    attempts. `clock` gives the Unix time stamped on records.
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
        self._max_sessions_per_owner = settings.max_sessions_per_owner
        self._idle_ttl_s = float(settings.session_idle_ttl_s)
        self._store_timeout_s = settings.store_timeout_s
        self._inference_timeout_s = settings.inference_timeout_s
        self._max_write_attempts = settings.max_write_attempts
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
                for _ in range(self._max_write_attempts):
                    with timings.stage("store"):
                        record = await self._load(owner, session_id)
                    tracker = record.tracker
                    outcome = await self._track(record, image, frame.client_frame_number, timings)
                    if outcome is not None:
                        self._observe(record.tracker, session_id, outcome)
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
            raise InvalidArgument(
                "invalid page_token: pass the next_page_token of the previous page, or none for the first"
            ) from None
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
            raise NotFound(f"unknown tracker {tracker!r}; this service runs: {', '.join(self.tracker_names)}")
        config = apply_options(served.config, options)
        if config.template_update.enabled and not served.template_update:
            raise InvalidArgument(
                f"option template_update: the {tracker} package was exported without the template update "
                "stage (update.pt); export it with template_update enabled to use the option"
            )
        if config.search.adaptive_region and not served.config.search.adaptive_region:
            # The backends serve the grown crop sides a package's own config declares (`search_sides`).
            raise InvalidArgument(
                f"option adaptive_region: the {tracker} package was exported without the adaptive search "
                "region, so its grown search crops are not served; export it with search.adaptive_region "
                "enabled to use the option"
            )
        if config.long_term.enabled and not served.config.long_term.enabled:
            # Likewise the lost search's crop side (`search_sides`).
            raise InvalidArgument(
                f"option long_term: the {tracker} package was exported without long-term mode, so its lost "
                "search crops are not served; export it with --long-term to use the option"
            )
        timings = StageTimings()
        with timings.stage("store"):
            # Advisory, so that an owner at its limit costs no decode, crop or template run; `create`
            # below checks again atomically.
            if not await self._store_call(
                self._store.has_room(owner, owner_limit=self._max_sessions_per_owner)
            ):
                raise self._owner_limit_reached()
        with timings.stage("decode"):
            image = await asyncio.to_thread(decode_frame, frame.image, self._limits)
        with timings.stage("crop"):
            try:
                tracker_state, template_request = await asyncio.to_thread(init_track, config, image, box_xywh)
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
        session_id = uuid.uuid4().hex
        bind_session_id(session_id)
        record = SessionRecord(
            session_id=session_id,
            owner=owner,
            tracker=tracker,
            package_id=served.package_id,
            options_json=stored_options(served.config, options).model_dump_json(exclude_none=True),
            state_json=state.model_dump_json(),
            embedding=embedding.tobytes(),
            embedding_dtype=str(embedding.dtype),
            embedding_shape=tuple(embedding.shape),
            created_at=now,
            updated_at=now,
            last_client_frame=frame.client_frame_number,
        )
        with timings.stage("store"):
            try:
                await self._store_call(self._store.create(record, owner_limit=self._max_sessions_per_owner))
            except OwnerLimitReached:
                raise self._owner_limit_reached() from None
        outcome = FrameOutcome(record.session_id, result, frame.client_frame_number, timings.finish())
        self.active_session_count()  # prunes the sessions gone idle, bounding the table by the TTL
        self._observe(tracker, record.session_id, outcome)
        return outcome

    def _owner_limit_reached(self) -> ResourceExhausted:
        return ResourceExhausted(
            f"this API key has {self._max_sessions_per_owner} live sessions, the most allowed: "
            "stop one (or let one expire) first"
        )

    async def _track(
        self, record: SessionRecord, image: np.ndarray, number: int | None, timings: StageTimings
    ) -> FrameOutcome | None:
        """One read-modify-write round on a loaded record; None when another writer won the race."""
        state = SessionState.model_validate_json(record.state_json)
        if number is not None and record.last_client_frame is not None and number <= record.last_client_frame:
            if number == state.last_result_client_frame and state.tracker_state.frame_index > 0:
                # A retry of the last pushed frame: its stored answer, the session left as it is.
                return FrameOutcome(
                    record.session_id, state.last_result, number, timings.finish(), replayed=True
                )
            raise FailedPrecondition(f"stale frame {number}, session is at {record.last_client_frame}")
        served = self._trackers.get(record.tracker)
        if served is None or served.package_id != record.package_id:
            raise FailedPrecondition(
                f"session {record.session_id} runs {record.tracker} package {record.package_id}, which this "
                "service no longer serves; start a new track"
            )
        config = self._session_config(record.tracker, record.options_json)
        tracker_state = state.tracker_state
        if image.shape[:2] != (tracker_state.image_height, tracker_state.image_width):
            raise InvalidArgument(
                f"frame is {image.shape[1]}x{image.shape[0]} but the session started on a "
                f"{tracker_state.image_width}x{tracker_state.image_height} frame"
            )
        template_embedding = np.frombuffer(record.embedding, dtype=record.embedding_dtype).reshape(
            record.embedding_shape
        )
        searched = await self._search(
            record.tracker, config, template_embedding, tracker_state, image, timings
        )
        origin = second_search_origin(config, tracker_state, searched.state)
        if origin is not None:  # one more search: the same backend path, from the re-centred state
            second = await self._search(record.tracker, config, template_embedding, origin, image, timings)
            searched = better_search(searched, second)
        with timings.stage("postprocess"):
            # A few float operations and a row view of the features: not worth a thread hop.
            tracker_state, template_update = plan_template_update(
                config, searched.origin, searched.request, searched.state, searched.outputs
            )
        result = searched.result
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
        tracked = TrackedFrame(state.tracker_state.status, template_update is not None)
        return FrameOutcome(record.session_id, result, number, timings.finish(), tracked=tracked)

    async def _search(
        self,
        tracker: str,
        config: TrackerConfig,
        template_embedding: np.ndarray,
        origin: TrackerState,
        image: np.ndarray,
        timings: StageTimings,
    ) -> SearchPass:
        """One search of `image` around `origin`'s target: crop, the backend's search, post-processing."""
        with timings.stage("crop"):
            request = await asyncio.to_thread(prepare_search, config, origin, image)
        embedding = template_embedding
        crops = request.crops.shape[0]
        if crops != embedding.shape[0]:  # SiamFC searches several scales against the one template
            embedding = np.repeat(embedding, crops, axis=0)
        with timings.stage("inference"):
            if config.template_update.enabled:  # only these sessions pay for the search features
                search = self._backend.search(tracker, embedding, request.crops, search_features=True)
            else:
                search = self._backend.search(tracker, embedding, request.crops)
            outputs = await self._infer(tracker, search)
        with timings.stage("postprocess"):
            return await asyncio.to_thread(_postprocess, config, origin, request, outputs)

    async def _load(self, owner: str, session_id: str) -> SessionRecord:
        """The owner's session `session_id`, from now on named on the call's log lines; NotFound when the
        owner has none of that id. An id a client sent is bound only here, once it named a real session."""
        record = await self._store_call(self._store.get(session_id)) if session_id else None
        if record is None or record.owner != owner:
            raise NotFound(f"session {session_id!r} not found")
        bind_session_id(record.session_id)
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
        timeout_s = self._store_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                return await call
        except TimeoutError:
            log.warning("session store: no answer within %.1f s", timeout_s)
            raise Unavailable(f"session store unavailable: no answer within {timeout_s:g} s") from None
        except StoreUnavailable as error:
            # The detail names the store's host and port: for the operator's log, not for clients.
            log.warning("session store unavailable: %s", error)
            raise Unavailable("session store unavailable") from None

    async def _infer(self, tracker: str, call: Awaitable[T]) -> T:
        timeout_s = self._inference_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                return await call
        except TimeoutError:
            log.warning("inference backend: no answer for tracker %s within %.1f s", tracker, timeout_s)
            raise Unavailable(f"inference backend unavailable: no answer within {timeout_s:g} s") from None
        except BackendUnavailable as error:
            # The detail names the model server's host and port: for the operator's log, not for clients.
            log.warning("inference backend unavailable for tracker %s: %s", tracker, error)
            raise Unavailable("inference backend unavailable") from None
        except UnknownTracker:
            raise Unavailable(f"tracker {tracker} is not loaded by the inference backend") from None
        except InferenceError:
            # A model error or malformed tensors: a fault of this deployment, not of the request.
            log.exception("inference failed for tracker %s", tracker)
            raise ServiceError(f"inference failed for tracker {tracker}") from None

    def _observe(self, tracker: str, session_id: str, outcome: FrameOutcome) -> None:
        result = outcome.result
        log.debug(
            "%s frame %d: %s, score %.3f, %.1f ms",
            "replayed" if outcome.replayed else "tracked",
            result.frame_index,
            result.status.value,
            result.score if result.score is not None else 0.0,
            outcome.timings.total,
            extra={
                "tracker": tracker,
                "frame_index": result.frame_index,
                "client_frame_number": outcome.client_frame_number,
                "track_status": result.status.value,
                "score": result.score,
                "timings_ms": {stage: round(ms, 3) for stage, ms in outcome.timings.as_dict().items()},
            },
        )
        if self._metrics is not None:
            self._recent[session_id] = time.monotonic()
            if outcome.replayed:  # answered from the record: no frame was tracked
                self._metrics.observe_replay(tracker)
            else:
                self._metrics.observe_frame(tracker, outcome.timings)
                if outcome.tracked is not None:
                    self._metrics.observe_tracking(tracker, outcome.result, outcome.tracked)

    def _count_error(self, tracker: str, error: ServiceError) -> None:
        if self._metrics is not None:
            self._metrics.observe_frame_error(tracker, error.code)
