"""The pipeline: decode, method and encode workers joined by bounded queues.

::

    decode ──frames──► method ──images──► convert ──pictures──► encode ──► sink
       └──────────────────── audio / subtitle packets ──────────────┘

The method worker runs :func:`upscale_frames`, the one frame loop (windows, transport,
method, output size) that :func:`iterate` and segment runs (``--resume``, Ray tasks,
through :mod:`vsr.engine.task`) share. The convert worker turns images into the encoder's
pixel format, apart from the thread that feeds the method's device. Each worker is a
thread (PyAV, OpenCV and torch release the GIL while they work).
A full queue blocks its producer, so memory stays bounded by the queue sizes. The
audio/subtitle channel has no bound of its own: the demuxer reads in file order
and stops when the frame queue is full, so the packets waiting in it never span
more than the frames in flight.

Stopping:
- an exception in the decoder or the method stops decoding; the frames already past
  the failed stage are still written, and the output is closed under
  :func:`partial_path` (``out.partial.mp4``) so the frames done stay playable; the
  first error is raised once, saying where they are. An encoder failure stops every
  worker at once;
- :meth:`Pipeline.cancel` (Ctrl-C, SIGTERM) stops decoding, lets the frames in
  flight finish (for at most ``grace`` seconds) and closes the output properly, so
  what was processed plays;
- a second :meth:`Pipeline.cancel` drops the frames in flight too; a method stuck in
  one long call is left behind (:func:`busy_workers`) rather than waited for;
- the output is closed by the thread that runs the pipeline, once the encoder has
  stopped, never while a worker still writes to it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from vsr.engine.scenecut import SceneCutDetector
from vsr.engine.transport import Transport
from vsr.engine.window import WindowAssembler, frame_windows, to_integer_hwc
from vsr.errors import Cancelled, InputError, PipelineError, VsrError
from vsr.io.source import mask_url
from vsr.io.yuv import packed_height
from vsr.methods.base import batches
from vsr.methods.samples import to_unit_float
from vsr.types import Frame

if TYPE_CHECKING:
    import torch

    from vsr.engine.local import LocalExecutor
    from vsr.io.color import Levels
    from vsr.io.yuv import YuvFormat
    from vsr.methods.base import Method, Window

log = logging.getLogger(__name__)

_END = object()
_POLL = 0.05
_ABANDON_AFTER = 5.0  # seconds a stopped worker gets before it is left behind


class _Abort(Exception):
    """Raised inside a worker when the pipeline is being torn down."""


@dataclass
class RunStats:
    """What the pipeline has done so far; read by progress displays.

    Attributes:
        frames_decoded, frames_processed, frames_written: counters per stage.
        frames_dropped: frames dropped in live mode because the method fell behind.
        reconnects: times a network source was reopened.
        latency, latency_max: seconds from decode to encode, last frame and worst.
        frame_count: total frames when the container knows it, else ``None``.
        started: ``time.monotonic()`` at start.
        queues: stage name to ``(items, capacity)``.
        corrupt_packets: damaged packets skipped by the decoder.
        scene_cuts: shot boundaries found (windowed methods only).
        cancelled: the run was stopped early and the output holds a prefix.
        dropped_streams: streams of the source the output container could not take.
        notes: what else the output could not keep as the source had it (pixel format,
            streams and metadata), one line each.
        first_pts, last_pts: pts of the first and last frame written.
    """

    frames_decoded: int = 0
    frames_processed: int = 0
    frames_written: int = 0
    frame_count: int | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    queues: dict[str, tuple[int, int]] = field(default_factory=dict)
    corrupt_packets: int = 0
    scene_cuts: int = 0
    packets_passed: int = 0
    cancelled: bool = False
    dropped_streams: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    frames_dropped: int = 0
    reconnects: int = 0
    first_pts: int | None = None
    last_pts: int | None = None
    latency: float | None = None
    latency_max: float = 0.0
    _latency_sum: float = 0.0
    _latency_n: int = 0

    def record_latency(self, seconds: float) -> None:
        """Note the time one frame took from leaving the decoder to reaching the encoder."""
        self.latency = seconds
        self.latency_max = max(self.latency_max, seconds)
        self._latency_sum += seconds
        self._latency_n += 1

    @property
    def latency_mean(self) -> float | None:
        return self._latency_sum / self._latency_n if self._latency_n else None

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def fps(self) -> float:
        return self.frames_written / self.elapsed if self.elapsed > 0 else 0.0


class Pipeline:
    """Run ``decoder`` → ``method`` → ``sink`` with one worker each.

    Args:
        decoder: a :class:`~vsr.io.decode.Decoder`, not yet iterated; its ``on_packet``
            is set here.
        method: the upscaling method, already on its device.
        sink: a :class:`~vsr.io.encode.Sink`, not yet opened.
        output_size: ``(H, W)`` to resample the method's output to, or ``None`` to keep
            the method's natural size.
        queue_size: capacity of each frame queue (``>= 1``).
        scene_cuts: detect shots so windows never span a cut (windowed methods only).
        live: never fall behind the source: when the method's input queue is full the
            oldest waiting frame is dropped (and counted) instead of blocking the decoder.
            Without it nothing is ever dropped.
        frames: the range of the source to run, as ``frames(stop)`` giving the decoded frames
            in order until ``stop()`` is true (e.g. one segment, see
            :func:`~vsr.engine.segments.decode_segment`); ``None``: the whole source.
        keep: which of those frames to upscale and write (the others are only neighbours in
            the windows); ``None``: all.
        passthrough: copy the source's audio and subtitle packets into the sink.
        partial: where the frames written so far are kept when a worker fails (a file output
            closed under this name, see :func:`partial_path`); ``None`` deletes them.
        grace: seconds the frames in flight get to finish after a first :meth:`cancel`
            before the run stops as after a second one.

    Attributes:
        on_notice: called with a one-line message when a cancel starts to take effect (what
            is being finished); set it before :meth:`run`.
        abandoned: names of the workers still busy when :meth:`run` returned (a method
            stuck in one long call after a forced stop); empty after a normal run.
        levels: for a limited-range source, the map between the coded levels the decoder
            gives and nominal RGB (see :meth:`~vsr.io.decode.Decoder.keep_levels`), so that
            super-blacks and super-whites reach the encoder; ``None`` for a full-range source
            and for methods that take integer frames and are not interpolations.
    """

    def __init__(self, decoder, method, sink, output_size: tuple[int, int] | None = None,
                 queue_size: int = 8, scene_cuts: bool = True, live: bool = False,
                 frames: Callable[[Callable[[], bool]], Iterable[Frame]] | None = None,
                 keep: Callable[[Frame], bool] | None = None, passthrough: bool = True,
                 partial: Path | None = None, grace: float = 15.0) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1; got {queue_size}")
        self.decoder = decoder
        self.method = method
        self.sink = sink
        self.output_size = output_size
        self.frames_q: queue.Queue = queue.Queue(queue_size)
        self.images_q: queue.Queue = queue.Queue(queue_size)
        self.pictures_q: queue.Queue = queue.Queue(queue_size)
        self.packets: collections.deque = collections.deque()
        self.decoder.on_packet = self.packets.append if passthrough else None
        self.frames = frames or decoder.frames
        self.keep = keep
        # A method that resamples YUV planes gets the decoder's and gives the encoder's: no RGB.
        self._planes_out = self._planar_output()
        # A limited-range source's levels beyond black and white reach the encoder, unless the
        # method takes integer frames and is not an interpolation (the neural networks clip them).
        # Planes keep every code value as it is.
        self.levels = None
        if self._planes_out is None and (not method.integer_io or method.linear):
            self.levels = decoder.keep_levels()
        self.detector = SceneCutDetector(levels=self.levels) if scene_cuts and method.radius > 0 else None
        # On CUDA the decoder hands over YUV planes, converted to RGB on the device, unless the
        # scene-cut detector needs RGB on the host or the source's levels beyond black and white
        # are kept (they take the RGB path, mapped on the method's device).
        self._planes = (method.device.type == "cuda" and self.detector is None and self.levels is None
                        and hasattr(decoder, "use_yuv") and decoder.use_yuv() is not None)
        info = decoder.info
        estimate = None
        if info.frame_count is None and info.duration and info.average_rate and not decoder.is_live:
            estimate = round(info.duration * info.average_rate)  # for the ETA of containers that do not count
        self.stats = RunStats(frame_count=info.frame_count or estimate)
        self.live = live
        self.partial = partial
        self.grace = grace
        self.on_notice: Callable[[str], None] | None = None
        self.abandoned: list[str] = []
        self._captured: dict[int, float] = {}  # frame index -> monotonic time it left the decoder
        self._cancel = threading.Event()  # the user asked to stop: finish what is in flight
        self._stop_input = threading.Event()  # stop decoding (a cancel, or a failure downstream)
        self._abort = threading.Event()  # stop everything now
        self._cancelled_at: float | None = None
        self._input_ended = False  # the decoder reached the end of the input
        self._encoded_all = False  # the encoder took every frame the method produced
        self._errors: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()
        self._done = {name: threading.Event() for name in ("decode", "method", "convert", "encode")}
        self._consumer = {id(self.frames_q): self._done["method"], id(self.images_q): self._done["convert"],
                          id(self.pictures_q): self._done["encode"]}
        self.threads: list[threading.Thread] = []

    # -- control ---------------------------------------------------------------------------
    def cancel(self) -> None:
        """First call: finish the frames in flight and close the output. Second: drop them too.

        Safe to call from a signal handler; says what it does through :attr:`on_notice`.
        """
        target = mask_url(str(self.sink.target))
        if self._cancel.is_set():
            if not self._abort.is_set():
                self._abort.set()
                self._notice(f"stopping now: closing {target} with the {self.stats.frames_written} frames written")
            return
        self._cancel.set()
        self._stop_input.set()
        self._cancelled_at = time.monotonic()
        self.stats.cancelled = True
        s = self.stats
        in_flight = max(0, s.frames_decoded - s.frames_written - s.frames_dropped)
        self._notice(f"stopping: finishing the {in_flight} frames in flight (at most {self.grace:g} s), then "
                     f"closing {target}; interrupt again to stop at once")

    @property
    def cancel_requested(self) -> bool:
        """:meth:`cancel` was called (even if the run then completed)."""
        return self._cancel.is_set()

    def _notice(self, message: str) -> None:
        if self.on_notice is not None:
            self.on_notice(message)

    def _planar_output(self) -> YuvFormat | None:
        """The planes a :attr:`~vsr.methods.base.Method.planar` method hands the encoder, where the
        source's planes have their layout, depth, matrix and range (the decoder then hands the
        method its planes); ``None``: frames go through RGB."""
        method, decoder, sink = self.method, self.decoder, self.sink
        if (not method.planar or method.radius or not hasattr(sink, "planes_format")
                or not hasattr(decoder, "use_yuv")):
            return None
        height, width = self._output_size()
        out = sink.planes_format(width, height)
        if out is None or decoder.use_yuv(like=out) is None:
            return None
        return out

    def _fail(self, stage: str, exc: BaseException) -> None:
        """Record a worker's failure. Decoding stops; stages after the failed one finish the
        frames they hold, so the output keeps every frame done (an encoder failure stops all)."""
        with self._lock:
            self._errors.append((stage, exc))
        self._stop_input.set()
        if stage not in ("decode", "method", "convert"):
            self._abort.set()

    def _put(self, q: queue.Queue, item) -> None:
        consumer_done = self._consumer[id(q)]
        while True:
            if self._abort.is_set() or consumer_done.is_set():
                raise _Abort
            try:
                q.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue):
        while True:
            if self._abort.is_set():
                raise _Abort
            try:
                return q.get(timeout=_POLL)
            except queue.Empty:
                continue

    # -- workers ---------------------------------------------------------------------------
    def _decode_worker(self) -> None:
        stopped = []

        def stop() -> bool:
            if self._stop_input.is_set():
                stopped.append(True)
                return True
            return False

        try:
            for frame in self.frames(stop):
                self._captured[frame.index] = time.monotonic()
                if self.live:
                    self._put_dropping_oldest(frame)
                else:
                    self._put(self.frames_q, frame)
                self.stats.frames_decoded += 1
                self.stats.reconnects = self.decoder.stats.reconnects
            self._input_ended = not stopped
            self._put(self.frames_q, _END)
        finally:
            self.stats.corrupt_packets = self.decoder.stats.corrupt_packets
            self.stats.packets_passed = self.decoder.stats.packets_passed
            self.stats.reconnects = self.decoder.stats.reconnects
            self.decoder.close()

    def _put_dropping_oldest(self, frame) -> None:
        while True:
            if self._abort.is_set() or self._done["method"].is_set():
                raise _Abort
            try:
                self.frames_q.put_nowait(frame)
                return
            except queue.Full:
                try:
                    old = self.frames_q.get_nowait()
                except queue.Empty:
                    continue
                self._captured.pop(old.index, None)
                self.stats.frames_dropped += 1

    def _incoming_frames(self):
        while True:
            item = self._get(self.frames_q)
            if item is _END:
                return
            yield item

    def _method_worker(self) -> None:
        import torch

        def keep(frame: Frame) -> bool:
            if self.keep is None or self.keep(frame):
                return True
            self._captured.pop(frame.index, None)
            return False

        to_host = torch.uint8 if self.decoder.info.bit_depth <= 8 else torch.uint16
        size = self._output_size()
        # Planes go back only where they came in: the two conversions on the device share one
        # scale, and the host path's 16-bit RGB puts white elsewhere (RGB48_WHITE).
        planes_out = self._planes_out  # resampled by the method
        if self._planes and hasattr(self.sink, "planes_format"):
            planes_out = self.sink.planes_format(size[1], size[0])  # converted on the device
        planes_in = (lambda: self.decoder.yuv) if self._planes or self._planes_out else None
        # One size for every frame, also where the source's picture size changes midway.
        for ref, image in upscale_frames(self._incoming_frames(), self.method, size, self.detector, keep,
                                         self.stats, to_host, planes_in, planes_out, self.levels):
            self._put(self.images_q, (image, ref.pts, ref.duration, ref.index))
            self.stats.frames_processed += 1
        self._put(self.images_q, _END)

    def _convert_worker(self) -> None:
        # The host-side conversion to the encoder's pixel format has a thread of its own, so
        # that it never holds up the thread that feeds the method's device.
        bit_depth = self.decoder.info.bit_depth
        while True:
            item = self._get(self.images_q)
            if item is _END:
                break
            image, *rest = item
            if image.shape[0] == 1:  # packed YUV planes, converted on the device
                picture = self.sink.planes_picture(image[0].numpy())
            else:
                picture = self.sink.picture(to_integer_hwc(image, bit_depth, self.levels), coded=self.levels is not None)
            self._put(self.pictures_q, (picture, *rest))
        self._put(self.pictures_q, _END)

    def _encode_worker(self) -> None:
        sink = self.sink
        first = True
        while True:
            item = self._get(self.pictures_q)
            if item is _END:
                break
            picture, pts, duration, index = item
            captured = self._captured.pop(index, None)
            if captured is not None:
                self.stats.record_latency(time.monotonic() - captured)
            if first:
                first = False
                sink.set_rotation(self.decoder.rotation)  # known once the first frame is decoded
                sink.set_hdr(self.decoder.hdr)  # likewise
            self._drain_packets()
            sink.write_frame(picture, pts, duration)
            self.stats.frames_written += 1
            if self.stats.first_pts is None:
                self.stats.first_pts = pts
            self.stats.last_pts = pts
        self._encoded_all = True

    def _drain_packets(self) -> None:
        while self.packets:
            self.sink.write_packet(self.packets.popleft())

    def _spawn(self, name: str, target: Callable[[], None], downstream: queue.Queue | None) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except _Abort:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported once by run()
                self._fail(name, exc)
                if downstream is not None:
                    with contextlib.suppress(_Abort):
                        self._put(downstream, _END)  # the next stage finishes what it holds
            finally:
                self._done[name].set()

        thread = threading.Thread(target=run, name=f"vsr-{name}", daemon=True)
        thread.start()
        return thread

    # -- running ---------------------------------------------------------------------------
    def run(self, on_progress: Callable[[RunStats], None] | None = None, interval: float = 0.25) -> RunStats:
        """Run to the end of the input (or until cancelled); returns the final stats.

        ``on_progress`` is called from this thread about every ``interval`` seconds. Run from
        the main thread, Ctrl-C (SIGINT) cancels the run (twice: stops it at once). The output
        is closed here, once the encoder has stopped, never while a worker uses it.

        Raises:
            VsrError: the first error of any worker (others are logged); with ``partial``
                the frames done are kept there and the message says so.
            PipelineError: a worker failed with an unexpected exception.
            Cancelled: the run was cancelled before the end of the input; the output holds
                the frames processed. A cancel that comes once every frame was decoded
                finishes them and returns normally.
        """
        with sigint_cancels(self):
            return self._run(on_progress, interval)

    def _run(self, on_progress: Callable[[RunStats], None] | None, interval: float) -> RunStats:
        if self.sink.container is None:
            try:
                self.sink.open(*self._output_size()[::-1])
            except BaseException:
                self.decoder.close()
                raise
            self.stats.dropped_streams = list(self.sink.dropped_streams)
            self.stats.notes = getattr(self.sink, "notes", [])  # the sink's own list: it may add to it later
            kept = getattr(self.sink, "stream_map", None)
            if kept is not None:  # demux only what the output takes, so "packets copied" counts copies
                self.decoder.passthrough = [s for s in self.decoder.passthrough if s.index in kept]
        self.threads = [
            self._spawn("decode", self._decode_worker, self.frames_q),
            self._spawn("method", self._method_worker, self.images_q),
            self._spawn("convert", self._convert_worker, self.pictures_q),
            self._spawn("encode", self._encode_worker, None),
        ]
        self._wait(on_progress, interval)
        self.stats.finished = time.monotonic()
        self._sample_queues()
        self.abandoned = [t.name for t in self.threads if t.is_alive()]
        if self.abandoned:
            log.warning("%s did not stop; leaving %s behind", ", ".join(self.abandoned),
                        "it" if len(self.abandoned) == 1 else "them")
        self._finish_output()
        self._report(on_progress)
        if self.stats.cancelled:
            raise Cancelled(f"stopped after {self.stats.frames_written} frames; the output holds them")
        return self.stats

    def _wait(self, on_progress: Callable[[RunStats], None] | None, interval: float) -> None:
        """Wait for the workers, calling ``on_progress``; bound the wait once stopping."""
        encoder = self.threads[-1]
        abandon_at = None
        while any(t.is_alive() for t in self.threads):
            now = time.monotonic()
            if self._cancelled_at is not None and not self._abort.is_set() and now > self._cancelled_at + self.grace:
                self._notice(f"the frames in flight did not finish within {self.grace:g} s: stopping now")
                self._abort.set()
            if self._abort.is_set():
                # A method in one long call, or a worker in a blocking read, cannot be interrupted:
                # give it a few seconds, then leave it (the threads are daemons). The output only
                # needs the encoder to have stopped.
                abandon_at = abandon_at or now + _ABANDON_AFTER
                if now > abandon_at and not encoder.is_alive():
                    break
                if now > abandon_at + _ABANDON_AFTER:
                    break
            for t in self.threads:
                t.join(timeout=interval / len(self.threads))
            self._sample_queues()
            self._report(on_progress)

    def _report(self, on_progress: Callable[[RunStats], None] | None) -> None:
        if on_progress is None:
            return
        try:
            on_progress(self.stats)
        except KeyboardInterrupt:
            self.cancel()
        except Exception as exc:  # noqa: BLE001 - a broken display stops the run like a worker
            self._fail("progress", exc)

    def _finish_output(self) -> None:
        """Close the output once the encoder has stopped: complete, a prefix, or kept apart on failure."""
        if self.threads[-1].is_alive():  # stuck in a write: the sink cannot be touched
            if self._errors:
                self._raise_first(None)
            return
        if self._errors:
            self._raise_first(self._keep_partial())
        if not self.sink.frames:
            self.sink.abort()
            if self.stats.cancelled:
                raise Cancelled("stopped before any frame was written; nothing was kept")
            raise InputError("no video frame could be decoded from the input")
        self._drain_packets()
        self.sink.close()
        if self._input_ended and self._encoded_all:
            self.stats.cancelled = False  # stopped after the last frame: the output is complete

    def _keep_partial(self) -> Path | None:
        """After a failure: close what was written under :attr:`partial`; returns it, or ``None``."""
        sink = self.sink
        if self.partial is None or not sink.frames or sink.container is None:
            sink.abort()
            return None
        try:
            self._drain_packets()
            sink.close(self.partial)
        except Exception as exc:  # noqa: BLE001 - the failure being reported matters more
            log.debug("could not keep the frames done: %r", exc)
            sink.abort()
            return None
        return self.partial

    def _raise_first(self, kept: Path | None) -> None:
        stage, exc = self._errors[0]
        for other_stage, other in self._errors[1:]:
            log.debug("also failed in %s: %r", other_stage, other)
        message = str(exc) if isinstance(exc, VsrError) else f"{stage} failed: {type(exc).__name__}: {exc}"
        if kept is not None:
            message += f"; the {self.sink.frames} frames done are kept in {kept}"
        error = type(exc)(message) if isinstance(exc, VsrError) else PipelineError(message)
        raise error from exc

    def _output_size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames the encoder will receive."""
        if self.output_size is not None:
            return self.output_size
        roi = self.decoder.roi
        info = self.decoder.info
        return self.method.output_size(*((roi.h, roi.w) if roi else (info.height, info.width)))

    def _sample_queues(self) -> None:
        self.stats.queues = {
            "decode": (self.frames_q.qsize(), self.frames_q.maxsize),
            "method": (self.images_q.qsize(), self.images_q.maxsize),
            "convert": (self.pictures_q.qsize(), self.pictures_q.maxsize),
        }


