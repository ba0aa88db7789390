"""Colour tags: reading them from a source, choosing the conversion, writing them back.

FFmpeg stores the colour matrix, range, primaries and transfer as small integers
(``AVColorSpace``, ``AVColorRange``...). swscale, left to itself, converts every
YUV frame with the BT.601 matrix and limited range, which shifts the colours of
HD (BT.709) and full-range footage. Every conversion in vsr therefore passes the
source's matrix explicitly, and the output is tagged with the same.

RGB frames are full range: a limited-range source's black (Y=16) becomes 0 and its white
(Y=235) becomes 1, so every method sees the same levels whatever the source. Super-blacks and
super-whites (Y below 16 or above 235) do not fit that integer RGB and are clipped there. A run
keeps them by reading the stream's YUV as if it were full range ("coded RGB", where every code
value has its own level) and mapping that to nominal RGB with :class:`Levels` in float, where
they are values below 0 and above 1; the encoder gets coded RGB back, so only the output's code
range (0..255 for 8 bits) bounds them.

Chroma is interpolated, not replicated: decoding upsamples it with a bicubic filter at
the stream's chroma siting (FFmpeg's scale filter reads it from each frame) and encoding
filters the full-resolution chroma down, as ``-sws_flags bicubic+full_chroma_int+accurate_rnd``
(decode) and ``-sws_flags bicubic+full_chroma_inp`` (encode) do on the ffmpeg command line.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING

from vsr.types import ColorInfo

if TYPE_CHECKING:
    import torch

#: The scale filter's options on the way in: bicubic chroma, interpolated to every pixel with
#: accurate rounding; the filter reads each frame's chroma siting. Without ``accurate_rnd``
#: swscale takes its unscaled fast path, which ignores ``full_chroma_int`` and replicates chroma.
DECODE_SCALE_FLAGS = "bicubic+full_chroma_int+accurate_rnd"
#: swscale flags on the way out: chroma filtered down (bicubic) from full-resolution input.
#: ``accurate_rnd`` would move chroma by at most one level here and cost a third more time.
ENCODE_SWS_FLAGS = ("BICUBIC", "FULL_CHR_H_INP")

# swscale matrix name -> the scale filter's name for it.
_SCALE_MATRIX = {"itu709": "bt709", "itu601": "bt601", "smpte170m": "smpte170m", "smpte240m": "smpte240m",
                 "fcc": "fcc", "bt2020": "bt2020"}

# AVColorSpace -> name, as FFmpeg prints it.
MATRIX_NAMES = {
    0: "gbr", 1: "bt709", 2: None, 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
    8: "ycgco", 9: "bt2020nc", 10: "bt2020c",
}
RANGE_NAMES = {0: None, 1: "tv", 2: "pc"}
PRIMARIES_NAMES = {
    1: "bt709", 2: None, 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRANSFER_NAMES = {
    1: "bt709", 2: None, 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 18: "arib-std-b67",
}

# AVColorSpace -> the swscale coefficient table that implements it.
_SWS_MATRIX = {1: "itu709", 4: "fcc", 5: "itu601", 6: "smpte170m", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}


def _code(names: dict[int, str | None], name: str | None) -> int:
    for code, known in names.items():
        if known == name:
            return code
    return 2 if names is not RANGE_NAMES else 0


@dataclass(frozen=True)
class Conversion:
    """How one stream's YUV samples map to RGB: the swscale arguments.

    Attributes:
        colorspace: swscale matrix name (``"itu709"``, ``"itu601"``, ``"bt2020"``...).
        color_range: the source's range as swscale names it, ``"MPEG"`` (limited) or ``"JPEG"`` (full).
        tags: the colour tags to write on the output, with guessed values filled in.
    """

    colorspace: str
    color_range: str
    tags: ColorInfo

    @property
    def coded(self) -> Conversion:
        """The same stream read as full range: RGB in coded levels (see :class:`Levels`), same tags."""
        return replace(self, color_range="JPEG")


#: The RGB48 value swscale takes and gives for white (and for the top code of full-range YUV
#: on the way out): 255 * 256, not 65535.
RGB48_WHITE = 65280

# swscale matrix -> luma weights (Kr, Kb).
# Luma weights (Kr, Kb) of each of swscale's matrices; Kg = 1 - Kr - Kb.
LUMA_WEIGHTS = {"itu709": (0.2126, 0.0722), "itu601": (0.299, 0.114), "smpte170m": (0.299, 0.114),
                 "smpte240m": (0.212, 0.087), "fcc": (0.30, 0.11), "bt2020": (0.2627, 0.0593)}


@dataclass(frozen=True)
class Levels:
    """The map between coded and nominal RGB of a limited-range stream.

    Coded RGB is the stream's YUV converted as if it were full range: Y=16 (black) is 16/255
    and Y=250 (a super-white) 250/255, nothing is clipped before the code range ends. Nominal
    RGB is the scale every method and metric uses: 0 is black (Y=16), 1 is white (Y=235).
    Both are the same YUV through two matrices, so the map is exact and affine:
    ``nominal = dc * coded + ((dy - dc) * luma(coded) - 16 / 219)``, with ``dy`` and ``dc``
    the ratios of the full to the limited luma and chroma scales at the stream's depth
    (255/219 and 255/224 at 8 bits) and ``luma`` the matrix's weighted sum of R, G and B.

    Attributes:
        weights: the luma weights of R, G and B (they sum to 1).
        dy, dc: luma and chroma scale ratios.
        unit: where the top code value lies on the float scale of the frames: 1, or for
            16-bit RGB 65280/65535, the white of swscale's RGB48 (as in nominal frames).
    """

    weights: tuple[float, float, float]
    dy: float
    dc: float
    unit: float = 1.0

    @classmethod
    def of(cls, conversion: Conversion, bit_depth: int) -> Levels | None:
        """The map for a stream, or ``None`` for a full-range one (its coded RGB is nominal)."""
        if conversion.color_range == "JPEG":
            return None
        kr, kb = LUMA_WEIGHTS[conversion.colorspace]
        top, step = 2**bit_depth - 1, 2 ** (bit_depth - 8)
        return cls(weights=(kr, 1.0 - kr - kb, kb), dy=top / (219 * step), dc=top / (224 * step),
                   unit=1.0 if bit_depth <= 8 else RGB48_WHITE / 65535)

    def _affine(self, inverse: bool) -> list[list[float]]:
        """The 3x4 matrix (3x3 and offset) of :meth:`to_nominal`, or of :meth:`to_coded`."""
        if not inverse:  # dc I + (dy - dc) 1 w^T on coded / unit, then the offset
            return [[(self.dc * (i == j) + (self.dy - self.dc) * self.weights[j]) / self.unit for j in range(3)]
                    + [-16 / 219] for i in range(3)]
        beta = (self.dy - self.dc) / (self.dc * self.dy)  # the inverse: I / dc - beta 1 w^T, times unit
        rows = [[(1 / self.dc * (i == j) - beta * self.weights[j]) * self.unit for j in range(3)] for i in range(3)]
        return [row + [sum(row) * 16 / 219] for row in rows]

    def _matrix(self, inverse: bool, device: torch.device | None = None, dtype: torch.dtype | None = None):
        """:meth:`_affine` as float32 numpy (``device`` None) or as a tensor on ``device``, made once."""
        return _levels_matrix(self, inverse, device, dtype)

    def _apply(self, x: torch.Tensor, inverse: bool) -> torch.Tensor:
        import torch

        if x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 3:
            import cv2

            # OpenCV on interleaved pixels: several times faster than torch's CPU kernels here.
            hwc = x.permute(1, 2, 0)
            out = cv2.transform((hwc if hwc.is_contiguous() else hwc.contiguous()).numpy(), self._matrix(inverse))
            return torch.from_numpy(out).permute(2, 0, 1)
        m = self._matrix(inverse, x.device, x.dtype)
        flat = x.reshape(*x.shape[:-3], 3, -1)
        return (torch.matmul(m[:, :3], flat) + m[:, 3:]).reshape(x.shape)

    def to_nominal(self, coded: torch.Tensor) -> torch.Tensor:
        """``(..., 3, H, W)`` float coded RGB in [0, 1] -> nominal RGB, outside [0, 1] where the source is."""
        return self._apply(coded, inverse=False)

    def to_coded(self, nominal: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`to_nominal`: ``(..., 3, H, W)`` float, not clipped."""
        return self._apply(nominal, inverse=True)


