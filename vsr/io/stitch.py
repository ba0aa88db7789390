"""Joining separately encoded video segments into one file without re-encoding.

Video packets are copied from each segment in order; audio and subtitle packets
are copied once from the source, so their timing is the source's own. Both
sequences are merged by decode time so the output is properly interleaved.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

from vsr.errors import OutputError
from vsr.io.encode import container_format, temporary_path
from vsr.io.source import OpenOptions, open_input


def _video_packets(segments: Sequence[Path]) -> Iterator[tuple[Fraction, int, object]]:
    """Video packets of every segment in order, with decode timestamps kept strictly increasing.

    Each segment's encoder started afresh, so its first packets may carry decode times at
    or before the previous segment's last; those are nudged forward (never past their pts).
    """
    import av

    last_dts: Fraction | None = None
    for order, segment in enumerate(segments):
        with av.open(str(segment)) as container:
            stream = container.streams.video[0]
            tb = stream.time_base
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                if packet.dts is not None and last_dts is not None and packet.dts * tb <= last_dts:
                    bumped = int(last_dts / tb) + 1
                    if packet.pts is not None and bumped > packet.pts:
                        raise OutputError(f"segment {segment.name} overlaps the one before it; delete the "
                                          "resume folder and run again")
                    packet.dts = bumped
                if packet.dts is not None:
                    last_dts = packet.dts * tb
                yield (packet.dts if packet.dts is not None else packet.pts or 0) * tb, order, packet


def _source_packets(source: str, indices: set[int], options: OpenOptions | None):
    container = open_input(source, options)

    def packets() -> Iterator[tuple[Fraction, int, object]]:
        try:
            streams = [s for s in container.streams if s.index in indices]
            if not streams:
                return
            for packet in container.demux(streams):
                if packet.size:
                    time = (packet.dts if packet.dts is not None else packet.pts or 0) * packet.stream.time_base
                    yield time, -1, packet
        finally:
            container.close()

    return container, packets()


def stitch(segments: Sequence[Path], source: str, target: str, passthrough: Sequence[int] = (),
           options: OpenOptions | None = None, rotation: int = 0) -> None:
    """Write ``target`` from video ``segments`` plus streams ``passthrough`` of ``source``.

    Args:
        segments: files holding one video stream each, in presentation order, encoded with
            identical settings.
        source: the original input, read again for its audio and subtitle packets.
        target: the final output path; written under a temporary name and renamed.
        passthrough: indices of the source streams to copy.
        rotation: display rotation to write on the video stream.

    Raises:
        OutputError: no segments, mismatched segments, or the output cannot be written.
    """
    import av

    if not segments:
        raise OutputError("nothing to stitch: no segment was completed")
    tmp = temporary_path(Path(target))
    fmt = container_format(target, None)
    source_container, source_packets = _source_packets(source, set(passthrough), options)
    try:
        options_out = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
        with av.open(str(segments[0])) as first, av.open(str(tmp), "w", format=fmt, options=options_out) as out:
            video_in = first.streams.video[0]
            video_out = out.add_stream_from_template(video_in)
            if rotation:
                video_out.set_display_rotation(rotation)
            extradata = video_in.codec_context.extradata
            mapping = {}
            supported = getattr(out, "supported_codecs", None)
            for s in source_container.streams:
                if s.index in passthrough and (supported is None or s.codec_context.name in supported):
                    mapping[s.index] = out.add_stream_from_template(s)
            for segment in segments[1:]:
                with av.open(str(segment)) as other:
                    if other.streams.video[0].codec_context.extradata != extradata:
                        raise OutputError(f"segment {segment.name} was encoded with other settings; delete the "
                                          "resume folder and run again")
            merged = heapq.merge(_video_packets(segments), source_packets, key=lambda item: item[:2])
            for _, order, packet in merged:
                if order < 0:
                    target_stream = mapping.get(packet.stream.index)
                    if target_stream is None:
                        continue
                    packet.stream = target_stream
                else:
                    packet.stream = video_out
                out.mux(packet)
    except av.error.FFmpegError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"joining segments into {target} failed: {exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        source_container.close()
    os.replace(tmp, target)
