"""Image-quality protocol of video super-resolution papers, made reusable.

- :func:`imresize`: MATLAB-compatible bicubic resampling (antialiased when shrinking), the
  degradation behind the "BI" inputs of published tables.
- :func:`degrade_bd`: the "BD" degradation (Gaussian blur sigma 1.6, 13x13, then every
  ``scale``-th pixel).
- :func:`rgb_to_y`, :func:`psnr_y`, :func:`ssim_y`: metrics on the Y channel
  (``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` on 0..255 RGB, kept as float).

Images are ``numpy`` arrays ``(H, W, 3)`` (or ``(H, W)``), ``uint8`` or float in 0..255
unless a function says otherwise.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB's bicubic kernel (a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def resize_matrix(n_in: int, n_out: int, antialias: bool = True) -> np.ndarray:
    """The ``(n_out, n_in)`` matrix of MATLAB's ``imresize`` bicubic along one axis.

    Same contributions as MATLAB: centres ``u = x / s + 0.5 (1 - 1 / s)`` (1-based),
    kernel widened by ``1 / s`` when shrinking with antialiasing, rows normalised to
    sum 1, symmetric (edge-repeating) boundary.

    Args:
        n_in: input length (>= 1).
        n_out: output length (>= 1).
        antialias: widen the kernel when shrinking (MATLAB's default).

    Returns:
        float64 array ``(n_out, n_in)``.
    """
    scale = n_out / n_in
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(scale * dist) if shrink else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric boundary: [1..n, n..1] repeated, as MATLAB's contributions().
    aux = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    idx0 = aux[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    mat = np.zeros((n_out, n_in), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(n_out), taps), idx0.ravel()), w.ravel())
    return mat


def imresize(image: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """Bicubic resize, as MATLAB's ``imresize(image, scale, 'bicubic')``.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` array, ``uint8`` or float.
        scale: factor applied to both sides (output side ``ceil(side * scale)``), or
        size: ``(H_out, W_out)``; exactly one of ``scale`` and ``size``.
        antialias: antialiased shrinking (MATLAB default).

    Returns:
        Same dtype as ``image``: ``uint8`` input gives rounded, saturated ``uint8`` (computed
        in float64, rounded once: bit-exact with MATLAB); float input gives float64.

    Raises:
        ValueError: neither or both of ``scale`` and ``size``, or an empty output.

    >>> imresize(np.full((8, 8), 7, np.uint8), 0.5).tolist() == np.full((4, 4), 7).tolist()
    True
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    h, w = image.shape[:2]
    if size is None:
        size = (math.ceil(h * scale), math.ceil(w * scale))
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"output size must be at least 1x1; got {size}")
    integer = image.dtype == np.uint8
    x = image.astype(np.float64)
    rows = resize_matrix(h, size[0], antialias)
    cols = resize_matrix(w, size[1], antialias)
    # MATLAB resizes the axis with the smaller scale first (rows first on ties).
    order = ("h", "w") if size[0] / h <= size[1] / w else ("w", "h")
    for axis in order:
        if axis == "h":
            x = np.tensordot(rows, x, axes=(1, 0))
        else:
            x = np.moveaxis(np.tensordot(cols, x, axes=(1, 1)), 0, 1)
    if integer:
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    return x


def gaussian_kernel(size: int = 13, sigma: float = 1.6) -> np.ndarray:
    """Normalised ``(size, size)`` Gaussian kernel (as MATLAB's ``fspecial('gaussian')``)."""
    r = (size - 1) / 2
    t = np.arange(size) - r
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma * sigma))
    return g / g.sum()


def degrade_bd(image: np.ndarray, scale: int = 4, sigma: float = 1.6, size: int = 13) -> np.ndarray:
    """BD degradation: Gaussian blur (reflect-101 border), then every ``scale``-th pixel from 0.

    Args:
        image: ``(H, W)`` or ``(H, W, C)``, ``uint8`` or float.

    Returns:
        ``(ceil(H / scale), ceil(W / scale)[, C])``: ``uint8`` (rounded) for ``uint8`` input,
        else float64.
    """
    import cv2

    k = gaussian_kernel(size, sigma)
    blurred = cv2.filter2D(image.astype(np.float64), -1, k, borderType=cv2.BORDER_REFLECT_101)
    out = blurred[::scale, ::scale]
    if image.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Y of BT.601 studio swing from RGB 0..255: ``(H, W, 3) -> (H, W)`` float64 in 16..235."""
    x = image.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _as_y(image: np.ndarray) -> np.ndarray:
    return rgb_to_y(image) if image.ndim == 3 else image.astype(np.float64)


def _y_pair(output: np.ndarray, reference: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 Y planes, ``crop`` pixels off each border; ValueError if shapes differ."""
    if output.shape != reference.shape:
        raise ValueError(f"shapes differ: {output.shape} vs {reference.shape}")
    a, b = _as_y(output), _as_y(reference)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return a, b


def psnr_y(output: np.ndarray, reference: np.ndarray, crop: int = 0) -> float:
    """PSNR on Y in dB (peak 255).

    Args:
        output, reference: ``(H, W, 3)`` RGB (0..255) or ``(H, W)`` Y planes, same shape.
        crop: pixels removed from each border before measuring.

    Raises:
        ValueError: shapes differ.
    """
    a, b = _y_pair(output, reference, crop)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 * 255.0 / mse)


def ssim_y(output: np.ndarray, reference: np.ndarray, crop: int = 0) -> float:
    """SSIM on Y: 11x11 Gaussian window, sigma 1.5, over the valid region (kornia.metrics).

    Args:
        output, reference: ``(H, W, 3)`` RGB (0..255) or ``(H, W)`` Y planes, same shape.
        crop: pixels removed from each border before measuring.

    Raises:
        ValueError: shapes differ.
    """
    import kornia
    import torch

    a, b = _y_pair(output, reference, crop)
    ta = torch.from_numpy(a)[None, None]
    tb = torch.from_numpy(b)[None, None]
    # padding="valid" matches the reference implementation, which drops a 5-pixel border.
    ssim_map = kornia.metrics.ssim(ta, tb, window_size=11, max_val=255.0, padding="valid")
    return float(ssim_map.mean())


def temporal_error_change(outputs: list[np.ndarray], references: list[np.ndarray]) -> float:
    """Temporal consistency: mean absolute change between consecutive frames' Y error maps.

    Lower is steadier (0 for a constant error). Needs at least two frames; returns 0 otherwise.
    """
    errors = [_as_y(o) - _as_y(r) for o, r in zip(outputs, references, strict=True)]
    if len(errors) < 2:
        return 0.0
    return float(np.mean([np.mean(np.abs(b - a)) for a, b in itertools.pairwise(errors)]))
