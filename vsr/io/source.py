"""Opening inputs: files, ``-`` (standard input) and any URL FFmpeg opens.

Everything that can go wrong before the first frame is turned into an
:class:`~vsr.errors.InputError` whose message names the problem and what to do.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vsr.errors import InputError
from vsr.io.color import color_info_from_codec
from vsr.types import StreamInfo, VideoInfo

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def is_url(source: str) -> bool:
    """True for ``scheme://...`` sources (rtsp, http(s), srt, udp, rtmp, file...)."""
    return bool(_URL.match(source))


def mask_url(text: str) -> str:
    """Replace the user and password of every URL in ``text`` with ``***``.

    >>> mask_url("rtsp://admin:secret@10.0.0.2/live failed")
    'rtsp://***@10.0.0.2/live failed'
    """
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)


@dataclass(frozen=True)
class OpenOptions:
    """How to open a source.

    Attributes:
        timeout: seconds to wait for a network source to connect or send data.
        rtsp_transport: ``"tcp"`` (default: no loss, passes firewalls) or ``"udp"``.
        format: force a demuxer (``"mpegts"``, ``"matroska"``...) instead of probing.
        extra: further FFmpeg demuxer/protocol options.
    """

    timeout: float = 10.0
    rtsp_transport: str = "tcp"
    format: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _check_path(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise InputError(f"input not found: {path} (check the path)")
    if p.is_dir():
        raise InputError(f"input is a directory, not a video file: {path}")
    if p.stat().st_size == 0:
        raise InputError(f"input is empty (0 bytes): {path}")
    if not os.access(p, os.R_OK):
        raise InputError(f"input is not readable (permission denied): {path}")


def open_input(source: str, options: OpenOptions | None = None):
    """Open ``source`` for demuxing with PyAV.

    Args:
        source: a path, ``"-"`` for standard input, or a URL.
        options: connection options for network sources.

    Returns:
        An ``av.container.InputContainer``.

    Raises:
        InputError: missing, empty, unreadable or undecodable input, or a network
            source that did not answer within the timeout.
    """
    import av

    options = options or OpenOptions()
    av_options: dict[str, str] = dict(options.extra)
    target: object = source
    if source == "-":
        target = sys.stdin.buffer
    elif is_url(source):
        micro = str(int(options.timeout * 1_000_000))
        scheme = source.split("://", 1)[0].lower()
        if scheme in ("rtsp", "rtsps"):
            av_options.setdefault("rtsp_transport", options.rtsp_transport)
            av_options.setdefault("timeout", micro)
        elif scheme in ("http", "https", "rtmp", "srt", "tcp", "udp"):
            av_options.setdefault("rw_timeout", micro)
            if scheme in ("srt", "udp", "tcp"):
                av_options.setdefault("timeout", micro)
    elif options.format is None or os.path.exists(source):
        _check_path(source)
    # else: a forced demuxer reading something that is not a file (lavfi graphs, devices)
    try:
        return av.open(target, mode="r", format=options.format, options=av_options,
                       timeout=options.timeout if is_url(source) else None)
    except av.error.FileNotFoundError as exc:
        raise InputError(f"input not found: {mask_url(source)}") from exc
    except av.error.InvalidDataError as exc:
        raise InputError(
            f"cannot read {mask_url(source)}: not a media file FFmpeg understands, or truncated"
        ) from exc
    except (av.error.ExitError, av.error.TimeoutError, TimeoutError) as exc:
        raise InputError(f"no answer from {mask_url(source)} within {options.timeout:g} s") from exc
    except av.error.FFmpegError as exc:
        raise InputError(f"cannot open {mask_url(source)}: {mask_url(str(exc.strerror or exc))}") from exc
    except OSError as exc:
        raise InputError(f"cannot open {mask_url(source)}: {exc.strerror or exc}") from exc


def select_video_stream(container, index: int | None = None):
    """Pick the video stream to upscale: stream ``index`` if given, else the default one.

    The default is the first video stream flagged as default by the container, else the
    first video stream.

    Raises:
        InputError: no video stream, or ``index`` is not a video stream of this input.
    """
    videos = [s for s in container.streams if s.type == "video" and not _is_cover_art(s)]
    if index is not None:
        for s in videos:
            if s.index == index:
                return s
        found = ", ".join(str(s.index) for s in videos) or "none"
        raise InputError(f"stream {index} is not a video stream of this input (video streams: {found})")
    if not videos:
        raise InputError("input has no video stream: nothing to upscale")
    for s in videos:
        if int(s.disposition) & 1:  # AV_DISPOSITION_DEFAULT
            return s
    return videos[0]


def _is_cover_art(stream) -> bool:
    return bool(int(stream.disposition) & 0x400)  # AV_DISPOSITION_ATTACHED_PIC


def _bit_depth(pix_fmt: str) -> int:
    import av

    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, TypeError):
        return 8


def _rotation(stream) -> int:
    """Display rotation from the stream's display matrix, in degrees, 0 when absent."""
    rotate = stream.metadata.get("rotate") if stream.metadata else None
    return int(rotate) if rotate else 0


def describe_stream(stream) -> StreamInfo:
    """A :class:`StreamInfo` for any stream of a container."""
    cc = stream.codec_context
    codec = cc.name if cc is not None else (stream.codec.name if getattr(stream, "codec", None) else "?")
    detail = ""
    if stream.type == "video" and cc is not None:
        rate = stream.average_rate
        detail = f"{cc.width}x{cc.height} {cc.pix_fmt or '?'}" + (f" {float(rate):.3f} fps" if rate else "")
    elif stream.type == "audio" and cc is not None:
        layout = getattr(cc.layout, "name", "") if getattr(cc, "layout", None) else ""
        detail = f"{cc.sample_rate} Hz {layout}".strip()
    return StreamInfo(index=stream.index, kind=stream.type, codec=codec or "?",
                      language=stream.language, detail=detail)


def video_info(container, stream) -> VideoInfo:
    """Everything vsr needs to know about ``stream`` before decoding it."""
    cc = stream.codec_context
    if cc is None:
        raise InputError(f"video codec of stream {stream.index} cannot be decoded by this FFmpeg build")
    pix_fmt = cc.pix_fmt or "yuv420p"
    duration = None
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    frames = int(stream.frames) if stream.frames else None
    return VideoInfo(
        width=cc.width,
        height=cc.height,
        time_base=Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000),
        average_rate=Fraction(stream.average_rate) if stream.average_rate else None,
        pix_fmt=pix_fmt,
        bit_depth=_bit_depth(pix_fmt),
        color=color_info_from_codec(cc),
        rotation=_rotation(stream),
        duration=duration,
        frame_count=frames,
        start_time=stream.start_time,
        codec=cc.name,
        stream_index=stream.index,
        streams=tuple(describe_stream(s) for s in container.streams),
        sample_aspect_ratio=Fraction(stream.sample_aspect_ratio) if stream.sample_aspect_ratio else None,
    )


def probe(source: str, video_stream: int | None = None, options: OpenOptions | None = None) -> VideoInfo:
    """Open ``source``, describe its video stream and every other stream, and close it.

    Raises:
        InputError: as :func:`open_input` and :func:`select_video_stream`.
    """
    container = open_input(source, options)
    try:
        return video_info(container, select_video_stream(container, video_stream))
    finally:
        container.close()
