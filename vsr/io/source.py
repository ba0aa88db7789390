"""Opening inputs: files, ``-`` (standard input) and any URL FFmpeg opens.

Everything that can go wrong before the first frame is turned into an
:class:`~vsr.errors.InputError` whose message names the problem and what to do.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from vsr.errors import InputError
from vsr.io.color import color_info_from_codec
from vsr.types import StreamInfo, VideoInfo

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
# Query keys whose values are secrets: password=, passphrase= (SRT), token=, key=, X-Amz-Signature=...
_SECRET_KEY = re.compile(r"pass|pwd|token|key|secret|auth|sig|credential", re.IGNORECASE)
_RTMP_SCHEMES = ("rtmp", "rtmps", "rtmpe", "rtmpt", "rtmpte", "rtmpts")
_TRAILING = "'\"()[]<>,;.:"


def is_url(source: str) -> bool:
    """True for ``scheme://...`` sources (rtsp, http(s), srt, udp, rtmp, file...)."""
    return bool(_URL.match(source))


def url_scheme(source: str) -> str | None:
    """The lower-case scheme of a URL (``"srt"``), or ``None`` for paths and ``"-"``."""
    return source.split("://", 1)[0].lower() if is_url(source) else None


def _redact_url(url: str) -> str:
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and userinfo:  # udp://@:1234 is a bind address, not a user
        name, colon, _ = userinfo.partition(":")
        # A bare user part may itself be a token (https://TOKEN@host): hide it all.
        netloc = f"{name}:***@{host}" if colon else f"***@{host}"
    path = parts.path
    if parts.scheme.lower() in _RTMP_SCHEMES:
        # rtmp://server/app/STREAM-KEY: the last component after the application is the key.
        components = path.split("/")
        if len([c for c in components if c]) >= 2:
            path = "/".join(components[:-1] + ["***"])
    query = "&".join(
        f"{k}=***" if sep and _SECRET_KEY.search(unquote(k)) else f"{k}{sep}{v}"
        for k, sep, v in (item.partition("=") for item in parts.query.split("&"))
    ) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, parts.fragment)) if (
        netloc, path, query) != (parts.netloc, parts.path, parts.query) else url


def mask_url(text: str) -> str:
    """Hide the secrets of every URL in ``text``, for messages, logs, tracebacks and records.

    Hidden (as ``***``): the password of the user info (all of a user info without one),
    query values whose key names a secret (``password``, ``passphrase``, ``token``, ``key``,
    ``secret``, ``auth``, ``sig``...), and the stream key of ``rtmp://server/app/KEY``.
    URLs are split with :mod:`urllib.parse`; quotes and punctuation ending a URL are kept.

    >>> mask_url("rtsp://admin:p@ss@10.0.0.2/live failed")
    'rtsp://admin:***@10.0.0.2/live failed'
    >>> mask_url("'srt://h:9000?mode=caller&passphrase=abc123', rtmp://s/live/k3y")
    "'srt://h:9000?mode=caller&passphrase=***', rtmp://s/live/***"
    """

    def replace(match: re.Match) -> str:
        url = match.group(0)
        stripped = url.rstrip(_TRAILING)
        try:
            return _redact_url(stripped) + url[len(stripped):]
        except ValueError:  # not parseable (a bad port, a broken IPv6 host): hide all but the scheme
            return url.split("://", 1)[0] + "://***"

    return _URL_IN_TEXT.sub(replace, text)


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
    scheme = url_scheme(source)
    fmt = options.format
    pipe = None
    if source == "-":
        target = sys.stdin.buffer
    elif scheme is not None:
        from vsr.io.transport import FfmpegPipe, needs_transport

        micro = str(int(options.timeout * 1_000_000))
        if needs_transport(source):
            pipe = FfmpegPipe(source, "r", timeout=options.timeout, input_format=options.format)
            target, fmt = pipe.file, "mpegts"
        elif scheme in ("rtsp", "rtsps"):
            av_options.setdefault("rtsp_transport", options.rtsp_transport)
            av_options.setdefault("timeout", micro)
        elif scheme in ("http", "https", "rtmp", "tcp", "udp"):
            av_options.setdefault("rw_timeout", micro)
            if scheme in ("udp", "tcp"):
                av_options.setdefault("timeout", micro)
    elif options.format is None or os.path.exists(source):
        _check_path(source)
    # else: a forced demuxer reading something that is not a file (lavfi graphs, devices)
    try:
        container = av.open(target, mode="r", format=fmt, options=av_options,
                            timeout=options.timeout if scheme is not None else None)
    except BaseException as exc:
        why = pipe.error() if pipe is not None else None
        if pipe is not None:
            pipe.close()
        if why:
            raise InputError(f"cannot open {mask_url(source)}: {why}") from exc
        _raise_open_error(source, options, exc)
        raise
    if pipe is not None:
        _PIPES[id(container)] = pipe
    return container


