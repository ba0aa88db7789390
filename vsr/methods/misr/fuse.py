"""Fusion of aligned low-resolution samples onto the high-resolution grid (torch, CPU or CUDA).

1. Kernel regression: every low-resolution sample is splatted at its sub-pixel position on
   the high-resolution grid and the splats are normalised by a Gaussian (normalised
   convolution). Each sample carries a weight: flow confidence times robustness (computed
   with the flow, see :func:`vsr.methods.misr.flow.robustness`). Where the weights are thin
   the estimate falls back smoothly to bicubic interpolation of the reference.
2. Back-projection: a few steepest-descent steps on a robust multi-frame data term
   (quadratic for the reference, Lorentzian for the neighbours) through the imaging model ``sample(blur(X))`` plus a bilateral-TV prior
   (Farsiu et al. 2004). The blur is the point-spread function of the degradation: MATLAB's
   antialiased bicubic (the "BI" model) or a Gaussian (the "BD" model, or a camera).

Coordinates: low-resolution pixel ``q`` sits at high-resolution coordinate ``q * s + offset``,
with ``offset = (s - 1) / 2`` for a centred grid (bicubic resize) and 0 for decimation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Psf:
    """Separable point-spread function on the high-resolution grid.

    The blurred image ``B`` stored at index ``y`` is the value of the continuous blur at
    ``y + delta``: ``B[y] = sum_j taps[j] * X[y + start + j]``.

    Attributes:
        taps: 1-D weights summing to 1.
        start: offset of ``taps[0]``.
        delta: sub-pixel shift of the stored grid (0 or 0.5).
        offset: high-resolution coordinate of low-resolution pixel 0.
    """

    taps: tuple[float, ...]
    start: int
    delta: float
    offset: float


def _cubic(x: float) -> float:
    ax = abs(x)
    if ax <= 1:
        return 1.5 * ax**3 - 2.5 * ax**2 + 1
    if ax <= 2:
        return -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return 0.0


def make_psf(kind: str, scale: int, sigma: float = 1.6) -> Psf:
    """Point-spread function of a degradation.

    Args:
        kind: ``"bicubic"``: MATLAB's antialiased bicubic shrink, centred grid (BI inputs);
            ``"gaussian"``: Gaussian of ``sigma`` high-resolution pixels, 13x13 at most, then
            every ``scale``-th pixel from 0 (BD inputs).
        scale: integer factor.
        sigma: Gaussian standard deviation in high-resolution pixels.

    Raises:
        ValueError: unknown kind.
    """
    if kind == "bicubic":
        offset = (scale - 1) / 2
        delta = offset - math.floor(offset)
        lo = math.ceil(delta - 2 * scale)
        hi = math.floor(delta + 2 * scale)
        weights = [_cubic((delta - t) / scale) for t in range(lo, hi + 1)]
        while weights and weights[0] == 0:
            weights.pop(0)
            lo += 1
        while weights and weights[-1] == 0:
            weights.pop()
        total = sum(weights)
        return Psf(tuple(w / total for w in weights), lo, delta, offset)
    if kind == "gaussian":
        radius = min(6, max(1, math.ceil(3 * sigma)))
        weights = [math.exp(-t * t / (2 * sigma * sigma)) for t in range(-radius, radius + 1)]
        total = sum(weights)
        return Psf(tuple(w / total for w in weights), -radius, 0.0, 0.0)
    raise ValueError(f"unknown psf {kind!r}")


def _symmetric_index(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    i = torch.arange(-before, n + after, device=device)
    i = torch.where(i < 0, -i - 1, i)
    i = torch.where(i >= n, 2 * n - 1 - i, i)
    return i.clamp(0, n - 1)


def _pad(x: torch.Tensor, dim: int, before: int, after: int, symmetric: bool) -> torch.Tensor:
    if symmetric:
        return x.index_select(dim, _symmetric_index(x.shape[dim], before, after, x.device))
    return F.pad(x, (before, after) if dim == 2 else (0, 0, before, after))


def correlate(x: torch.Tensor, taps: torch.Tensor, start: int, symmetric: bool = True) -> torch.Tensor:
    """Separable correlation of ``(C, H, W)`` images: ``out[y] = sum_j taps[j] x[y + start + j]`` on both axes.

    Args:
        x: ``(C, H, W)`` float.
        taps: ``(L,)`` weights, same dtype and device as ``x``.
        start: offset of ``taps[0]``.
        symmetric: edge-repeating mirror border (MATLAB's); otherwise zeros.

    Returns:
        ``(C, H, W)``.
    """
    _, h, w = x.shape
    before, after = max(0, -start), max(0, start + taps.numel() - 1)
    o = before + start
    weights = taps.tolist()
    # Shifted slices, not conv2d: a one-channel 1-D convolution is a poor fit for torch's
    # CPU convolution kernels; L multiply-adds over the image are memory-bound and fast.
    xp = _pad(x, 2, before, after, symmetric)
    y = xp[:, :, o: o + w] * weights[0]
    for j in range(1, len(weights)):
        y.add_(xp[:, :, o + j: o + j + w], alpha=weights[j])
    yp = _pad(y, 1, before, after, symmetric)
    out = yp[:, o: o + h] * weights[0]
    for j in range(1, len(weights)):
        out.add_(yp[:, o + j: o + j + h], alpha=weights[j])
    return out


class Blur:
    """A :class:`Psf` as an operator on ``(C, H, W)`` tensors, with its adjoint."""

    def __init__(self, psf: Psf, device: torch.device, dtype: torch.dtype) -> None:
        self.psf = psf
        self.taps = torch.tensor(psf.taps, device=device, dtype=dtype)
        self.flipped = self.taps.flip(0)
        self.end = psf.start + len(psf.taps) - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return correlate(x, self.taps, self.psf.start, symmetric=True)

    def adjoint(self, x: torch.Tensor) -> torch.Tensor:
        return correlate(x, self.flipped, -self.end, symmetric=False)


class Bilinear:
    """Bilinear sampling of ``(C, H, W)`` images at fixed points, and its transpose (splatting).

    Args:
        x, y: ``(M,)`` float coordinates in pixels of the ``(H, W)`` grid (clamped to it).
        size: ``(H, W)``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> None:
        h, w = size
        self.size = size
        x0 = x.floor().clamp(0, max(w - 2, 0))
        y0 = y.floor().clamp(0, max(h - 2, 0))
        fx = (x - x0).clamp(0, 1)
        fy = (y - y0).clamp(0, 1)
        base = (y0 * w + x0).long()
        dx, dy = (1 if w > 1 else 0), (w if h > 1 else 0)
        self.index = torch.cat([base, base + dx, base + dy, base + dy + dx])
        gx, gy = 1 - fx, 1 - fy
        self.weight = torch.cat([gx * gy, fx * gy, gx * fy, fx * fy])
        self.m = x.numel()

    def sample(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` -> ``(C, M)``."""
        flat = image.reshape(image.shape[0], -1)
        return (flat.index_select(1, self.index) * self.weight).view(image.shape[0], 4, self.m).sum(1)

    def splat(self, values: torch.Tensor) -> torch.Tensor:
        """``(C, M)`` -> ``(C, H, W)``: the transpose of :meth:`sample`."""
        c = values.shape[0]
        out = values.new_zeros(c, self.size[0] * self.size[1])
        out.index_add_(1, self.index, (values.repeat(1, 4) * self.weight))
        return out.view(c, *self.size)


@dataclass(frozen=True)
class FuseConfig:
    """Numerical settings of :func:`fuse` (see ``MisrParams`` for their meaning)."""

    scale: int
    psf: Psf
    kr_sigma: float = 0.6
    fallback: float = 0.5
    iterations: int = 10
    step: float = 2.0
    data_scale: float = 0.05
    btv_weight: float = 0.001
    btv_alpha: float = 0.7
    btv_radius: int = 1


def gaussian_taps(sigma: float, device: torch.device, dtype: torch.dtype,
                  shift: float = 0.0) -> tuple[torch.Tensor, int]:
    """Normalised Gaussian taps over +-3 sigma (at least +-1) and their start offset.

    With ``shift``, tap ``t`` weighs ``G(t + shift)``: correlating an image stored on a grid
    shifted by ``shift`` gives the Gaussian-smoothed image back on the unshifted grid.
    """
    radius = max(1, math.ceil(3 * sigma + abs(shift)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype) + shift
    g = torch.exp(-t * t / (2 * sigma * sigma))
    return g / g.sum(), -radius


def upsample(image: torch.Tensor, scale: int, offset: float) -> torch.Tensor:
    """Bicubic interpolation of ``(C, h, w)`` onto the ``(C, s h, s w)`` grid of ``offset``.

    A centred grid (``offset == (s - 1) / 2``) is the usual half-pixel resize.
    """
    _, h, w = image.shape
    if abs(offset - (scale - 1) / 2) < 1e-6:
        return F.interpolate(image[None], scale_factor=scale, mode="bicubic", align_corners=False)[0]
    ys = (torch.arange(h * scale, device=image.device, dtype=image.dtype) - offset) / scale
    xs = (torch.arange(w * scale, device=image.device, dtype=image.dtype) - offset) / scale
    gy = 2 * ys / max(h - 1, 1) - 1
    gx = 2 * xs / max(w - 1, 1) - 1
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]
    return F.grid_sample(image[None], grid, mode="bicubic", padding_mode="border", align_corners=True)[0]


@dataclass
class FuseResult:
    """Output of :func:`fuse`.

    Attributes:
        image: ``(C, s h, s w)`` fused planes.
        evidence: ``(s h, s w)`` aligned observations supporting each pixel (1 = one frame's worth).
    """

    image: torch.Tensor
    evidence: torch.Tensor


def fuse(frames: torch.Tensor, pos: torch.Tensor, conf: torch.Tensor, cfg: FuseConfig) -> FuseResult:
    """Fuse aligned low-resolution planes into one high-resolution image of the reference.

    Args:
        frames: ``(K, C, h, w)`` float planes of the distinct frames, reference first.
        pos: ``(K, h, w, 2)`` float positions ``(x, y)`` of each pixel in the reference grid.
        conf: ``(K, h, w)`` weight of each sample in [0, 1] (flow confidence x robustness).
        cfg: numerical settings.

    Returns:
        :class:`FuseResult` in ``frames.dtype``; the arithmetic is float32.
    """
    _, c, h, w = frames.shape
    s = cfg.scale
    hs, ws = h * s, w * s
    dev, dtype = frames.device, frames.dtype
    psf = cfg.psf
    pos = pos.to(dev, torch.float32)
    conf = conf.to(dev, torch.float32)

    weight = conf.reshape(-1)
    values = frames.float().permute(1, 0, 2, 3).reshape(c, -1)
    hx = pos[..., 0].reshape(-1) * s + psf.offset
    hy = pos[..., 1].reshape(-1) * s + psf.offset
    fallback = upsample(frames[0].float(), s, psf.offset)

    # Samples are placed once, on the grid of the blurred image (shifted by ``delta``); kernel
    # regression undoes that shift in its Gaussian taps.
    at_blurred = Bilinear(hx - psf.delta, hy - psf.delta, (hs, ws))
    taps, start = gaussian_taps(cfg.kr_sigma * s, dev, torch.float32, shift=psf.delta)
    splat_w = at_blurred.splat(weight[None])
    num = correlate(at_blurred.splat(values * weight), taps, start, symmetric=False)
    den = correlate(splat_w, taps, start, symmetric=False)[0]
    evidence = den * (s * s)
    x = (num * (s * s) + cfg.fallback * fallback) / (evidence + cfg.fallback)

    if cfg.iterations > 0:
        blur = Blur(psf, dev, torch.float32)
        # Per-pixel normaliser of the data gradient (a Jacobi-like preconditioner), floored so
        # that pixels no sample sees are left to the prior and the fallback.
        norm = blur.adjoint(splat_w)[0]
        norm = norm + 0.5 / (s * s)
        btv = _btv_offsets(cfg.btv_radius, cfg.btv_alpha)
        for _ in range(cfg.iterations):
            residual = at_blurred.sample(blur(x)) - values
            # The reference's own samples are trusted (quadratic); a neighbour's sample stops
            # pulling once its residual is well beyond ``data_scale`` (Lorentzian, redescending),
            # so misaligned samples the robustness test let through do not print ghosts.
            psi = residual / (1 + (residual / cfg.data_scale) ** 2)
            psi[:, : h * w] = residual[:, : h * w]
            grad = blur.adjoint(at_blurred.splat(psi * weight)) / norm
            if cfg.btv_weight > 0:
                grad = grad + cfg.btv_weight * _btv_gradient(x, btv)
            x = x - cfg.step * grad
    return FuseResult(x.to(dtype), evidence.to(dtype))


def _btv_offsets(radius: int, alpha: float) -> list[tuple[int, int, float]]:
    """Half-plane shifts ``(dy, dx, alpha ** (|dy| + |dx|))`` of the bilateral-TV prior."""
    out = []
    for dy in range(radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx <= 0:
                continue
            out.append((dy, dx, alpha ** (abs(dy) + abs(dx))))
    return out


def _btv_gradient(x: torch.Tensor, offsets: list[tuple[int, int, float]]) -> torch.Tensor:
    """Gradient of ``sum alpha^(|l|+|m|) |X - S^l_y S^m_x X|_1`` (replicated borders)."""
    _, h, w = x.shape
    r = max(max(abs(dy), abs(dx)) for dy, dx, _ in offsets)
    xp = F.pad(x[None], (r, r, r, r), mode="replicate")[0]
    grad = torch.zeros_like(x)
    for dy, dx, a in offsets:
        d = torch.sign(x - xp[:, r + dy: r + dy + h, r + dx: r + dx + w])
        dp = F.pad(d, (r, r, r, r))
        grad += a * (d - dp[:, r - dy: r - dy + h, r - dx: r - dx + w])
    return grad
