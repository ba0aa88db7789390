"""Encoding: upscaled RGB frames to a video stream, audio and subtitle packets remuxed as they came.

The output is written to a hidden temporary name beside the target and renamed
only when complete, so a crash never leaves a half-written file under the name
the user asked for.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vsr.errors import CodecError, ConfigError, OutputError
from vsr.io.color import HdrMetadata, YuvConverter, apply_tags, resolve_conversion
from vsr.io.source import _bit_depth, is_url, mask_url
from vsr.io.transport import FfmpegPipe, needs_transport
from vsr.io.yuv import PACKED_FORMATS, YuvFormat, planes_frame
from vsr.types import VideoInfo

log = logging.getLogger(__name__)

CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".ts": "mpegts", ".webm": "webm"}
CODECS = ("libx264", "libx265", "libsvtav1", "ffv1")
_DEFAULT_PRESET = {"libx264": "medium", "libx265": "medium", "libsvtav1": "8"}
_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libsvtav1": 30}
_MAX_CRF = {"libx264": 51, "libx265": 51, "libsvtav1": 63}
# x264's and x265's speed presets, fastest first; SVT-AV1 takes a number instead.
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
# Encoders to suggest when the default one does not fit the container, best first.
_FALLBACK_CODECS = ("libx264", "libsvtav1", "libvpx-vp9", "libaom-av1", "libx265", "ffv1")
# Hardware encoders open only where their device and driver are present.
_HARDWARE_MARKERS = ("nvenc", "qsv", "vaapi", "amf", "videotoolbox", "v4l2m2m", "mediacodec", "vulkan")
_URL_FORMATS = {"rtsp": "rtsp", "rtmp": "flv", "rtmps": "flv", "srt": "mpegts", "udp": "mpegts", "tcp": "mpegts"}


@dataclass(frozen=True)
class EncodeSettings:
    """Encoder choices, in ffmpeg's vocabulary.

    Attributes:
        codec: ``libx264`` (default), ``libx265``, ``libsvtav1`` or ``ffv1`` (lossless).
        crf: constant rate factor; ``None`` for the codec's vsr default (x264 18, x265 20, AV1 30).
        preset: encoder speed preset (x264/x265 names, 0..13 for SVT-AV1); ``None`` for the default.
        pix_fmt: output pixel format; ``None`` keeps the source's chroma subsampling and
            bit depth where the encoder can (see :func:`choose_pix_fmt`).
        format: container format; ``None`` chooses from the file extension.
        options: further encoder options, passed to FFmpeg as they are.
        muxer_options: further container/protocol options (``hls_time``, ``pkt_size``...),
            over vsr's own choices.
        live: the output is watched while it is written: an HLS playlist keeps only the
            last segments (a rolling live playlist) instead of every one (VOD).
    """

    codec: str = "libx264"
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    muxer_options: dict[str, str] = field(default_factory=dict)
    live: bool = False

    def validate(self) -> None:
        """Raise :class:`ConfigError` for a codec this build lacks or an option it does not take."""
        import av

        if self.codec not in av.codecs_available:
            raise CodecError(f"encoder {self.codec!r} is not in this FFmpeg build; try one of: "
                             + ", ".join(c for c in CODECS if c in av.codecs_available))
        if self.codec == "ffv1" and self.crf is not None:
            raise ConfigError("ffv1 is lossless: --crf does not apply (drop it)")
        top = _MAX_CRF.get(self.codec, 63)
        if self.crf is not None and not 0 <= self.crf <= top:
            raise ConfigError(f"--crf for {self.codec} must be between 0 and {top}; got {self.crf:g}")
        if self.preset is not None and self.codec in ("libx264", "libx265") and self.preset not in X26X_PRESETS:
            raise ConfigError(f"--preset {self.preset!r} is not a {self.codec} preset; use one of: "
                              + ", ".join(X26X_PRESETS))
        if self.preset is not None and self.codec == "libsvtav1" and (
                not str(self.preset).lstrip("-").isdigit() or not -1 <= int(self.preset) <= 13):
            raise ConfigError(f"--preset {self.preset!r} is not a libsvtav1 preset; use a number from -1 (slowest) "
                              "to 13 (fastest)")


_SUBSAMPLING = {"444": (1, 1), "422": (2, 1), "420": (2, 2), "440": (1, 2), "411": (4, 1), "410": (4, 2)}
_CHROMA_NAMES = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (1, 2): "4:4:0", (4, 1): "4:1:1",
                 (4, 2): "4:1:0"}
_PLANAR_YUV = re.compile(r"^yuv4[0-4][0-4]p(\d+le)?$")


def _subsampling(pix_fmt: str) -> tuple[int, int]:
    """Horizontal and vertical chroma subsampling of ``pix_fmt``: ``(2, 2)`` for 4:2:0; RGB counts as ``(1, 1)``."""
    import av

    fmt = av.VideoFormat(pix_fmt, 4, 4)  # chroma planes of a 4x4 picture reveal the subsampling
    chroma = [c for c in fmt.components if not c.is_luma and not c.is_alpha] if not fmt.is_rgb else []
    return 4 // min((c.width for c in chroma), default=4), 4 // min((c.height for c in chroma), default=4)


def choose_pix_fmt(settings: EncodeSettings, source_pix_fmt: str, bit_depth: int) -> tuple[str, str | None]:
    """The output pixel format, and a note when it is not what the source had.

    The user's ``pix_fmt`` if given. Otherwise the source's chroma subsampling (4:2:0,
    4:2:2, 4:4:4; RGB and grey sources as 4:4:4 and 4:2:0) and bit depth in planar YUV,
    ffv1 always 4:4:4, where the encoder takes it; where it does not, the nearest format
    it takes, preferring to keep the chroma resolution, then not to lose depth.

    Returns:
        ``(pix_fmt, note)``; ``note`` says what changed (``"libsvtav1 cannot encode
        yuv422p10le: writing yuv420p10le (4:2:2 -> 4:2:0)"``) or is ``None``.

    Raises:
        ConfigError: the user's ``pix_fmt`` is one the encoder does not take.
    """
    import av

    supported = {f.name for f in av.codec.Codec(settings.codec, "w").video_formats or []}
    if settings.pix_fmt:
        if supported and settings.pix_fmt not in supported:
            raise ConfigError(f"{settings.codec} cannot encode {settings.pix_fmt}; "
                              f"it takes: {', '.join(sorted(supported))}")
        return settings.pix_fmt, None
    try:
        grey = av.VideoFormat(source_pix_fmt).name.startswith("gray")
        sub = (2, 2) if grey else _subsampling(source_pix_fmt)
    except (ValueError, TypeError):
        sub = (2, 2)
    if settings.codec == "ffv1":
        sub = (1, 1)
    chroma = next((k for k, v in _SUBSAMPLING.items() if v == sub), "420")
    wanted = f"yuv{chroma}p" if bit_depth <= 8 else f"yuv{chroma}p{bit_depth}le"
    if not supported or wanted in supported:
        return wanted, None
    options = [name for name in supported if _PLANAR_YUV.match(name)]
    if not options:
        return sorted(supported)[0], f"{settings.codec} cannot encode {wanted}: writing {sorted(supported)[0]}"

    def cost(name: str) -> tuple:
        cw, ch = _subsampling(name)
        samples, wanted_samples = 1 / (cw * ch), 1 / (sub[0] * sub[1])
        depth = _bit_depth(name)
        return ((cw, ch) != sub, samples > wanted_samples, abs(samples - wanted_samples),
                depth < bit_depth, abs(depth - bit_depth), name)

    chosen = min(options, key=cost)
    changes = []
    if _subsampling(chosen) != sub:
        changes.append(f"{_CHROMA_NAMES.get(sub, '?')} -> {_CHROMA_NAMES.get(_subsampling(chosen), '?')}")
    if _bit_depth(chosen) != bit_depth:
        changes.append(f"{bit_depth}-bit -> {_bit_depth(chosen)}-bit")
    return chosen, f"{settings.codec} cannot encode {wanted}: writing {chosen} ({', '.join(changes)})"


def even_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The largest size not above ``width x height`` that ``pix_fmt``'s chroma subsampling allows."""
    sub_w, sub_h = _subsampling(pix_fmt)
    return width - width % sub_w, height - height % sub_h


def container_format(target: str, explicit: str | None) -> str:
    """The muxer for ``target``: explicit, from the URL scheme, or from the extension.

    Raises:
        ConfigError: an explicit format this FFmpeg build cannot write, or an unknown scheme or extension.
    """
    if explicit:
        import av

        try:
            av.format.ContainerFormat(explicit, "w")
        except ValueError as exc:
            raise ConfigError(f"--format {explicit!r} is not a container this FFmpeg build writes; "
                              "use e.g. mp4, matroska, mov or mpegts") from exc
        return explicit
    if target == "-":
        return "matroska"
    if is_url(target):
        scheme = target.split("://", 1)[0].lower()
        if scheme in _URL_FORMATS:
            return _URL_FORMATS[scheme]
        raise ConfigError(f"cannot write to {scheme}:// outputs; use a file, rtsp, rtmp, srt or udp")
    suffix = Path(target).suffix.lower()
    if suffix == ".m3u8":
        return "hls"
    if suffix not in CONTAINERS:
        raise ConfigError(f"unknown output container {suffix or '(no extension)'!r}; use .mp4, .mkv or .mov")
    return CONTAINERS[suffix]


# The subtitle codecs MPEG-TS has stream types for (DVB bitmaps and teletext).
_TS_SUBTITLES = {"dvb_subtitle", "dvb_teletext"}


def _probe_format(fmt: str, muxer_options: dict[str, str]) -> str:
    """The muxer that decides which codecs ``fmt`` takes: HLS segments and RTSP's RTP streams."""
    if fmt == "hls":
        return "mp4" if muxer_options.get("hls_segment_type") == "fmp4" else "mpegts"
    if fmt == "rtsp":
        return "rtp"
    return fmt


def muxer_refusal(fmt: str, stream, muxer_options: dict[str, str] | None = None) -> str | None:
    """Why the ``fmt`` muxer will not take a copy of ``stream``, or ``None`` when it will.

    The muxer itself is asked: ``stream`` is added to an in-memory container of that
    format and its header written. PyAV's ``supported_codecs`` cannot answer this: it
    lists only the codecs a muxer's tag table names, so it leaves out, for instance,
    every codec MPEG-TS carries (AAC, AC-3, MP3...).

    Args:
        fmt: the output's muxer name (``"mpegts"``, ``"mp4"``, ``"hls"``...).
        stream: a PyAV stream of the source (audio, subtitle...).
        muxer_options: the output's muxer options (``hls_segment_type`` picks HLS's segment muxer).

    Returns:
        FFmpeg's reason, one line, or ``None``.
    """
    import io

    import av

    muxer = _probe_format(fmt, muxer_options or {})
    if muxer == "mpegts" and stream.type == "subtitle" and _stream_name(stream) not in _TS_SUBTITLES:
        # The muxer takes any subtitle stream, but writes it as private data that players and
        # demuxers read back as a data stream, not as subtitles.
        return f"MPEG-TS carries {_stream_name(stream)} subtitles only as opaque data"
    try:
        with av.open(io.BytesIO(), mode="w", format=muxer) as probe:
            probe.add_stream_from_template(stream)
            probe.start_encoding()
    except (av.error.FFmpegError, ValueError) as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


# Container tags the muxer writes for itself; the rest of the source's are copied.
_MUXER_OWN_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands"}
# Video stream tags worth keeping (not the old encoder's name nor its statistics).
_VIDEO_TAGS = {"title", "language", "handler_name", "timecode", "comment"}
_CHAPTER_FORMATS = {"matroska", "webm", "mp4", "mov"}
_ATTACHMENT_FORMATS = {"matroska"}


def _stream_name(stream) -> str:
    if stream.type == "attachment":
        return getattr(stream, "name", None) or "attachment"
    cc = stream.codec_context
    return (cc.name if cc is not None else None) or stream.metadata.get("handler_name") or "unknown codec"


def output_sample_aspect_ratio(info: VideoInfo, width: int, height: int) -> Fraction | None:
    """The pixel shape for a ``width x height`` output, so that it displays as the source does.

    A uniformly scaled picture keeps the source's sample aspect ratio; an output of another
    shape (``--size``) gets the one that keeps the source's display aspect ratio.

    Returns:
        the ratio, or ``None`` for square pixels (a source that does not say, or 1:1).
    """
    sar = info.sample_aspect_ratio
    if not sar or sar == 1:
        return None
    if abs(width * info.height - height * info.width) <= max(info.width, info.height) * 2:
        return sar  # the same shape, within cropping to even sizes
    return (sar * info.width * height / (info.height * width)).limit_denominator(10000)


def temporary_path(target: Path) -> Path:
    """The hidden name beside ``target`` that output is written to until it is complete."""
    return target.with_name(f".{target.stem}.partial-{os.getpid()}{target.suffix}")


def check_output(source: str, target: str, overwrite: bool) -> None:
    """Refuse outputs that would destroy the input or an existing file, or cannot be written.

    Raises:
        OutputError: ``target`` is the input, exists without ``overwrite``, or its folder is
            missing or not writable.
    """
    if target == "-" or is_url(target):
        return
    out = Path(target)
    if source != "-" and not is_url(source):
        src = Path(source)
        same = src.resolve() == out.resolve() or (src.exists() and out.exists() and os.path.samefile(src, out))
        if same:
            raise OutputError(f"output {target} is the input: choose another -o (the input is never overwritten)")
    if out.is_dir():
        raise OutputError(f"output {target} is a directory: give a file name such as {Path(target) / 'out.mp4'}")
    if out.exists() and not overwrite:
        raise OutputError(f"output {target} exists: add --overwrite to replace it")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist: create it first")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable")