# Inputs carried by the ffmpeg binary, by id() of their container: closed with it by close_input.
_PIPES: dict[int, object] = {}


def _raise_open_error(source: str, options: OpenOptions, exc: BaseException) -> None:
    import av

    if isinstance(exc, av.error.FileNotFoundError):
        raise InputError(f"input not found: {mask_url(source)}") from exc
    if isinstance(exc, av.error.InvalidDataError):
        raise InputError(
            f"cannot read {mask_url(source)}: not a media file FFmpeg understands, or truncated"
        ) from exc
    if isinstance(exc, (av.error.ExitError, av.error.TimeoutError, TimeoutError)):
        raise InputError(f"no answer from {mask_url(source)} within {options.timeout:g} s") from exc
    if isinstance(exc, av.error.FFmpegError):
        raise InputError(f"cannot open {mask_url(source)}: {mask_url(str(exc.strerror or exc))}") from exc
    if isinstance(exc, OSError):
        raise InputError(f"cannot open {mask_url(source)}: {exc.strerror or exc}") from exc


def close_input(container) -> None:
    """Close a container from :func:`open_input`, and the ffmpeg process carrying it, if any."""
    try:
        container.close()
    finally:
        pipe = _PIPES.pop(id(container), None)
        if pipe is not None:
            pipe.close()


def partial_file(container) -> str | None:
    """For an input whose index (MP4/MOV ``moov``, Matroska cues...) points past the end of
    the file: a one-line description of what is missing, else ``None``.

    This is what an interrupted download or copy of a fast-start MP4 looks like: the index
    at the front describes every frame, but the data of the later ones never arrived.
    """
    size = getattr(container, "size", 0) or 0
    if size <= 0:
        return None
    ends = []
    video = None
    for stream in container.streams:
        if stream.type == "video" and video is None:
            video = stream
        ends.extend(e.pos + e.size for e in stream.index_entries if e.pos >= 0)
    if not ends or max(ends) <= size:
        return None
    if video is not None and len(video.index_entries):
        held = sum(1 for e in video.index_entries if 0 <= e.pos and e.pos + e.size <= size)
        return (f"the file ends at byte {size} but its index describes {max(ends)} bytes: "
                f"it holds {held} of {len(video.index_entries)} frames")
    return f"the file ends at byte {size} but its index describes {max(ends)} bytes"


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
    """Display rotation from the stream's legacy ``rotate`` tag, in degrees, 0 when absent (newer
    FFmpeg gives it as display-matrix side data on decoded frames, which :func:`probe` and the
    decoder read)."""
    rotate = stream.metadata.get("rotate") if stream.metadata else None
    return int(rotate) % 360 if rotate else 0


def frame_rotation(frame) -> int:
    """Display rotation of a decoded ``av.VideoFrame`` (its display matrix), degrees in 0..359."""
    return int(getattr(frame, "rotation", 0) or 0) % 360


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
        stream = select_video_stream(container, video_stream)
        info = video_info(container, stream)
        if not info.rotation:
            # Recent FFmpeg gives the rotation as display-matrix side data, which PyAV shows on
            # decoded frames only (the old "rotate" tag is gone): read it as the decoder does.
            info = replace(info, rotation=_first_frame_rotation(container, stream))
        return info
    finally:
        close_input(container)


def _first_frame_rotation(container, stream) -> int:
    """Display rotation of the first decodable frame of ``stream``, in degrees; 0 when none decodes."""
    import av

    try:
        for frame in container.decode(stream):
            return frame_rotation(frame)
    except (av.error.FFmpegError, OSError):
        pass
    return 0