@functools.lru_cache(maxsize=16)
def _levels_matrix(levels: Levels, inverse: bool, device, dtype):
    import numpy as np
    import torch

    affine = levels._affine(inverse)
    if device is None:
        return np.asarray(affine, np.float32)
    return torch.tensor(affine, dtype=dtype, device=device)


def color_info_from_codec(codec_context) -> ColorInfo:
    """Read the colour tags of a PyAV video codec context (or frame) into a :class:`ColorInfo`."""
    return ColorInfo(
        matrix=MATRIX_NAMES.get(int(codec_context.colorspace)),
        range=RANGE_NAMES.get(int(codec_context.color_range)),
        primaries=PRIMARIES_NAMES.get(int(codec_context.color_primaries)),
        transfer=TRANSFER_NAMES.get(int(codec_context.color_trc)),
    )


class RgbConverter:
    """Decoded YUV frames to packed RGB, through FFmpeg's scale filter.

    The filter, unlike a bare swscale call, places chroma at the siting each frame
    carries (left for most H.264/HEVC, centre for JPEG-style streams, top-left for
    some 4:2:0 HDR), so colour edges land where the source put them. A new graph is
    built whenever the frames' size or format changes.

    Args:
        conversion: the stream's matrix and range.
        fmt: ``"rgb24"`` (8-bit sources) or ``"rgb48le"`` (deeper).
    """

    def __init__(self, conversion: Conversion, fmt: str) -> None:
        self.conversion = conversion
        self.fmt = fmt
        self._graph = CachedGraph()

    def __call__(self, frame):
        """Convert one ``av.VideoFrame``; returns an ``(H, W, 3)`` uint8 or uint16 numpy array."""
        geometry = (frame.width, frame.height, frame.format.name)
        return self._graph.run(geometry, lambda: self._build(*geometry), frame).to_ndarray()

    def _build(self, width: int, height: int, pix_fmt: str):
        return scale_graph(width, height, pix_fmt,
                           f"flags={DECODE_SCALE_FLAGS}:in_color_matrix={_SCALE_MATRIX[self.conversion.colorspace]}"
                           f":in_range={'full' if self.conversion.color_range == 'JPEG' else 'limited'}", self.fmt)


