"""What the soak clients saw: every call's status by minute and by request kind, the outcomes no action
expects (less those the Redis restart explains), and the restart's timeline."""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import grpc

from .processes import ProcessSample

Code = grpc.StatusCode
OK = Code.OK

# After Redis is back, the store reconnects on its next call and health is re-read every 2 s: UNAVAILABLE
# is still explained by the outage this long after.
OUTAGE_GRACE_S = 10.0
SAMPLES_PER_OUTCOME = 3


@dataclass
class Window:
    """One minute: status codes of every call that ended in it (and how many no action expects), PushFrame
    round trips of the normal streams, health answers, the service's figures at its end, and what
    happened to Redis."""

    codes: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0
    push_ms: list[float] = field(default_factory=list)
    health: Counter[str] = field(default_factory=Counter)
    sample: ProcessSample | None = None
    events: list[str] = field(default_factory=list)


@dataclass
class Outcomes:
    """Calls of one (request kind, status code) that no action expects, and a few of their messages."""

    count: int = 0
    samples: list[str] = field(default_factory=list)


class Recorder:
    """Every call's outcome, by minute and by request kind, and the Redis restart's timeline."""

    def __init__(self, started: float, window_s: float, windows: int) -> None:
        self.started = started
        self.window_s = window_s
        self.windows = [Window() for _ in range(windows)]
        self.codes: Counter[str] = Counter()
        self.kinds: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.unexpected: defaultdict[tuple[str, str], Outcomes] = defaultdict(Outcomes)
        self.client_errors: defaultdict[str, Outcomes] = defaultdict(Outcomes)
        self.redis_stopped_at: float | None = None
        self.redis_started_at: float | None = None
        self.first_start_after_restart: float | None = None
        self.health_changes: list[tuple[float, str]] = []

    def since_start(self, moment: float) -> float:
        return round(moment - self.started, 2)

    def window(self) -> Window:
        index = int((time.monotonic() - self.started) // self.window_s)
        return self.windows[min(max(index, 0), len(self.windows) - 1)]

    def record(
        self,
        kind: str,
        code: Code,
        expected: frozenset[Code],
        started: float,
        message: str = "",
        session_started: float | None = None,
    ) -> None:
        """One call of `kind`, begun at `started` (monotonic s), that ended now with `code`.

        `session_started` is when the session it names was started (None: it names none of ours).
        """
        window = self.window()
        window.codes[code.name] += 1
        self.codes[code.name] += 1
        self.kinds[kind][code.name] += 1
        if code == OK and kind.endswith("StartTrack") and self._after_restart(started):
            self.first_start_after_restart = self.first_start_after_restart or time.monotonic()
        if code not in expected and not self._explained_by_outage(code, started, session_started):
            window.unexpected += 1
            outcomes = self.unexpected[(kind, code.name)]
            outcomes.count += 1
            if len(outcomes.samples) < SAMPLES_PER_OUTCOME:
                when = self.since_start(time.monotonic())
                outcomes.samples.append(f"at {when} s: {message[:200]}")

    def client_error(self, action: str, error: Exception) -> None:
        """An exception of the client side other than a call's status (a bug here, or grpc misbehaving)."""
        outcomes = self.client_errors[f"{action}: {type(error).__name__}"]
        outcomes.count += 1
        if len(outcomes.samples) < SAMPLES_PER_OUTCOME:
            outcomes.samples.append(f"at {self.since_start(time.monotonic())} s: {error!r}"[:300])

    def health(self, status: str) -> None:
        self.window().health[status] += 1
        if not self.health_changes or self.health_changes[-1][1] != status:
            self.health_changes.append((self.since_start(time.monotonic()), status))

    def event(self, text: str) -> None:
        self.window().events.append(f"{text} at {self.since_start(time.monotonic())} s")

    def _after_restart(self, started: float) -> bool:
        return self.redis_started_at is not None and started >= self.redis_started_at

    def _explained_by_outage(self, code: Code, started: float, session_started: float | None) -> bool:
        """UNAVAILABLE of a call that overlapped the Redis outage (and its grace), or NOT_FOUND of a session
        that lived in the Redis that was restarted (it keeps nothing)."""
        if self.redis_stopped_at is None or time.monotonic() < self.redis_stopped_at:
            return False
        back = self.redis_started_at if self.redis_started_at is not None else math.inf
        if code == Code.UNAVAILABLE:
            return started <= back + OUTAGE_GRACE_S
        return code == Code.NOT_FOUND and session_started is not None and session_started < back
