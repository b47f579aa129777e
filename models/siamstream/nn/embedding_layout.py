"""Template embeddings made of maps of different shapes: flattening and the inverse split.

The multi-level families store equal-shaped pieces (`network.flatten_pieces`). DCFNet and SiamCAN keep
pieces of several shapes (template maps of several backbone stages, kernels and channel-attention
vectors); these helpers lay them end to end in one float32 vector per stream (Contract 1) and cut them
back out, given the per-stream shape of every piece.
"""

import torch
from torch import Tensor


def piece_size(shape: list[int]) -> int:
    """Number of values of one stream's piece of `shape` (e.g. `[C, k, k]` or `[C]`)."""
    size = 1
    for dimension in shape:
        size *= dimension
    return size


def concat_pieces(pieces: list[Tensor]) -> Tensor:
    """Pieces [B, ...] of any shapes -> one float32 embedding [B, sum of piece sizes], pieces in order."""
    return torch.cat([piece.flatten(1) for piece in pieces], 1).float()


def split_pieces(embedding: Tensor, shapes: list[list[int]]) -> list[Tensor]:
    """Inverse of `concat_pieces`: [B, D] -> one [B, *shape] view per entry of `shapes` (per stream)."""
    pieces: list[Tensor] = []
    start = 0
    for shape in shapes:
        stop = start + piece_size(shape)
        # List concatenation, not `[batch, *shape]`: TorchScript cannot unpack a list of unknown length.
        pieces.append(embedding[:, start:stop].reshape([embedding.size(0)] + shape))  # noqa: RUF005
        start = stop
    return pieces
