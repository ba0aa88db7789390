"""Encoding: upscaled RGB frames to a video stream, audio and subtitle packets remuxed as they came.

The output is written to a hidden temporary name beside the target and renamed
only when complete, so a crash never leaves a half-written file under the name
the user asked for.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vsr.errors import CodecError, ConfigError, OutputError
from vsr.io.color import apply_tags, resolve_conversion
from vsr.io.source import is_url, mask_url
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
        pix_fmt: output pixel format; ``None`` keeps the source's bit depth in 4:2:0
            (4:4:4 for ffv1).
        format: container format; ``None`` chooses from the file extension.
        options: further encoder options, passed to FFmpeg as they are.
        muxer_options: further container/protocol options (``hls_time``, ``pkt_size``...).
    """

    codec: str = "libx264"
    crf: float | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    muxer_options: dict[str, str] = field(default_factory=dict)

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


def choose_pix_fmt(settings: EncodeSettings, bit_depth: int) -> str:
    """The output pixel format: the user's, else the source depth in 4:2:0 (4:4:4 for ffv1)."""
    import av

    if settings.pix_fmt:
        pix_fmt = settings.pix_fmt
    else:
        chroma = "444" if settings.codec == "ffv1" else "420"
        pix_fmt = f"yuv{chroma}p" if bit_depth <= 8 else f"yuv{chroma}p10le"
    supported = {f.name for f in av.codec.Codec(settings.codec, "w").video_formats or []}
    if supported and pix_fmt not in supported:
        if settings.pix_fmt:
            raise ConfigError(f"{settings.codec} cannot encode {pix_fmt}; it takes: {', '.join(sorted(supported))}")
        pix_fmt = "yuv420p" if "yuv420p" in supported else sorted(supported)[0]
    return pix_fmt


