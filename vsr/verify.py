"""Round-trip verification: read a finished output back and check it against its input.

What is checked, from one demux of each file (only the first video frame is decoded, for its
display rotation):

- the video frame count, and every frame's pts. The pts are compared in the output's time
  base: a container that counts time in other units than the input (Matroska counts
  milliseconds) rounds each pts to its own tick, so a pts within one output tick of the
  input's, rescaled, is kept. A container that cannot store a timestamp below zero
  (Matroska) moves every stream by the same amount: that shift, measured on the streams
  both files hold, is applied before comparing and named in the summary. Frames the run
  reported skipping (damaged packets, frames dropped to keep up with a live source) may be
  missing, and frames whose repeated pts the encoder moved forward may differ, nothing else;
- every audio and subtitle stream: packet count, each packet's bytes and pts, and a sha256
  of all the payloads in order. Streams the run reported dropping (a codec the output
  container cannot hold) are expected to be absent;
- the colour tags (matrix, range, primaries, transfer, with unspecified ones filled in as
  the encoder does), the display rotation, the dimensions and the video's duration.

Outputs that cannot be read back (a URL, standard output, a rolling HLS playlist) and
inputs that cannot be read twice (a live stream, standard input) get what is checkable:
the count of frames sent against the count decoded, and whether any pts had to change.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import av

from vsr.errors import InputError
from vsr.io.color import color_info_from_codec, resolve_conversion
from vsr.io.source import (
    close_input,
    frame_rotation,
    is_url,
    open_input,
    select_video_stream,
)
from vsr.types import ColorInfo

_MAX_LISTED = 3  # differences named in one message, per check
_MAX_DEMUX_ERRORS = 100


@dataclass(frozen=True)
class PacketStream:
    """One audio or subtitle stream as demuxed: what its packets hold.

    Attributes:
        index: stream index in its container.
        kind: ``"audio"`` or ``"subtitle"``.
        codec: codec name.
        time_base: unit of ``pts``.
        pts: each packet's pts in demux order (``None`` where the packet has none).
        digests: sha256 of each packet's payload, in demux order.
        sha256: sha256 of the packets' hex digests joined in demux order: equal for two
            streams exactly when every payload and their order are.
    """

    index: int
    kind: str
    codec: str
    time_base: Fraction
    pts: tuple[int | None, ...]
    digests: tuple[str, ...]
    sha256: str

    @property
    def packets(self) -> int:
        return len(self.digests)


@dataclass(frozen=True)
class VideoTrack:
    """One video stream as demuxed, without decoding.

    Attributes:
        index: stream index in its container.
        width, height: coded size in pixels.
        pix_fmt: the decoder's pixel format.
        color: the stream's colour tags (``None`` fields: unspecified).
        rotation: display rotation in degrees.
        time_base: unit of ``pts``.
        pts: presentation timestamps of every frame, sorted; packets without pts are not here.
        missing_pts: packets that carried no pts.
        end: presentation time (seconds) where the last frame ends, ``None`` without pts.
        average_rate: the stream's average frame rate, when it says.
    """

    index: int
    width: int
    height: int
    pix_fmt: str
    color: ColorInfo
    rotation: int
    time_base: Fraction
    pts: tuple[int, ...]
    missing_pts: int
    end: float | None
    average_rate: Fraction | None

    @property
    def frames(self) -> int:
        return len(self.pts) + self.missing_pts


@dataclass(frozen=True)
class Demuxed:
    """What one demux pass over a container tells: its video stream and its other streams."""

    video: VideoTrack
    others: tuple[PacketStream, ...]


def demux(path: str, video_stream: int | None = None) -> Demuxed:
    """Read ``path`` once, packet by packet, decoding only the first video frame (its rotation).

    Args:
        path: a media file.
        video_stream: index of the video stream to describe; ``None`` for the default one.

    Raises:
        InputError: the file cannot be opened, has no such video stream, or is too damaged to read.
    """
    container = open_input(path)
    try:
        video = select_video_stream(container, video_stream)
        # As the stream declares them: decoding a frame may fill in the decoder's own guesses.
        color = color_info_from_codec(video.codec_context)
        others = [s for s in container.streams if s.type in ("audio", "subtitle")]
        seen = _Packets(video.index, [s.index for s in others])
        errors = 0
        while True:  # a damaged packet stops the demuxer, which carries on from where it stands
            try:
                for packet in container.demux([video, *others]):
                    seen.add(packet)
                break
            except av.error.FFmpegError as exc:
                errors += 1
                if errors > _MAX_DEMUX_ERRORS:
                    raise InputError(f"cannot read {path} back: {exc}") from exc
        cc = video.codec_context
        track = VideoTrack(
            index=video.index, width=cc.width, height=cc.height, pix_fmt=cc.pix_fmt or "?",
            color=color, rotation=seen.rotation or 0, time_base=Fraction(video.time_base),
            pts=tuple(sorted(seen.pts)), missing_pts=seen.missing, end=_end(video, seen.end),
            average_rate=Fraction(video.average_rate) if video.average_rate else None,
        )
        streams = tuple(
            PacketStream(index=s.index, kind=s.type, codec=s.codec_context.name if s.codec_context else "?",
                         time_base=Fraction(s.time_base), pts=tuple(seen.stamps[s.index]),
                         digests=tuple(seen.hashes[s.index]),
                         sha256=hashlib.sha256("".join(seen.hashes[s.index]).encode()).hexdigest())
            for s in others
        )
        return Demuxed(track, streams)
    finally:
        close_input(container)


class _Packets:
    """What :func:`demux` gathers, packet by packet."""

    def __init__(self, video: int, others: list[int]) -> None:
        self.video = video
        self.pts: list[int] = []
        self.missing = 0
        self.end: int | None = None
        self.rotation: int | None = None  # from the first decoded frame: PyAV has no stream side data
        self.hashes: dict[int, list[str]] = {i: [] for i in others}
        self.stamps: dict[int, list[int | None]] = {i: [] for i in others}

    def add(self, packet) -> None:
        if not packet.size:
            return
        index = packet.stream_index
        if index != self.video:
            payload = _without_adts(bytes(packet))
            self.hashes[index].append(hashlib.sha256(payload).hexdigest())
            self.stamps[index].append(packet.pts)
            return
        if packet.pts is None:
            self.missing += 1
            return
        if self.rotation is None:
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                frames = []
            if frames:
                self.rotation = frame_rotation(frames[0])
        self.pts.append(packet.pts)
        stop = packet.pts + (packet.duration or 0)
        self.end = stop if self.end is None else max(self.end, stop)


def _without_adts(payload: bytes) -> bytes:
    """An AAC packet without its ADTS header, where it has one.

    MPEG-TS (and so HLS, UDP and SRT outputs) carries AAC with a 7- or 9-byte ADTS header in
    front of each raw frame, which MP4 and Matroska keep apart; the muxer adds it when copying.
    The audio itself is the bytes after the header, and that is what is compared.
    """
    if len(payload) > 9 and payload[0] == 0xFF and payload[1] & 0xF6 == 0xF0:
        header = 7 if payload[1] & 0x01 else 9  # protection_absent: no CRC
        if ((payload[3] & 0x03) << 11 | payload[4] << 3 | payload[5] >> 5) == len(payload):
            return payload[header:]
    return payload


def _end(stream, last_end: int | None) -> float | None:
    """Where the video ends, in seconds: the container's start and duration where it says
    (packet durations in decode order do not belong to the frames sorted by pts), else the
    end of the latest packet."""
    if stream.duration and stream.start_time is not None:
        return float((stream.start_time + stream.duration) * stream.time_base)
    return None if last_end is None else float(last_end * stream.time_base)


@dataclass
class Verification:
    """The outcome of checking an output against its input.

    Attributes:
        ok: every check passed.
        summary: one line for people: ``verified: 241 frames, every pts kept, ...`` or
            ``verification failed: ...``.
        problems: one sentence per failed check.
        checks: the figures behind each check, for the JSON record and the report.
    """

    ok: bool
    summary: str
    problems: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunFacts:
    """What the run says it did, which verification takes into account.

    Attributes:
        frames_written: frames the encoder received.
        frames_skipped: source frames that were legitimately not written (damaged packets,
            frames dropped to keep up with a live source).
        dropped_streams: audio/subtitle streams the output container could not take.
        expected_size: ``(width, height)`` the run asked for, before the one-pixel crop 4:2:0
            may need; ``None`` to accept any size that keeps the input's aspect ratio.
        adjusted_pts: frames whose pts the encoder had to move (repeated pts in the input).
        partial_input: the input is a truncated file the run accepted: its container claims a
            duration its packets do not reach, so the duration is not compared.
    """

    frames_written: int | None = None
    frames_skipped: int = 0
    dropped_streams: int = 0
    expected_size: tuple[int, int] | None = None
    adjusted_pts: int = 0
    partial_input: bool = False


def verify(source: str, output: str, video_stream: int | None = None, facts: RunFacts | None = None) -> Verification:
    """Check ``output`` against ``source`` (see the module docstring for what is checked).

    Args:
        source: the input of the run (a file; streams and ``-`` get :func:`verify_sent`).
        output: the finished output file.
        video_stream: the input's video stream that was upscaled (``None``: the default one).
        facts: what the run reported doing.

    Returns:
        A :class:`Verification`; ``ok`` is false when anything differs.

    Raises:
        InputError: either file cannot be read.
    """
    facts = facts or RunFacts()
    src, out = demux(source, video_stream), demux(output)
    problems: list[str] = []
    pairs, absent, unknown = _pair(src.others, out.others)
    # A container that cannot store negative timestamps (Matroska) shifts every stream by the
    # same amount: the streams stay in sync, and the timestamps are compared after that shift.
    src_start = _start(src.video, [a for a, _ in pairs])
    out_start = _start(out.video, [b for _, b in pairs])
    shift = out_start - src_start if src_start is not None and out_start is not None else Fraction(0)
    checks: dict[str, Any] = {"shift_seconds": float(shift)}
    kept_all = _check_frames(src.video, out.video, facts, shift, problems, checks)
    copied = _check_streams(pairs, absent, unknown, facts.dropped_streams, shift, problems, checks)
    _check_picture(src.video, out.video, facts.expected_size, problems, checks)
    if not facts.partial_input:
        _check_duration(src.video, out.video, facts.frames_skipped, shift, problems, checks)
    if problems:
        if facts.adjusted_pts:
            problems.append(f"{_count(facts.adjusted_pts, 'frame')} of the input came with a pts at or before "
                            "the previous one's and were moved forward")
        return Verification(False, "verification failed: " + "; ".join(problems), problems, checks)
    frames = out.video.frames
    parts = [f"{frames} frames" if kept_all else f"{frames} of {src.video.frames} frames "
             f"({src.video.frames - frames} skipped as the run reported)",
             "every pts kept" if kept_all else "the pts of every frame written kept"]
    if facts.adjusted_pts:
        parts[1] += f" but {_count(facts.adjusted_pts, 'frame')} the input stamped out of order (moved forward)"
    parts.append(copied or "no audio or subtitle streams")
    if shift:
        parts.append(f"every stream moved {float(shift) * 1000:+.0f} ms by the container")
    return Verification(True, "verified: " + ", ".join(parts) + f"; {out.video.width}x{out.video.height}, "
                        "colour tags and duration kept", [], checks)


def verify_sent(frames_decoded: int, facts: RunFacts, why: str = "the output is a stream") -> Verification:
    """What can be checked of a run whose output or input cannot be read again: the count of
    frames sent against the count decoded, and whether every pts went out unchanged.

    Args:
        frames_decoded: frames the decoder produced.
        facts: what the run reported; ``frames_written`` must be set.
        why: why nothing is read back, for the message.
    """
    problems = []
    sent = facts.frames_written or 0
    if sent + facts.frames_skipped != frames_decoded:
        problems.append(f"{sent} frames sent and {facts.frames_skipped} dropped, but {frames_decoded} decoded")
    if facts.adjusted_pts:
        problems.append(f"{facts.adjusted_pts} frames went out with a pts moved forward (the input repeated them)")
    checks = {"frames": {"sent": sent, "decoded": frames_decoded, "dropped": facts.frames_skipped},
              "adjusted_pts": facts.adjusted_pts, "read_back": False}
    if problems:
        return Verification(False, "verification failed: " + "; ".join(problems), problems, checks)
    dropped = f", {facts.frames_skipped} dropped to keep up" if facts.frames_skipped else ""
    return Verification(True, f"verified what can be: {sent} frames sent{dropped}, every pts kept "
                              f"({why}: not read back)", [], checks)


def can_read_back(path: str) -> bool:
    """True for regular files (not ``-``, URLs or HLS playlists), which can be demuxed again."""
    return path != "-" and not is_url(path) and not path.lower().endswith(".m3u8")


# -- checks -------------------------------------------------------------------------------------

def _seconds(pts: int, time_base: Fraction) -> str:
    return f"{float(pts * time_base):.3f} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _rescale(pts: int, src: Fraction, dst: Fraction, shift: Fraction = Fraction(0)) -> int:
    """``pts`` from ``src`` to ``dst`` units, ``shift`` seconds later, rounded half away from zero
    as av_rescale_q rounds."""
    value = (pts * src + shift) / dst
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


def _check_frames(src: VideoTrack, out: VideoTrack, facts: RunFacts, shift: Fraction, problems: list[str],
                  checks: dict[str, Any]) -> bool:
    """Frame count and pts; returns True when every input frame is in the output."""
    checks["frames"] = {"input": src.frames, "output": out.frames, "skipped": facts.frames_skipped,
                        "written": facts.frames_written}
    checks["time_base"] = {"input": str(src.time_base), "output": str(out.time_base)}
    if facts.frames_written is not None and facts.frames_written != out.frames:
        problems.append(f"the run wrote {facts.frames_written} frames but the output holds {out.frames}")
    if src.missing_pts:
        # Without input timestamps only the count can be compared.
        if out.frames + facts.frames_skipped != src.frames:
            problems.append(f"the output has {out.frames} frames, the input {src.frames}")
        checks["pts"] = "input has no timestamps: count only"
        return out.frames == src.frames
    tick = out.time_base
    expected = [_rescale(p, src.time_base, tick, shift) for p in src.pts]
    got = list(out.pts)
    tolerance = 0 if tick == src.time_base and not shift else 1
    missing, extra = _align(expected, got, tolerance)
    if facts.partial_input and got:
        # The packet the file was cut in does not decode: frames past the last one written are not lost by the run.
        missing = [p for p in missing if p < max(got)]
    checks["pts"] = {"missing": len(missing), "extra": len(extra), "tolerance_ticks": tolerance}
    moved = facts.adjusted_pts  # repeated input pts the encoder moved forward: one missing, one extra each
    if len(extra) > moved:
        listed = ", ".join(_seconds(p, tick) for p in extra[:_MAX_LISTED])
        problems.append(f"{_count(len(extra), 'frame')} of the output not in the input (at {listed}"
                        + (", ..." if len(extra) > _MAX_LISTED else "") + ")")
    if len(missing) > facts.frames_skipped + moved:
        listed = ", ".join(_seconds(p, tick) for p in missing[:_MAX_LISTED])
        problems.append(f"{_count(len(missing), 'frame')} of the input missing from the output: "
                        f"{out.frames} frames, the input has {src.frames} (missing at {listed}"
                        + (", ..." if len(missing) > _MAX_LISTED else "") + ")")
    return not missing


def _align(expected: list[int], got: list[int], tolerance: int) -> tuple[list[int], list[int]]:
    """Match two sorted pts lists within ``tolerance``; returns (unmatched expected, unmatched got)."""
    missing: list[int] = []
    extra: list[int] = []
    i = j = 0
    while i < len(expected) and j < len(got):
        if abs(expected[i] - got[j]) <= tolerance:
            i += 1
            j += 1
        elif expected[i] < got[j]:
            missing.append(expected[i])
            i += 1
        else:
            extra.append(got[j])
            j += 1
    return missing + expected[i:], extra + got[j:]


def _pair(src: tuple[PacketStream, ...], out: tuple[PacketStream, ...]):
    """Pair the output's audio/subtitle streams with the input's, in order, by kind and codec.

    Returns:
        ``(pairs, absent, unknown)``: (input, output) pairs, input streams with no output
        stream, output streams with no input stream.
    """
    pairs: list[tuple[PacketStream, PacketStream]] = []
    absent: list[PacketStream] = []
    remaining = list(out)
    for stream in src:
        if remaining and (remaining[0].kind, remaining[0].codec) == (stream.kind, stream.codec):
            pairs.append((stream, remaining.pop(0)))
        else:
            absent.append(stream)
    return pairs, absent, remaining


def _start(video: VideoTrack, others: list[PacketStream]) -> Fraction | None:
    """The earliest pts of ``video`` and ``others``, in seconds (``None``: no pts at all)."""
    starts = [video.pts[0] * video.time_base] if video.pts else []
    for stream in others:
        stamps = [p for p in stream.pts if p is not None]
        if stamps:
            starts.append(min(stamps) * stream.time_base)
    return min(starts) if starts else None


def _check_streams(pairs: list[tuple[PacketStream, PacketStream]], absent: list[PacketStream],
                   remaining: list[PacketStream], dropped: int, shift: Fraction, problems: list[str],
                   checks: dict[str, Any]) -> str:
    """Compare each paired audio/subtitle stream; streams absent beyond those the run reported
    dropping, and streams the input does not have, are problems.

    Returns the phrase for the summary, e.g. ``"2 audio streams bit-identical"``.
    """
    listed = []
    for stream in absent[:len(absent) - dropped] if len(absent) > dropped else []:
        problems.append(f"{stream.kind} stream {stream.index} ({stream.codec}) of the input is missing from the output")
    for stream in remaining:
        problems.append(f"the output has an {stream.kind} stream ({stream.codec}) the input does not have")
    identical = {"audio": 0, "subtitle": 0}
    for a, b in pairs:
        entry = {"input_index": a.index, "output_index": b.index, "kind": a.kind, "codec": a.codec,
                 "packets": b.packets, "sha256": b.sha256, "identical": a.sha256 == b.sha256}
        listed.append(entry)
        difference = _stream_difference(a, b, shift)
        if difference:
            entry["identical"] = False
            problems.append(f"{a.kind} stream {a.index} ({a.codec}): {difference}")
        else:
            identical[a.kind] += 1
    checks["streams"] = listed
    checks["streams_dropped"] = [f"{s.kind} stream {s.index} ({s.codec})" for s in absent]
    words = []
    for kind, count in identical.items():
        if count:
            words.append(f"{count} {kind} stream{'s' if count > 1 else ''}")
    phrase = " and ".join(words) + " bit-identical" if words else ""
    if absent and len(absent) <= dropped:
        names = ", ".join(f"{s.kind} stream {s.index}" for s in absent)
        phrase += (", " if phrase else "") + f"{names} dropped as the run reported"
    return phrase


def _stream_difference(a: PacketStream, b: PacketStream, shift: Fraction) -> str:
    """How two packet streams differ, in words; empty when payloads and timing are identical."""
    for n, (x, y) in enumerate(zip(a.digests, b.digests)):
        if x != y:
            at = f" (at {_seconds(a.pts[n], a.time_base)})" if a.pts[n] is not None else ""
            return f"packet {n + 1} of {a.packets}{at} has other bytes in the output"
    if a.packets != b.packets:
        n = min(a.packets, b.packets)
        return f"{b.packets} packets in the output, {a.packets} in the input (they differ from packet {n + 1})"
    tolerance = 0 if a.time_base == b.time_base and not shift else 1
    for n, (x, y) in enumerate(zip(a.pts, b.pts)):
        if x is None or y is None:
            continue
        if abs(_rescale(x, a.time_base, b.time_base, shift) - y) > tolerance:
            return (f"packet {n + 1} of {a.packets} moved from {_seconds(x, a.time_base)} "
                    f"to {_seconds(y, b.time_base)}")
    return ""


def _check_picture(src: VideoTrack, out: VideoTrack, expected_size: tuple[int, int] | None,
                   problems: list[str], checks: dict[str, Any]) -> None:
    """Dimensions, colour tags and rotation."""
    size = (out.width, out.height)
    checks["size"] = {"input": [src.width, src.height], "output": list(size),
                      "expected": list(expected_size) if expected_size else None}
    if expected_size is not None:
        ew, eh = expected_size
        if not (ew - 1 <= out.width <= ew and eh - 1 <= out.height <= eh):
            problems.append(f"the output is {out.width}x{out.height}, the run asked for {ew}x{eh}")
    elif abs(out.height - src.height * out.width / src.width) > 2:
        problems.append(f"the output is {out.width}x{out.height}: not the {src.width}x{src.height} input's "
                        "aspect ratio")
    expected = resolve_conversion(src.color, src.height, src.pix_fmt).tags
    checks["color"] = {"input": asdict(src.color), "expected": asdict(expected), "output": asdict(out.color)}
    differ = [f"{name} {getattr(out.color, name) or 'unspecified'} in the output, "
              f"{getattr(expected, name) or 'unspecified'} expected"
              for name in ("matrix", "range", "primaries", "transfer")
              if getattr(out.color, name) != getattr(expected, name)]
    if differ:
        problems.append("colour tags differ: " + ", ".join(differ))
    checks["rotation"] = {"input": src.rotation, "output": out.rotation}
    if src.rotation != out.rotation:
        problems.append(f"display rotation is {out.rotation} deg in the output, {src.rotation} in the input")


def _check_duration(src: VideoTrack, out: VideoTrack, skipped: int, shift: Fraction, problems: list[str],
                    checks: dict[str, Any]) -> None:
    """Where the last frame ends, to within a frame's duration (the last frame's display time
    is the one thing a container may round) and an output tick."""
    checks["duration"] = {"input": src.end, "output": out.end}
    if src.end is None or out.end is None or skipped:
        return
    rate = src.average_rate or out.average_rate
    frame = float(1 / rate) if rate else 0.1
    if abs(src.end + float(shift) - out.end) > frame + float(out.time_base):
        problems.append(f"the video lasts until {out.end:.3f} s in the output, {src.end:.3f} s in the input")
