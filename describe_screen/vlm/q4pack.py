"""MatMulNBits' 4-bit block-32 weights in the layout of our own kernel (native/q4.h), the same numbers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BLOCK = 32
GROUP = 16  # columns per group: one 512-bit register of int32 sums


def pack(b: np.ndarray, scales: np.ndarray, zeros: np.ndarray | None, n: int, k: int):
    """(w, s, z) for native/q4.h from MatMulNBits' B [n, k/32, 16] (two weights a byte, low nibble first),
    scales [n * k/32] and zero points (n rows of k/32 nibbles, low first, rows padded to a byte; None: 8)."""
    import numpy as np

    blocks, groups = k // BLOCK, n // GROUP
    weights = np.empty((n, blocks, BLOCK), np.uint8)
    weights[:, :, 0::2] = b.reshape(n, blocks, BLOCK // 2) & 15
    weights[:, :, 1::2] = b.reshape(n, blocks, BLOCK // 2) >> 4
    # [g, lane, b, c, half, i] -> [g, b, c, lane, i] with the two halves as low and high nibbles
    quads = weights.reshape(groups, GROUP, blocks, 4, 2, 4).transpose(0, 2, 3, 1, 4, 5)
    w = (quads[..., 0, :] | (quads[..., 1, :] << 4)).astype(np.uint8).reshape(groups, blocks, 256)
    s = np.ascontiguousarray(scales.reshape(groups, GROUP, blocks).transpose(0, 2, 1), np.float32)
    if zeros is None:
        z = np.full((groups, blocks, GROUP), 8, np.uint8)
    else:
        row = zeros.reshape(n, -1)
        nibbles = np.stack([row & 15, row >> 4], axis=-1).reshape(n, -1)[:, :blocks]
        z = np.ascontiguousarray(nibbles.reshape(groups, GROUP, blocks).transpose(0, 2, 1), np.uint8)
    return w, s, z
