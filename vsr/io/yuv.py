"""YUV planes <-> RGB in torch, on whatever device the tensors are on.

The same conversion the decoder and encoder run through swscale on the host
(:mod:`vsr.io.color`), written with tensors so that it can run beside the method on its
device: chroma is upsampled with a bicubic filter at the stream's chroma siting before the
matrix (as ``-sws_flags bicubic+full_chroma_int+accurate_rnd`` does), and filtered down
at the siting after it on the way out (as ``bicubic+full_chroma_inp`` does). swscale's
bicubic is the Keys cubic with ``a = -0.6`` (its default B = 0, C = 0.6); so is this one.

Both directions are separable resamplings: per axis, each output sample is a weighted sum of a
few gathered input samples (4 taps up, 10 down): the same arithmetic on the CPU and on CUDA.

:class:`PlaneResampler` resizes the planes themselves, with no RGB step, as ``ffmpeg -vf scale``
does: each plane at its own resolution through swscale, chroma taken from and put at the sitings
of the input and output formats.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from vsr.errors import ConfigError
from vsr.io.color import LUMA_WEIGHTS, CachedGraph, scale_graph

if TYPE_CHECKING:
    import torch

# Luma weights (Kr, Kb) of each matrix; Kg = 1 - Kr - Kb.
_MATRICES = {"bt601": LUMA_WEIGHTS["itu601"], "bt709": LUMA_WEIGHTS["itu709"], "bt2020": LUMA_WEIGHTS["bt2020"]}
# swscale's names (vsr.io.color.Conversion.colorspace) -> the matrix they implement.
_SWS_NAMES = {"itu601": "bt601", "smpte170m": "bt601", "itu709": "bt709", "bt2020": "bt2020"}
# Planar formats whose frames PyAV reads and writes as one array of the planes one after the
# other (``to_ndarray``/``from_ndarray``): the formats the device conversion takes.
PACKED_FORMATS = ("yuv420p", "yuvj420p", "yuv420p10le", "yuv422p", "yuv444p")
# Pixel format -> (horizontal, vertical) chroma subsampling.
_SUBSAMPLING = {"420": (2, 2), "422": (2, 1), "444": (1, 1)}
SITINGS = ("left", "center", "topleft")
_CUBIC_A = -0.6


@dataclass(frozen=True)
class YuvFormat:
    """How a stream's YUV samples are laid out and what they mean.

    Attributes:
        matrix: ``"bt601"``, ``"bt709"`` or ``"bt2020"`` (non-constant luminance).
        full_range: samples span the whole integer range (JPEG), else studio swing
            (Y 16..235, chroma 16..240 at 8 bits, scaled by ``2 ** (bit_depth - 8)``).
        bit_depth: bits per sample, 8 to 12.
        subsampling: ``(horizontal, vertical)`` chroma factors: ``(2, 2)`` for 4:2:0,
            ``(2, 1)`` for 4:2:2, ``(1, 1)`` for 4:4:4.
        siting: where chroma samples sit: ``"left"`` (co-sited with the even luma
            columns, between rows: MPEG-2, H.264, HEVC), ``"center"`` (between columns and
            rows: JPEG, MPEG-1) or ``"topleft"`` (co-sited with even columns and rows).
    """

    matrix: str = "bt709"
    full_range: bool = False
    bit_depth: int = 8
    subsampling: tuple[int, int] = (2, 2)
    siting: str = "left"

    def __post_init__(self) -> None:
        if self.matrix not in _MATRICES:
            raise ConfigError(f"YUV matrix must be one of {', '.join(_MATRICES)}; got {self.matrix!r}")
        if not 8 <= self.bit_depth <= 12:
            raise ConfigError(f"YUV bit depth must be 8 to 12; got {self.bit_depth}")
        if self.subsampling not in _SUBSAMPLING.values():
            raise ConfigError(f"chroma subsampling must be 4:2:0, 4:2:2 or 4:4:4; got {self.subsampling}")
        if self.siting not in SITINGS:
            raise ConfigError(f"chroma siting must be one of {', '.join(SITINGS)}; got {self.siting!r}")

    @classmethod
    def of(cls, pix_fmt: str, colorspace: str, color_range: str, siting: str | None = None) -> YuvFormat:
        """The format of planar ``pix_fmt`` frames (``yuv420p``, ``yuvj422p``, ``yuv420p10le``...)
        under a :class:`~vsr.io.color.Conversion`'s ``colorspace`` and ``color_range``.

        ``siting``: the frames' chroma location as PyAV names it (``"left"``, ``"center"``,
        ``"topleft"``); anything else (unspecified) is taken as left, the MPEG default.

        Raises:
            ConfigError: not a planar YUV format, or a matrix this module does not implement.
        """
        name = pix_fmt.replace("yuvj", "yuv")
        if not name.startswith("yuv") or name[3:6] not in _SUBSAMPLING or name[6:7] != "p":
            raise ConfigError(f"{pix_fmt} is not planar YUV 4:2:0, 4:2:2 or 4:4:4")
        depth = name[7:].removesuffix("le")
        if colorspace not in _SWS_NAMES:
            raise ConfigError(f"no YUV matrix {colorspace!r} for the device conversion; "
                              f"it converts {', '.join(_SWS_NAMES)}")
        return cls(matrix=_SWS_NAMES[colorspace], full_range=color_range == "JPEG" or pix_fmt.startswith("yuvj"),
                   bit_depth=int(depth) if depth else 8, subsampling=_SUBSAMPLING[name[3:6]],
                   siting=siting if siting in SITINGS else "left")

    def offsets(self) -> tuple[float, float]:
        """``(x, y)`` position of chroma sample 0 in luma pixels."""
        sx, sy = self.subsampling
        x = (sx - 1) / 2 if self.siting == "center" else 0.0
        y = 0.0 if self.siting == "topleft" else (sy - 1) / 2
        return x, y

    @property
    def pix_fmt(self) -> str:
        """FFmpeg's name of the planar format (``yuv420p``, ``yuv420p10le``...; never a ``yuvj`` alias)."""
        layout = next(name for name, factors in _SUBSAMPLING.items() if factors == self.subsampling)
        return f"yuv{layout}p" + (f"{self.bit_depth}le" if self.bit_depth > 8 else "")

    def levels(self) -> tuple[float, float, float, float]:
        """``(black, luma span, chroma centre, chroma span)`` in sample values."""
        unit = 1 << (self.bit_depth - 8)
        if self.full_range:
            peak = (1 << self.bit_depth) - 1
            return 0.0, float(peak), float(1 << (self.bit_depth - 1)), float(peak)
        return 16.0 * unit, 219.0 * unit, 128.0 * unit, 224.0 * unit


