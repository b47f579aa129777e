"""Embedded TorchScript backend: Contract-1 tensors, micro-batching, errors, close."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from siamstream_services.inference.backend import (
    BackendUnavailable,
    InferenceBackend,
    InferenceError,
    UnknownTracker,
)
from siamstream_services.inference.embedded import EmbeddedBackend
from tests.services.triton_fixtures import EMBEDDING_DIM, sample_inputs, write_test_package


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory):
    return write_test_package(tmp_path_factory.mktemp("package") / "tiny")


def reference_search(package, embedding: np.ndarray, crop_x: np.ndarray) -> tuple[np.ndarray, ...]:
    module = torch.jit.load(str(package.search_path))
    with torch.inference_mode():
        return tuple(o.numpy() for o in module(torch.from_numpy(embedding), torch.from_numpy(crop_x)))


async def test_template_and_search_follow_contract_1(package) -> None:
    backend = EmbeddedBackend([package])
    assert isinstance(backend, InferenceBackend)
    x = sample_inputs(rows=2, seed=1)
    embedding = await backend.template("tiny", x["crop_z"], x["box_prior"])
    assert embedding.dtype == np.float32 and embedding.shape == (2, EMBEDDING_DIM)
    cls, loc = await backend.search("tiny", embedding, x["crop_x"])
    assert cls.shape == (2, 2, 9, 9) and loc.shape == (2, 4, 9, 9)
    expected_cls, expected_loc = reference_search(package, embedding, x["crop_x"])
    np.testing.assert_array_equal(cls, expected_cls)
    np.testing.assert_array_equal(loc, expected_loc)
    assert await backend.ready()
    await backend.close()


async def test_concurrent_searches_are_batched_and_equal_single_calls(package) -> None:
    runs: list[tuple[str, str, int, int]] = []
    backend = EmbeddedBackend(
        [package], max_batch_rows=16, max_wait_ms=5.0, on_batch=lambda *run: runs.append(run)
    )
    calls = [sample_inputs(rows=1, seed=seed) for seed in range(8)]
    single = [await backend.search("tiny", c["template_embedding"], c["crop_x"]) for c in calls]
    assert len(runs) == 8
    runs.clear()

    batched = await asyncio.gather(
        *(backend.search("tiny", c["template_embedding"], c["crop_x"]) for c in calls)
    )

    assert 1 <= len(runs) < 8
    assert sum(rows for _, _, rows, _ in runs) == 8 and sum(n for _, _, _, n in runs) == 8
    assert {(tracker, stage) for tracker, stage, _, _ in runs} == {("tiny", "search")}
    for one, many in zip(single, batched, strict=True):
        for a, b in zip(one, many, strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-6)
    await backend.close()


async def test_a_lone_stream_is_not_made_to_wait_for_company(package) -> None:
    # With a minute's batching wait, a call that waited for company could not finish in 20 s.
    runs: list[int] = []
    backend = EmbeddedBackend(
        [package], max_wait_ms=60_000.0, on_batch=lambda _t, _s, _rows, calls: runs.append(calls)
    )
    x = sample_inputs(rows=1, seed=0)
    async with asyncio.timeout(20):
        for _ in range(3):
            await backend.search("tiny", x["template_embedding"], x["crop_x"])
    assert runs == [1, 1, 1]
    await backend.close()


async def test_once_calls_came_together_the_next_one_waits_for_company(package) -> None:
    runs: list[int] = []
    backend = EmbeddedBackend(
        [package], max_wait_ms=10_000.0, on_batch=lambda _t, _s, _rows, calls: runs.append(calls)
    )
    first, second = (sample_inputs(rows=1, seed=seed) for seed in (1, 2))
    await asyncio.gather(
        *(backend.search("tiny", x["template_embedding"], x["crop_x"]) for x in (first, second))
    )
    assert runs == [2]

    early = asyncio.create_task(backend.search("tiny", first["template_embedding"], first["crop_x"]))
    await asyncio.sleep(0.2)
    assert not early.done()  # waiting for a second call, as the last run had two
    async with asyncio.timeout(20):
        late = await backend.search("tiny", second["template_embedding"], second["crop_x"])
        await early
    assert runs == [2, 2]
    expected = reference_search(package, second["template_embedding"], second["crop_x"])
    np.testing.assert_allclose(late[0], expected[0], rtol=1e-6, atol=1e-6)
    await backend.close()


async def test_batches_never_exceed_max_rows(package) -> None:
    rows_seen: list[int] = []
    backend = EmbeddedBackend(
        [package], max_batch_rows=4, on_batch=lambda _t, _s, rows, _n: rows_seen.append(rows)
    )
    calls = [sample_inputs(rows=rows, seed=rows) for rows in (1, 3, 2, 2, 5)]
    outputs = await asyncio.gather(
        *(backend.search("tiny", c["template_embedding"], c["crop_x"]) for c in calls)
    )
    assert [o[0].shape[0] for o in outputs] == [1, 3, 2, 2, 5]
    assert sorted(rows_seen) == [4, 4, 5]  # 1+3, 2+2, and the oversized call alone
    await backend.close()


async def test_bad_inputs_fail_only_their_caller(package) -> None:
    backend = EmbeddedBackend([package], max_wait_ms=5.0)
    good = sample_inputs(rows=1, seed=0)
    wrong_dtype = good["crop_x"].astype(np.float32)
    results = await asyncio.gather(
        backend.search("tiny", good["template_embedding"], good["crop_x"]),
        backend.search("tiny", good["template_embedding"], wrong_dtype),
        backend.search("tiny", good["template_embedding"][:, :10], good["crop_x"]),
        return_exceptions=True,
    )
    assert isinstance(results[0], tuple)
    assert isinstance(results[1], InferenceError) and "uint8" in str(results[1])
    assert isinstance(results[2], InferenceError) and "shape" in str(results[2])
    with pytest.raises(UnknownTracker):
        await backend.search("nope", good["template_embedding"], good["crop_x"])
    await backend.close()


async def test_closed_backend_refuses_calls(package) -> None:
    backend = EmbeddedBackend([package])
    await backend.close()
    assert not await backend.ready()
    x = sample_inputs(rows=1, seed=0)
    with pytest.raises(BackendUnavailable):
        await backend.search("tiny", x["template_embedding"], x["crop_x"])


def test_missing_package_file_is_refused(tmp_path: Path) -> None:
    package = write_test_package(tmp_path / "tiny")
    package.search_path.unlink()
    with pytest.raises(ValueError, match=r"search\.pt"):
        EmbeddedBackend([package])
