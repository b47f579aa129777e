"""The step API (Contract 3): shapes, hand-checked geometry, validation errors, the offline tracker."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siamstream.registry import get_config, list_trackers
from siamstream.tracking.geometry import context_size, crop_patch
from siamstream.tracking.offline import OfflineTracker
from siamstream.tracking.state import TrackStatus
from siamstream.tracking.step import finish_search, init_track, prepare_search
from siamstream.tracking.validation import expected_output_shapes

RPN = get_config("siamrpnpp_r50")
BOX = (100.0, 120.0, 60.0, 40.0)


@pytest.fixture(scope="module")
def frame():
    return np.random.default_rng(0).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)


def neutral_outputs(config, crops):
    """Head outputs that carry no information: zero logits/deltas, 32 px distances, flat responses."""
    shapes = expected_output_shapes(config, crops)
    outputs = [np.zeros(shape, np.float32) for shape in shapes]
    if config.family in ("siamban", "siamcar"):
        outputs[1][:] = 32
    return tuple(outputs)


def test_init_track_state_and_template(frame):
    state, request = init_track(RPN, frame, BOX)
    assert (state.cx, state.cy, state.w, state.h) == (129.5, 139.5, 60.0, 40.0)
    assert (state.image_width, state.image_height, state.frame_index) == (320, 240, 0)
    np.testing.assert_allclose(state.channel_average, frame.mean(axis=(0, 1)))
    assert request.crop.shape == (1, 3, 127, 127) and request.crop.dtype == np.uint8
    # s_z = round(sqrt(110 * 90)) = 99
    expected = crop_patch(frame, (129.5, 139.5), 127, 99, state.channel_average)
    np.testing.assert_array_equal(request.crop[0], expected.transpose(2, 0, 1))
    assert request.box_prior.dtype == np.float32
    np.testing.assert_allclose(request.box_prior, [[60 * 127 / 99, 40 * 127 / 99]], rtol=1e-6)


def test_prepare_search(frame):
    state, _ = init_track(RPN, frame, BOX)
    request = prepare_search(RPN, state, frame)
    assert request.crops.shape == (1, 3, 255, 255) and request.frame_index == 1
    assert request.scale_z == pytest.approx(127 / math.sqrt(9900))


def test_neutral_outputs_keep_the_target_centred(frame):
    state, _ = init_track(RPN, frame, BOX)
    request = prepare_search(RPN, state, frame)
    new_state, result = finish_search(RPN, state, request, neutral_outputs(RPN, 1))
    assert (new_state.cx, new_state.cy) == (129.5, 139.5)
    assert result.frame_index == 1 and new_state.frame_index == 1
    assert result.score == pytest.approx(0.5) and result.status is TrackStatus.UNCERTAIN
    assert result.bbox == (129.5 - new_state.w / 2, 139.5 - new_state.h / 2, new_state.w, new_state.h)


HUGE = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("name", list_trackers())
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_huge_outputs_never_store_a_nan_or_empty_box(frame, name, sign):
    """Finite outputs far outside a model's range (an undertrained head) overflow in post-processing;
    the step must still return a storable state and a finite box."""
    config = get_config(name)
    state, _ = init_track(config, frame, BOX)
    request = prepare_search(config, state, frame)
    outputs = tuple(np.full_like(o, sign * HUGE) for o in neutral_outputs(config, request.crops.shape[0]))
    with np.errstate(all="ignore"):
        new_state, result = finish_search(config, state, request, outputs)
    assert new_state.w > 0 and new_state.h > 0 and np.isfinite([new_state.cx, new_state.cy]).all()
    assert result.score is not None
    assert np.isfinite(result.bbox).all() and 0.0 <= result.score <= 1.0


@pytest.mark.parametrize("name", ["siamcar_r50", "dcfnet_r50"])
def test_an_overflowing_box_keeps_the_previous_box_as_a_failed_frame(frame, name):
    """SiamCAR's exponentiated distances of an undertrained head overflowed the size penalty into NaN
    (seen on a short-schedule SiamCAR); the reference would carry the NaN box on."""
    config = get_config(name)
    state, _ = init_track(config, frame, BOX)
    request = prepare_search(config, state, frame)
    cls, loc, cen = neutral_outputs(config, 1)
    with np.errstate(all="ignore"):
        new_state, result = finish_search(config, state, request, (cls, np.full_like(loc, HUGE), cen))
    assert (new_state.cx, new_state.cy, new_state.w, new_state.h) == (state.cx, state.cy, state.w, state.h)
    assert result.score == 0.0 and new_state.low_score_count == 1
    assert result.status is TrackStatus.UNCERTAIN and new_state.frame_index == 1
    assert result.bbox == (state.cx - state.w / 2, state.cy - state.h / 2, state.w, state.h)


@pytest.mark.parametrize("name", ["siamban_r50", "siamcan_small", "siamcar_r50", "dcfnet_small"])
def test_a_box_output_overflowed_to_infinity_is_a_failed_frame(frame, name):
    """A small SiamCAN of the papers' study overflowed its exponentiated box head to +inf on a held-out
    frame, and the step refused the outputs as an error, ending the sequence."""
    config = get_config(name)
    state, _ = init_track(config, frame, BOX)
    request = prepare_search(config, state, frame)
    cls, loc, *rest = neutral_outputs(config, 1)
    loc = loc.copy()
    loc[0, :, 3, 4] = np.inf
    with np.errstate(all="ignore"):
        new_state, result = finish_search(config, state, request, (cls, loc, *rest))
    assert (new_state.cx, new_state.cy, new_state.w, new_state.h) == (state.cx, state.cy, state.w, state.h)
    assert result.score == 0.0 and new_state.low_score_count == 1
    with pytest.raises(ValueError, match="output 1 has non-finite"):
        finish_search(config, state, request, (cls, np.full_like(loc, np.nan), *rest))
    with pytest.raises(ValueError, match="output 0 has non-finite"):
        finish_search(config, state, request, (np.full_like(cls, np.inf), loc, *rest))


def test_siamfc_searches_three_scales(frame):
    config = get_config("siamfc_alexnet")
    state, template = init_track(config, frame, BOX)
    assert template.crop.shape == (1, 3, 127, 127)
    assert (state.cx, state.cy) == (128.5, 138.5)  # siamfc-pytorch centre: x - 1 + (w - 1) / 2
    assert state.search_size == pytest.approx(math.sqrt(9900) * 255 / 127, rel=1e-6)
    search = prepare_search(config, state, frame)
    assert search.crops.shape == (3, 3, 255, 255)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((10, 10, 0, 5), "width and height"),
        ((10, 10, 5, -1), "width and height"),
        ((10, 10, 1e-40, 5), "at least 1 pixel"),
        ((10, 10, 5, 0.99), "at least 1 pixel"),
        ((10, math.nan, 5, 5), "finite"),
        ((10, 10, math.inf, 5), "finite"),
        ((320, 10, 5, 5), "overlap"),
        ((-5, 10, 5, 5), "overlap"),
        ((0, 0, 8000, 8000), "more than 2 times the 320x240 frame on a side"),
        ((0, 0, 3.4e38, 5), "more than 2 times"),
        ((0, 10, 641, 5), "more than 2 times"),
        # Within twice the frame's sides, but the context region is 2.2 times its longer side.
        ((-40, -30, 400, 300), "context region of 698 px"),
        ((10, 10, 5), r"\[x, y, w, h\]"),
    ],
)
def test_bad_boxes(frame, box, message):
    with pytest.raises(ValueError, match=message):
        init_track(RPN, frame, box)


@pytest.mark.parametrize("name", list_trackers())
@pytest.mark.parametrize("box", [(0, 0, 320, 240), (-0.5, 0, 640, 1), (0, -240, 1, 480), (319, 239, 1, 1)])
def test_boxes_a_frame_can_show_are_accepted(frame, name, box):
    """The bounds refuse no box a frame can show: the whole frame, a sliver along a side twice the frame's,
    a single pixel (for every registered tracker, whatever its crop geometry)."""
    state, _ = init_track(get_config(name), frame, box)
    assert (state.w, state.h) == (box[2], box[3])


SIDES = st.one_of(
    st.sampled_from([1e-40, 0.01, 1.0, 3.4e38, 1e12, 240.0, 320.0, 480.0, 640.0]), st.floats(width=32)
)
EDGES = st.one_of(st.sampled_from([0.0, -0.5, 319.0, -640.0]), st.floats(width=32))


@pytest.mark.parametrize("name", list_trackers())
@settings(max_examples=25, deadline=None, database=None)
@given(box=st.tuples(EDGES, EDGES, SIDES, SIDES), sign=st.sampled_from([0.0, 1.0, -1.0]))
def test_any_box_is_refused_or_tracked_into_a_bounded_finite_box(frame, name, box, sign):
    """Whatever the box, `init_track` refuses it with ValueError or starts a track whose next state, even
    from outputs far outside the model's range, is finite and within the init bounds (every family)."""
    config = get_config(name)
    try:
        state, _ = init_track(config, frame, box)
    except ValueError:
        return
    request = prepare_search(config, state, frame)
    outputs = neutral_outputs(config, request.crops.shape[0])
    if sign:
        outputs = tuple(np.full_like(o, sign * HUGE) for o in outputs)
    with np.errstate(all="ignore"):
        new_state, result = finish_search(config, state, request, outputs)
    assert np.isfinite(result.bbox).all() and np.isfinite([new_state.cx, new_state.cy]).all()
    # The init bounds in this 320x240 frame: sides in [1, twice the frame's], context region at most twice
    # the longer side.
    assert 1.0 <= new_state.w <= 640.0 and 1.0 <= new_state.h <= 480.0
    assert context_size(new_state.w, new_state.h, config.crop.context_amount) <= 640.0 * (1 + 1e-9)


