"""The Python API: :func:`upscale` a file or stream, or iterate upscaled frames yourself."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from vsr.errors import ConfigError
from vsr.io.decode import Decoder, Roi
from vsr.io.encode import EncodeSettings, Sink, check_output
from vsr.io.resume import SegmentedSink, job_key, resume_dir
from vsr.io.source import OpenOptions, is_url, mask_url
from vsr.methods.base import Method
from vsr.methods.registry import get_method
from vsr.pipeline.runner import Pipeline, RunStats, iterate
from vsr.types import Frame


def resolve_device(device: str | None) -> str:
    """``"auto"``/``None`` → ``"cuda"`` when a CUDA device is usable, else ``"cpu"``."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    return device


def build_method(method: str | Method, scale: int | None, params: dict[str, Any] | None, device: str | None,
                 size: tuple[int, int] | None = None) -> Method:
    """A ready method: from the registry (or as given), on its device, honouring ``size`` ``(W, H)``."""
    if isinstance(method, Method):
        built = method
    else:
        built = get_method(method, scale=scale, **(params or {}))
    built.to(resolve_device(device))
    if size is not None:
        built.target_size = (size[1], size[0])
    return built


def _output_size(method: Method, height: int, width: int, size: tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    target = (size[1], size[0])
    return None if method.output_size(height, width) == target else target


def upscale(
    source: str,
    output: str,
    method: str | Method = "misr",
    scale: int | None = None,
    *,
    size: tuple[int, int] | None = None,
    params: dict[str, Any] | None = None,
    encode: EncodeSettings | None = None,
    video_stream: int | None = None,
    roi: Roi | str | None = None,
    record: str | None = None,
    overwrite: bool = False,
    device: str | None = "auto",
    queue_size: int | None = None,
    open_options: OpenOptions | None = None,
    reconnect: int = 0,
    reconnect_at_end: bool | None = None,
    accept_partial: bool = False,
    live: bool = False,
    resume: bool = False,
    segment_seconds: float = 10.0,
    on_progress: Callable[[RunStats], None] | None = None,
    on_start: Callable[[Pipeline], None] | None = None,
) -> RunStats:
    """Upscale ``source`` into ``output``, passing audio and subtitles through.

    Args:
        source: path, ``"-"`` (standard input) or URL.
        output: path (container from the extension), ``"-"`` or a URL.
        method: registered name (``vsr methods``) or a :class:`Method` instance.
        scale: upscaling factor of the method (2, 3, 4...); ``None``: the method's default
            (:func:`vsr.methods.registry.default_scale`: 2, or the network's own).
        size: exact output ``(width, height)``; the method's output is resampled to it.
        params: method parameters (e.g. ``{"window": 7}`` for misr).
        encode: encoder settings; defaults to libx264 crf 18.
        video_stream: index of the video stream to upscale (default: the default one).
        roi: region ``x,y,w,h`` of the source to upscale alone (writes only that crop).
        record: path of a JSON record of everything used (written by default with ``roi``
            as ``<output>.json``).
        overwrite: replace an existing output.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        queue_size: capacity of each queue between stages; ``None``: 8, or 2 with ``live``
            (frames waiting in a live queue only add latency).
        open_options: timeout and transport for network sources.
        reconnect: times to reopen a network source that drops or stalls (-1: forever).
        reconnect_at_end: also reopen a network source that ends normally; ``None``: only
            with ``live``. Without it a URL that ends (a file over HTTP) is read once.
        accept_partial: upscale what a truncated file holds instead of refusing it.
        live: drop the oldest waiting frame rather than fall behind the source.
        resume: write the video in committed segments beside the output; a later call with
            the same arguments continues after the last committed frame (see
            :mod:`vsr.io.resume`).
        segment_seconds: length of those segments.
        on_progress: called about four times a second with the running :class:`RunStats`.
        on_start: called with the :class:`Pipeline` before it runs (to cancel it from a
            signal handler, for instance).

    Returns:
        The final :class:`RunStats`.

    Raises:
        InputError, OutputError, ConfigError, CodecError, ModelError: as the message says.
        Cancelled: the run was cancelled; ``output`` holds the frames processed.
    """
    if isinstance(roi, str):
        try:
            roi = Roi.parse(roi)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    built = build_method(method, scale, params, device, size)
    encode = encode or EncodeSettings()
    if live and encode.codec in ("libx264", "libx265") and "tune" not in encode.options:
        # No lookahead or frame reordering delay on a live path.
        encode = replace(encode, options={**encode.options, "tune": "zerolatency"})
    try:
        decoder = Decoder(source, video_stream=video_stream, roi=roi, options=open_options, reconnect=reconnect,
                          reconnect_at_end=live if reconnect_at_end is None else reconnect_at_end,
                          accept_partial=accept_partial)
    except ValueError as exc:  # an roi outside the picture
        if isinstance(exc, ConfigError) or type(exc) is ValueError:
            raise ConfigError(str(exc)) from exc
        raise
    try:
        if resume and (output == "-" or is_url(output)):
            raise ConfigError("--resume needs a file output (it keeps segments beside it)")
        check_output(source, output, overwrite or (resume and resume_dir(output).is_dir()))
        info = decoder.info
        in_h, in_w = (roi.h, roi.w) if roi else (info.height, info.width)
        skip_until = None
        if resume:
            job = job_key(source, {"method": built.describe(), "size": size, "roi": roi, "encode": asdict(encode),
                                   "video_stream": video_stream})
            rate = float(info.average_rate) if info.average_rate else 25.0
            sink = SegmentedSink(output, source, info, encode, passthrough=decoder.passthrough, job=job,
                                 segment_frames=max(1, round(segment_seconds * rate)))
            skip_until = sink.resume_after
        else:
            sink = Sink(output, info, encode, passthrough=decoder.passthrough)
        pipeline = Pipeline(decoder, built, sink, output_size=_output_size(built, in_h, in_w, size),
                            queue_size=(2 if live else 8) if queue_size is None else queue_size,
                            live=live, skip_until=skip_until)
    except BaseException:
        decoder.close()
        raise
    if on_start is not None:
        on_start(pipeline)
    stats = pipeline.run(on_progress=on_progress)
    if resume:
        sink.finish()
    if roi is not None or record is not None:
        write_record(record or f"{output}.json", source, output, built, roi, encode, stats,
                     decoder)
    return stats


def frames(
    source: str,
    method: str | Method = "misr",
    scale: int | None = None,
    *,
    size: tuple[int, int] | None = None,
    params: dict[str, Any] | None = None,
    video_stream: int | None = None,
    roi: Roi | None = None,
    device: str | None = "auto",
) -> Iterator[Frame]:
    """Iterate the upscaled frames of ``source`` in the calling thread.

    Yields:
        :class:`Frame` objects with float ``(3, H_out, W_out)`` RGB data in [0, 1] and the
        pts/time_base of their source frame.
    """
    built = build_method(method, scale, params, device, size)
    decoder = Decoder(source, video_stream=video_stream, roi=roi)
    in_h, in_w = (roi.h, roi.w) if roi else (decoder.info.height, decoder.info.width)
    # One size for every frame, also where the source's picture size changes midway.
    yield from iterate(decoder, built, _output_size(built, in_h, in_w, size) or built.output_size(in_h, in_w))


def _sha256(path: str) -> str | None:
    if path == "-" or is_url(path) or not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_record(path: str, source: str, output: str, method: Method, roi: Roi | None,
                 encode: EncodeSettings, stats: RunStats, decoder: Decoder) -> None:
    """Write the JSON record of a run: input (with sha256), region, method parameters, frames."""
    from vsr import __version__

    info = decoder.info
    record = {
        "vsr_version": __version__,
        "input": {"source": mask_url(source), "sha256": _sha256(source), "width": info.width,
                  "height": info.height, "time_base": str(info.time_base), "codec": info.codec},
        "roi": asdict(roi) if roi else None,
        "method": method.describe(),
        "encode": asdict(encode),
        "output": {"path": mask_url(output), "sha256": _sha256(output)},
        "frames": {"decoded": stats.frames_decoded, "written": stats.frames_written,
                   "corrupt_packets_skipped": stats.corrupt_packets, "scene_cuts": stats.scene_cuts},
    }
    tmp = Path(path).with_name(f".{Path(path).name}.partial")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    os.replace(tmp, path)
