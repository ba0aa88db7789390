"""Joining encoded segments into the output without re-encoding.

The video packets of each segment are copied in order with their own pts and dts
(the pts are the source's, so nothing is offset); the display rotation and colour
tags come with the first segment's stream. Audio and subtitle packets are copied
once from the source with their own timestamps, so their sync is exactly that of a
plain run. Both are interleaved by decode time as they are written.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vsr.errors import OutputError
from vsr.io.decode import PASSTHROUGH_KINDS
from vsr.io.encode import container_format, muxer_refusal, temporary_path
from vsr.io.source import OpenOptions, close_input, open_input, select_video_stream

log = logging.getLogger(__name__)


@dataclass
class StitchStats:
    """What :func:`stitch` wrote.

    Attributes:
        video_packets: video packets copied from the segments.
        passthrough_packets: audio/subtitle packets copied from the source.
        dropped_streams: source streams the output container could not take.
    """

    video_packets: int = 0
    passthrough_packets: int = 0
    dropped_streams: list[str] = field(default_factory=list)


def _time(packet) -> Fraction:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return Fraction(stamp or 0) * Fraction(packet.time_base)


def _video_packets(containers: Sequence) -> Iterator:
    last_dts: int | None = None
    for container in containers:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            unset = packet.dts is None and packet.pts is not None
            if unset and last_dts is None:
                packet.dts = packet.pts
            elif unset or (packet.dts is not None and last_dts is not None and packet.dts <= last_dts):
                # Segment boundaries of variable-rate x264 output can repeat a dts, and Matroska,
                # which stores none, leaves some unknown; the muxer needs them increasing, and they
                # may move as long as they stay <= pts.
                if packet.pts is None or last_dts + 1 > packet.pts:
                    raise OutputError(f"cannot join segments: decode timestamps overlap at dts {packet.dts}; "
                                      "encode without B-frames (--codec ffv1, or a --pipeline preset whose "
                                      "[encode.options] sets bf = 0) or run without --ray")
                packet.dts = last_dts + 1
            if packet.dts is not None:
                last_dts = packet.dts
            yield packet


def _passthrough_packets(source_container, streams: Sequence) -> Iterator:
    if not streams:
        return
    for packet in source_container.demux(list(streams)):
        if packet.size:
            yield packet


def stitch(segments: Sequence[str | Path], source: str, target: str | Path, *, format: str | None = None,
           video_stream: int | None = None, open_options: OpenOptions | None = None) -> StitchStats:
    """Write ``target`` from the video of ``segments`` (in order) and the audio/subtitles of ``source``.

    Args:
        segments: segment files, each holding one video stream, in presentation order.
        source: the input the segments were made from.
        target: output file; written under a temporary name and renamed when complete.
        format: container format; ``None`` chooses from ``target``'s extension.
        video_stream: index of the source's upscaled video stream (never copied).
        open_options: how to open ``source``.

    Raises:
        OutputError: no segments, segments encoded with other settings, the output cannot
            be written, or the segments' timestamps overlap.
        InputError: a segment or the source cannot be read.
    """
    import av

    if not segments:
        raise OutputError("nothing to join: no segment was completed")
    target = Path(target)
    temp = temporary_path(target)
    stats = StitchStats()
    inputs = [open_input(str(p)) for p in segments]
    src = open_input(source, open_options)
    out = None
    try:
        chosen = select_video_stream(src, video_stream)
        passthrough = [s for s in src.streams if s.type in PASSTHROUGH_KINDS and s.index != chosen.index]
        try:
            out = av.open(str(temp), mode="w", format=container_format(str(target), format),
                          options={"movflags": "+faststart"} if target.suffix.lower() in (".mp4", ".m4v", ".mov")
                          else {})
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create output {target}: {getattr(exc, 'strerror', None) or exc}") from exc
        template = inputs[0].streams.video[0]
        for path, other in zip(segments[1:], inputs[1:]):
            if other.streams.video[0].codec_context.extradata != template.codec_context.extradata:
                raise OutputError(f"segment {Path(path).name} was encoded with other settings; delete the "
                                  "work directory beside the output and run again")
        video_out = out.add_stream_from_template(template)
        video_out.time_base = template.time_base
        for key in ("language", "handler_name"):
            if key in (chosen.metadata or {}):
                video_out.metadata[key] = chosen.metadata[key]
        stream_map = {}
        for s in passthrough:
            name = s.codec_context.name if s.codec_context is not None else "?"
            refusal = muxer_refusal(out.format.name, s)
            if refusal is not None:
                stats.dropped_streams.append(f"{s.type} stream {s.index} ({name}) cannot go into "
                                             f"{out.format.name}: {refusal}")
                continue
            try:
                copy = out.add_stream_from_template(s)
            except Exception as exc:  # noqa: BLE001 - any refusal drops just this stream
                stats.dropped_streams.append(f"{s.type} stream {s.index} ({name}): {exc}")
                continue
            for key in ("language", "title", "handler_name"):
                if key in (s.metadata or {}):
                    copy.metadata[key] = s.metadata[key]
            copy.disposition = s.disposition
            stream_map[s.index] = copy
        for message in stats.dropped_streams:
            log.warning("dropping %s", message)

        video = ((_time(p), 0, p) for p in _video_packets(inputs))
        audio = ((_time(p), 1, p) for p in _passthrough_packets(src, [s for s in passthrough if s.index in stream_map]))
        try:
            for _, kind, packet in heapq.merge(video, audio, key=lambda item: (item[0], item[1])):
                if kind == 0:
                    packet.stream = video_out
                    stats.video_packets += 1
                else:
                    packet.stream = stream_map[packet.stream.index]
                    stats.passthrough_packets += 1
                out.mux(packet)
            out.close()
        except av.error.FFmpegError as exc:
            raise OutputError(f"writing {target} failed: {exc}") from exc
        out = None
        os.replace(temp, target)
    finally:
        if out is not None:
            try:
                out.close()
            except Exception:  # noqa: BLE001 - already failing; the file is deleted next
                pass
        if temp.exists():
            temp.unlink()
        for c in inputs:
            close_input(c)
        close_input(src)
    return stats
