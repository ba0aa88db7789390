"""Single-frame interpolation baselines: nearest, bilinear, bicubic, Lanczos.

On the CPU the resampling is OpenCV's (SIMD, several times faster than torch's
CPU kernels); on CUDA it is torch's, with Lanczos done as two separable passes.
Frames are resampled in the memory layout they arrive in: a channels-last tensor
goes to OpenCV and comes back without a copy. On the CPU YUV planes are resampled
as they are, each at its own resolution and chroma siting, through swscale with
the same kernels (:class:`~vsr.io.yuv.PlaneResampler`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from vsr.errors import ConfigError
from vsr.methods.base import Method
from vsr.methods.params import NoParams, parse

if TYPE_CHECKING:
    import torch

    from vsr.io.yuv import PlaneResampler, YuvFormat

_CV2_FLAGS = {"nearest": "INTER_NEAREST", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC",
              "lanczos": "INTER_LANCZOS4"}
_LANCZOS_A = 4  # OpenCV's INTER_LANCZOS4 uses an 8x8 neighbourhood; CUDA matches it.
# swscale's kernels of the same shapes: its bicubic is Mitchell-Netravali's (B, C), and B = 0,
# C = 0.75 is Keys' cubic with a = -0.75, OpenCV's; its Lanczos takes the window's a.
_SWS_KERNELS = {"nearest": "neighbor", "bilinear": "bilinear", "bicubic": "bicubic:param0=0:param1=0.75",
                "lanczos": "lanczos:param0=4"}


def resize(image: torch.Tensor, size: tuple[int, int], kernel: str = "bicubic") -> torch.Tensor:
    """Resample one image to ``size``.

    Args:
        image: ``(C, H, W)`` float tensor, any value range, any memory layout.
        size: ``(H_out, W_out)``, each at least 1.
        kernel: ``"nearest"``, ``"bilinear"``, ``"bicubic"`` or ``"lanczos"``.

    Returns:
        ``(C, H_out, W_out)`` float tensor on ``image``'s device. On the CPU it is a
        channels-last view (``permute`` of an ``(H_out, W_out, C)`` array). Downscaling
        with ``area``-like antialiasing is used when shrinking.

    Raises:
        ConfigError: unknown kernel or empty size.

    >>> import torch
    >>> resize(torch.zeros(3, 4, 6), (8, 12)).shape
    torch.Size([3, 8, 12])
    """
    if kernel not in _CV2_FLAGS:
        raise ConfigError(f"unknown kernel {kernel!r}; choose one of: {', '.join(_CV2_FLAGS)}")
    out_h, out_w = size
    if out_h < 1 or out_w < 1:
        raise ConfigError(f"resize target must be at least 1x1; got {out_w}x{out_h}")
    if image.device.type == "cpu":
        return _resize_cv2(image, out_h, out_w, kernel)
    return _resize_torch(image, out_h, out_w, kernel)


def _resize_cv2(image: torch.Tensor, out_h: int, out_w: int, kernel: str) -> torch.Tensor:
    import cv2
    import torch

    hwc = image.permute(1, 2, 0)
    if not hwc.is_contiguous():
        hwc = hwc.contiguous()
    if hwc.dtype not in (torch.float32, torch.uint8, torch.uint16):
        hwc = hwc.float()
    shrinking = out_h < image.shape[-2] or out_w < image.shape[-1]
    flag = cv2.INTER_AREA if shrinking and kernel != "nearest" else getattr(cv2, _CV2_FLAGS[kernel])
    out = cv2.resize(hwc.numpy(), (out_w, out_h), interpolation=flag)
    if out.ndim == 2:
        out = out[:, :, None]
    return torch.from_numpy(out).permute(2, 0, 1)


def _resize_torch(image: torch.Tensor, out_h: int, out_w: int, kernel: str) -> torch.Tensor:
    import torch.nn.functional as F

    x = image.unsqueeze(0)
    shrinking = out_h < image.shape[-2] or out_w < image.shape[-1]
    if kernel == "lanczos":
        return _lanczos(image, out_h, out_w)
    if kernel == "nearest":
        return F.interpolate(x, size=(out_h, out_w), mode="nearest-exact")[0]
    return F.interpolate(x, size=(out_h, out_w), mode=kernel, align_corners=False, antialias=shrinking)[0]


def _lanczos_matrix(n_in: int, n_out: int, device, dtype) -> torch.Tensor:
    """``(n_out, n_in)`` Lanczos-a resampling matrix with half-pixel centres and edge clamping."""
    import torch

    scale = n_in / n_out
    support = _LANCZOS_A * max(scale, 1.0)
    centre = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * scale - 0.5
    taps = torch.arange(-math.ceil(support), math.ceil(support) + 1, device=device, dtype=torch.float64)
    pos = centre.floor()[:, None] + taps[None, :]
    d = (centre[:, None] - pos) / max(scale, 1.0)
    w = torch.sinc(d) * torch.sinc(d / _LANCZOS_A) * (d.abs() < _LANCZOS_A)
    w = w / w.sum(dim=1, keepdim=True)
    idx = pos.clamp(0, n_in - 1).long()
    matrix = torch.zeros(n_out, n_in, device=device, dtype=torch.float64)
    matrix.scatter_add_(1, idx, w)
    return matrix.to(dtype)


def _lanczos(image: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    dtype = image.dtype if image.is_floating_point() else image.new_zeros(()).float().dtype
    x = image.to(dtype)
    rows = _lanczos_matrix(image.shape[-2], out_h, image.device, dtype)
    cols = _lanczos_matrix(image.shape[-1], out_w, image.device, dtype)
    return rows @ x @ cols.T


class Interpolation(Method):
    """Per-frame interpolation to ``scale`` times the input size.

    Args:
        kernel: ``"nearest"``, ``"bilinear"``, ``"bicubic"`` or ``"lanczos"``.
        scale: integer factor, 1 to 8.
    """

    radius = 0
    linear = True
    wants_gpu = False  # OpenCV on the CPU keeps up with decoding; a GPU per task would only queue tasks

    def __init__(self, kernel: str, scale: int) -> None:
        super().__init__()
        if kernel not in _CV2_FLAGS:
            raise ConfigError(f"unknown kernel {kernel!r}")
        self.name = kernel
        self.kernel = kernel
        self.scale = scale
        self._planes: PlaneResampler | None = None  # made on first use

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_planes": None}  # a filter graph does not pickle; it is made again

    @property
    def integer_io(self) -> bool:  # OpenCV resamples uint8/uint16 directly, with rounding and saturation
        return self.device.type == "cpu"

    @property
    def planar(self) -> bool:  # swscale resamples the planes on the CPU
        return self.device.type == "cpu"

    def upscale_planes(self, planes: torch.Tensor, fmt_in: YuvFormat, fmt_out: YuvFormat,
                       size: tuple[int, int]) -> torch.Tensor:
        import torch

        from vsr.io.yuv import PlaneResampler

        if self._planes is None:
            self._planes = PlaneResampler(_SWS_KERNELS[self.kernel])
        return torch.from_numpy(self._planes(planes[0].numpy(), fmt_in, fmt_out, size))[None]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.target_size or (height * self.scale, width * self.scale)

    def __call__(self, frames: torch.Tensor, ref: int) -> torch.Tensor:
        h, w = self.output_size(frames.shape[-2], frames.shape[-1])
        return resize(frames[ref], (h, w), self.kernel)


def _build(kernel: str, scale: int, **params: object) -> Interpolation:
    parse(NoParams, params, method=kernel)
    if not isinstance(scale, int) or not 1 <= scale <= 8:
        raise ConfigError(f"--scale must be a whole number from 1 to 8; got {scale}")
    return Interpolation(kernel, scale)


def nearest(scale: int = 2, **params: object) -> Interpolation:
    """Nearest-neighbour upscaling (blocky; keeps hard edges of pixel art and masks)."""
    return _build("nearest", scale, **params)


def bilinear(scale: int = 2, **params: object) -> Interpolation:
    """Bilinear upscaling."""
    return _build("bilinear", scale, **params)


def bicubic(scale: int = 2, **params: object) -> Interpolation:
    """Bicubic upscaling (Keys kernel, a = -0.75 as OpenCV and torch use)."""
    return _build("bicubic", scale, **params)


def lanczos(scale: int = 2, **params: object) -> Interpolation:
    """Lanczos upscaling (8x8 neighbourhood, a = 4, as OpenCV's INTER_LANCZOS4)."""
    return _build("lanczos", scale, **params)
