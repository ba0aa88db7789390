"""The pipeline: decode, method and encode workers joined by bounded queues.

::

    decode ──frames──► method ──images──► encode ──► sink
       └──────────── audio / subtitle packets ─────────┘

Each worker is a thread (PyAV, OpenCV and torch release the GIL while they work).
A full queue blocks its producer, so memory stays bounded by the queue sizes. The
audio/subtitle channel has no bound of its own: the demuxer reads in file order
and stops when the frame queue is full, so the packets waiting in it never span
more than the frames in flight.

Stopping:
- an exception in any worker stops every worker; the output is deleted and the
  first error is raised once;
- :meth:`Pipeline.cancel` (Ctrl-C, SIGTERM) stops decoding, lets the frames in
  flight finish and closes the output properly, so what was processed plays;
- a second :meth:`Pipeline.cancel` drops the frames in flight too.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vsr.errors import Cancelled, InputError, PipelineError, VsrError
from vsr.pipeline.scenecut import SceneCutDetector
from vsr.pipeline.window import WindowAssembler, frame_windows, to_integer_hwc

log = logging.getLogger(__name__)

_END = object()
_POLL = 0.05


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
        skip_until: frames with pts up to this are decoded (they may be neighbours of later
            frames) but not processed or written: they were committed by an earlier run.
    """

    def __init__(self, decoder, method, sink, output_size: tuple[int, int] | None = None,
                 queue_size: int = 8, scene_cuts: bool = True, live: bool = False,
                 skip_until: int | None = None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1; got {queue_size}")
        self.decoder = decoder
        self.method = method
        self.sink = sink
        self.output_size = output_size
        self.frames_q: queue.Queue = queue.Queue(queue_size)
        self.images_q: queue.Queue = queue.Queue(queue_size)
        self.packets: collections.deque = collections.deque()
        self.decoder.on_packet = self.packets.append
        self.detector = SceneCutDetector() if scene_cuts and method.radius > 0 else None
        info = decoder.info
        estimate = None
        if info.frame_count is None and info.duration and info.average_rate and not decoder.is_live:
            estimate = round(info.duration * info.average_rate)  # for the ETA of containers that do not count
        self.stats = RunStats(frame_count=info.frame_count or estimate)
        self.live = live
        self.skip_until = skip_until
        self._captured: dict[int, float] = {}  # frame index -> monotonic time it left the decoder
        self._cancel = threading.Event()  # stop decoding, finish what is in flight
        self._abort = threading.Event()  # stop everything now
        self._errors: list[tuple[str, BaseException]] = []
        self._lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    # -- control ---------------------------------------------------------------------------
    def cancel(self) -> None:
        """First call: finish the frames in flight and close the output. Second: drop them too."""
        if self._cancel.is_set():
            self._abort.set()
        self._cancel.set()
        self.stats.cancelled = True

    def _fail(self, stage: str, exc: BaseException) -> None:
        with self._lock:
            self._errors.append((stage, exc))
        self._abort.set()

    def _put(self, q: queue.Queue, item) -> None:
        while True:
            if self._abort.is_set():
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
        try:
            for frame in self.decoder.frames(stop=self._cancel.is_set):
                self._captured[frame.index] = time.monotonic()
                if self.live:
                    self._put_dropping_oldest(frame)
                else:
                    self._put(self.frames_q, frame)
                self.stats.frames_decoded += 1
                self.stats.reconnects = self.decoder.stats.reconnects
            self._put(self.frames_q, _END)
        finally:
            self.stats.corrupt_packets = self.decoder.stats.corrupt_packets
            self.stats.packets_passed = self.decoder.stats.packets_passed
            self.stats.reconnects = self.decoder.stats.reconnects
            self.decoder.close()

    def _put_dropping_oldest(self, frame) -> None:
        while True:
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

        method = self.method
        assembler = WindowAssembler(method.device, method.dtype, integer=method.integer_io)
        references: collections.deque = collections.deque()
        is_cut = self.detector.is_cut if self.detector is not None else None
        windows = frame_windows(self._incoming_frames(), method.radius, method.causal, is_cut)

        def feed():
            for ref, slots in windows:
                if self.skip_until is not None and ref.pts is not None and ref.pts <= self.skip_until:
                    self._captured.pop(ref.index, None)
                    continue
                references.append(ref)
                ref_slot = len(slots) - 1 if method.causal else len(slots) // 2
                yield assembler.assemble(slots, ref_slot)

        bit_depth = self.decoder.info.bit_depth
        with torch.inference_mode():
            for image in method.stream(feed()):
                ref = references.popleft()
                if self.output_size is not None and tuple(image.shape[-2:]) != self.output_size:
                    from vsr.methods.interp import resize

                    image = resize(image, self.output_size, "lanczos")
                # Converted to the encoder's pixel format here, beside the encoder, not before it.
                picture = self.sink.picture(to_integer_hwc(image, bit_depth))
                self._put(self.images_q, (picture, ref.pts, ref.duration, ref.index))
                self.stats.frames_processed += 1
        if self.detector is not None:
            self.stats.scene_cuts = self.detector.cuts
        self._put(self.images_q, _END)

    def _encode_worker(self) -> None:
        sink = self.sink
        first = True
        while True:
            item = self._get(self.images_q)
            if item is _END:
                break
            picture, pts, duration, index = item
            captured = self._captured.pop(index, None)
            if captured is not None:
                self.stats.record_latency(time.monotonic() - captured)
            if first:
                first = False
                sink.set_rotation(self.decoder.rotation)  # known once the first frame is decoded
                if hasattr(sink, "set_hdr"):
                    sink.set_hdr(self.decoder.hdr)  # likewise
            self._drain_packets()
            sink.write_frame(picture, pts, duration)
            self.stats.frames_written += 1
        if first and self._cancel.is_set():
            sink.abort()  # stopped before the first frame: nothing worth keeping
            return
        if first and not self.skip_until:
            raise InputError("no video frame could be decoded from the input")
        self._drain_packets()
        sink.close()

    def _drain_packets(self) -> None:
        while self.packets:
            self.sink.write_packet(self.packets.popleft())

    def _spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except _Abort:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported once by run()
                self._fail(name, exc)

        thread = threading.Thread(target=run, name=f"vsr-{name}", daemon=True)
        thread.start()
        return thread

    # -- running ---------------------------------------------------------------------------
    def run(self, on_progress: Callable[[RunStats], None] | None = None, interval: float = 0.25) -> RunStats:
        """Run to the end of the input (or until cancelled); returns the final stats.

        ``on_progress`` is called from this thread about every ``interval`` seconds. Run from
        the main thread, Ctrl-C (SIGINT) cancels the run (twice: aborts it).

        Raises:
            VsrError: the first error of any worker (others are logged).
            PipelineError: a worker failed with an unexpected exception.
            Cancelled: the run was cancelled; the output holds the frames processed.
        """
        with _sigint_cancels(self):
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
            self._spawn("decode", self._decode_worker),
            self._spawn("method", self._method_worker),
            self._spawn("encode", self._encode_worker),
        ]
        abandon_at = None
        while any(t.is_alive() for t in self.threads):
            if self._abort.is_set():
                # A worker stuck in a blocking read (a silent pipe) cannot be interrupted: give it
                # a few seconds, then leave it (the threads are daemons) rather than hang.
                abandon_at = abandon_at or time.monotonic() + 5.0
                if time.monotonic() > abandon_at:
                    log.warning("a worker did not stop; leaving it behind")
                    break
            for t in self.threads:
                t.join(timeout=interval / len(self.threads))
            if on_progress is not None:
                self._sample_queues()
                on_progress(self.stats)
        self.stats.finished = time.monotonic()
        self._sample_queues()
        if self._errors:
            self.sink.abort()
            stage, exc = self._errors[0]
            for other_stage, other in self._errors[1:]:
                log.debug("also failed in %s: %r", other_stage, other)
            if isinstance(exc, VsrError):
                raise exc
            raise PipelineError(f"{stage} failed: {type(exc).__name__}: {exc}") from exc
        if self._abort.is_set():  # aborted by a second cancel: close what was written
            self._finish_after_abort()
        if on_progress is not None:
            on_progress(self.stats)
        if self.stats.cancelled:
            raise Cancelled(f"stopped after {self.stats.frames_written} frames; the output holds them")
        return self.stats

    def _output_size(self) -> tuple[int, int]:
        """``(H, W)`` of the frames the encoder will receive."""
        if self.output_size is not None:
            return self.output_size
        roi = self.decoder.roi
        info = self.decoder.info
        return self.method.output_size(*((roi.h, roi.w) if roi else (info.height, info.width)))

    def _finish_after_abort(self) -> None:
        if self.sink.container is not None and self.sink.frames:
            self._drain_packets()
            self.sink.close()
        else:
            self.sink.abort()

    def _sample_queues(self) -> None:
        self.stats.queues = {
            "decode": (self.frames_q.qsize(), self.frames_q.maxsize),
            "method": (self.images_q.qsize(), self.images_q.maxsize),
        }


