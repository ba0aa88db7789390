"""The Python API: :func:`upscale` a file or stream, or iterate upscaled frames yourself."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import replace
from typing import Any

from vsr.engine.job import plan_job
from vsr.engine.local import LocalExecutor
from vsr.engine.manifest import work_dir
from vsr.engine.queues import Pipeline, RunStats, iterate, partial_path
from vsr.engine.record import write_record
from vsr.errors import ConfigError
from vsr.io.decode import Decoder, Roi
from vsr.io.encode import EncodeSettings, Sink, check_output
from vsr.io.source import OpenOptions, is_url
from vsr.methods.base import Method
from vsr.methods.build import build_method
from vsr.types import Frame


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
        resume: cut the job into segments at keyframes, committed one by one in a work
            directory beside the output; a later call with the same arguments seeks to the
            first unfinished segment (see :mod:`vsr.engine.local`). Needs an input file.
        segment_seconds: target length of those segments.
        on_progress: called about four times a second with the running :class:`RunStats`.
        on_start: called with the :class:`Pipeline` before it runs (with ``resume``, the
            :class:`~vsr.engine.local.LocalExecutor`), to cancel it from a signal handler, for
            instance.

    Returns:
        The final :class:`RunStats`.

    Raises:
        InputError, OutputError, ConfigError, CodecError, ModelError: as the message says.
        Cancelled: the run was cancelled; ``output`` holds the frames processed.

    A run that fails part way keeps the frames done in ``out.partial.mp4`` beside ``out.mp4``
    (:func:`~vsr.engine.queues.partial_path`), or, with ``resume``, in its committed segments;
    the error's message says where.
    """
    if isinstance(roi, str):
        try:
            roi = Roi.parse(roi)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    built = build_method(method, scale, params, device, size)
    encode = encode or EncodeSettings()
    if live and not encode.live:
        encode = replace(encode, live=True)  # an HLS output becomes a rolling playlist
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
    if resume:
        decoder.close()  # it has checked the input and the region; each segment opens its own
        stats = _resume(source, output, method, built, scale=scale, params=params, size=size, encode=encode,
                        video_stream=video_stream, roi=roi, overwrite=overwrite, open_options=open_options,
                        device=device, segment_seconds=segment_seconds, on_progress=on_progress, on_start=on_start,
                        accept_partial=accept_partial)
    else:
        try:
            check_output(source, output, overwrite)
            info = decoder.info
            in_h, in_w = (roi.h, roi.w) if roi else (info.height, info.width)
            sink = Sink(output, info, encode, passthrough=decoder.passthrough, source=decoder.container)
            pipeline = Pipeline(decoder, built, sink, output_size=_output_size(built, in_h, in_w, size),
                                queue_size=(2 if live else 8) if queue_size is None else queue_size, live=live,
                                partial=None if output == "-" or is_url(output) else partial_path(output))
        except BaseException:
            decoder.close()
            raise
        if on_start is not None:
            on_start(pipeline)
        stats = pipeline.run(on_progress=on_progress)
    if roi is not None or record is not None:
        write_record(record or f"{output}.json", source, output, built, roi, encode, stats, decoder.info)
    return stats


def _resume(source: str, output: str, method: str | Method, built: Method, *, overwrite: bool,
            segment_seconds: float, on_progress: Callable[[RunStats], None] | None,
            on_start: Callable[[LocalExecutor], None] | None, **settings: Any) -> RunStats:
    """``upscale(..., resume=True)``: the job cut into segments, run by the local executor."""
    if source == "-" or is_url(source):
        raise ConfigError("--resume needs an input file: it seeks to the first unfinished segment of it")
    if output == "-" or is_url(output):
        raise ConfigError("--resume needs a file output (it keeps segments beside it)")
    check_output(source, output, overwrite or work_dir(output).is_dir())
    plan = plan_job(source, output, method, built, segment_seconds=segment_seconds, at_keyframes=False, **settings)
    executor = LocalExecutor(plan, built)
    if on_start is not None:
        on_start(executor)
    return executor.run(on_progress)


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

    The work runs in the calling thread between yields, under vsr's own torch settings
    (inference mode, the thread count a method chooses); the caller's settings are back in
    place whenever a frame is handed over, and after the loop ends or is left early.

    Yields:
        :class:`Frame` objects with float ``(3, H_out, W_out)`` RGB data in [0, 1] and the
        pts/time_base of their source frame.
    """
    built = build_method(method, scale, params, device, size)
    decoder = Decoder(source, video_stream=video_stream, roi=roi)
    in_h, in_w = (roi.h, roi.w) if roi else (decoder.info.height, decoder.info.width)
    # One size for every frame, also where the source's picture size changes midway.
    yield from _confined(iterate(decoder, built, _output_size(built, in_h, in_w, size) or built.output_size(in_h, in_w)))


def _confined(steps: Generator[Frame, None, None]) -> Iterator[Frame]:
    """Run each step of ``steps`` in inference mode with the thread count it set last, and
    give the caller its own thread count and grad mode back before each frame is handed over
    (:func:`~vsr.engine.queues.iterate` has already clamped frame data to [0, 1])."""
    import torch

    own_threads: int | None = None

    def in_own_settings(work: Callable[[], Any]) -> Any:
        nonlocal own_threads
        caller_threads = torch.get_num_threads()
        try:
            with torch.inference_mode():
                if own_threads is not None:
                    torch.set_num_threads(own_threads)
                return work()
        finally:
            own_threads = torch.get_num_threads()
            torch.set_num_threads(caller_threads)

    def advance() -> Frame:
        return next(steps)

    try:
        while True:
            try:
                frame = in_own_settings(advance)
            except StopIteration:
                return
            yield frame
    finally:
        # Closing runs the steps' own clean-up (context exits, thread counts restored): confine it too.
        in_own_settings(steps.close)

