"""Decoding: one video stream to RGB :class:`~vsr.types.Frame` objects, the rest as packets.

The demuxer reads the container in file order. Packets of the chosen video stream
are decoded; packets of audio and subtitle streams are handed on untouched for
remuxing. Damaged packets in the middle of a file are counted and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction

from vsr.errors import ConfigError, InputError
from vsr.io.color import RGB48_WHITE, HdrMetadata, Levels, RgbConverter, resolve_conversion
from vsr.io.source import (
    OpenOptions,
    close_input,
    frame_rotation,
    is_url,
    mask_url,
    open_input,
    partial_file,
    select_video_stream,
    url_scheme,
    video_info,
)
from vsr.io.yuv import PACKED_FORMATS, SITINGS, YuvFormat, unpack, yuv_to_rgb
from vsr.types import Frame, VideoInfo

log = logging.getLogger(__name__)

PASSTHROUGH_KINDS = ("audio", "subtitle")
_SITING_WINDOW = 64  # luma pixels a side of the window a stream's chroma siting is read in
_SITING_MARGIN = 8  # luma pixels at the window's edges (inside the picture) left out of the comparison
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
    reconnects: int = 0
    log: list[str] = field(default_factory=list)


def rgb_format(bit_depth: int) -> str:
    """The packed RGB format frames are converted to: ``rgb24`` for 8-bit, ``rgb48le`` deeper."""
    return "rgb24" if bit_depth <= 8 else "rgb48le"


class Decoder:
    """Iterate the frames of one video stream, forwarding audio and subtitle packets.

    Args:
        source: path, ``"-"`` or URL.
        video_stream: index of the stream to decode, or ``None`` for the default one.
        on_packet: called with each audio/subtitle packet, in demux order, or ``None``
            to drop them.
        roi: crop every frame to this region (in source pixels).
        options: how to open network sources.
        reconnect: for network sources, how many times to reopen a stream that drops or
            stalls (``-1``: forever); 0 ends the run at the first drop.
        backoff: seconds before the first reconnect; doubled each attempt, up to 30 s.
        reconnect_at_end: also reopen a network source that ends normally (a live source
            whose end is an interruption). Without it the end of the stream ends the run.
        accept_partial: read a file whose index points past its end (a truncated download)
            instead of refusing it; ``partial`` then says what is missing.

    Attributes:
        partial: ``None``, or what a partial file accepted with ``accept_partial`` lacks.
        levels: ``None`` (frames in nominal RGB), or after :meth:`keep_levels` the map from
            the frames' coded levels to nominal RGB.

    Raises:
        InputError: from the constructor, when the source cannot be opened, or is a
            partial file and ``accept_partial`` is false.
    """

    def __init__(
        self,
        source: str,
        video_stream: int | None = None,
        on_packet: Callable[[object], None] | None = None,
        roi: Roi | None = None,
        options: OpenOptions | None = None,
        reconnect: int = 0,
        backoff: float = 0.5,
        reconnect_at_end: bool = False,
        accept_partial: bool = False,
    ) -> None:
        self.source = source
        self.options = options
        self.reconnect = reconnect
        self.backoff = backoff
        self.reconnect_at_end = reconnect_at_end
        self._explicit_stream = video_stream is not None
        self._offset = Fraction(0)
        self._last_time = Fraction(0)
        self._last_pts: int | None = None
        self._resync_pending = False
        self._passed: dict[int, int] = {}  # stream index -> pts of the last packet handed on
        self._replayed: dict[int, int] = {}  # after reopening a file: packets up to these were handed on
        self.container = open_input(source, options)
        try:
            self.stream = select_video_stream(self.container, video_stream)
            self.info: VideoInfo = video_info(self.container, self.stream)
            if roi is not None:
                roi.check_inside(self.info.width, self.info.height)
            self.partial = partial_file(self.container)
            if self.partial and not accept_partial:
                raise InputError(f"{mask_url(source)} is a partial file (an interrupted download or copy?): "
                                 f"{self.partial}; pass --accept-partial to upscale what it holds")
        except (InputError, ValueError):
            close_input(self.container)
            raise
        self.stream.thread_type = "AUTO"
        self.passthrough = [s for s in self.container.streams if s.type in PASSTHROUGH_KINDS]
        self.on_packet = on_packet
        self.roi = roi
        self.conversion = resolve_conversion(self.info.color, self.info.height, self.info.pix_fmt)
        self._to_rgb = RgbConverter(self.conversion, rgb_format(self.info.bit_depth))
        self.levels: Levels | None = None
        self._coded_gain: float | None = None
        self.stats = DecodeStats()
        self.rotation = self.info.rotation  # refined from the first frame's display matrix
        self.hdr: HdrMetadata | None = None  # HDR10 metadata, read from the first frame
        self.yuv: YuvFormat | None = None  # set by use_yuv(): frames carry packed YUV planes
        self._closed = False

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def keep_levels(self) -> Levels | None:
        """Decode a limited-range source to coded RGB from the next frame on, so that its
        super-blacks and super-whites survive (see :class:`~vsr.io.color.Levels`).

        Returns:
            the map from the frames' coded levels to nominal RGB (also :attr:`levels`), or
            ``None`` for a full-range source, whose frames do not change.
        """
        self.levels = Levels.of(self.conversion, self.info.bit_depth)
        if self.levels is not None:
            self._to_rgb = RgbConverter(self.conversion.coded, rgb_format(self.info.bit_depth))
            depth = self.info.bit_depth
            if depth > 8:
                # Read as full range, code c comes out as c << (16 - depth); the encoder takes
                # RGB48_WHITE for the top code: rescaled, a frame passes through unchanged.
                self._coded_gain = RGB48_WHITE / ((2**depth - 1) * 2 ** (16 - depth))
        return self.levels

    def frames(self, stop: Callable[[], bool] = lambda: False) -> Iterator[Frame]:
        """Yield frames until the end of the input or until ``stop()`` is true.

        Network sources that drop or stall are reopened (up to ``reconnect`` times, with
        backoff); a source that ends is reopened only with ``reconnect_at_end``. A file behind
        a URL (HTTP, ``file://``) continues from its last frame on its own clock, skipping what
        was already handed on. Other streams' timestamps continue one frame after the last
        video frame, or at the end of the last audio packet if that is later, so every stream
        stays monotonic.
        """
        import av

        time_base = self.info.time_base
        step = _frame_step(self.info)
        consecutive_errors = 0
        demuxed = False
        while not stop():
            streams = [self.stream] + (self.passthrough if self.on_packet else [])
            dropped = False
            try:
                for packet in self._demux(streams):
                    if stop():
                        return
                    demuxed = True
                    if self._resync_pending and packet.pts is not None and packet.size:
                        self._resync(packet)
                    if packet.is_corrupt and self._resumable:
                        continue  # cut short by a drop: read again whole after reopening
                    if packet.stream.index != self.stream.index:
                        if packet.size and self.on_packet is not None and not self._replay(packet):
                            self._shift(packet)
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
                            pts = -self._offset_pts(self.stream) if self._last_pts is None else (
                                self._last_pts + step - self._offset_pts(self.stream))
                        pts += self._offset_pts(self.stream)
                        if self._last_pts is not None and pts <= self._last_pts and self.is_live:
                            continue  # a reconnect replayed frames we already have
                        self._last_pts = pts
                        yield self._frame(vframe, pts, time_base)
            except av.error.FFmpegError as exc:
                if self.source == "-" and not demuxed and "mp4" in self.container.format.name:
                    raise InputError(
                        "the MP4/MOV on standard input has its index (moov atom) at the end, which cannot "
                        "be streamed: pass the file's path instead, or remux it with the index first "
                        "(ffmpeg -i in.mp4 -c copy -movflags +faststart out.mp4)") from exc
                if self.is_live:
                    dropped = True
                    log.warning("stream %s dropped: %s", mask_url(self.source), mask_url(str(exc)))
                else:
                    # A demuxer error mid-file: count it and carry on from where the demuxer stands.
                    self._corrupt(exc)
                    consecutive_errors += 1
                    if consecutive_errors > _MAX_CONSECUTIVE_ERRORS:
                        raise InputError(f"input is too damaged to read: {exc}") from exc
                    continue
            if not self.is_live or stop():
                return
            if not dropped and not self.reconnect_at_end:
                return  # the stream ended: that is not a drop
            # A live source dropped (or ended, with reconnect_at_end): reconnect, or finish if out of attempts.
            if not self._reconnect(stop, dropped):
                return

    def _demux(self, streams) -> Iterator:
        """The container's packets of ``streams``. A packet of a stream that appeared after the
        container was opened (damage in MPEG-TS can make one), which PyAV has no stream for, is
        a demuxer error: the caller counts it and demuxes on."""
        import av

        try:
            yield from self.container.demux(streams)
        except IndexError as exc:  # raised by the demuxer only: the caller's errors are not thrown in here
            raise av.error.InvalidDataError(0, "packet of a stream that appeared mid-file") from exc

    @property
    def is_live(self) -> bool:
        """True for network sources, which may drop and be reopened."""
        return is_url(self.source)

    def _offset_pts(self, stream) -> int:
        if not self._offset:
            return 0
        return round(self._offset / stream.time_base)

    def _shift(self, packet) -> None:
        delta = self._offset_pts(packet.stream)
        if delta:
            if packet.pts is not None:
                packet.pts += delta
            if packet.dts is not None:
                packet.dts += delta
        if packet.pts is not None:
            end = (packet.pts + (packet.duration or 0)) * packet.stream.time_base
            self._last_time = max(self._last_time, end)

    @property
    def _resumable(self) -> bool:
        """A URL of a file (a known duration over HTTP or file://): reopened where it stopped, same clock."""
        return (not self.reconnect_at_end and self.info.duration is not None
                and url_scheme(self.source) in ("http", "https", "file"))

    def _replay(self, packet) -> bool:
        """True for a packet handed on before a file was reopened; notes the others."""
        index = packet.stream.index
        if packet.pts is None:
            return False
        if index in self._replayed and packet.pts <= self._replayed[index]:
            return True
        self._passed[index] = packet.pts
        return False

    def _resync(self, packet) -> None:
        """After a reconnect: shift the new connection's clock to continue where the last ended."""
        self._resync_pending = False
        frame_time = Fraction(1) / self.info.average_rate if self.info.average_rate else Fraction(1, 25)
        last_video = (self._last_pts or 0) * self.info.time_base
        resume_at = max(last_video + frame_time, self._last_time)
        self._offset = resume_at - packet.pts * packet.stream.time_base

    def _reconnect(self, stop: Callable[[], bool], dropped: bool) -> bool:
        """Reopen the source with exponential backoff; False when attempts are used up."""
        import time

        import av

        attempt = 0
        while self.reconnect < 0 or attempt < self.reconnect:
            if stop():
                return False
            delay = min(self.backoff * (2**attempt), 30.0)
            attempt += 1
            self.stats.log.append(f"reconnecting in {delay:.1f} s (attempt {attempt})")
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if stop():
                    return False
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            try:
                container = open_input(self.source, self.options)
                stream = select_video_stream(container, self.stream.index if self._explicit_stream else None)
            except InputError as exc:
                log.warning("reconnect %d failed: %s", attempt, exc)
                continue
            # Read before closing the old container: its streams say nothing once it is closed.
            passthrough = [s.index for s in self.passthrough]
            try:
                close_input(self.container)
            except Exception:  # noqa: BLE001 - the old connection is dead anyway
                pass
            self.container = container
            self.stream = stream
            self.stream.thread_type = "AUTO"
            by_index = {s.index: s for s in container.streams}
            self.passthrough = [by_index[i] for i in passthrough if i in by_index]
            if self._resumable:
                # The same file again: continue from the last frame; what was handed on is skipped.
                self._replayed = dict(self._passed)
                if self._last_pts is not None:
                    try:
                        container.seek(self._last_pts, stream=stream)
                    except av.error.FFmpegError as exc:  # read it from the start instead
                        log.warning("cannot seek %s: %s", mask_url(self.source), mask_url(str(exc)))
            else:
                self._resync_pending = True
            self.stats.reconnects += 1
            return True
        if dropped or self.reconnect:
            self.stats.log.append(f"gave up after {attempt} reconnect attempts")
        return False

    def use_yuv(self, like: YuvFormat | None = None) -> YuvFormat | None:
        """Hand frames over as their YUV planes, for a conversion to RGB elsewhere (on the
        method's device, :mod:`vsr.io.yuv`) or a method that resamples planes, where the stream
        allows it: a planar format of :data:`~vsr.io.yuv.PACKED_FORMATS` with even sides, a
        matrix the conversion knows, no region of interest, and with ``like`` that format but
        for the chroma siting. Call it before iterating; a frame of odd size or of another
        pixel format (a stream that changes midway) still comes as RGB.

        Frames then hold ``(1, rows, W)`` uint8 (8-bit) or uint16 tensors: the planes one after
        the other (:func:`~vsr.io.yuv.pack`). The chroma siting is the one whose conversion of
        the first frame matches FFmpeg's (which reads the siting the frame carries and PyAV
        does not show); until then, and where the first frame cannot tell (flat chroma), left.

        Returns:
            the planes' format (its siting settles at the first frame), or ``None``: frames stay RGB.
        """
        info = self.info
        if (self.roi is not None or info.pix_fmt not in PACKED_FORMATS or info.width % 2 or info.height % 2
                or self.stats.frames):
            return None
        try:
            fmt = YuvFormat.of(info.pix_fmt, self.conversion.colorspace, self.conversion.color_range)
        except ConfigError:
            return None
        if like is not None and replace(fmt, siting=like.siting) != like:
            return None
        self.yuv = fmt
        return self.yuv

    def _frame(self, vframe, pts: int, time_base: Fraction) -> Frame:
        if self.stats.frames == 0:
            self.rotation = frame_rotation(vframe)
            self.hdr = HdrMetadata.from_frame(vframe)
        import torch

        if (self.yuv is not None and vframe.format.name == self.info.pix_fmt
                and vframe.width % 2 == 0 and vframe.height % 2 == 0):
            if self.stats.frames == 0:
                self._settle_siting(vframe)
            planes = vframe.to_ndarray()
            data = torch.from_numpy(planes.reshape(-1, planes.shape[-1]))[None]
            frame = Frame(data=data, pts=pts, time_base=time_base, index=self.stats.frames,
                          duration=int(vframe.duration) if vframe.duration else None)
            self.stats.frames += 1
            return frame
        rgb = self._to_rgb(vframe)
        if self._coded_gain is not None:
            import cv2

            rgb = cv2.multiply(rgb.reshape(rgb.shape[0], -1), self._coded_gain).reshape(rgb.shape)
        data = torch.from_numpy(rgb).permute(2, 0, 1)
        if self.roi is not None:
            r = self.roi
            data = data[:, r.y : r.y + r.h, r.x : r.x + r.w]
        frame = Frame(data=data, pts=pts, time_base=time_base, index=self.stats.frames,
                      duration=int(vframe.duration) if vframe.duration else None)
        self.stats.frames += 1
        return frame

    def _settle_siting(self, vframe) -> None:
        import numpy as np
        import torch

        reference = torch.from_numpy(self._to_rgb(vframe).astype("float32")).permute(2, 0, 1)
        reference /= 255.0 if self.yuv.bit_depth <= 8 else 65535.0
        planes = torch.from_numpy(vframe.to_ndarray().astype("int32"))
        y, u, v = unpack(planes.reshape(-1, planes.shape[-1]), self.yuv)
        # Compared in the window where chroma varies most, which tells the sitings apart as the whole
        # frame does: tensors that small stay on one thread (torch's threads, on a busy machine,
        # spun for 0.8 s of CPU over a whole 640x360 frame), with a margin its edges cannot reach.
        sx, sy = self.yuv.subsampling
        rows, cols = min(_SITING_WINDOW // sy, u.shape[0]), min(_SITING_WINDOW // sx, u.shape[1])
        chroma = np.stack([u.numpy(), v.numpy()])
        detail = np.zeros(u.shape)
        detail[1:] += np.abs(np.diff(chroma, axis=1)).sum(0)
        detail[:, 1:] += np.abs(np.diff(chroma, axis=2)).sum(0)
        sums = np.pad(detail.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        boxes = sums[rows:, cols:] - sums[:-rows, cols:] - sums[rows:, :-cols] + sums[:-rows, :-cols]
        top, left = np.unravel_index(np.argmax(boxes), boxes.shape)
        window = (slice(top * sy, (top + rows) * sy), slice(left * sx, (left + cols) * sx))
        chroma_window = (slice(top, top + rows), slice(left, left + cols))
        inner = (slice(None), *(slice(_SITING_MARGIN if part.start else None,
                                      -_SITING_MARGIN if part.stop < size else None)
                                for part, size in zip(window, y.shape)))
        errors = {}
        for siting in SITINGS:
            rgb = yuv_to_rgb(y[window], u[chroma_window], v[chroma_window], replace(self.yuv, siting=siting))
            errors[siting] = (rgb - reference[(slice(None), *window)])[inner].abs().mean()
        best = min(SITINGS, key=lambda s: errors[s])
        # Else the frame cannot tell: flat chroma, or differences within the rounding of 8-bit RGB.
        if errors[best] < errors["left"] * 0.9 and errors["left"] - errors[best] > 0.1 / 255:
            self.yuv = replace(self.yuv, siting=best)

    def _corrupt(self, exc: Exception) -> None:
        self.stats.corrupt_packets += 1
        if len(self.stats.log) < 20:
            self.stats.log.append(mask_url(str(exc)))
        log.warning("skipped damaged data: %s", mask_url(str(exc)))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            close_input(self.container)

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _frame_step(info: VideoInfo) -> int:
    """One frame's duration in ``time_base`` units, for frames that arrive without a pts."""
    if info.average_rate:
        return max(1, round(1 / (info.average_rate * info.time_base)))
    return 1
