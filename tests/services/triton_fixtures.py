"""Helpers for the inference tests: small Contract-1 tracker packages and a real Triton server.

The server is `siamstream_services.testing.triton`'s, run from the repository's `.triton-venv`. The
packages are tiny torch.jit.script-ed modules with exactly the real packages' signatures, so the backends
are tested without the real networks: template = conv + flatten (+ the box prior), search = depth-wise
correlation of each row's embedding with a conv of that row's crop, returning two outputs like
siamrpn/siamban. The service tests serve real packages from `cpu_test_triton` and read its
`inference_counts`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
import tritonclient.grpc as tritonclient
from torch import nn

from siamstream.cli.main import build_parser
from siamstream.config import CropConfig, Precision
from siamstream.package import (
    META_FILE,
    SEARCH_FILE,
    TEMPLATE_FILE,
    PackageMeta,
    TrackerPackage,
    WeightsOrigin,
    read_package,
)
from siamstream.registry import get_config
from siamstream_services.inference.triton_server import TritonServer, find_triton_install
from siamstream_services.testing import triton as launcher

REPO_ROOT = Path(__file__).resolve().parents[2]
TRITON_VENV = REPO_ROOT / ".triton-venv"

EXEMPLAR_SIZE = 15
INSTANCE_SIZE = 31
CHANNELS = 4
KERNEL = 7  # template feature side: (15 - 3) // 2 + 1
EMBEDDING_DIM = CHANNELS * KERNEL * KERNEL
STATS_LAG_S = 2.0


class TinyTemplate(nn.Module):
    """crop_z uint8[B,3,Z,Z], box_prior float32[B,2] -> float32[B,D]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, CHANNELS, 3, stride=2)

    def forward(self, crop_z: torch.Tensor, box_prior: torch.Tensor) -> torch.Tensor:
        features = self.conv(crop_z.float() / 255.0)
        scale = 1.0 + 0.01 * box_prior[:, :1]
        return features.flatten(1) * scale


class TinySearch(nn.Module):
    """template_embedding float32[B,D], crop_x uint8[B,3,X,X] -> (cls[B,2,S,S], loc[B,4,S,S])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, CHANNELS, 3, stride=2)
        self.cls = nn.Conv2d(CHANNELS, 2, 1)
        self.loc = nn.Conv2d(CHANNELS, 4, 1)
        self.channels = CHANNELS
        self.kernel = KERNEL

    def forward(
        self, template_embedding: torch.Tensor, crop_x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        groups = crop_x.shape[0] * self.channels
        search = self.conv(crop_x.float() / 255.0)
        kernel = template_embedding.reshape(groups, 1, self.kernel, self.kernel)
        search = search.reshape(1, groups, search.shape[2], search.shape[3])
        correlated = nn.functional.conv2d(search, kernel, groups=groups)
        correlated = correlated.reshape(
            crop_x.shape[0], self.channels, correlated.shape[2], correlated.shape[3]
        )
        return self.cls(correlated), self.loc(correlated)


def write_test_package(directory: Path, tracker: str = "tiny", seed: int = 0) -> TrackerPackage:
    """Write a Contract-2 package (template.pt, search.pt, package.json) and read it back.

    The config is a registered tracker's with this package's crop sizes; the backends read only the crop
    sizes, the embedding dim and the output names from it.
    """
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    torch.jit.script(TinyTemplate().eval()).save(str(directory / TEMPLATE_FILE))
    torch.jit.script(TinySearch().eval()).save(str(directory / SEARCH_FILE))
    config = get_config("siamrpn_alex").model_copy(
        update={"name": tracker, "crop": CropConfig(exemplar_size=EXEMPLAR_SIZE, instance_size=INSTANCE_SIZE)}
    )
    meta = PackageMeta(
        tracker=tracker,
        config=config,
        precision=Precision.FP32,
        embedding_dim=EMBEDDING_DIM,
        search_outputs=("cls", "loc"),
        source=WeightsOrigin(path="", sha256=""),
        torch_version=torch.__version__,
        created="2025-01-01T00:00:00+00:00",
    )
    (directory / META_FILE).write_text(meta.model_dump_json(indent=2))
    return read_package(directory)


def sample_inputs(rows: int, seed: int) -> dict[str, np.ndarray]:
    """Random crops, box priors and embeddings with the test package's shapes."""
    rng = np.random.default_rng(seed)
    return {
        "crop_z": rng.integers(0, 256, (rows, 3, EXEMPLAR_SIZE, EXEMPLAR_SIZE), dtype=np.uint8),
        "box_prior": rng.uniform(10, 60, (rows, 2)).astype(np.float32),
        "template_embedding": rng.standard_normal((rows, EMBEDDING_DIM)).astype(np.float32),
        "crop_x": rng.integers(0, 256, (rows, 3, INSTANCE_SIZE, INSTANCE_SIZE), dtype=np.uint8),
    }


def triton_missing_reason() -> str | None:
    """Why the Triton tests cannot run here, or None when TRITON_VENV holds the tritonserver binary."""
    return launcher.triton_missing_reason(TRITON_VENV)


def make_triton_server(model_repository: Path, work_dir: Path) -> TritonServer:
    """A TritonServer from TRITON_VENV on free loopback ports (not started)."""
    return launcher.loopback_triton(find_triton_install(TRITON_VENV), model_repository, work_dir)


@contextmanager
def cpu_test_triton(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A started tritonserver on the CPU test repository of `package` (batch 4: short warm-ups), written
    by `siamstream triton-repository`; stopped on exit."""
    repository = tmp_path_factory.mktemp("repository")
    argv = ["triton-repository", "--package", str(package), "--out", str(repository)]
    args = build_parser().parse_args([*argv, "--form", "cpu-test", "--max-batch", "4"])
    assert args.run(args) == 0
    with make_triton_server(repository, tmp_path_factory.mktemp("triton")) as server:
        yield server


def inference_counts(triton: TritonServer, models: Sequence[str], at_least: Sequence[int]) -> list[int]:
    """Inferences each model has run, read again for up to STATS_LAG_S until each has run `at_least`
    (Triton counts just after answering)."""
    client = tritonclient.InferenceServerClient(triton.grpc_url)
    deadline = time.monotonic() + STATS_LAG_S
    try:
        while True:
            counts = [client.get_inference_statistics(m).model_stats[0].inference_count for m in models]
            if all(c >= a for c, a in zip(counts, at_least, strict=True)) or time.monotonic() > deadline:
                return counts
            time.sleep(0.05)
    finally:
        client.close()
