"""What a soak client does next, drawn from its seeded generator: a normal stream, a cancelled Track stream,
a cancelled health Watch, a call with a tiny deadline, or a bad input, each with the codes it expects."""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

Code = grpc.StatusCode

# Frames one Track stream sends at most.
TRACK_MAX_MESSAGES = 10
# Pause between a client's actions, drawn uniformly: cheap actions would otherwise spin.
THINK_S = (0.05, 0.5)
# Shares of the actions; the normal streams carry the PushFrame latency figures.
ACTION_WEIGHTS = {"stream": 4.0, "track": 2.0, "health_watch": 1.0, "deadline": 1.5, "bad_input": 2.0}
GARBAGE_PUSH_SHARE = 0.15
TRACK_CLOSE_SHARE = 0.2
DEADLINE_METHODS = ("ListTracks", "GetTrack", "PushFrame", "StartTrack")
# Deadlines 0.5 ms * 2**k: from before the call leaves the client to in the middle of a decode.
DEADLINE_STEPS = 9
INVALID = frozenset({Code.INVALID_ARGUMENT})
NOT_FOUND = frozenset({Code.NOT_FOUND})

# Each bad input and the code the proto gives for it.
BAD_INPUT_CODES: dict[str, frozenset[Code]] = {
    "garbage bytes": INVALID,
    "garbage JPEG": INVALID,
    "truncated JPEG": INVALID,
    "empty frame": INVALID,
    "raw frame of the wrong size": INVALID,
    "box outside the frame": INVALID,
    "negative box size": INVALID,
    "huge box": INVALID,
    "NaN box": INVALID,
    "infinite box": INVALID,
    "option out of range": INVALID,
    "unknown tracker": NOT_FOUND,
    "PushFrame to an unknown session": NOT_FOUND,
    "GetTrack of an unknown session": NOT_FOUND,
    "StopTrack of an unknown session": NOT_FOUND,
    "session id over the length limit": INVALID,
    "ListTracks page token not issued": INVALID,
    "Track opening with a frame": INVALID,
}


# What one client does next: every field is drawn before the action runs, so the draws do not depend on
# the outcomes and a seed fixes what each client sends.


@dataclass(frozen=True)
class StreamPlan:
    """StartTrack on frame `first`, PushFrame of the `pushes` frames after it, StopTrack; a garbage JPEG
    pushed before push number `garbage_at` when it is set."""

    first: int
    pushes: int
    garbage_at: int | None
    noise_seed: int


@dataclass(frozen=True)
class TrackPlan:
    """A Track stream from frame `first`: `messages` requests written (the start, then frames; 0 cancels on
    opening), the last one's answer awaited when `read_last`; then cancelled, or half-closed when `close`."""

    first: int
    messages: int
    read_last: bool
    close: bool


@dataclass(frozen=True)
class WatchPlan:
    """A health Watch cancelled after `reads` answers."""

    reads: int


@dataclass(frozen=True)
class DeadlinePlan:
    """One unary call of `method` with a deadline of `deadline_s`."""

    method: str
    deadline_s: float
    frame: int


@dataclass(frozen=True)
class BadInputPlan:
    """One call with the bad input `case` (a key of BAD_INPUT_CODES); `noise_seed` draws its garbage."""

    case: str
    noise_seed: int
    frame: int


Plan = StreamPlan | TrackPlan | WatchPlan | DeadlinePlan | BadInputPlan


def plan_action(rng: random.Random, frame_count: int) -> tuple[Plan, float]:
    """The next action of a client and the pause after it (s), drawn from `rng` in a fixed order."""
    kind = rng.choices(list(ACTION_WEIGHTS), weights=list(ACTION_WEIGHTS.values()))[0]
    think_s = rng.uniform(*THINK_S)
    plan: Plan
    if kind == "stream":
        pushes = rng.randint(1, frame_count - 1)
        first = rng.randint(0, frame_count - 1 - pushes)
        garbage_at = rng.randrange(pushes) if rng.random() < GARBAGE_PUSH_SHARE else None
        plan = StreamPlan(first, pushes, garbage_at, rng.getrandbits(32))
    elif kind == "track":
        messages = rng.randint(0, min(TRACK_MAX_MESSAGES, frame_count))
        first = rng.randint(0, frame_count - max(messages, 1))
        close = messages > 0 and rng.random() < TRACK_CLOSE_SHARE
        plan = TrackPlan(first, messages, read_last=rng.random() < 0.5, close=close)
    elif kind == "health_watch":
        plan = WatchPlan(reads=rng.randint(0, 1))
    elif kind == "deadline":
        deadline_s = 0.0005 * 2 ** rng.randrange(DEADLINE_STEPS)
        plan = DeadlinePlan(rng.choice(DEADLINE_METHODS), deadline_s, rng.randrange(frame_count))
    else:
        plan = BadInputPlan(
            rng.choice(sorted(BAD_INPUT_CODES)), rng.getrandbits(32), rng.randrange(frame_count)
        )
    return plan, think_s