class CachedGraph:
    """One filter graph, built again only when the frames' geometry changes."""

    def __init__(self) -> None:
        self._graph = None
        self._key: tuple | None = None

    def run(self, key: tuple, build: Callable[[], object], frame):
        """Push ``frame`` through the graph made by ``build()`` for ``key`` and pull the result."""
        if key != self._key:
            self._graph = build()
            self._key = key
        self._graph.push(frame)
        return self._graph.pull()


def scale_graph(width: int, height: int, pix_fmt: str, scale: str, fmt: str | None = None):
    """A configured filter graph: ``width`` x ``height`` frames of ``pix_fmt`` through FFmpeg's
    scale filter with the options ``scale`` (``"flags=bicubic:..."``), then to ``fmt`` if given.
    Push a frame, pull the result."""
    from fractions import Fraction

    import av

    graph = av.filter.Graph()
    chain = [graph.add_buffer(width=width, height=height, format=pix_fmt, time_base=Fraction(1, 1000)),
             graph.add("scale", scale), *([graph.add("format", fmt)] if fmt else []), graph.add("buffersink")]
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    return graph


class YuvConverter:
    """Packed RGB frames to the encoder's YUV format, with one cached swscale context.

    Chroma is filtered down from full-resolution input (bicubic), as ``-sws_flags
    bicubic+full_chroma_inp`` does; safe to call from several threads.

    Args:
        conversion: the stream's matrix, range and tags.
        pix_fmt: the encoder's pixel format.
    """

    def __init__(self, conversion: Conversion, pix_fmt: str) -> None:
        import threading

        from av.video.reformatter import Interpolation, VideoReformatter

        self.conversion = conversion
        self.pix_fmt = pix_fmt
        self._flags = 0
        for name in ENCODE_SWS_FLAGS:
            self._flags |= Interpolation[name]
        self._reformatter = VideoReformatter()
        self._lock = threading.Lock()

    def __call__(self, frame):
        """Convert one RGB ``av.VideoFrame``; returns a new frame in ``pix_fmt`` tagged with the stream's colour."""
        with self._lock:
            out = self._reformatter.reformat(frame, format=self.pix_fmt, dst_colorspace=self.conversion.colorspace,
                                             dst_color_range=self.conversion.color_range, interpolation=self._flags)
        apply_tags(out, self.conversion.tags)
        return out


def resolve_conversion(color: ColorInfo, height: int, pix_fmt: str) -> Conversion:
    """Choose the YUV<->RGB conversion for a stream, filling in what the stream leaves unsaid.

    Unspecified values are guessed as players do: BT.709 for HD (height >= 720), BT.601
    (``smpte170m``) below; full range for ``yuvj*`` formats, limited otherwise.

    Args:
        color: the source's tags, possibly with ``None`` fields.
        height: picture height in pixels (for the HD/SD guess).
        pix_fmt: decoded pixel format, e.g. ``"yuv420p"`` or ``"yuvj420p"``.

    Returns:
        The swscale arguments and the complete tags to write on the output.
    """
    matrix = color.matrix
    if matrix is None or matrix not in {MATRIX_NAMES[c] for c in _SWS_MATRIX}:
        matrix = "bt709" if height >= 720 else "smpte170m"
    color_range = color.range or ("pc" if pix_fmt.startswith("yuvj") else "tv")
    primaries = color.primaries or ("bt709" if matrix == "bt709" else "smpte170m" if matrix == "smpte170m" else None)
    transfer = color.transfer or ("bt709" if matrix in ("bt709", "smpte170m", "bt470bg") else None)
    sws = _SWS_MATRIX[_code(MATRIX_NAMES, matrix)]
    return Conversion(
        colorspace=sws,
        color_range="JPEG" if color_range == "pc" else "MPEG",
        tags=ColorInfo(matrix=matrix, range=color_range, primaries=primaries, transfer=transfer),
    )