@pytest.mark.parametrize("growth", [1.5, 1 / 1.5])
def test_siamfc_never_grows_or_shrinks_the_target_past_the_init_bounds(frame, growth):
    """SiamFC's size follows the winning scale without a clip (as in the reference): responses that
    always favour the largest (or smallest) scale would grow the target and its crops without end."""
    config = get_config("siamfc_alexnet")
    config = config.model_copy(
        update={"hyper": config.hyper.model_copy(update={"scale_step": growth, "scale_lr": 1.0})}
    )
    state, _ = init_track(config, frame, (150, 110, 20, 20))
    for _ in range(40):
        request = prepare_search(config, state, frame)
        responses = np.zeros(expected_output_shapes(config, request.crops.shape[0])[0], np.float32)
        responses[-1, 0, 8, 8] = 5.0  # the peak on the last scale's centre
        state, result = finish_search(config, state, request, (responses,))
        assert 1.0 <= state.w <= 2 * 320 and 1.0 <= state.h <= 2 * 240
        assert context_size(state.w, state.h, 0.5) <= 2 * 320 * (1 + 1e-9)
        assert result.bbox[2:] == pytest.approx((state.w, state.h))
    if growth > 1:  # grown until the context region reached twice the frame's longer side
        assert context_size(state.w, state.h, 0.5) == pytest.approx(2 * 320)
    else:
        assert (state.w, state.h) == (1.0, 1.0)
    # The search region follows the bounded context (search_size = context * instance / exemplar).
    assert state.search_size == pytest.approx(context_size(state.w, state.h, 0.5) * 255 / 127, rel=1e-3)


