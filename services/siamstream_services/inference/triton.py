"""Triton backend: the two stages served by a Triton Inference Server over gRPC (tritonclient aio).

Models are `<tracker>_template` / `<tracker>_search` (and `<tracker>_update` for update-capable packages)
with TorchScript I/O names (see triton_repository.py); a search crop of another side than the search
model's (the adaptive search region's grown crops), and its search features, go to the models of that
side, `<tracker>_search_<side>` and `<tracker>_update_<features side>`. Only the outputs a caller needs
are requested: the search features, which the search model of an update-capable package names in its
config, travel only when the caller updates the template.
Crops travel as uint8 (4x smaller than float32; the models convert). With `shared_memory=True` (client
and server on one host) tensors go through system shared memory regions that are registered once, reused
call after call and unregistered on close; a region whose call failed or was cancelled is never reused
(Triton may still be writing its outputs into it): it is destroyed at once and unregistered by the next
calls, as soon as Triton lets go of it (it refuses while the timed out request still runs or waits; the
calls ask again at most once per `_RETIRED_RETRY_INTERVAL_S`, not each one once per region).
Every request carries `request_timeout_s`, so a dead server surfaces as BackendUnavailable within that
bound; the channel is then rebuilt on the next call and the regions registered again, so the same backend
object works again once the server is back. Closing the failed channel cuts off the calls still running
on it, which grpc reports as asyncio.CancelledError: they too end in BackendUnavailable (a task that was
really cancelled still gets its CancelledError). A server that was only slow still holds the
registrations: it answers ALREADY_EXISTS, which means registered (region names are unique to one region of
one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from .backend import (
    BackendUnavailable,
    InferenceBackend,
    InferenceError,
    Stage,
    Tensors,
    UnknownTracker,
)
from .triton_repository import (
    SEARCH_FEATURES_PARAMETER,
    search_model_name,
    sized_model_name,
    template_model_name,
    update_model_name,
)

# A timed out request can wait in a long queue for seconds, and every call in between would spend a round
# trip per retired region asking for it in vain.
_RETIRED_RETRY_INTERVAL_S = 1.0
# gRPC shares one subchannel among the channels to an address and backs off reconnecting it (1 s growing
# to 120 s), so a channel opened after Triton came back reported the stale "Connection refused" for
# seconds. A local pool gives each new channel its own first attempt; the cap bounds the wait on a kept
# one. tritonclient's keepalive options are gRPC's defaults, so the message limits are all it needs.
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class TritonFailure(Enum):
    """What a failed Triton call means to this backend (`classify`)."""

    UNREACHABLE = "unreachable"  # no answer: the channel is dropped, the call is BackendUnavailable
    UNKNOWN_REGION = "unknown_region"  # a shared memory region the server does not hold (it restarted)
    REGION_IN_USE = "region_in_use"  # an unregister refused: a timed out request still runs on the region
    ALREADY_REGISTERED = "already_registered"  # a register of a region the server holds already
    UNKNOWN_MODEL = "unknown_model"  # no model of that name is loaded
    OTHER = "other"  # a model error or bad tensors


# tritonclient's gRPC client raises the status of a failed call as `str(grpc.StatusCode.X)`.
_STATUS_CODES = {str(code): code for code in grpc.StatusCode}
_UNREACHABLE_CODES = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
# Fallback on the message, pinned to tritonserver 2.51 (nvidia-pytriton 0.7.0), for the two region failures
# whose status code is no sign: Triton reports an unknown region with the code of an unknown model
# (NOT_FOUND; INVALID_ARG in releases before it), and a region in use with the code of any internal error.
_UNKNOWN_REGION_MESSAGE = "Unable to find shared memory region"
_REGION_IN_USE_MESSAGE = "it is currently in use"


def classify(error: InferenceServerException) -> TritonFailure:
    """What `error` means, by its gRPC status code, and by its message only for the region failures that
    the code does not tell apart."""
    code = _STATUS_CODES.get(error.status() or "")
    message = error.message() or ""
    if code in _UNREACHABLE_CODES:
        return TritonFailure.UNREACHABLE
    if _UNKNOWN_REGION_MESSAGE in message:
        return TritonFailure.UNKNOWN_REGION
    if _REGION_IN_USE_MESSAGE in message:
        return TritonFailure.REGION_IN_USE
    if code is grpc.StatusCode.ALREADY_EXISTS:
        return TritonFailure.ALREADY_REGISTERED
    if code is grpc.StatusCode.NOT_FOUND:
        return TritonFailure.UNKNOWN_MODEL
    return TritonFailure.OTHER


@dataclass(frozen=True)
class _TensorSpec:
    name: str
    datatype: str  # Triton name: "FP32", "UINT8"
    row_bytes: int  # bytes of one batch row
    dims: tuple[int, ...]  # the shape of one batch row


@dataclass(frozen=True)
class _ModelSpec:
    max_batch_size: int
    inputs: tuple[_TensorSpec, ...]
    outputs: tuple[_TensorSpec, ...]
    features_output: str | None  # the search features' output name, in update-capable search models

    def requested_outputs(self, model: str, search_features: bool) -> tuple[_TensorSpec, ...]:
        """The outputs to ask for: all but the search features unless `search_features`."""
        if self.features_output is None:
            if search_features:
                raise InferenceError(
                    f"{model} returns no search features: its package was exported without the template "
                    "update stage"
                )
            return self.outputs
        return tuple(t for t in self.outputs if search_features or t.name != self.features_output)

    @property
    def region_bytes(self) -> int:
        """A region holds every input and output of a full batch."""
        return self.max_batch_size * sum(t.row_bytes for t in self.inputs + self.outputs)


@dataclass
class _Region:
    name: str
    handle: object
    byte_size: int


@dataclass
class _RegionPool:
    """Shared memory regions of one model; a region serves one call at a time."""

    free: list[_Region] = field(default_factory=list)
    all: list[_Region] = field(default_factory=list)


_MODEL_NAMES = {
    Stage.TEMPLATE: template_model_name,
    Stage.SEARCH: search_model_name,
    Stage.UPDATE: update_model_name,
}


class TritonBackend(InferenceBackend):
    """InferenceBackend over Triton gRPC. `url` is `host:port` of the gRPC endpoint.

    `clock` (seconds, monotonic) paces the retries of retired regions; tests move it by hand.
    """

    def __init__(
        self,
        url: str,
        *,
        request_timeout_s: float = 1.0,
        shared_memory: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._url = url
        self._timeout = request_timeout_s
        self._shared_memory = shared_memory
        self._client: grpcclient.InferenceServerClient | None = None
        self._specs: dict[str, _ModelSpec] = {}
        self._pools: dict[str, _RegionPool] = {}
        self._registered: set[str] = set()  # region names registered over the current channel
        self._retired: set[str] = set()  # names of dropped regions the server may still hold
        self._clock = clock
        self._retry_retired_at = -math.inf  # `clock` time from which the retired regions are asked again
        self._closed = False

    async def run_stage(
        self, tracker: str, stage: Stage, inputs: Tensors, *, search_features: bool = False
    ) -> Tensors:
        if stage == Stage.UPDATE:
            # The model's rate input is [B, 1]: Triton gives a batched input at least one dim per row.
            *tensors, rate = inputs
            inputs = (*tensors, np.asarray(rate, dtype=np.float32).reshape(-1, 1))
        # The search crop, and the update's search features, may be of a side other than the base model's.
        sized_input = None if stage == Stage.TEMPLATE else 1
        return await self._infer(
            _MODEL_NAMES[stage](tracker), inputs, search_features=search_features, sized_input=sized_input
        )

    async def ready(self) -> bool:
        if self._closed:
            return False
        client = self._connect()
        try:
            return await client.is_server_ready(client_timeout=self._timeout)
        except InferenceServerException:
            await self._disconnect(client)
            return False
        except asyncio.CancelledError:
            if _cancelled():
                raise
            return False  # another call's failure closed the channel under this one

    async def close(self) -> None:
        """Unregister and destroy the shared memory regions (best effort if the server is gone)."""
        self._closed = True
        regions = [region for pool in self._pools.values() for region in pool.all]
        # Every region, whether this backend knows it registered or not: after a dropped channel or a
        # registration whose answer was lost to the timeout, a live server still holds it.
        self._retired.update(region.name for region in regions)
        if self._retired:
            await self._unregister_retired(self._connect())
        for region in regions:
            shm.destroy_shared_memory_region(region.handle)
        self._pools.clear()
        self._registered.clear()
        self._retired.clear()
        if self._client is not None:
            await self._disconnect(self._client)

    async def _infer(
        self,
        model: str,
        arrays: tuple[np.ndarray, ...],
        *,
        search_features: bool = False,
        sized_input: int | None = None,
    ) -> tuple[np.ndarray, ...]:
        """Run `model` on `arrays`; when input `sized_input` is not of the model's dims, run the model of
        that input's side instead (`sized_model_name`)."""
        if self._closed:
            raise BackendUnavailable("inference backend is closed")
        client = self._connect()
        try:
            spec = await self._model_spec(client, model)
            if sized_input is not None and arrays[sized_input].shape[1:] != spec.inputs[sized_input].dims:
                model = sized_model_name(model, arrays[sized_input].shape[-1])
                spec = await self._model_spec(client, model)
            if len(arrays) != len(spec.inputs):
                raise InferenceError(f"{model} takes {len(spec.inputs)} inputs, got {len(arrays)}")
            outputs = spec.requested_outputs(model, search_features)
            if not self._shared_memory:
                return await self._infer_plain(client, model, spec, arrays, outputs)
            if self._retired and self._clock() >= self._retry_retired_at:
                # Set before the round trips, so that the calls made meanwhile do not ask too.
                self._retry_retired_at = self._clock() + _RETIRED_RETRY_INTERVAL_S
                await self._unregister_retired(client)
            try:
                return await self._infer_shared(client, model, spec, arrays, outputs)
            except InferenceServerException as error:
                if classify(error) is not TritonFailure.UNKNOWN_REGION:
                    raise
                # The server restarted between two calls and forgot every registration: register again.
                self._registered.clear()
                return await self._infer_shared(client, model, spec, arrays, outputs)
        except InferenceServerException as error:
            raise await self._translate(client, model, error) from error
        except asyncio.CancelledError:
            if _cancelled():
                raise
            raise BackendUnavailable(
                f"Triton at {self._url}: the channel was closed after another call failed"
            ) from None

    async def _infer_plain(
        self,
        client: grpcclient.InferenceServerClient,
        model: str,
        spec: _ModelSpec,
        arrays: tuple[np.ndarray, ...],
        outputs: tuple[_TensorSpec, ...],
    ) -> tuple[np.ndarray, ...]:
        inputs = []
        for tensor, array in zip(spec.inputs, arrays, strict=True):
            infer_input = grpcclient.InferInput(tensor.name, list(array.shape), tensor.datatype)
            infer_input.set_data_from_numpy(array)
            inputs.append(infer_input)
        requested = [grpcclient.InferRequestedOutput(tensor.name) for tensor in outputs]
        result = await client.infer(model, inputs, outputs=requested, client_timeout=self._timeout)
        return tuple(result.as_numpy(tensor.name) for tensor in outputs)

    async def _infer_shared(
        self,
        client: grpcclient.InferenceServerClient,
        model: str,
        spec: _ModelSpec,
        arrays: tuple[np.ndarray, ...],
        outputs: tuple[_TensorSpec, ...],
    ) -> tuple[np.ndarray, ...]:
        rows = arrays[0].shape[0]
        if rows > spec.max_batch_size:
            raise InferenceError(f"{model} takes at most {spec.max_batch_size} rows, got {rows}")
        region = await self._acquire_region(client, model, spec)
        try:
            offset = 0
            inputs = []
            for tensor, array in zip(spec.inputs, arrays, strict=True):
                array = np.ascontiguousarray(array, dtype=triton_to_np_dtype(tensor.datatype))
                shm.set_shared_memory_region(region.handle, [array], offset=offset)
                infer_input = grpcclient.InferInput(tensor.name, list(array.shape), tensor.datatype)
                infer_input.set_shared_memory(region.name, array.nbytes, offset=offset)
                inputs.append(infer_input)
                offset += array.nbytes
            requested_outputs = []
            output_offsets = []
            for tensor in outputs:
                requested = grpcclient.InferRequestedOutput(tensor.name)
                requested.set_shared_memory(region.name, rows * tensor.row_bytes, offset=offset)
                requested_outputs.append(requested)
                output_offsets.append(offset)
                offset += rows * tensor.row_bytes
            result = await client.infer(
                model, inputs, outputs=requested_outputs, client_timeout=self._timeout
            )
            values = []
            for tensor, output_offset in zip(outputs, output_offsets, strict=True):
                shape = list(result.get_output(tensor.name).shape)
                view = shm.get_contents_as_numpy(
                    region.handle, triton_to_np_dtype(tensor.datatype), shape, offset=output_offset
                )
                values.append(view.copy())  # the region is reused by the next call
        except BaseException:
            self._retire(model, region)
            raise
        self._pools[model].free.append(region)
        return tuple(values)

    def _retire(self, model: str, region: _Region) -> None:
        """Drop a region whose call failed or was cancelled: Triton may still write into it (a timed out
        request runs on), so it must never serve another call. Destroying it here only unmaps and unlinks
        this process's view; Triton's mapping lives until the region is unregistered by a later call.

        Retired even when `_registered` does not list it: calls that fail together see the first failure
        drop the channel and clear `_registered`, yet the server holds the regions of all of them (and
        unregistering a name it does not hold succeeds)."""
        self._pools[model].all.remove(region)
        shm.destroy_shared_memory_region(region.handle)
        self._registered.discard(region.name)
        self._retired.add(region.name)

    async def _unregister_retired(self, client: grpcclient.InferenceServerClient) -> None:
        """Unregister the retired regions. A region stays retired, for the next call to try again, while
        the server is unreachable or still runs the timed out request on it (it refuses to unregister a
        region in use); any other answer drops it (unregistering a name the server does not hold, as
        after a restart, succeeds)."""
        for name in sorted(self._retired):
            try:
                await client.unregister_system_shared_memory(name, client_timeout=self._timeout)
            except InferenceServerException as error:
                failure = classify(error)
                if failure is TritonFailure.UNREACHABLE:
                    return
                if failure is TritonFailure.REGION_IN_USE:
                    continue
            self._retired.discard(name)

    async def _acquire_region(
        self, client: grpcclient.InferenceServerClient, model: str, spec: _ModelSpec
    ) -> _Region:
        pool = self._pools.setdefault(model, _RegionPool())
        if pool.free:
            region = pool.free.pop()
        else:
            name = f"siamstream_{os.getpid()}_{uuid.uuid4().hex[:12]}"
            handle = shm.create_shared_memory_region(name, f"/{name}", spec.region_bytes)
            region = _Region(name, handle, spec.region_bytes)
            pool.all.append(region)
        if region.name not in self._registered:
            try:
                await self._register(client, region)
            except BaseException:
                pool.free.append(region)
                raise
            self._registered.add(region.name)
        return region

    async def _register(self, client: grpcclient.InferenceServerClient, region: _Region) -> None:
        try:
            await client.register_system_shared_memory(
                region.name, f"/{region.name}", region.byte_size, client_timeout=self._timeout
            )
        except InferenceServerException as error:
            # The name is this region's alone, so the server holds THIS region: registered by a call
            # whose answer was lost to the timeout, or before a channel dropped on a server that stalled.
            if classify(error) is not TritonFailure.ALREADY_REGISTERED:
                raise

    async def _model_spec(self, client: grpcclient.InferenceServerClient, model: str) -> _ModelSpec:
        spec = self._specs.get(model)
        if spec is None:
            config = (await client.get_model_config(model, client_timeout=self._timeout)).config
            spec = _ModelSpec(
                max_batch_size=config.max_batch_size,
                inputs=tuple(_tensor_spec(t.name, t.data_type, t.dims) for t in config.input),
                outputs=tuple(_tensor_spec(t.name, t.data_type, t.dims) for t in config.output),
                features_output=(
                    config.parameters[SEARCH_FEATURES_PARAMETER].string_value
                    if SEARCH_FEATURES_PARAMETER in config.parameters
                    else None
                ),
            )
            self._specs[model] = spec
        return spec

    def _connect(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            self._client = grpcclient.InferenceServerClient(self._url, channel_args=_CHANNEL_ARGS)
        return self._client

    async def _disconnect(self, client: grpcclient.InferenceServerClient) -> None:
        """Drop a channel that failed; the next call opens a new one and re-registers the regions."""
        if self._client is client:
            self._client = None
            self._registered.clear()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), self._timeout)

    async def _translate(
        self, client: grpcclient.InferenceServerClient, model: str, error: InferenceServerException
    ) -> InferenceError:
        failure = classify(error)
        if failure is TritonFailure.UNREACHABLE:
            await self._disconnect(client)
            return BackendUnavailable(f"Triton at {self._url}: {error.message()}")
        if failure is TritonFailure.UNKNOWN_MODEL:
            return UnknownTracker(f"Triton at {self._url} serves no model {model!r}")
        return InferenceError(f"Triton at {self._url}, model {model}: {error.message()}")


def _cancelled() -> bool:
    """Whether the running task is being cancelled, rather than its gRPC call cut off by a closed channel."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _tensor_spec(name: str, data_type: int, dims: list[int]) -> _TensorSpec:
    datatype = mc.DataType.Name(data_type).removeprefix("TYPE_")
    if any(d < 0 for d in dims):
        raise InferenceError(f"tensor {name} has variable dims {list(dims)}; configs must give exact dims")
    row_bytes = math.prod(dims) * np.dtype(triton_to_np_dtype(datatype)).itemsize
    return _TensorSpec(name, datatype, row_bytes, tuple(dims))