def iterate(decoder, method, output_size: tuple[int, int] | None = None,
            scene_cuts: bool = True) -> Iterator:
    """Upscale in the calling thread, yielding output :class:`~vsr.types.Frame` objects.

    The frames hold float ``(C, H, W)`` tensors in [0, 1] on the method's device, with the
    pts and time_base of their source frame. For driving vsr from your own loop.
    """
    import torch

    from vsr.types import Frame

    assembler = WindowAssembler(method.device, method.dtype)
    detector = SceneCutDetector() if scene_cuts and method.radius > 0 else None
    references: collections.deque = collections.deque()

    def feed():
        for ref, slots in frame_windows(decoder.frames(), method.radius, method.causal,
                                        detector.is_cut if detector else None):
            references.append(ref)
            yield assembler.assemble(slots, len(slots) - 1 if method.causal else len(slots) // 2)

    try:
        with torch.inference_mode():
            for index, image in enumerate(method.stream(feed())):
                ref = references.popleft()
                if output_size is not None and tuple(image.shape[-2:]) != output_size:
                    from vsr.methods.interp import resize

                    image = resize(image, output_size, "lanczos")
                yield Frame(data=image, pts=ref.pts, time_base=ref.time_base, index=index, duration=ref.duration)
    finally:
        decoder.close()


@contextlib.contextmanager
def _sigint_cancels(pipeline: Pipeline) -> Iterator[None]:
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