@dataclass(frozen=True)
class HdrMetadata:
    """HDR10 static metadata: the mastering display (SMPTE ST 2086) and content light levels.

    Attributes:
        primaries: red, green and blue ``(x, y)`` CIE 1931 chromaticities, or ``None``.
        white_point: ``(x, y)`` of the white point, or ``None``.
        luminance: ``(min, max)`` of the mastering display in cd/m², or ``None``.
        max_cll, max_fall: maximum content and frame-average light levels in cd/m², or ``None``.
    """

    primaries: tuple[tuple[Fraction, Fraction], ...] | None = None
    white_point: tuple[Fraction, Fraction] | None = None
    luminance: tuple[Fraction, Fraction] | None = None
    max_cll: int | None = None
    max_fall: int | None = None

    @classmethod
    def from_frame(cls, frame) -> HdrMetadata | None:
        """Read a decoded ``av.VideoFrame``'s side data; ``None`` when it carries neither kind."""
        import struct

        from av.sidedata.sidedata import Type

        def raw(kind):
            try:
                return bytes(frame.side_data[kind])
            except (KeyError, ValueError):
                return None

        display, light = raw(Type.MASTERING_DISPLAY_METADATA), raw(Type.CONTENT_LIGHT_LEVEL)
        if display is None and light is None:
            return None
        fields: dict = {}
        if display is not None and len(display) >= 88:
            # AVMasteringDisplayMetadata: 8 rationals (R, G, B, white point as x, y), min and
            # max luminance as rationals, then has_primaries and has_luminance.
            v = struct.unpack("<22i", display[:88])
            ratio = [Fraction(v[i], v[i + 1]) if v[i + 1] else Fraction(0) for i in range(0, 20, 2)]
            if v[20]:
                fields["primaries"] = ((ratio[0], ratio[1]), (ratio[2], ratio[3]), (ratio[4], ratio[5]))
                fields["white_point"] = (ratio[6], ratio[7])
            if v[21]:
                fields["luminance"] = (ratio[8], ratio[9])
        if light is not None and len(light) >= 8:
            fields["max_cll"], fields["max_fall"] = struct.unpack("<2I", light[:8])
        return cls(**fields) if fields else None

    def encoder_params(self, codec: str) -> list[str]:
        """The ``KEY=VALUE`` parameters with which ``codec`` writes this metadata.

        x265 (``x265-params``) takes chromaticities in units of 1/50000 and luminance in
        1/10000 cd/m²; SVT-AV1 (``svtav1-params``) takes plain numbers.

        Returns:
            the parameters, ``[]`` for an encoder that cannot write them.
        """
        if codec not in _HDR_PARAMS:
            return []
        display_key, light_key, xy, luminance = _HDR_PARAMS[codec]
        params = []
        if self.primaries and self.white_point and self.luminance:
            (r, g, b), wp = self.primaries, self.white_point
            points = "".join(f"{name}({xy(p[0])},{xy(p[1])})" for name, p in (("G", g), ("B", b), ("R", r), ("WP", wp)))
            params.append(f"{display_key}={points}L({luminance(self.luminance[1])},{luminance(self.luminance[0])})")
        if self.max_cll is not None:
            params.append(f"{light_key}={self.max_cll},{self.max_fall or 0}")
        return params


# encoder -> (mastering display key, light level key, chromaticity format, luminance format)
_HDR_PARAMS = {
    "libx265": ("master-display", "max-cll", lambda v: str(round(v * 50000)), lambda v: str(round(v * 10000))),
    "libsvtav1": ("mastering-display", "content-light", lambda v: f"{float(v):.5f}", lambda v: f"{float(v):.4f}"),
}


def apply_tags(target, tags: ColorInfo) -> None:
    """Write ``tags`` onto a PyAV codec context or frame (fields left ``None`` stay unspecified)."""
    target.colorspace = _code(MATRIX_NAMES, tags.matrix)
    target.color_range = _code(RANGE_NAMES, tags.range)
    target.color_primaries = _code(PRIMARIES_NAMES, tags.primaries)
    target.color_trc = _code(TRANSFER_NAMES, tags.transfer)