class Sink:
    """Writes one encoded video stream plus remuxed audio/subtitle streams.

    The container is opened by :meth:`open` once the output size is known. Audio and
    subtitle packets are muxed with their own timestamps (``av_interleaved_write_frame``
    orders them against the video).

    Args:
        target: output path, ``"-"`` (standard output, Matroska) or a URL.
        info: the source video stream.
        settings: encoder settings.
        passthrough: source streams to copy (audio, subtitles), as PyAV stream objects.
        source: the open source container, whose title and other metadata, chapters,
            attachments (fonts for ASS subtitles), video stream tags and disposition the
            output keeps where its format can; what it cannot keep is named in :attr:`notes`.
    """

    def __init__(self, target: str, info: VideoInfo, settings: EncodeSettings,
                 passthrough: list | tuple = (), source=None) -> None:
        settings.validate()
        self.target = target
        self.info = info
        self.settings = settings
        self.format = container_format(target, settings.format)
        self.notes: list[str] = []  # what the output could not keep, for the run's summary
        self.pix_fmt, note = choose_pix_fmt(settings, info.pix_fmt, info.bit_depth)
        if note:
            self.notes.append(note)
        self.conversion = resolve_conversion(info.color, info.height, info.pix_fmt)
        self._to_yuv = YuvConverter(self.conversion, self.pix_fmt)
        self._to_coded_yuv: YuvConverter | None = None  # made on first use
        self.rotation = 0  # display rotation, degrees counter-clockwise: see set_rotation
        self._passthrough_sources = list(passthrough)
        self._source = source
        # A live HLS playlist is rewritten as it goes, for players to follow: no temporary name.
        # A VOD playlist is written under one and renamed once complete, like any file.
        self.is_file = not (target == "-" or is_url(target) or (self.format == "hls" and settings.live))
        self.temp = temporary_path(Path(target)) if self.is_file else None
        self._key_interval = float(self._muxer_options()["hls_time"]) if self.format == "hls" else None
        self._next_key: Fraction | None = None
        self.container = None
        self.stream = None
        self.stream_map: dict[int, object] = {}
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.packets = 0
        self.damaged_packets = 0
        self.dropped_streams: list[str] = []
        self._last_pts: int | None = None
        self.adjusted_pts = 0
        self._pipe = None  # the ffmpeg binary carrying an srt:// output

    # -- opening ---------------------------------------------------------------------------
    def open(self, width: int, height: int) -> tuple[int, int]:
        """Open the container for frames of ``width x height``; returns the encoded size.

        The encoded size is ``width x height`` cropped by at most one pixel where the
        pixel format's chroma subsampling needs even dimensions.

        Raises:
            OutputError: the file cannot be created.
            CodecError: the encoder rejects the settings.
        """
        import av

        enc_w, enc_h = even_size(width, height, self.pix_fmt)
        if (enc_w, enc_h) != (width, height):
            log.info("cropping output %dx%d to %dx%d for %s", width, height, enc_w, enc_h, self.pix_fmt)
        options = self._muxer_options()
        try:
            if self.target == "-":
                self.container = av.open(sys.stdout.buffer, mode="w", format=self.format)
            elif needs_transport(self.target):
                self._pipe = FfmpegPipe(self.target, "w")
                self.container = av.open(self._pipe.file, mode="w", format=self.format, options=options)
            else:
                where = str(self.temp) if self.is_file else self.target
                self.container = av.open(where, mode="w", format=self.format, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create output {mask_url(self.target)}: {getattr(exc, 'strerror', None) or exc}") from exc
        try:
            self._add_video_stream(enc_w, enc_h)
            self._add_passthrough_streams()
            if self._source is not None:
                self._copy_source_details()
            self._open_encoder()
        except Exception:
            self.abort()
            raise
        self.size = (enc_w, enc_h)
        return self.size

    def _muxer_options(self) -> dict[str, str]:
        options: dict[str, str] = {}
        if self.format in ("mp4", "mov") and self.is_file:
            options["movflags"] = "+faststart"
        elif self.format == "hls" and self.settings.live:
            # A rolling live playlist: six 2-second segments, older ones deleted.
            options.update({"hls_time": "2", "hls_list_size": "6", "hls_flags": "delete_segments"})
        elif self.format == "hls":
            # Video on demand: every segment kept, named after the playlist (not its temporary name).
            target = Path(self.target)
            options.update({"hls_time": "2", "hls_list_size": "0", "hls_playlist_type": "vod",
                            "hls_segment_filename": str(target.with_name(f"{target.stem}%d.ts"))})
        elif self.format == "rtsp":
            options["rtsp_transport"] = "tcp"
        elif self.format == "mpegts" and self.target.startswith("udp://"):
            options["pkt_size"] = "1316"
        elif self.format == "mpegts" and needs_transport(self.target):
            # Video PES packets with their length: the receiver's demuxer then passes each frame
            # on as it arrives, the last one too, instead of at the end of the stream.
            options["omit_video_pes_length"] = "0"
        options.update(self.settings.muxer_options)
        return options

    def _add_video_stream(self, width: int, height: int) -> None:
        import av

        s = self.settings
        rate = self.info.average_rate or Fraction(25, 1)
        options = dict(s.options)
        if s.codec in _DEFAULT_CRF:
            options.setdefault("crf", f"{s.crf if s.crf is not None else _DEFAULT_CRF[s.codec]:g}")
            options.setdefault("preset", str(s.preset or _DEFAULT_PRESET[s.codec]))
        elif s.preset is not None:
            raise ConfigError(f"{s.codec} has no presets: drop --preset")
        if s.codec == "libx265":
            options.setdefault("x265-params", "log-level=error")
        if self._key_interval and s.codec in ("libx264", "libx265"):
            options.setdefault("forced-idr", "1")  # forced keyframes (segment starts) as IDR frames
        if s.codec == "ffv1":
            options.setdefault("level", "3")
            options.setdefault("slicecrc", "1")
        try:
            stream = self.container.add_stream(s.codec, rate=rate, options=options)
        except (av.error.FFmpegError, ValueError) as exc:
            if "does not support" in str(exc):
                holds = self.container.supported_codecs or set()
                fits = [c for c in _FALLBACK_CODECS if c in av.codecs_available and c in holds]
                hint = f"; use --codec {fits[0]}" + (f" (or {', '.join(fits[1:3])})" if fits[1:] else "") if fits else ""
                raise CodecError(f"the {self.format} container cannot hold {s.codec} video{hint}") from exc
            raise CodecError(f"cannot set up encoder {s.codec}: {exc}") from exc
        stream.width = width
        stream.height = height
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.info.time_base
        cc = stream.codec_context
        # PyAV defaults to slice threading, which makes libx264 switch to sliced threads:
        # slower and worse than the frame threads ffmpeg's own command uses.
        cc.thread_type = "FRAME"
        cc.thread_count = 0
        cc.time_base = self.info.time_base
        cc.framerate = rate
        apply_tags(cc, self.conversion.tags)
        language = next((s.language for s in self.info.streams if s.index == self.info.stream_index), None)
        if language:
            stream.metadata["language"] = language
        sar = output_sample_aspect_ratio(self.info, width, height)
        if sar is not None:
            stream.sample_aspect_ratio = cc.sample_aspect_ratio = sar
        if s.codec == "libx265" and self.format in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # what Apple's players and browsers require; FFmpeg's default is hev1
        self.stream = stream

    def _open_encoder(self) -> None:
        """Open a twin of the video encoder now, so that settings it rejects fail before any frame
        is decoded. The stream's own encoder opens on the first frame (as PyAV does), after
        :meth:`set_hdr` has added what the first decoded frame tells about the source.

        Raises:
            CodecError: the encoder refuses its settings, or is a hardware encoder without its device.
        """
        import av

        codec = self.settings.codec
        cc = self.stream.codec_context
        try:
            twin = av.CodecContext.create(codec, "w")
            twin.width, twin.height, twin.pix_fmt = cc.width, cc.height, cc.pix_fmt
            twin.time_base, twin.framerate = cc.time_base, cc.framerate
            twin.thread_count = 1
            twin.options = dict(cc.options)
            twin.open()
        except av.error.FFmpegError as exc:
            reason = exc.strerror or type(exc).__name__
            if any(marker in codec for marker in _HARDWARE_MARKERS):
                raise CodecError(f"encoder {codec} cannot start here ({reason}): it needs its hardware and driver; "
                                 f"use a software encoder such as --codec libx264") from exc
            raise CodecError(f"encoder {codec} rejected its settings ({reason}); check --preset, --crf, --pix-fmt "
                             f"and the encoder options for {codec}") from exc

    def _add_passthrough_streams(self) -> None:
        for src in self._passthrough_sources:
            name = src.codec_context.name if src.codec_context is not None else "?"
            refusal = muxer_refusal(self.format, src, self.settings.muxer_options)
            if refusal is not None:
                self.dropped_streams.append(f"{src.type} stream {src.index} ({name}) cannot go into {self.format}: "
                                            f"{refusal}")
                continue
            try:
                out = self.container.add_stream_from_template(src)
            except Exception as exc:  # noqa: BLE001 - any refusal drops just this stream
                self.dropped_streams.append(f"{src.type} stream {src.index} ({name}): {exc}")
                continue
            if src.metadata:
                for key in ("language", "title", "handler_name"):
                    if key in src.metadata:
                        out.metadata[key] = src.metadata[key]
            out.disposition = src.disposition
            self.stream_map[src.index] = out
        for message in self.dropped_streams:
            log.warning("dropping %s", message)

    def _copy_source_details(self) -> None:
        """Container metadata, chapters, attachments and the video stream's tags, or a note for each loss."""
        import av

        src = self._source
        for key, value in src.metadata.items():
            if key.lower() not in _MUXER_OWN_TAGS:
                self.container.metadata[key] = value
        video = next((s for s in src.streams if s.index == self.info.stream_index), None)
        if video is not None:
            for key, value in video.metadata.items():
                if key.lower() in _VIDEO_TAGS:
                    self.stream.metadata[key.lower()] = value
            self.stream.disposition = video.disposition
        chapters = src.chapters()
        if chapters:
            if self.format in _CHAPTER_FORMATS:
                self.container.set_chapters(chapters)
            else:
                self.notes.append(f"{len(chapters)} chapters not kept: {self.format} has no chapters")
        timecode = video is not None and any(k.lower() == "timecode" for k in video.metadata)
        for s in src.streams:
            if s.index == self.info.stream_index or s.index in self.stream_map:
                continue
            what = f"{s.type} stream {s.index} ({_stream_name(s)})"
            if s.type == "attachment":
                if self.format in _ATTACHMENT_FORMATS:
                    self.container.add_attachment(s.name, s.mimetype, s.data)
                else:
                    self.notes.append(f"{what} not kept: only Matroska holds attachments")
            elif s.type == "data" and timecode and s.metadata.get("timecode"):
                continue  # a QuickTime timecode track: its timecode goes on the video stream
            elif s.type in ("audio", "subtitle"):
                continue  # already in dropped_streams when the output could not take it
            elif s.type == "video":
                picture = s.disposition & av.stream.Disposition.attached_pic
                self.notes.append(f"{what} not copied: vsr writes one video stream"
                                  + (" (this one is a cover picture)" if picture else ""))
            else:
                self.notes.append(f"{what} not copied")

    def set_rotation(self, degrees: int) -> None:
        """Write a display rotation; call after :meth:`open` and before anything is written."""
        self.rotation = degrees
        if degrees and self.stream is not None:
            self.stream.set_display_rotation(degrees)

    def set_hdr(self, hdr: HdrMetadata | None) -> None:
        """Write HDR10 mastering-display and light-level metadata into the video stream.

        Call after :meth:`open` and before anything is written. x265 and SVT-AV1 carry it
        (SEI / metadata OBUs); with another encoder a note says it was not kept.
        """
        if hdr is None or self.stream is None:
            return
        params = hdr.encoder_params(self.settings.codec)
        if not params:
            self.notes.append(f"HDR10 mastering-display and light-level metadata not kept: {self.settings.codec} "
                              "cannot write them (libx265 and libsvtav1 can)")
            return
        key = "x265-params" if self.settings.codec == "libx265" else "svtav1-params"
        options = self.stream.codec_context.options
        options[key] = ":".join(filter(None, [options.get(key, ""), *params]))
        self.stream.codec_context.options = options

    # -- writing ---------------------------------------------------------------------------
    def picture(self, rgb, coded: bool = False):
        """Convert one ``(H, W, 3)`` uint8 or uint16 RGB array to a frame in the encoder's format.

        Safe to call from another thread once the sink is open, so that the conversion runs
        beside the encoder instead of before it. Arrays larger than the encoded size (odd
        sizes) are cropped to it.

        Args:
            rgb: the picture, full-range RGB (0 black, peak white).
            coded: ``rgb`` is in a limited-range source's coded levels (see
                :class:`~vsr.io.color.Levels`): its super-blacks and super-whites are kept.

        Returns:
            an ``av.VideoFrame`` in the output pixel format, with the colour tags set.
        """
        import av
        import numpy as np

        w, h = self.size
        if rgb.shape[0] != h or rgb.shape[1] != w:
            rgb = rgb[:h, :w]
        fmt = "rgb24" if rgb.dtype.itemsize == 1 else "rgb48le"
        if rgb.strides[0] <= 0 or rgb.strides[1:] != (3 * rgb.itemsize, rgb.itemsize):
            rgb = np.ascontiguousarray(rgb)
        if coded and self._to_coded_yuv is None:
            self._to_coded_yuv = YuvConverter(self.conversion.coded, self.pix_fmt)
        # A frame over the array's own memory: the conversion reads it where it lies.
        return (self._to_coded_yuv if coded else self._to_yuv)(av.VideoFrame.from_numpy_buffer(rgb, format=fmt))

    def planes_format(self, width: int, height: int) -> YuvFormat | None:
        """The packed planes (:func:`vsr.io.yuv.pack`) :meth:`planes_picture` takes for
        ``width`` x ``height`` pictures, converted elsewhere (on the method's device) as
        :meth:`picture` would: the output's matrix and range, chroma at the centre, where
        swscale puts it. ``None`` where the output's format or size needs the RGB path."""
        if self.pix_fmt not in PACKED_FORMATS or width % 2 or height % 2 or (self.size and self.size != (width, height)):
            return None
        try:
            return YuvFormat.of(self.pix_fmt, self.conversion.colorspace, self.conversion.color_range, "center")
        except ConfigError:
            return None

    def planes_picture(self, planes):
        """An ``(rows, W)`` array of packed planes in :meth:`planes_format` -> a frame in the
        encoder's format with the colour tags set; like :meth:`picture`, safe from another thread."""
        frame = planes_frame(planes, self.pix_fmt)
        apply_tags(frame, self.conversion.tags)
        return frame

    def write_frame(self, rgb, pts: int | None, duration: int | None = None) -> None:
        """Encode one frame with presentation time ``pts``.

        Args:
            rgb: an ``(H, W, 3)`` uint8 or uint16 RGB array, or a frame from :meth:`picture`.
            pts: presentation timestamp in the source time base.
            duration: frame duration in the source time base; keeps the last frame's length exact.
        """
        import av

        if self.container is None:
            self.open(rgb.shape[1], rgb.shape[0])
        frame = rgb if isinstance(rgb, av.VideoFrame) else self.picture(rgb)
        if pts is not None and self._last_pts is not None and pts <= self._last_pts:
            # Encoders and muxers need strictly increasing pts; broken sources repeat them.
            pts = self._last_pts + 1
            self.adjusted_pts += 1
        frame.pts = pts
        if self._key_interval and pts is not None:
            self._force_keyframe(frame, pts)
        if duration:
            frame.duration = duration
        frame.time_base = self.info.time_base
        self._last_pts = pts
        self._mux_all(self.stream.encode(frame))
        self.frames += 1

    def _force_keyframe(self, frame, pts: int) -> None:
        """Make ``frame`` a keyframe when it is the first at or after the next segment boundary.

        Boundaries fall every ``hls_time`` seconds from the first frame, where the HLS muxer
        cuts; a keyframe there lets every segment start on one and last what it says.
        """
        import av

        time = pts * self.info.time_base
        if self._next_key is None:
            self._next_key = time
        if time >= self._next_key:
            frame.pict_type = av.video.frame.PictureType.I
            interval = Fraction(self._key_interval)
            while self._next_key <= time:
                self._next_key += interval

    def write_packet(self, packet) -> None:
        """Remux one audio/subtitle packet of the source, timestamps untouched.

        A packet the muxer rejects as invalid data (damaged in the source: a broken ADTS
        header, say) is skipped and counted, as the decoder skips damaged video packets;
        any other failure is an :class:`OutputError`.
        """
        # stream_index, not packet.stream: the input (and its streams) may be closed by now.
        out = self.stream_map.get(packet.stream_index)
        if out is None:
            return
        packet.stream = out
        if self._mux_all((packet,), skip_damaged=True):
            self.packets += 1

    def _mux_all(self, packets, skip_damaged: bool = False) -> bool:
        """Mux ``packets``; False when one was rejected as damaged and ``skip_damaged`` let it go."""
        import av

        try:
            for p in packets:
                self.container.mux(p)
        except av.error.InvalidDataError as exc:
            if not skip_damaged:
                raise self._write_error(exc) from exc
            self.damaged_packets += 1
            log.warning("skipped a damaged packet: %s", exc)
            return False
        except (av.error.FFmpegError, OSError) as exc:
            raise self._write_error(exc) from exc
        return True

    def _write_error(self, exc: Exception) -> OutputError:
        # A stream carried by the ffmpeg binary fails there: its message says why.
        why = self._pipe.error() if self._pipe is not None else None
        detail = why or (exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
        return OutputError(f"writing {mask_url(self.target)} failed: {detail}")

    # -- closing ---------------------------------------------------------------------------
    def close(self, target: str | Path | None = None) -> None:
        """Flush the encoder, finish the container and move it to its final name (or to ``target``)."""
        if self.container is None:
            return
        try:
            self._mux_all(self.stream.encode(None))
            self.container.close()
        except Exception:
            self.abort()
            raise
        self.container = None
        if self._pipe is not None:
            failed, self._pipe = self._pipe.close(), None
            if failed:
                raise OutputError(f"sending to {mask_url(self.target)} failed: {failed}")
        if self.damaged_packets:
            self.notes.append(f"{self.damaged_packets} damaged audio/subtitle packets skipped")
        if self.temp is not None:
            os.replace(self.temp, target or self.target)

    def abort(self) -> None:
        """Close without finishing and delete the temporary file."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - already failing; the file is deleted next
                pass
            self.container = None
        if self._pipe is not None:
            self._pipe.close(wait=0)
            self._pipe = None
        if self.temp is not None and self.temp.exists():
            self.temp.unlink()
