"""The tracker record round-trips through JSON; the status rule's transitions."""

import pytest

from siamstream.config import Family, StatusConfig
from siamstream.tracking.state import TrackerState, TrackResult, TrackStatus, next_status

STATUS = StatusConfig(tracking_above=0.6, lost_below=0.3, lost_after=3)


def test_state_json_round_trip_is_exact():
    state = TrackerState(
        family=Family.SIAMFC,
        frame_index=7,
        cx=0.1 + 0.2,
        cy=123.456789012345678,
        w=1 / 3,
        h=float(2**-30),
        image_width=640,
        image_height=480,
        channel_average=(100.70000000000002, 50.2, 200.5),
        search_size=511.9999999999999,
        last_score=0.123456789,
        status=TrackStatus.UNCERTAIN,
        low_score_count=2,
    )
    restored = TrackerState.model_validate_json(state.model_dump_json())
    assert restored == state
    assert restored.cx == 0.1 + 0.2 and restored.status is TrackStatus.UNCERTAIN


def test_state_is_frozen_and_strict():
    state = TrackerState(
        family=Family.SIAMRPN, frame_index=0, cx=1, cy=2, w=3, h=4, image_width=5, image_height=6,
        channel_average=(0, 0, 0),
    )  # fmt: skip
    with pytest.raises(ValueError):
        state.cx = 5.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        TrackerState.model_validate({**state.model_dump(), "extra": 1})
    with pytest.raises(ValueError):
        TrackerState.model_validate({**state.model_dump(), "w": -1.0})


def test_result_json_round_trip():
    result = TrackResult(frame_index=3, bbox=(1.5, 2.5, 10.0, 20.0), score=0.75, status=TrackStatus.TRACKING)
    assert TrackResult.model_validate_json(result.model_dump_json()) == result


def run(scores, status=TrackStatus.TRACKING, count=0):
    statuses = []
    for score in scores:
        status, count = next_status(STATUS, status, count, score)
        statuses.append(status)
    return statuses, count


def test_confident_frames_are_tracking():
    assert run([0.6, 0.9]) == ([TrackStatus.TRACKING] * 2, 0)


def test_middle_scores_are_uncertain_and_break_a_low_run():
    statuses, count = run([0.2, 0.2, 0.5, 0.2, 0.2])
    assert statuses == [TrackStatus.UNCERTAIN] * 5 and count == 2


def test_lost_after_consecutive_low_scores_until_confident_again():
    statuses, count = run([0.1, 0.1, 0.1, 0.5, 0.2, 0.59, 0.6, 0.5])
    assert statuses == [
        TrackStatus.UNCERTAIN,
        TrackStatus.UNCERTAIN,
        TrackStatus.LOST,  # third consecutive frame below 0.3
        TrackStatus.LOST,  # 0.5 is not confident: stays lost
        TrackStatus.LOST,
        TrackStatus.LOST,
        TrackStatus.TRACKING,  # reaches tracking_above
        TrackStatus.UNCERTAIN,
    ]
    assert count == 0
