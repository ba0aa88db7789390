"""CPU kernels of ``--temporal``'s blend, compiled by Numba.

On the CPU the blend is bound by passes over memory at the output resolution: torch's
luma, gate and blend each walk the three planes again with an allocation of their own.
Here the luma of a frame is one pass, and the blend with its gate and the luma of its
result (the next frame's flow input) is another. They compute what
:func:`~vsr.methods.temporal.luma_u8` and :meth:`~vsr.methods.temporal.Temporal.blend`'s
torch path compute, which stays the path off the CPU and the reference the tests hold
these to. Compiled on first use and cached beside this module (``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np

# BT.601, as misr's luma (vsr.methods.temporal._LUMA).
_R, _G, _B = np.float32(0.299), np.float32(0.587), np.float32(0.114)


@numba.njit(inline="always")
def _to_u8(y: float) -> np.uint8:
    """Intensity in [0, 1] -> uint8, rounded half to even and clamped (torch's ``round_().clamp_()``)."""
    v = np.rint(y * np.float32(255))
    if not v > 0:  # NaN too
        return np.uint8(0)
    if v > 255:
        return np.uint8(255)
    return np.uint8(v)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def luma_u8(rgb: np.ndarray, out: np.ndarray) -> None:
    """BT.601 luma of ``(3, H, W)`` float32 RGB in [0, 1] (any strides) into ``(H, W)`` uint8 ``out``."""
    h, w = out.shape
    for y in range(h):
        for x in range(w):
            out[y, x] = _to_u8(_R * rgb[0, y, x] + _G * rgb[1, y, x] + _B * rgb[2, y, x])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def blend(current: np.ndarray, warped: np.ndarray, gate: np.ndarray, low_gate: np.ndarray, strength: float,
          out: np.ndarray, luma: np.ndarray) -> None:
    """``out = current + strength * gate * low_gate * (warped - current)`` and its uint8 luma.

    Args:
        current, warped: ``(3, H, W)`` float32, any strides (planar or interleaved).
        gate, low_gate: ``(H, W)`` float32 in [0, 1].
        strength: weight of ``warped`` where both gates are 1.
        out: ``(3, H, W)`` float32, any strides, written.
        luma: ``(H, W)`` uint8, written: :func:`luma_u8` of ``out``.
    """
    h, w = luma.shape
    s = np.float32(strength)
    for y in range(h):
        for x in range(w):
            k = s * gate[y, x] * low_gate[y, x]
            r = current[0, y, x] + k * (warped[0, y, x] - current[0, y, x])
            g = current[1, y, x] + k * (warped[1, y, x] - current[1, y, x])
            b = current[2, y, x] + k * (warped[2, y, x] - current[2, y, x])
            out[0, y, x] = r
            out[1, y, x] = g
            out[2, y, x] = b
            luma[y, x] = _to_u8(_R * r + _G * g + _B * b)
