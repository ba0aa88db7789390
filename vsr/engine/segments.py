"""Cutting a video stream into independent segments at keyframes.

A segment is a run of consecutive frames (in presentation order) that starts at a
keyframe. A worker that processes it also decodes ``context`` frames on each side
(the method's radius), so every window it builds holds the same frames as the
window the single-process pipeline builds for that reference.

The plan is made from packet timestamps alone (demuxing without decoding), so it
costs one read of the file and no decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

from vsr.errors import ConfigError, InputError, PipelineError
from vsr.io.decode import Decoder
from vsr.io.source import (
    OpenOptions,
    close_input,
    open_input,
    partial_file,
    select_video_stream,
)
from vsr.types import Frame


@dataclass(frozen=True)
class Segment:
    """One unit of work: frames ``first_pts..last_pts`` plus their decode context.

    Attributes:
        id: position of the segment in the stream, from 0.
        first_pts, last_pts: pts of the first and last frame the segment writes.
        frames: number of frames the segment writes.
        context_first_pts, context_last_pts: pts of the first and last frame to decode
            (equal to ``first_pts``/``last_pts`` when there is no context on that side).
        seek_pts: pts of the keyframe to seek to before decoding, or ``None`` to decode
            from the start of the input (the first segment, exactly as a plain run does).
    """

    id: int
    first_pts: int
    last_pts: int
    frames: int
    context_first_pts: int
    context_last_pts: int
    seek_pts: int | None

    def is_context(self, pts: int) -> bool:
        """True for a decoded frame that is only a neighbour (not written by this segment)."""
        return pts < self.first_pts or pts > self.last_pts


@dataclass(frozen=True)
class StreamScan:
    """Timestamps of a video stream, read from its packets.

    Attributes:
        pts: every frame's pts, sorted (presentation order).
        keyframes: pts of the keyframes, sorted.
        time_base: unit of the pts.
        stream_index: index of the scanned stream in the container.
    """

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    time_base: Fraction
    stream_index: int


def scan_stream(source: str, video_stream: int | None = None, options: OpenOptions | None = None) -> StreamScan:
    """Read the pts of every frame and keyframe of ``source``'s video stream without decoding.

    Raises:
        InputError: the input cannot be opened, has no video stream, or its video packets
            carry no pts (such a stream cannot be split; run it without ``--ray``).
    """
    container = open_input(source, options)
    try:
        stream = select_video_stream(container, video_stream)
        stamps: list[int] = []
        keys: list[int] = []
        held = None
        if partial_file(container):  # its index describes frames whose data never arrived: not frames
            held = {e.pos for e in stream.index_entries if 0 <= e.pos and e.pos + e.size <= container.size}
        for packet in container.demux(stream):
            if packet.size == 0 or (held is not None and packet.pos not in held):
                continue
            if packet.pts is None:
                raise InputError(f"video packets of {source} carry no timestamps: it cannot be split "
                                 "into segments; run it without --ray")
            stamps.append(int(packet.pts))
            if packet.is_keyframe:
                keys.append(int(packet.pts))
        if not stamps:
            raise InputError(f"no video packets in {source}: nothing to upscale")
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        return StreamScan(tuple(sorted(stamps)), tuple(sorted(set(keys))), time_base, stream.index)
    finally:
        close_input(container)


def plan_segments(scan: StreamScan, segment_seconds: float, before: int, after: int,
                  at_keyframes: bool = True) -> list[Segment]:
    """Split the stream into segments of at least ``segment_seconds`` each.

    With ``at_keyframes`` every segment but the first starts at a keyframe, and a segment
    ends just before the first keyframe at least ``segment_seconds`` after its start (so
    sparse keyframes make segments longer, never shorter): each segment is reached by a
    seek with no frame decoded in vain, for workers that run segments apart. Without it a
    segment starts at the first frame ``segment_seconds`` after the last one began, whatever
    the keyframes (for one process running the segments in a row, which seeks once). The last
    segment takes what is left.

    Args:
        scan: the stream's timestamps (:func:`scan_stream`).
        segment_seconds: target duration of a segment, ``> 0``.
        before, after: frames each segment decodes before its first and after its last
            frame as neighbours (``>= 0``): the method's radius on each side, or twice the
            radius before and none after for causal windows.
        at_keyframes: start segments at keyframes only.

    Raises:
        ConfigError: ``segment_seconds <= 0`` or negative context.
    """
    if segment_seconds <= 0:
        raise ConfigError(f"--segment-seconds must be > 0; got {segment_seconds:g}")
    if before < 0 or after < 0:
        raise ConfigError(f"context must be >= 0; got {before} before, {after} after")
    pts = scan.pts
    index_of = {p: i for i, p in enumerate(pts)}
    span = Fraction(segment_seconds).limit_denominator(1_000_000) / scan.time_base
    starts = [0]
    if at_keyframes:
        for key in scan.keyframes:
            i = index_of.get(key)
            if i is not None and i > starts[-1] and key - pts[starts[-1]] >= span:
                starts.append(i)
    else:
        for i, stamp in enumerate(pts):
            if stamp - pts[starts[-1]] >= span:
                starts.append(i)
    bounds = list(zip(starts, starts[1:] + [len(pts)]))
    segments = []
    for number, (lo, hi) in enumerate(bounds):
        ctx_lo = max(0, lo - before)
        ctx_hi = min(len(pts) - 1, hi - 1 + after)
        seek = None
        if ctx_lo > 0:
            # The latest keyframe at or before the first context frame.
            seek = max((k for k in scan.keyframes if k <= pts[ctx_lo]), default=None)
        segments.append(Segment(id=number, first_pts=pts[lo], last_pts=pts[hi - 1], frames=hi - lo,
                                context_first_pts=pts[ctx_lo], context_last_pts=pts[ctx_hi], seek_pts=seek))
    return segments


def decode_segment(decoder: Decoder, segment: Segment, stop: Callable[[], bool] = lambda: False) -> Iterator[Frame]:
    """Decode the frames of ``segment`` and its context, in presentation order.

    Seeks to the segment's keyframe first, so nothing before it is decoded.

    Args:
        decoder: a fresh :class:`~vsr.io.decode.Decoder` of the source, not yet iterated;
            the caller closes it.
        segment: what to decode.
        stop: checked between packets; decoding ends early once it is true.

    Yields:
        Frames ``(3, H, W)`` uint8/uint16 RGB, exactly as the decoder gives them in a plain
        run, from ``context_first_pts`` to ``context_last_pts``; ``index`` counts from 0.

    Raises:
        InputError: seeking did not reach the planned keyframe (a container without a
            precise index).
        PipelineError: no frame of the segment could be decoded.
    """
    if segment.seek_pts is not None:
        decoder.container.seek(segment.seek_pts, stream=decoder.stream, backward=True, any_frame=False)
    index = 0
    for frame in decoder.frames(stop):
        if frame.pts < segment.context_first_pts:
            continue
        if index == 0 and frame.pts != segment.context_first_pts:
            raise InputError(
                f"segment {segment.id}: decoding from the keyframe at pts {segment.seek_pts} began at "
                f"pts {frame.pts}, not {segment.context_first_pts}: this container cannot be seeked "
                "precisely; remux it to .mp4 or .mkv, or run without --ray or --resume")
        if frame.pts > segment.context_last_pts:
            break
        yield Frame(data=frame.data, pts=frame.pts, time_base=frame.time_base, index=index,
                    duration=frame.duration)
        index += 1
        if frame.pts == segment.context_last_pts:
            break
    if index == 0 and not stop():
        raise PipelineError(f"segment {segment.id}: no frame decoded from pts {segment.context_first_pts}")