def partial_path(target: str | Path) -> Path:
    """Where a failed run keeps the frames it wrote: ``out.mp4`` → ``out.partial.mp4``."""
    path = Path(target)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def busy_workers() -> list[str]:
    """Names of pipeline workers still running in this process (left behind by a forced stop).

    A process must not exit normally while one of them is inside a native library call:
    the library's teardown would abort it. Exit with ``os._exit`` instead.
    """
    return [t.name for t in threading.enumerate() if t.name.startswith("vsr-") and t.is_alive()]


def upscale_frames(frames: Iterable[Frame], method: Method, output_size: tuple[int, int] | None = None,
                   detector: SceneCutDetector | None = None, keep: Callable[[Frame], bool] | None = None,
                   stats: RunStats | None = None, to_host: torch.dtype | None = None,
                   planes_in: Callable[[], YuvFormat | None] | None = None, planes_out: YuvFormat | None = None,
                   levels: Levels | None = None) -> Iterator[tuple[Frame, torch.Tensor]]:
    """The frame loop every run goes through: frames → windows → transport → method → output size.

    Args:
        frames: decoded frames in presentation order (a whole source or one segment with
            its neighbours).
        method: the method, on its device; it sees only windows (or batches, for a
            :attr:`~vsr.methods.base.Method.batched` method).
        output_size: ``(H, W)`` to resample the method's output to (lanczos), or ``None``.
        detector: finds shot boundaries, so that no window spans one; ``None``: no detection.
        keep: which frames to upscale; the others only serve as neighbours in windows.
            ``None``: every frame.
        stats: where to count ``scene_cuts`` (cuts at kept frames only, so that segments
            overlapping by their neighbours count each cut once).
        to_host: on CUDA, bring the images back to the host as this integer type (see
            :meth:`~vsr.engine.transport.Transport.run`); ``None`` leaves them on the device.
        planes_in, planes_out: YUV formats of frames that arrive as packed planes and of the
            planes to hand images over as: on CUDA (with ``to_host``) converted by the transport,
            see :class:`~vsr.engine.transport.Transport`; elsewhere resampled by a
            :attr:`~vsr.methods.base.Method.planar` method (to ``output_size``). Not with ``levels``.
        levels: the frames are in a limited-range source's coded levels (see
            :meth:`~vsr.io.decode.Decoder.keep_levels`): the method gets them in nominal
            float, or as they are if it takes integers.

    Yields:
        ``(reference frame, image)`` per kept frame, in order; ``image`` is ``(C, H, W)``: on
        the method's device, float, nominally in [0, 1], or the input's integer type for a
        method with ``integer_io`` (in coded levels where the frames were); with ``to_host`` on
        CUDA, ``to_host`` integers on the host (in coded levels with ``levels``); ``(1, rows, W)``
        packed planes with ``planes_out``, except for frames the decoder could not give as planes
        (they stay ``(3, H, W)`` RGB).
    """
    import torch

    transport = Transport(method.device, planes_in=planes_in, planes_out=planes_out)
    # On CUDA the decoder's integers stay on the host until the transport uploads them, unless
    # they must be mapped from coded levels first (the assembler does that on the device).
    # Windows of several frames the transport uploads slot by slot are not stacked on the host.
    assembler = WindowAssembler(method.device, method.dtype,
                                integer=method.integer_io or (transport.cuda and levels is None), levels=levels,
                                stack=not (transport.cuda and method.radius > 0 and not method.batched))
    on_device = None if method.integer_io or not transport.cuda else method.dtype
    # Float images quantized on the device go back to coded levels first, so what lies beyond
    # black and white is clipped only where the code range ends.
    coded_out = levels is not None and transport.cuda and to_host is not None
    references: collections.deque = collections.deque()
    is_cut = None
    if detector is not None:
        def is_cut(frame: Frame) -> bool:
            cut = detector.is_cut(frame)
            if cut and stats is not None and (keep is None or keep(frame)):
                stats.scene_cuts += 1
            return cut

    def feed() -> Iterator[Window]:
        for ref, slots in frame_windows(frames, method.radius, method.causal, is_cut):
            if keep is not None and not keep(ref):
                continue
            references.append(ref)
            yield assembler.assemble(slots, len(slots) - 1 if method.causal else len(slots) // 2)

    def finish(image: torch.Tensor) -> torch.Tensor:
        if output_size is not None and tuple(image.shape[-2:]) != output_size:
            from vsr.methods.interp import resize

            image = resize(image, output_size, "lanczos")
        if coded_out and image.is_floating_point():
            image = levels.to_coded(image)
        return image

    def upscale_planes(window: Window) -> torch.Tensor:
        frame = window.frames[window.ref]
        if frame.shape[-3] != 1:  # a frame the decoder could not hand over as planes
            return finish(method(window.frames, window.ref))
        fmt = planes_in()
        size = output_size or method.output_size(packed_height(frame.shape[-2], fmt), frame.shape[-1])
        return method.upscale_planes(frame, fmt, planes_out, size)

    with torch.inference_mode():
        if method.planar and planes_in is not None and not transport.cuda:  # the method resamples the planes
            images = map(upscale_planes, feed())
        elif method.batched:
            images = transport.map(batches(feed(), method.batch_size), method.upscale_batch, finish, on_device, to_host)
        else:
            images = transport.run(map(finish, method.stream(transport.windows(feed(), on_device))), to_host)
        for image in images:
            yield references.popleft(), image


def iterate(decoder, method: Method, output_size: tuple[int, int] | None = None,
            scene_cuts: bool = True) -> Iterator[Frame]:
    """Upscale in the calling thread, yielding output :class:`~vsr.types.Frame` objects.

    The frames hold float ``(C, H, W)`` tensors in [0, 1] on the method's device, with the
    pts and time_base of their source frame. For driving vsr from your own loop.
    """
    detector = SceneCutDetector() if scene_cuts and method.radius > 0 else None
    try:
        loop = upscale_frames(decoder.frames(), method, output_size, detector)
        for index, (ref, image) in enumerate(loop):
            if image.is_floating_point():
                image = image.clamp(0.0, 1.0)
            else:
                image = to_unit_float(image, image.device, method.dtype)
            yield Frame(data=image, pts=ref.pts, time_base=ref.time_base, index=index, duration=ref.duration)
    finally:
        decoder.close()


@contextlib.contextmanager
def sigint_cancels(pipeline: Pipeline | LocalExecutor) -> Iterator[None]:
    """In the main thread, make SIGINT call ``pipeline.cancel()`` instead of raising
    ``KeyboardInterrupt``, which could land between any two statements of the run and leave
    the output unclosed. Elsewhere (signals reach only the main thread) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pipeline.cancel())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