@pytest.mark.parametrize(
    ("bad_frame", "message"),
    [
        (np.zeros((10, 10), np.uint8), "HxWx3"),
        (np.zeros((10, 10, 4), np.uint8), "HxWx3"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        ([[0, 0, 0]], "numpy array"),
    ],
)
def test_bad_frames(bad_frame, message):
    with pytest.raises(ValueError, match=message):
        init_track(RPN, bad_frame, (1, 1, 5, 5))


def test_frame_size_must_not_change(frame):
    state, _ = init_track(RPN, frame, BOX)
    with pytest.raises(ValueError, match="320x240"):
        prepare_search(RPN, state, frame[:200])


def test_bad_outputs_and_stale_requests(frame):
    state, _ = init_track(RPN, frame, BOX)
    request = prepare_search(RPN, state, frame)
    cls, loc = neutral_outputs(RPN, 1)
    with pytest.raises(ValueError, match="2 outputs"):
        finish_search(RPN, state, request, (cls,))
    with pytest.raises(ValueError, match="must be"):
        finish_search(RPN, state, request, (cls[:, :4], loc))
    with pytest.raises(ValueError, match="non-finite"):
        finish_search(RPN, state, request, (cls, np.full_like(loc, np.nan)))
    next_state, _ = finish_search(RPN, state, request, (cls, loc))
    with pytest.raises(ValueError, match="frame 1"):
        finish_search(RPN, next_state, request, (cls, loc))
    with pytest.raises(ValueError, match="family"):
        finish_search(get_config("siamban_r50"), state, request, (cls, loc))


class FakeRunner:
    """Stands in for the two TorchScript stages: records what it gets, answers neutral outputs."""

    def __init__(self, config):
        self.config = config
        self.search_batches = []

    def template(self, crop_z, box_prior):
        assert crop_z.dtype == np.uint8 and box_prior.shape == (1, 2)
        return np.arange(8, dtype=np.float32)[None]

    def search(self, template_embedding, crop_x):
        self.search_batches.append(template_embedding)
        return neutral_outputs(self.config, crop_x.shape[0])


@pytest.mark.parametrize("name", list_trackers())
def test_offline_tracker_runs_every_registered_tracker(frame, name):
    config = get_config(name)
    runner = FakeRunner(config)
    results = OfflineTracker(config, runner).track_sequence([frame] * 3, BOX)
    assert [r.frame_index for r in results] == [0, 1, 2]
    assert results[0].bbox == BOX and results[0].score is None
    for result in results[1:]:
        assert result.score is not None
        assert all(math.isfinite(v) for v in result.bbox) and 0 <= result.score <= 1
    crops = 3 if config.family == "siamfc" else 1
    for embedding in runner.search_batches:
        np.testing.assert_array_equal(embedding, np.tile(np.arange(8, dtype=np.float32), (crops, 1)))


def test_track_before_init_fails(frame):
    with pytest.raises(RuntimeError, match="before init"):
        OfflineTracker(RPN, FakeRunner(RPN)).track(frame)
