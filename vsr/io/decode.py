"""Decoding: one video stream to RGB :class:`~vsr.types.Frame` objects, the rest as packets.

The demuxer reads the container in file order. Packets of the chosen video stream
are decoded; packets of audio and subtitle streams are handed on untouched for
remuxing. Damaged packets in the middle of a file are counted and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

from vsr.errors import InputError
from vsr.io.color import Conversion, resolve_conversion
from vsr.io.source import OpenOptions, open_input, select_video_stream, video_info
from vsr.types import Frame, VideoInfo

log = logging.getLogger(__name__)

PASSTHROUGH_KINDS = ("audio", "subtitle")
_MAX_CONSECUTIVE_ERRORS = 100


@dataclass(frozen=True)
class Roi:
    """A region of interest in source pixels: ``x, y`` top-left corner, ``w x h`` size."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Roi:
        """Parse ``"x,y,w,h"``.

        Raises:
            ValueError: not four non-negative integers with positive width and height.
        """
        parts = text.replace(" ", "").split(",")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise ValueError(f"--roi takes x,y,w,h in pixels, e.g. 100,200,320,96; got {text!r}")
        x, y, w, h = (int(p) for p in parts)
        if w < 2 or h < 2:
            raise ValueError(f"--roi width and height must be at least 2 pixels; got {w}x{h}")
        return cls(x, y, w, h)

    def check_inside(self, width: int, height: int) -> None:
        if self.x + self.w > width or self.y + self.h > height:
            raise ValueError(
                f"--roi {self.x},{self.y},{self.w},{self.h} reaches outside the {width}x{height} picture"
            )


@dataclass
class DecodeStats:
    """Counters the decoder keeps while it runs."""

    frames: int = 0
    packets_passed: int = 0
    corrupt_packets: int = 0
    missing_pts: int = 0
    log: list[str] = field(default_factory=list)


def rgb_format(bit_depth: int) -> str:
    """The packed RGB format frames are converted to: ``rgb24`` for 8-bit, ``rgb48le`` deeper."""
    return "rgb24" if bit_depth <= 8 else "rgb48le"


def frame_to_rgb(frame, conversion: Conversion, bit_depth: int):
    """Convert a PyAV ``VideoFrame`` to a ``(3, H, W)`` uint8/uint16 torch tensor with the source's matrix.

    The tensor is a view of a fresh numpy array (no copy beyond swscale's own).
    """
    import torch

    array = frame.to_ndarray(
        format=rgb_format(bit_depth),
        src_colorspace=conversion.colorspace,
        src_color_range=conversion.color_range,
        dst_color_range="JPEG",
    )
    return torch.from_numpy(array).permute(2, 0, 1)


class Decoder:
    """Iterate the frames of one video stream, forwarding audio and subtitle packets.

    Args:
        source: path, ``"-"`` or URL.
        video_stream: index of the stream to decode, or ``None`` for the default one.
        on_packet: called with each audio/subtitle packet, in demux order, or ``None``
            to drop them.
        roi: crop every frame to this region (in source pixels).
        options: how to open network sources.

    Raises:
        InputError: from the constructor, when the source cannot be opened.
    """

    def __init__(
        self,
        source: str,
        video_stream: int | None = None,
        on_packet: Callable[[object], None] | None = None,
        roi: Roi | None = None,
        options: OpenOptions | None = None,
    ) -> None:
        self.source = source
        self.container = open_input(source, options)
        try:
            self.stream = select_video_stream(self.container, video_stream)
            self.info: VideoInfo = video_info(self.container, self.stream)
            if roi is not None:
                roi.check_inside(self.info.width, self.info.height)
        except (InputError, ValueError):
            self.container.close()
            raise
        self.stream.thread_type = "AUTO"
        self.passthrough = [s for s in self.container.streams if s.type in PASSTHROUGH_KINDS]
        self.on_packet = on_packet
        self.roi = roi
        self.conversion = resolve_conversion(self.info.color, self.info.height, self.info.pix_fmt)
        self.stats = DecodeStats()
        self.rotation = self.info.rotation  # refined from the first frame's display matrix
        self._closed = False

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self, stop: Callable[[], bool] = lambda: False) -> Iterator[Frame]:
        """Yield frames until the end of the input or until ``stop()`` is true."""
        import av

        streams = [self.stream] + (self.passthrough if self.on_packet else [])
        time_base = self.info.time_base
        last_pts: int | None = None
        step = _frame_step(self.info)
        consecutive_errors = 0
        done = False
        while not done and not stop():
            try:
                for packet in self.container.demux(streams):
                    if stop():
                        done = True
                        break
                    if packet.stream.index != self.stream.index:
                        if packet.size and self.on_packet is not None:
                            self.stats.packets_passed += 1
                            self.on_packet(packet)
                        continue
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError as exc:
                        self._corrupt(exc)
                        consecutive_errors += 1
                        if consecutive_errors > _MAX_CONSECUTIVE_ERRORS:
                            raise InputError(
                                f"input is too damaged to decode: {consecutive_errors} bad packets in a row"
                            ) from exc
                        continue
                    consecutive_errors = 0
                    for vframe in decoded:
                        pts = vframe.pts
                        if pts is None:
                            self.stats.missing_pts += 1
                            pts = 0 if last_pts is None else last_pts + step
                        last_pts = pts
                        yield self._frame(vframe, pts, time_base)
                else:
                    done = True
            except av.error.FFmpegError as exc:
                # A demuxer error mid-file: count it and carry on from where the demuxer stands.
                self._corrupt(exc)
                consecutive_errors += 1
                if consecutive_errors > _MAX_CONSECUTIVE_ERRORS:
                    raise InputError(f"input is too damaged to read: {exc}") from exc

    def _frame(self, vframe, pts: int, time_base: Fraction) -> Frame:
        if self.stats.frames == 0:
            self.rotation = int(getattr(vframe, "rotation", 0) or 0)
        data = frame_to_rgb(vframe, self.conversion, self.info.bit_depth)
        if self.roi is not None:
            r = self.roi
            data = data[:, r.y : r.y + r.h, r.x : r.x + r.w]
        frame = Frame(data=data, pts=pts, time_base=time_base, index=self.stats.frames,
                      duration=int(vframe.duration) if vframe.duration else None)
        self.stats.frames += 1
        return frame

    def _corrupt(self, exc: Exception) -> None:
        self.stats.corrupt_packets += 1
        if len(self.stats.log) < 20:
            self.stats.log.append(str(exc))
        log.warning("skipped damaged data: %s", exc)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.container.close()

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _frame_step(info: VideoInfo) -> int:
    """One frame's duration in ``time_base`` units, for frames that arrive without a pts."""
    if info.average_rate:
        return max(1, round(1 / (info.average_rate * info.time_base)))
    return 1
