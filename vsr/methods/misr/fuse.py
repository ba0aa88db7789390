"""Fusion of aligned low-resolution samples onto the high-resolution grid (torch, CPU or CUDA).

1. Kernel regression: every low-resolution sample is splatted at its sub-pixel position on
   the high-resolution grid and the splats are normalised by a Gaussian (normalised
   convolution). Each sample carries a weight: flow confidence times robustness (computed
   with the flow, see :func:`vsr.methods.misr.flow.robustness`). Where the weights are thin
   the estimate falls back smoothly to bicubic interpolation of the reference.
2. Back-projection: a few steepest-descent steps on a robust multi-frame data term
   (quadratic for the reference, Lorentzian for the neighbours, its scale narrowing from step
   to step) through the imaging model ``sample(blur(X))`` plus a bilateral-TV prior
   (Farsiu et al. 2004). The blur is the point-spread function of the degradation: MATLAB's
   antialiased bicubic (the "BI" model) or a Gaussian (the "BD" model, or a camera).

Coordinates: low-resolution pixel ``q`` sits at high-resolution coordinate ``q * s + offset``,
with ``offset = (s - 1) / 2`` for a centred grid (bicubic resize) and 0 for decimation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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

    Float32 CPU tensors go through :func:`.kernels.correlate` (one compiled pass a row, half
    the CPU of OpenCV's separable filter here); elsewhere :func:`_correlate_torch`.

    Args:
        x: ``(C, H, W)`` float.
        taps: ``(L,)`` weights, same dtype and device as ``x``.
        start: offset of ``taps[0]``.
        symmetric: edge-repeating mirror border (MATLAB's); otherwise zeros.

    Returns:
        ``(C, H, W)``.
    """
    if x.device.type == "cpu" and x.dtype == torch.float32:
        from vsr.methods.misr import kernels

        x = x.contiguous()
        out = torch.empty_like(x)
        kernels.correlate(x.numpy(), taps.contiguous().numpy(), start, symmetric, out.numpy())
        return out
    return _correlate_torch(x, taps, start, symmetric)