def yuv_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, fmt: YuvFormat) -> torch.Tensor:
    """Planes to RGB with bicubic chroma at the stream's siting.

    Args:
        y: ``(..., H, W)`` luma samples (any integer or float type, sample values).
        u, v: ``(..., H / sy, W / sx)`` chroma samples (sizes rounded up).
        fmt: the planes' :class:`YuvFormat`.

    Returns:
        ``(..., 3, H, W)`` float32 RGB in [0, 1] (levels outside it are clipped, as in
        integer RGB), on the planes' device.
    """
    import torch

    h, w = y.shape[-2:]
    off_x, off_y = fmt.offsets()
    sx, sy = fmt.subsampling
    chroma = torch.stack([u, v], dim=-3).float()
    if sy != 1:
        chroma = _resample(chroma, -2, *_upsample_taps(chroma.shape[-2], h, sy, off_y, chroma.device))
    if sx != 1:
        chroma = _resample(chroma, -1, *_upsample_taps(chroma.shape[-1], w, sx, off_x, chroma.device))
    black, span, centre, chroma_span = fmt.levels()
    luma = (y.float() - black) / span
    cb, cr = ((chroma - centre) / chroma_span).unbind(-3)
    kr, kb = _MATRICES[fmt.matrix]
    kg = 1.0 - kr - kb
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / kg
    return torch.stack([r, g, b], dim=-3).clamp_(0.0, 1.0)


