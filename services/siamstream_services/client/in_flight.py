"""The frames of a `Track` stream sent and not yet answered, and the bounded wait for the next answer.

While a frame is in flight (or the frames have all been sent and the end of the stream is awaited), each
answer must come within `answer_timeout_s` of the client starting to wait for it. That wait starts no
earlier than its frame was sent, so the server always gets at least `answer_timeout_s` per frame, and
time the caller spends between two answers is not held against the server. With no frame in flight and
more to come the wait is unbounded: the frame source sets the pace (a live camera between two frames),
not the server.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

import grpc
from grpc import aio

Answer = TypeVar("Answer")
Frame = TypeVar("Frame")


class InFlightFrames(Generic[Frame]):
    """Frames in sending order with the `time.perf_counter()` at which each was handed to gRPC."""

    def __init__(self, answer_timeout_s: float) -> None:
        if answer_timeout_s <= 0:
            raise ValueError(f"answer_timeout_s must be positive, got {answer_timeout_s}")
        self.answer_timeout_s = answer_timeout_s
        self._frames: collections.deque[tuple[int, Frame, float]] = collections.deque()
        self._sent_count = 0
        self._all_sent = False
        self._progress = asyncio.Event()  # set on every frame sent and once all are sent

    def sent(self, frame: Frame) -> None:
        """Record that `frame`, the next one in order, was handed to gRPC now."""
        self._frames.append((self._sent_count, frame, time.perf_counter()))
        self._sent_count += 1
        self._progress.set()

    def all_sent(self) -> None:
        """Record that the frame source has ended (the request stream is half-closed)."""
        self._all_sent = True
        self._progress.set()

    def answered(self) -> tuple[Frame, float]:
        """The oldest frame in flight, now answered, and its round trip in milliseconds; `aio.AioRpcError`
        INTERNAL when no frame is in flight (the server answered a frame that was never sent)."""
        if not self._frames:
            raise _stream_error(grpc.StatusCode.INTERNAL, "the server answered with no frame in flight")
        _, frame, sent_at = self._frames.popleft()
        return frame, (time.perf_counter() - sent_at) * 1000.0

    async def next_answer(self, answers: AsyncIterator[Answer]) -> Answer | None:
        """The next item of `answers` (None once they end), or `aio.AioRpcError` DEADLINE_EXCEEDED when
        it is not there in time; the read is then cancelled and the caller should cancel the call."""
        read = asyncio.ensure_future(anext(answers, None))
        try:
            while not self._frames and not self._all_sent:
                # Nothing awaits an answer yet: wait for the read or for the next frame sent.
                self._progress.clear()
                progress = asyncio.ensure_future(self._progress.wait())
                try:
                    await asyncio.wait((read, progress), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    progress.cancel()  # also when the caller is cancelled meanwhile
                if read.done():
                    return read.result()
            try:
                return await asyncio.wait_for(read, self.answer_timeout_s)
            except TimeoutError:
                raise self._late() from None
        finally:
            read.cancel()

    def _late(self) -> aio.AioRpcError:
        if self._frames:
            number = self._frames[0][0]
            details = f"no answer to frame {number} within {self.answer_timeout_s:g} s"
        else:
            details = (
                f"the stream did not end within {self.answer_timeout_s:g} s of the last answer and the end "
                "of the frames, whichever came later"
            )
        return _stream_error(grpc.StatusCode.DEADLINE_EXCEEDED, details)


def _stream_error(code: grpc.StatusCode, details: str) -> aio.AioRpcError:
    """A failure of the stream raised on the client side, as gRPC raises the server's."""
    return aio.AioRpcError(code, aio.Metadata(), aio.Metadata(), details)