def even_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The largest size not above ``width x height`` that ``pix_fmt``'s chroma subsampling allows."""
    import av

    fmt = av.VideoFormat(pix_fmt, 4, 4)  # chroma planes of a 4x4 picture reveal the subsampling
    chroma = [c for c in fmt.components if not c.is_luma and not c.is_alpha] if not fmt.is_rgb else []
    sub_w = 4 // min((c.width for c in chroma), default=4)
    sub_h = 4 // min((c.height for c in chroma), default=4)
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
    """

    def __init__(self, target: str, info: VideoInfo, settings: EncodeSettings,
                 passthrough: list | tuple = ()) -> None:
        settings.validate()
        self.target = target
        self.info = info
        self.settings = settings
        self.format = container_format(target, settings.format)
        self.pix_fmt = choose_pix_fmt(settings, info.bit_depth)
        self.conversion = resolve_conversion(info.color, info.height, info.pix_fmt)
        self.rotation = 0  # display rotation, degrees counter-clockwise: see set_rotation
        self._passthrough_sources = list(passthrough)
        # HLS writes a playlist plus segments beside it, rewritten as it goes: no temporary name.
        self.is_file = not (target == "-" or is_url(target) or self.format == "hls")
        self.temp = temporary_path(Path(target)) if self.is_file else None
        self.container = None
        self.stream = None
        self.stream_map: dict[int, object] = {}
        self.size: tuple[int, int] | None = None
        self.frames = 0
        self.packets = 0
        self.dropped_streams: list[str] = []
        self._last_pts: int | None = None
        self.adjusted_pts = 0

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
            else:
                where = str(self.temp) if self.is_file else self.target
                self.container = av.open(where, mode="w", format=self.format, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create output {mask_url(self.target)}: {getattr(exc, 'strerror', None) or exc}") from exc
        try:
            self._add_video_stream(enc_w, enc_h)
            self._add_passthrough_streams()
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
        elif self.format == "hls":
            # A rolling live playlist: six 2-second segments, older ones deleted.
            options.update({"hls_time": "2", "hls_list_size": "6", "hls_flags": "delete_segments"})
        elif self.format == "rtsp":
            options["rtsp_transport"] = "tcp"
        elif self.format == "mpegts" and self.target.startswith("udp://"):
            options["pkt_size"] = "1316"
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
        self.stream = stream

    def _open_encoder(self) -> None:
        """Open the video encoder now, so that settings it rejects fail before any frame is decoded
        (PyAV would otherwise open it on the first frame encoded or packet muxed, mid-run).

        Raises:
            CodecError: the encoder refuses its settings, or is a hardware encoder without its device.
        """
        import av

        codec = self.settings.codec
        try:
            self.stream.codec_context.open()
        except av.error.FFmpegError as exc:
            reason = exc.strerror or type(exc).__name__
            if any(marker in codec for marker in _HARDWARE_MARKERS):
                raise CodecError(f"encoder {codec} cannot start here ({reason}): it needs its hardware and driver; "
                                 f"use a software encoder such as --codec libx264") from exc
            raise CodecError(f"encoder {codec} rejected its settings ({reason}); check --preset, --crf, --pix-fmt "
                             f"and the encoder options for {codec}") from exc

    def _add_passthrough_streams(self) -> None:
        supported = getattr(self.container, "supported_codecs", None)
        for src in self._passthrough_sources:
            name = src.codec_context.name if src.codec_context is not None else "?"
            if supported is not None and name not in supported:
                self.dropped_streams.append(f"{src.type} stream {src.index} ({name}) cannot go into {self.format}")
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

    def set_rotation(self, degrees: int) -> None:
        """Write a display rotation; call after :meth:`open` and before anything is written."""
        self.rotation = degrees
        if degrees and self.stream is not None:
            self.stream.set_display_rotation(degrees)

    # -- writing ---------------------------------------------------------------------------
    def picture(self, rgb):
        """Convert one ``(H, W, 3)`` uint8 or uint16 RGB array to a frame in the encoder's format.

        Safe to call from another thread once the sink is open, so that the conversion runs
        beside the encoder instead of before it. Arrays larger than the encoded size (odd
        sizes) are cropped to it.

        Returns:
            an ``av.VideoFrame`` in the output pixel format, with the colour tags set.
        """
        import av

        w, h = self.size
        if rgb.shape[0] != h or rgb.shape[1] != w:
            rgb = rgb[:h, :w]
        fmt = "rgb24" if rgb.dtype.itemsize == 1 else "rgb48le"
        frame = av.VideoFrame.from_ndarray(rgb, format=fmt).reformat(
            format=self.pix_fmt,
            dst_colorspace=self.conversion.colorspace,
            dst_color_range=self.conversion.color_range,
        )
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
        if duration:
            frame.duration = duration
        frame.time_base = self.info.time_base
        self._last_pts = pts
        self._mux_all(self.stream.encode(frame))
        self.frames += 1

    def write_packet(self, packet) -> None:
        """Remux one audio/subtitle packet of the source, timestamps untouched."""
        # stream_index, not packet.stream: the input (and its streams) may be closed by now.
        out = self.stream_map.get(packet.stream_index)
        if out is None:
            return
        packet.stream = out
        self._mux_all((packet,))
        self.packets += 1

    def _mux_all(self, packets) -> None:
        import av

        try:
            for p in packets:
                self.container.mux(p)
        except av.error.FFmpegError as exc:
            raise OutputError(f"writing {mask_url(self.target)} failed: {exc}") from exc
        except OSError as exc:
            raise OutputError(f"writing {mask_url(self.target)} failed: {exc.strerror or exc}") from exc

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        """Flush the encoder, finish the container and move it to its final name."""
        if self.container is None:
            return
        try:
            self._mux_all(self.stream.encode(None))
            self.container.close()
        except Exception:
            self.abort()
            raise
        self.container = None
        if self.temp is not None:
            os.replace(self.temp, self.target)

    def abort(self) -> None:
        """Close without finishing and delete the temporary file."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - already failing; the file is deleted next
                pass
            self.container = None
        if self.temp is not None and self.temp.exists():
            self.temp.unlink()