def _correlate_torch(x: torch.Tensor, taps: torch.Tensor, start: int, symmetric: bool) -> torch.Tensor:
    """:func:`correlate` with torch operations, on any device and dtype."""
    _, h, w = x.shape
    before, after = max(0, -start), max(0, start + taps.numel() - 1)
    o = before + start
    weights = taps.tolist()
    # Shifted slices, not conv2d: a one-channel 1-D convolution is a poor fit for torch's
    # convolution kernels; L multiply-adds over the image are memory-bound and fast on a GPU.
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

    Sampling is ``grid_sample`` and splatting its input gradient: both are vectorised kernels on
    CUDA, several times faster than gathering and scattering by index. The path on CUDA, and the
    reference of :class:`CompiledBilinear`, which is faster on the CPU.

    Args:
        x, y: ``(K, h, w)`` float coordinates in pixels of the ``(H, W)`` grid (clamped to it).
        size: ``(H, W)``.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> None:
        h, w = size
        self.size = size
        self.shape = tuple(x.shape)
        # align_corners=True puts pixel i at -1 + 2 i / (n - 1); border padding clamps.
        gx = x.float() * (2.0 / max(w - 1, 1)) - 1 if w > 1 else torch.zeros_like(x, dtype=torch.float32)
        gy = y.float() * (2.0 / max(h - 1, 1)) - 1 if h > 1 else torch.zeros_like(y, dtype=torch.float32)
        k, hh, ww = self.shape
        self.grid = torch.stack([gx, gy], dim=-1).reshape(1, k * hh, ww, 2)

    def sample(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` -> ``(C, K, h, w)``."""
        out = F.grid_sample(image[None].float(), self.grid, mode="bilinear", padding_mode="border",
                            align_corners=True)[0]
        return out.view(image.shape[0], *self.shape)

    def splat(self, values: torch.Tensor) -> torch.Tensor:
        """``(C, K, h, w)`` -> ``(C, H, W)``: the transpose of :meth:`sample`."""
        c = values.shape[0]
        shape_only = values.new_empty(1, c, *self.size)  # only its shape is read
        grad = values.reshape(1, c, -1, self.shape[2]).float()
        # grid_sample's input gradient is exactly the adjoint of bilinear sampling
        # (interpolation 0 = bilinear, padding 1 = border).
        out = torch.ops.aten.grid_sampler_2d_backward(grad, shape_only, self.grid, 0, 1, True, [True, False])[0]
        return out[0]

    def robust_splat(self, image: torch.Tensor, values: torch.Tensor, weight: torch.Tensor,
                     inv_scale2: float, quant: float, ref: LatticeSamples | None = None) -> torch.Tensor:
        """``splat(weight * psi(sample(image) - values))``: the robust data term's gradient.

        ``psi(r) = r / (1 + r^2 inv_scale2)`` (the Lorentzian's influence), after the dead
        zone ``softshrink(r, quant)`` when ``quant > 0``. With ``ref``, the reference's
        residual on its lattice (:meth:`LatticeSamples.residual`) is added on top.

        Args:
            image: ``(C, H, W)``.
            values: ``(C, K, h, w)`` observed samples.
            weight: ``(1, K, h, w)`` or ``(C, K, h, w)``.
            ref: the reference's samples on ``image``'s grid, or ``None``.

        Returns:
            ``(C, H, W)``.
        """
        residual = self.sample(image).sub_(values)
        if quant > 0:
            residual = F.softshrink(residual, quant)
        psi = residual.mul(residual).mul_(inv_scale2).add_(1)
        out = self.splat(residual.div_(psi).mul_(weight))
        if ref is not None:
            ref.lattice.sample(out).add_(ref.residual(image, quant))  # the lattice is a view: adds in place
        return out


class CompiledBilinear:
    """:class:`Bilinear` on the CPU through compiled loops (:mod:`.kernels`), same interface.

    The taps of every point are found once; :meth:`robust_splat` samples, forms the robust
    residual and splats it in one pass, about three times faster than ``grid_sample``, its
    input gradient and the elementwise steps between them. Float32 CPU tensors; the grid
    must be at least 2 x 2.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> None:
        from vsr.methods.misr import kernels

        h, w = size
        if h < 2 or w < 2:
            raise ValueError(f"CompiledBilinear needs a grid of at least 2 x 2; got {size}")
        self.size = size
        self.shape = tuple(x.shape)
        px = x.float().contiguous().view(-1).numpy()
        py = y.float().contiguous().view(-1).numpy()
        self.first = np.empty(px.size, np.int64)
        self.fx = np.empty(px.size, np.float32)
        self.fy = np.empty(px.size, np.float32)
        kernels.bilinear_corners(px, py, w, h, self.first, self.fx, self.fy)
        self.kernels = kernels

    def _flat(self, t: torch.Tensor, c: int) -> np.ndarray:
        return t.float().contiguous().view(c, -1).numpy()

    def _check(self, name: str, t: torch.Tensor, shape: tuple[int, ...], channels: tuple[int, ...]) -> None:
        # The compiled loops do not check bounds: a wrong shape would read past the buffers.
        if tuple(t.shape[1:]) != shape or t.shape[0] not in channels:
            raise ValueError(f"CompiledBilinear: {name} of shape {tuple(t.shape)} does not fit "
                             f"({'|'.join(map(str, channels))}, {', '.join(map(str, shape))})")

    def sample(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` -> ``(C, K, h, w)``."""
        c = image.shape[0]
        self._check("image", image, self.size, (c,))
        out = torch.empty(c, *self.shape)
        self.kernels.sample(self._flat(image, c), self.first, self.fx, self.fy, self.size[1], out.view(c, -1).numpy())
        return out

    def splat(self, values: torch.Tensor) -> torch.Tensor:
        """``(C, K, h, w)`` -> ``(C, H, W)``: the transpose of :meth:`sample`."""
        c = values.shape[0]
        self._check("values", values, self.shape, (c,))
        out = torch.zeros(c, *self.size)
        self.kernels.splat(self._flat(values, c), self.first, self.fx, self.fy, self.size[1], out.view(c, -1).numpy())
        return out

    def robust_splat(self, image: torch.Tensor, values: torch.Tensor, weight: torch.Tensor,
                     inv_scale2: float, quant: float, ref: LatticeSamples | None = None) -> torch.Tensor:
        """See :meth:`Bilinear.robust_splat`."""
        c = image.shape[0]
        self._check("image", image, self.size, (c,))
        self._check("values", values, self.shape, (c,))
        self._check("weight", weight, self.shape, (1, c))
        if ref is None:
            first, step, lattice_values, lattice_weight = 0, 1, torch.empty(c, 0, 0), torch.empty(1, 0, 0)
        else:
            lattice, lattice_values, lattice_weight = ref.lattice, ref.values, ref.weight
            first, step = lattice.first, lattice.scale
            if lattice.size != self.size:
                raise ValueError(f"CompiledBilinear: the reference's lattice is on a {lattice.size} grid, "
                                 f"the samples on {self.size}")
            self._check("lattice values", lattice_values, lattice.low, (c,))
            self._check("lattice weight", lattice_weight, lattice.low, (1, c))
            if first < 0 or first + step * (lattice.low[0] - 1) >= self.size[0] \
                    or first + step * (lattice.low[1] - 1) >= self.size[1]:
                raise ValueError(f"CompiledBilinear: lattice {lattice.low} from {first} by {step} leaves {self.size}")
        out = torch.zeros(c, *self.size)
        self.kernels.robust_splat(self._flat(image, c), self.first, self.fx, self.fy, self.size[1],
                                  self._flat(values, c), self._flat(weight, weight.shape[0]), inv_scale2, quant,
                                  first, step, lattice_values.float().contiguous().numpy(),
                                  lattice_weight.float().contiguous().numpy(), out.view(c, -1).numpy())
        return out


def bilinear(x: torch.Tensor, y: torch.Tensor, size: tuple[int, int]) -> Bilinear | CompiledBilinear:
    """The faster of :class:`Bilinear` and :class:`CompiledBilinear` for these points (same arguments)."""
    if x.device.type == "cpu" and min(size) >= 2:
        return CompiledBilinear(x, y, size)
    return Bilinear(x, y, size)


class Lattice:
    """The reference's samples: low-resolution pixel ``(i, j)`` sits exactly on high-resolution
    pixel ``(o + s i, o + s j)``, so sampling is a strided view and splatting fills a zero grid.

    Args:
        first: ``o``, the high-resolution index of low-resolution pixel 0.
        scale: ``s``.
        low: ``(h, w)``.
        size: ``(H, W)`` of the high-resolution grid.
    """

    def __init__(self, first: int, scale: int, low: tuple[int, int], size: tuple[int, int]) -> None:
        self.first, self.scale, self.low, self.size = first, scale, low, size

    def _view(self, image: torch.Tensor) -> torch.Tensor:
        o, s = self.first, self.scale
        h, w = self.low
        return image[:, o: o + s * (h - 1) + 1: s, o: o + s * (w - 1) + 1: s]

    def sample(self, image: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` -> ``(C, h, w)``."""
        return self._view(image)

    def splat(self, values: torch.Tensor) -> torch.Tensor:
        """``(C, h, w)`` -> ``(C, H, W)``: the transpose of :meth:`sample`."""
        out = values.new_zeros(values.shape[0], *self.size)
        self._view(out).copy_(values)
        return out


@dataclass(frozen=True)
class LatticeSamples:
    """The reference's samples on its :class:`Lattice`, with their weights.

    Attributes:
        lattice: where they sit on the high-resolution grid.
        values: ``(C, h, w)`` the samples.
        weight: ``(1, h, w)`` or ``(C, h, w)``.
    """

    lattice: Lattice
    values: torch.Tensor
    weight: torch.Tensor

    def residual(self, image: torch.Tensor, quant: float) -> torch.Tensor:
        """``weight * softshrink(sample(image) - values, quant)`` (no dead zone when ``quant`` is
        0): the data term's gradient at the samples, quadratic. ``(C, H, W)`` -> ``(C, h, w)``."""
        residual = self.lattice.sample(image) - self.values
        if quant > 0:
            # Coded samples are only known to within the quantiser's step: a residual inside
            # that dead zone is noise the estimate need not follow (the prior decides there).
            residual = F.softshrink(residual, quant)
        return residual.mul_(self.weight)


@dataclass(frozen=True)
class FuseConfig:
    """Numerical settings of :func:`fuse` (``MisrParams`` holds their defaults and meaning)."""

    scale: int
    psf: Psf
    kr_sigma: float
    fallback: float
    iterations: int
    step: float
    momentum: float
    data_scale: float
    btv_weight: float
    btv_alpha: float
    btv_radius: int
    btv_epsilon: float = 0.0
    quant: float = 0.0
    data_scale_start: float = 0.0
    overshoot: float | None = None  # None: no clamp (see clamp_to_neighbourhood)


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
        if image.device.type == "cpu" and image.dtype == torch.float32:
            import cv2

            # OpenCV's bicubic is torch's (a = -0.75, edge replicated) to 1e-5, ten times faster.
            planes = [cv2.resize(p, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
                      for p in image.contiguous().numpy()]
            return torch.from_numpy(np.stack(planes))
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


def fuse(frames: torch.Tensor, pos: torch.Tensor, conf: torch.Tensor, cfg: FuseConfig,
         init: torch.Tensor | None = None) -> FuseResult:
    """Fuse aligned low-resolution planes into one high-resolution image of the reference.

    Args:
        frames: ``(K, C, h, w)`` float planes of the distinct frames, reference first.
        pos: ``(K, h, w, 2)`` float positions ``(x, y)`` of each pixel in the reference grid.
        conf: ``(K, h, w)`` weight of each sample in [0, 1] (flow confidence x robustness).
        cfg: numerical settings.
        init: ``(C, s h, s w)`` starting point of the back-projection in place of the kernel
            regression (a network's output: the back-projection then projects it onto what
            the frames show); ``None`` for misr's own estimate.

    Returns:
        :class:`FuseResult` in ``frames.dtype``; the arithmetic is float32.
    """
    k, c, h, w = frames.shape
    s = cfg.scale
    hs, ws = h * s, w * s
    dev, dtype = frames.device, frames.dtype
    psf = cfg.psf
    pos = pos.to(dev, torch.float32)
    conf = conf.to(dev, torch.float32)
    planes = frames.float().permute(1, 0, 2, 3)  # (C, K, h, w)

    # Samples are placed once, on the grid of the blurred image (shifted by ``delta``); kernel
    # regression undoes that shift in its Gaussian taps. The reference's samples fall exactly
    # on that grid; the neighbours' anywhere.
    first = round(psf.offset - psf.delta)
    ref = Lattice(first, s, (h, w), (hs, ws))
    others = bilinear(pos[1:, ..., 0] * s + (psf.offset - psf.delta),
                      pos[1:, ..., 1] * s + (psf.offset - psf.delta), (hs, ws)) if k > 1 else None
    ref_values, values = planes[:, 0].contiguous(), planes[:, 1:].contiguous()  # read on every step
    ref_weight, weight = conf[0][None], conf[1:][None]
    ref_samples = LatticeSamples(ref, ref_values, ref_weight)

    def splat(ref_part: torch.Tensor, other_part: torch.Tensor | None) -> torch.Tensor:
        if others is None:
            return ref.splat(ref_part)
        out = others.splat(other_part)
        ref.sample(out).add_(ref_part)  # the lattice is a view: adds in place
        return out

    taps, start = gaussian_taps(cfg.kr_sigma * s, dev, torch.float32, shift=psf.delta)
    splat_w = splat(ref_weight, weight)
    den = correlate(splat_w, taps, start, symmetric=False)[0]
    evidence = den * (s * s)
    if init is None:
        num = correlate(splat(ref_values * ref_weight, values * weight), taps, start, symmetric=False)
        fallback = upsample(frames[0].float(), s, psf.offset)
        x = (num * (s * s) + cfg.fallback * fallback) / (evidence + cfg.fallback)
    else:
        x = init.to(dev, torch.float32)

    if cfg.iterations > 0:
        blur = Blur(psf, dev, torch.float32)
        # Per-pixel normaliser of the data gradient (a Jacobi-like preconditioner), floored so
        # that pixels no sample sees are left to the prior and the fallback.
        norm = blur.adjoint(splat_w)[0]
        norm = norm + 0.5 / (s * s)
        btv = _btv_offsets(cfg.btv_radius, cfg.btv_alpha)
        # Graduated non-convexity (Blake & Zisserman; Black & Rangarajan): the first steps start
        # from a blurred estimate whose error is large on every textured area, so a tight
        # Lorentzian would take the neighbours' good samples there for outliers. The scale
        # starts wide and narrows to ``data_scale``, where it rejects what is really misaligned.
        scales = _data_scales(cfg)
        # Nesterov's accelerated gradient: the gradient is taken at a point extrapolated along
        # the last step, which reaches in 6 steps what plain descent reaches in 10.
        probe = x
        for i in range(cfg.iterations):
            inv_scale2 = 1.0 / (scales[i] * scales[i])
            blurred = blur(probe)
            # The reference's own samples are trusted (quadratic); a neighbour's sample stops
            # pulling once its residual is well beyond ``data_scale`` (Lorentzian, redescending),
            # so misaligned samples the robustness test let through do not print ghosts.
            if others is not None:
                data = others.robust_splat(blurred, values, weight, inv_scale2, cfg.quant, ref_samples)
            else:
                data = ref.splat(ref_samples.residual(blurred, cfg.quant))
            grad = blur.adjoint(data).div_(norm)
            if cfg.btv_weight > 0:
                _add_btv_gradient(grad, probe, btv, cfg.btv_weight, cfg.btv_epsilon)
            stepped = torch.sub(probe, grad, alpha=cfg.step, out=grad)
            # lerp(stepped, x, -m) = stepped + m (stepped - x): the step extrapolated.
            probe = torch.lerp(stepped, x, -cfg.momentum) if cfg.momentum else stepped
            x = stepped
    if cfg.overshoot is not None:
        x = clamp_to_neighbourhood(x, planes[:, 0], s, psf.offset, cfg.overshoot)
    return FuseResult(x.to(dtype), evidence.to(dtype))


ONE_LEVEL = 1 / 255


def clamp_to_neighbourhood(image: torch.Tensor, reference: torch.Tensor, scale: int, offset: float,
                           overshoot: float) -> torch.Tensor:
    """Clip each output pixel to the range of the reference's input pixels around it, widened.

    A pixel may leave ``[lo, hi]``, the minimum and maximum of the 3x3 input pixels centred on
    the input pixel it lies on, by ``overshoot * (hi - lo)`` plus one 8-bit level. That cuts the
    ringing that back-projection leaves beside a strong edge in an otherwise flat
    neighbourhood, which changes whenever the picture next to it moves, and so flickers where
    the picture is still (the black bars beside a film frame); in a textured neighbourhood the
    range is wide and the detail the frames support stays.

    Args:
        image: ``(C, s h, s w)`` float output planes.
        reference: ``(C, h, w)`` float input planes of the reference frame, on the same scale.
        scale: ``s``.
        offset: output coordinate of input pixel 0 (``(s - 1) / 2`` for a centred grid).
        overshoot: fraction of the local range allowed beyond it, ``>= 0``.

    Returns:
        ``(C, s h, s w)``, a new tensor.
    """
    if reference.device.type == "cpu":
        import cv2

        # OpenCV's 3x3 erosion and dilation (the frame's outside ignored, as max pooling's
        # padding): a tenth of max_pool2d's time on the CPU.
        ref = reference.float().contiguous().numpy()
        square = np.ones((3, 3), np.uint8)
        hi = torch.from_numpy(np.stack([cv2.dilate(plane, square) for plane in ref])).to(image.dtype)
        lo = torch.from_numpy(np.stack([cv2.erode(plane, square) for plane in ref])).to(image.dtype)
    else:
        ref = reference.to(image.dtype)[None]
        hi = F.max_pool2d(ref, 3, stride=1, padding=1)[0]
        lo = -F.max_pool2d(-ref, 3, stride=1, padding=1)[0]
    margin = (hi - lo).mul_(overshoot).add_(ONE_LEVEL)
    hi.add_(margin)
    lo.sub_(margin)
    c, h, w = reference.shape
    _, hs, ws = image.shape
    if abs(offset - (scale - 1) / 2) < 1e-6 and (hs, ws) == (h * scale, w * scale):
        # A centred grid: each input pixel's block of scale x scale output pixels, in place.
        blocks = image.reshape(c, h, scale, w, scale)
        return torch.clamp(blocks, lo[:, :, None, :, None], hi[:, :, None, :, None]).reshape(c, hs, ws)

    def parent(n_out: int, n_in: int) -> torch.Tensor:
        at = (torch.arange(n_out, device=image.device, dtype=torch.float64) - offset) / scale
        return torch.floor(at + 0.5).clamp_(0, n_in - 1).long()

    rows, cols = parent(hs, h), parent(ws, w)
    hi = hi.index_select(1, rows).index_select(2, cols)
    lo = lo.index_select(1, rows).index_select(2, cols)
    return torch.minimum(torch.maximum(image, lo, out=lo), hi, out=hi)


def _data_scales(cfg: FuseConfig) -> list[float]:
    """The Lorentzian scale of each back-projection step: a geometric descent from
    ``data_scale_start`` to ``data_scale`` at the last step, or ``data_scale`` throughout when
    the start is 0 or not wider."""
    n = max(cfg.iterations, 1)
    if cfg.data_scale_start <= cfg.data_scale or n == 1:
        return [cfg.data_scale] * n
    r = (cfg.data_scale / cfg.data_scale_start) ** (1 / (n - 1))
    return [cfg.data_scale_start * r**i for i in range(n)]


def _btv_offsets(radius: int, alpha: float) -> list[tuple[int, int, float]]:
    """Half-plane shifts ``(dy, dx, alpha ** (|dy| + |dx|))`` of the bilateral-TV prior."""
    out = []
    for dy in range(radius + 1):
        for dx in range(-radius, radius + 1):
            if dy == 0 and dx <= 0:
                continue
            out.append((dy, dx, alpha ** (abs(dy) + abs(dx))))
    return out


def _add_btv_gradient(grad: torch.Tensor, x: torch.Tensor, offsets: list[tuple[int, int, float]],
                      weight: float, epsilon: float = 0.0) -> None:
    """Add ``weight`` x the gradient of ``sum alpha^(|l|+|m|) |X - S^l_y S^m_x X|_1`` to ``grad``.

    With ``epsilon > 0`` the absolute value is smoothed to ``sqrt(d^2 + epsilon^2)``: the
    gradient ``d / sqrt(d^2 + epsilon^2)`` fades to 0 on flat areas instead of jumping between
    -1 and 1 with the faintest noise, which would make still pictures boil from frame to frame.
    Only pairs of pixels that are both inside the image count, so no border is padded.
    ``(C, H, W)`` float32 contiguous CPU tensors go through :func:`.kernels.btv_gradient`.
    """
    if (grad.device.type == "cpu" and grad.dtype == x.dtype == torch.float32
            and grad.is_contiguous() and x.is_contiguous()):
        from vsr.methods.misr import kernels

        kernels.btv_gradient(x.numpy(), grad.numpy(), np.array([o[0] for o in offsets], np.int64),
                             np.array([o[1] for o in offsets], np.int64),
                             np.array([weight * o[2] for o in offsets], np.float32), epsilon)
        return
    _btv_gradient_torch(grad, x, offsets, weight, epsilon)


def _btv_gradient_torch(grad: torch.Tensor, x: torch.Tensor, offsets: list[tuple[int, int, float]],
                        weight: float, epsilon: float) -> None:
    """:func:`_add_btv_gradient` with torch operations, on any device and dtype."""
    _, h, w = x.shape
    for dy, dx, a in offsets:
        # Pixel p = (y, x) pairs with p + (dy, dx); ``here`` and ``there`` are the two sides.
        x0, x1 = max(0, -dx), min(w, w - dx)
        here = (slice(None), slice(0, h - dy), slice(x0, x1))
        there = (slice(None), slice(dy, h), slice(x0 + dx, x1 + dx))
        d = x[here] - x[there]
        d = d.div_(d.square().add_(epsilon * epsilon).sqrt_()) if epsilon > 0 else d.sign_()
        grad[here].add_(d, alpha=weight * a)
        grad[there].sub_(d, alpha=weight * a)
