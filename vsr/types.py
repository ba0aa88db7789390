"""The data that flows between the stages of the pipeline.

Timestamps follow PyAV's model: an integer ``pts`` counted in a rational
``time_base``. Seconds are derived on demand and never stored, so no rounding
creeps in and variable-frame-rate timing survives a run unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Frame:
    """One decoded video frame, in RGB.

    Attributes:
        data: ``(C, H, W)`` tensor with ``C == 3`` (RGB). ``uint8`` for 8-bit
            sources (0..255), ``uint16`` for deeper sources (0..65535, the full
            16-bit range whatever the source depth), or floating point in [0, 1]
            once a method has produced it. 0 is black and the top white, whatever
            the source's range; a run that keeps a limited-range source's super-blacks
            and super-whites decodes it in coded levels instead
            (:meth:`vsr.io.decode.Decoder.keep_levels`).
        pts: presentation timestamp in ``time_base`` units, exactly as the
            demuxer gave it; ``None`` only for streams that carry no timing.
        time_base: the unit of ``pts``, e.g. ``Fraction(1, 12800)``.
        index: position of the frame in decode order of this run, from 0.
        duration: display duration in ``time_base`` units when the source says, else ``None``.
    """

    data: torch.Tensor
    pts: int | None
    time_base: Fraction
    index: int
    duration: int | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError(f"Frame.data must be (C, H, W); got shape {tuple(self.data.shape)}")
        if self.index < 0:
            raise ValueError(f"Frame.index must be >= 0; got {self.index}")

    @property
    def time(self) -> float | None:
        """Presentation time in seconds, or ``None`` when the frame has no pts."""
        return None if self.pts is None else float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.data.shape[-2])

    @property
    def width(self) -> int:
        return int(self.data.shape[-1])

    def __repr__(self) -> str:
        return (
            f"Frame(index={self.index}, pts={self.pts}, time_base={self.time_base}, "
            f"shape={tuple(self.data.shape)}, dtype={self.data.dtype})"
        )


@dataclass(frozen=True)
class ColorInfo:
    """Colour description of a video stream, as FFmpeg names it.

    Attributes:
        matrix: colour matrix (``"bt709"``, ``"bt470bg"``, ``"smpte170m"``, ``"bt2020nc"``, ...),
            or ``None`` when the stream leaves it unspecified.
        range: ``"tv"`` (limited, 16..235) or ``"pc"`` (full, 0..255); ``None`` if unspecified.
        primaries: colour primaries (``"bt709"``, ``"bt470bg"``, ...) or ``None``.
        transfer: transfer characteristic (``"bt709"``, ``"smpte2084"``, ...) or ``None``.
    """

    matrix: str | None = None
    range: str | None = None
    primaries: str | None = None
    transfer: str | None = None


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a container, as ``vsr probe`` lists it."""

    index: int
    kind: str  # "video", "audio", "subtitle", "data", ...
    codec: str
    language: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class VideoInfo:
    """What vsr knows of the video stream it will upscale, before the first frame.

    Attributes:
        width, height: coded picture size in pixels.
        time_base: unit of every frame's pts.
        average_rate: average frame rate, or ``None`` for streams that do not say.
        pix_fmt: FFmpeg pixel format of the decoded frames (``"yuv420p"``, ``"yuv420p10le"``...).
        bit_depth: bits per component of the source (8, 10, 12, 16).
        color: colour tags of the source.
        rotation: display rotation in degrees (counter-clockwise, as FFmpeg's display matrix), 0 if none.
        sample_aspect_ratio: shape of one pixel (``Fraction(32, 27)`` for anamorphic 16:9 NTSC),
            ``None`` when the stream does not say (square).
        duration: duration in seconds when the container knows it, else ``None``.
        frame_count: number of frames when the container knows it, else ``None`` (live streams).
        start_time: pts of the stream's first frame in ``time_base``, or ``None``.
        codec: decoder name.
        stream_index: index of this stream in the container.
        streams: every stream of the container.
    """

    width: int
    height: int
    time_base: Fraction
    average_rate: Fraction | None
    pix_fmt: str
    bit_depth: int
    color: ColorInfo
    rotation: int = 0
    duration: float | None = None
    frame_count: int | None = None
    start_time: int | None = None
    codec: str = ""
    stream_index: int = 0
    streams: tuple[StreamInfo, ...] = field(default_factory=tuple)
    sample_aspect_ratio: Fraction | None = None
