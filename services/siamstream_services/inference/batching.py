"""Micro-batching: concurrent calls of one model are gathered into one batch-first call.

Different streams' calls for the same tracker arrive as independent coroutines. The batcher queues them,
concatenates their inputs along the batch dimension, runs the model once and hands each caller its own
rows back. While one batch runs, later calls queue up, so under load batches form without any waiting.
Where calls have been seen together (the last run gathered more than one), the batcher also waits at most
`max_wait_s` after the first queued call for more (or until `max_rows` rows are gathered); a lone stream,
whose runs each hold one call, is never made to wait for company that does not come. Only calls
whose inputs agree in shape after the batch dimension share a run (search crops of different sides, as
the adaptive search region asks for, cannot be concatenated); a call of another shape waits, in order,
for a later run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from siamstream_services.cancellation import stop_if_cancelled

from .backend import BackendUnavailable, InferenceError, Tensors

BatchRunner = Callable[[Tensors], Awaitable[Tensors]]
BatchObserver = Callable[[str, str, int, int], None]
"""Called after every model run with `(tracker, stage, rows, calls)`; the hook for a batch-size metric."""


@dataclass
class _Call:
    inputs: Tensors
    rows: int
    result: asyncio.Future[Tensors]

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """The inputs' shapes after the batch dimension: calls that agree on them concatenate."""
        return tuple(array.shape[1:] for array in self.inputs)


class MicroBatcher:
    """Gathers concurrent calls of one model into batched runs of at most `max_rows` rows.

    A single call with more than `max_rows` rows runs alone (it is never split).
    """

    def __init__(
        self, run: BatchRunner, *, max_rows: int, max_wait_s: float, on_run: Callable[[int, int], None]
    ):
        if max_rows < 1 or max_wait_s < 0:
            raise ValueError("max_rows must be >= 1 and max_wait_s >= 0")
        self._run = run
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._on_run = on_run
        self._pending: deque[_Call] = deque()
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self._last_run_calls = 0

    async def submit(self, inputs: Tensors) -> Tensors:
        """Queue one call (all inputs batch-first with the same row count) and wait for its rows."""
        if self._closed:
            raise BackendUnavailable("inference backend is closed")
        rows = {a.shape[0] for a in inputs}
        if len(rows) != 1:
            raise InferenceError(f"inputs disagree on the batch size: {sorted(rows)}")
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._serve())
        call = _Call(inputs, rows.pop(), asyncio.get_running_loop().create_future())
        self._pending.append(call)
        self._arrived.set()
        return await call.result

    async def close(self) -> None:
        """Stop serving; calls still queued fail with BackendUnavailable."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._pending:
            call = self._pending.popleft()
            if not call.result.done():
                call.result.set_exception(BackendUnavailable("inference backend is closed"))

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Python 3.11's wait_for can drop a cancel that lands as the event is set (gh-86296).
            stop_if_cancelled()
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = loop.time() + self._gather_wait_s()
            while self._queued_rows() < self._max_rows and (remaining := deadline - loop.time()) > 0:
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
            batch = self._take_batch()
            if batch:
                await self._run_batch(batch)

    def _gather_wait_s(self) -> float:
        """How long to wait for more calls: `max_wait_s` once the last run batched several calls, else 0."""
        return self._max_wait_s if self._last_run_calls > 1 else 0.0

    def _queued_rows(self) -> int:
        return sum(call.rows for call in self._pending)

    def _take_batch(self) -> list[_Call]:
        """The oldest live call and the calls queued after it with its shapes, in order, while they fit in
        `max_rows`; calls of other shapes stay queued in their order."""
        batch: list[_Call] = []
        other_shapes: list[_Call] = []
        rows = 0
        while self._pending:
            call = self._pending[0]
            if call.result.done():  # the caller gave up (cancelled or timed out)
                self._pending.popleft()
                continue
            if batch and call.shapes != batch[0].shapes:
                other_shapes.append(self._pending.popleft())
                continue
            if batch and rows + call.rows > self._max_rows:
                break
            batch.append(self._pending.popleft())
            rows += call.rows
        self._pending.extendleft(reversed(other_shapes))
        return batch

    async def _run_batch(self, batch: list[_Call]) -> None:
        self._last_run_calls = len(batch)
        try:
            inputs = tuple(
                np.concatenate(parts) for parts in zip(*(call.inputs for call in batch), strict=True)
            )
            outputs = await self._run(inputs)
        except Exception as error:  # every caller of the batch sees the model's failure
            for call in batch:
                if not call.result.done():
                    call.result.set_exception(error)
            return
        self._on_run(inputs[0].shape[0], len(batch))
        bounds = np.cumsum([call.rows for call in batch])[:-1]
        per_output = [np.split(output, bounds) for output in outputs]
        for index, call in enumerate(batch):
            if not call.result.done():
                call.result.set_result(tuple(parts[index] for parts in per_output))