def rgb_to_yuv(rgb: torch.Tensor, fmt: YuvFormat) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RGB to planes, chroma filtered down at the stream's siting.

    Args:
        rgb: ``(..., 3, H, W)`` float in [0, 1], or integers (uint8 0..255, uint16 0..65535).
        fmt: the planes' :class:`YuvFormat`.

    Returns:
        ``(y, u, v)``: ``(..., H, W)`` and twice ``(..., ceil(H / sy), ceil(W / sx))``, rounded
        and clipped to the format's integer range, uint8 for 8 bits, else int16 holding the
        unsigned samples (``yuv420p10le``'s layout), on ``rgb``'s device.
    """
    import torch

    if not rgb.is_floating_point():
        rgb = rgb.float() / (255.0 if rgb.dtype == torch.uint8 else 65535.0)
    r, g, b = rgb.float().unbind(-3)
    kr, kb = _MATRICES[fmt.matrix]
    luma = kr * r + (1 - kr - kb) * g + kb * b
    chroma = torch.stack([(b - luma) / (2 * (1 - kb)), (r - luma) / (2 * (1 - kr))], dim=-3)
    sx, sy = fmt.subsampling
    h, w = luma.shape[-2:]
    off_x, off_y = fmt.offsets()
    if sy != 1:
        chroma = _resample(chroma, -2, *_downsample_taps(h, sy, off_y, chroma.device))
    if sx != 1:
        chroma = _resample(chroma, -1, *_downsample_taps(w, sx, off_x, chroma.device))
    black, span, centre, chroma_span = fmt.levels()
    peak = (1 << fmt.bit_depth) - 1
    dtype = torch.uint8 if fmt.bit_depth == 8 else torch.int16

    def quantize(t: torch.Tensor) -> torch.Tensor:
        return t.add_(0.5).floor_().clamp_(0, peak).to(dtype)

    u, v = quantize(chroma * chroma_span + centre).unbind(-3)
    return quantize(luma * span + black), u, v


def packed_rows(height: int, fmt: YuvFormat) -> int:
    """Rows of width ``W`` that the three planes of an even-sized ``height`` x ``W`` picture
    fill one after the other (``3 H / 2`` for 4:2:0)."""
    sx, sy = fmt.subsampling
    return height + 2 * height // (sx * sy)


def pack(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` luma and two chroma planes -> ``(..., rows, W)``, the planes one after the
    other (see :func:`packed_rows`); even sizes only."""
    import torch

    flat = torch.cat([p.flatten(-2) for p in (y, u, v)], dim=-1)
    return flat.unflatten(-1, (-1, y.shape[-1]))


def unpack(packed: torch.Tensor, fmt: YuvFormat) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inverse of :func:`pack`: ``(..., rows, W)`` -> views of the three planes."""
    sx, sy = fmt.subsampling
    rows, w = packed.shape[-2:]
    h = packed_height(rows, fmt)
    flat = packed.flatten(-2)
    luma, chroma = h * w, (h // sy) * (w // sx)
    y = flat[..., :luma].unflatten(-1, (h, w))
    u = flat[..., luma : luma + chroma].unflatten(-1, (h // sy, w // sx))
    v = flat[..., luma + chroma :].unflatten(-1, (h // sy, w // sx))
    return y, u, v


def planes_frame(planes, pix_fmt: str):
    """An ``(rows, W)`` numpy array of packed planes (:func:`pack`) -> an ``av.VideoFrame`` of
    ``pix_fmt`` over them (int16 samples are read as the unsigned ones they hold).

    8-bit 4:2:0 in a C-contiguous array is wrapped without a copy (the frame keeps the array
    alive; the encoder copies a frame that does not own its buffer); other layouts are copied.
    """
    import av

    if pix_fmt in ("yuv420p", "yuvj420p") and planes.dtype.itemsize == 1 and planes.flags.c_contiguous:
        return av.VideoFrame.from_numpy_buffer(planes, format=pix_fmt)
    if pix_fmt.startswith("yuv444p"):
        planes = planes.reshape(3, -1, planes.shape[-1])
    elif planes.dtype.itemsize == 2:
        planes = planes.view("uint16")
    return av.VideoFrame.from_ndarray(planes, format=pix_fmt)


class PlaneResampler:
    """Packed YUV planes resized plane by plane through FFmpeg's scale filter (swscale).

    Luma and each chroma plane are resampled at their own resolution; chroma samples are read
    where the input format's siting puts them and written where the output's says, so colour
    edges stay on luma's. There is no RGB step and no level mapping: codes beyond nominal black
    and white (super-blacks and super-whites) are resampled like any other, and only the
    format's code range clips what the kernel overshoots.

    Args:
        kernel: the scale filter's ``flags`` and parameters, e.g. ``"bicubic:param0=0:param1=0.75"``.
    """

    def __init__(self, kernel: str) -> None:
        self.kernel = kernel
        self._graph = CachedGraph()

    def __call__(self, planes, fmt_in: YuvFormat, fmt_out: YuvFormat, size: tuple[int, int]):
        """Resize one picture.

        Args:
            planes: ``(rows, W)`` numpy array of the packed planes of an even-sized picture in
                ``fmt_in``: uint8 for 8 bits, else uint16 (or int16 holding the same bits).
            fmt_in, fmt_out: the formats of the input and output planes; they may differ only
                in chroma siting.
            size: ``(H, W)`` of the output picture, even.

        Returns:
            ``(rows_out, W_out)`` uint8 or uint16 numpy array: the output's packed planes in ``fmt_out``.

        Raises:
            ConfigError: the formats differ in more than siting, or ``size`` is odd.
        """
        if replace(fmt_in, siting=fmt_out.siting) != fmt_out:
            raise ConfigError(f"planes resample within one format; got {fmt_in} to {fmt_out}")
        out_h, out_w = size
        if out_h % 2 or out_w % 2:
            raise ConfigError(f"resampled planes need an even size; got {out_w}x{out_h}")
        width = planes.shape[-1]
        height = packed_height(planes.shape[-2], fmt_in)
        scale = (f"w={out_w}:h={out_h}:flags={self.kernel}:in_chroma_loc={fmt_in.siting}"
                 f":out_chroma_loc={fmt_out.siting}")
        out = self._graph.run((width, height, scale, fmt_in.pix_fmt),
                              lambda: scale_graph(width, height, fmt_in.pix_fmt, scale),
                              planes_frame(planes, fmt_in.pix_fmt)).to_ndarray()
        return out.reshape(-1, out.shape[-1])


def packed_height(rows: int, fmt: YuvFormat) -> int:
    """The picture height whose planes fill ``rows`` packed rows (the inverse of :func:`packed_rows`)."""
    sx, sy = fmt.subsampling
    return rows * sx * sy // (sx * sy + 2)


def _cubic(d: torch.Tensor) -> torch.Tensor:
    """The Keys cubic kernel with ``a = -0.6`` at distances ``d``."""
    import torch

    a = _CUBIC_A
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


@functools.lru_cache(maxsize=32)
def _upsample_taps(n_in: int, n_out: int, factor: int, offset: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Bicubic interpolation of chroma samples at ``factor * k + offset`` onto every luma
    position: ``(n_out, 4)`` input indices (edges clamped) and weights."""
    import torch

    where = (torch.arange(n_out, dtype=torch.float64) - offset) / factor
    pos = where.floor()[:, None] + torch.arange(-1, 3, dtype=torch.float64)[None, :]
    return _taps(_cubic(where[:, None] - pos), pos, n_in, device)


@functools.lru_cache(maxsize=32)
def _downsample_taps(n_in: int, factor: int, offset: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The bicubic kernel stretched by ``factor`` (an antialiasing filter) centred on each chroma
    position ``factor * k + offset``: ``(ceil(n_in / factor), 4 factor + 2)`` indices and weights."""
    import torch

    centre = torch.arange(-(-n_in // factor), dtype=torch.float64) * factor + offset
    pos = centre.floor()[:, None] + torch.arange(-2 * factor, 2 * factor + 2, dtype=torch.float64)[None, :]
    return _taps(_cubic((pos - centre[:, None]) / factor), pos, n_in, device)


def _taps(weights: torch.Tensor, pos: torch.Tensor, n_in: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised ``weights`` and their positions clamped to the edges, on ``device``."""
    weights = weights / weights.sum(dim=1, keepdim=True)
    return pos.clamp(0, n_in - 1).long().to(device), weights.float().to(device)


def _resample(x: torch.Tensor, axis: int, index: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each output sample along ``axis`` (-1 or -2): the weighted sum of the input samples ``index``."""
    if axis == -2:
        return _resample(x.transpose(-1, -2), -1, index, weights).transpose(-1, -2)
    n_out, taps = index.shape
    gathered = x.index_select(-1, index.flatten()).unflatten(-1, (n_out, taps))
    return (gathered * weights).sum(-1)
