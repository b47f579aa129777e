"""Cancellation that a library swallowed: stop the loop anyway.

A task asked to stop gets `CancelledError` at its next await, but a library may turn it into an error of
its own on the way out, and a loop that tolerates such errors (Redis errors, a best-effort report under
`contextlib.suppress(Exception)`) then carries on as if nothing had been asked. Seen: a camera runner's
watchdog, cancelled during its status report to Redis, still asked to stop yet asleep in its loop, so that
stopping the runner hung (which call swallowed the CancelledError was not pinned down). The request is
still on the task (`Task.cancelling()`), so a long-lived loop checks it at each turn and ends there,
instead of running, and holding whoever awaits it, forever. (A task that catches its
own CancelledError on purpose and carries on must call `Task.uncancel()`, as asyncio.timeout does, or it
stops at the next check.)
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Raise CancelledError when the current task has a cancellation request pending."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
