"""The work of one segment: decode it with its neighbours, upscale, encode its frames to a file.

Plain functions of picklable :class:`SegmentJob` objects: Ray tasks (one segment each,
:func:`run_segment`) and the local executor of ``--resume`` (consecutive segments in one
pass, :func:`run_segments`) run the same pipeline as a whole-file run over a range of frames.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsr.digest import sha256_file
from vsr.engine.queues import Pipeline, RunStats
from vsr.engine.segments import Segment, decode_segment
from vsr.errors import PipelineError
from vsr.io.decode import Decoder, Roi
from vsr.io.encode import EncodeSettings, Sink
from vsr.io.source import OpenOptions
from vsr.methods.build import build_method

if TYPE_CHECKING:
    from vsr.methods.base import Method
    from vsr.types import VideoInfo

_REPORT_INTERVAL = 0.5


@dataclass(frozen=True)
class Recipe:
    """How every segment of a job is made; picklable, so Ray ships it to its workers.

    Attributes:
        source: input path; every worker must be able to open it under this name.
        method: registry name, or a :class:`~vsr.methods.base.Method` instance shipped to
            the worker by pickling.
        scale, params, size: as :func:`vsr.api.upscale`; ``size`` is ``(W, H)``.
        encode: encoder settings of the output.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (the GPU Ray assigned, if any).
        video_stream, roi, open_options: as :func:`vsr.api.upscale`.
        scene_cuts: detect shots, as a whole-file run does for windowed methods.
        accept_partial: read the frames a truncated file holds instead of refusing it.
    """

    source: str
    method: Any
    scale: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    device: str = "auto"
    video_stream: int | None = None
    roi: Roi | None = None
    open_options: OpenOptions | None = None
    scene_cuts: bool = True
    accept_partial: bool = False


@dataclass(frozen=True)
class SegmentJob:
    """One segment to produce.

    Attributes:
        recipe: how the job's segments are made.
        segment: which frames to produce.
        path: segment file to write (its suffix picks the container).
    """

    recipe: Recipe
    segment: Segment
    path: str


@dataclass(frozen=True)
class SegmentResult:
    """What a finished segment reports back.

    Attributes:
        id: the segment's id.
        path: the segment file.
        frames: frames written (equals the plan's count).
        first_pts, last_pts: pts of the first and last frame written.
        sha256: hex digest of the segment file.
        decoded: frames decoded, neighbours included.
        scene_cuts: shot boundaries found at the segment's own frames.
    """

    id: int
    path: str
    frames: int
    first_pts: int
    last_pts: int
    sha256: str
    decoded: int
    scene_cuts: int = 0


class SegmentWriter:
    """A sink, as :class:`~vsr.io.encode.Sink`, that writes consecutive segments each to its own file.

    Each segment is a separate encode with the output's settings. A segment is finished when
    a frame past its last pts arrives, or at :meth:`close`: its file is flushed to disk and
    ``on_segment`` gets its :class:`SegmentResult` (a segment cut short by a cancel is
    closed, playable, but not reported; :attr:`partial` names it). Audio and subtitle packets
    are not written: the segments are joined with the source's own.

    Args:
        jobs: consecutive segments, in order.
        info: the source video stream.
        on_segment: called with each finished segment, in order.
        counters: ``() -> (frames decoded, scene cuts)`` so far, to credit each segment with.

    Raises:
        PipelineError: from :meth:`write_frame` or :meth:`close`, when the frames of a segment
            differ from its plan.
    """

    def __init__(self, jobs: list[SegmentJob], info: VideoInfo, on_segment: Callable[[SegmentResult], None],
                 counters: Callable[[], tuple[int, int]] = lambda: (0, 0)) -> None:
        self.jobs = jobs
        self.info = info
        self.on_segment = on_segment
        self.counters = counters
        self.target = jobs[0].path
        self.dropped_streams: list[str] = []
        self.frames = 0
        self.partial: Path | None = None
        self.results: list[SegmentResult] = []
        self._index = 0
        self._sink: Sink | None = None
        self._first: Sink | None = None  # converts pictures for every segment (same size and format)
        self._size: tuple[int, int] | None = None
        self._rotation = 0
        self._hdr = None
        self._pts: list[int] = []
        self._credited = (0, 0)

    @property
    def container(self):
        return self._sink.container if self._sink is not None else None

    def open(self, width: int, height: int) -> tuple[int, int]:
        self._size = (width, height)
        self._start()
        self._first = self._sink
        return self._sink.size

    def _start(self) -> None:
        job = self.jobs[self._index]
        self._sink = Sink(job.path, self.info, job.recipe.encode)
        self._sink.open(*self._size)
        self._sink.set_rotation(self._rotation)
        self._sink.set_hdr(self._hdr)
        self._pts = []

    def set_rotation(self, degrees: int) -> None:
        self._rotation = degrees
        if self._sink is not None:
            self._sink.set_rotation(degrees)

    def set_hdr(self, hdr) -> None:
        self._hdr = hdr
        if self._sink is not None:
            self._sink.set_hdr(hdr)

    def picture(self, rgb, coded: bool = False):
        return self._first.picture(rgb, coded)

    def planes_format(self, width: int, height: int):
        """As :meth:`Sink.planes_format`; asked before the first segment opens."""
        return (self._first or Sink(self.target, self.info, self.jobs[0].recipe.encode)).planes_format(width, height)

    def planes_picture(self, planes):
        return self._first.planes_picture(planes)

    def write_frame(self, picture, pts: int | None, duration: int | None = None) -> None:
        if pts is not None and pts > self.jobs[self._index].segment.last_pts and self._index + 1 < len(self.jobs):
            self._finish()
            self._index += 1
            self._start()
        self._sink.write_frame(picture, pts, duration)
        self._pts.append(pts)
        self.frames += 1

    def write_packet(self, packet) -> None:
        """Audio and subtitles are copied from the source when the segments are joined."""

    def _finish(self) -> None:
        job = self.jobs[self._index]
        planned = job.segment
        got = (len(self._pts), self._pts[0] if self._pts else None, self._pts[-1] if self._pts else None)
        self._sink.close()
        self._sink = None
        if got != (planned.frames, planned.first_pts, planned.last_pts):
            if got[0] < planned.frames and self._pts and self._pts[-1] < planned.last_pts:
                self.partial = Path(job.path)  # cut short: kept for a playable prefix, not finished
                return
            raise PipelineError(
                f"segment {planned.id}: produced {got[0]} frames (pts {got[1]}..{got[2]}), planned "
                f"{planned.frames} (pts {planned.first_pts}..{planned.last_pts}); the input's timestamps are "
                "not regular enough to split it: run it without --ray or --resume")
        with open(job.path, "rb") as f:
            os.fsync(f.fileno())
        decoded, cuts = self.counters()
        result = SegmentResult(id=planned.id, path=job.path, frames=got[0], first_pts=got[1], last_pts=got[2],
                               sha256=sha256_file(job.path), decoded=decoded - self._credited[0],
                               scene_cuts=cuts - self._credited[1])
        self._credited = (decoded, cuts)
        self.results.append(result)
        self.on_segment(result)

    def close(self, target: str | Path | None = None) -> None:
        """Finish the segment in progress (``target`` is not used: each segment has its file)."""
        if self._sink is not None:
            self._finish()

    def abort(self) -> None:
        """Drop the segment in progress; finished ones stay."""
        if self._sink is not None:
            self._sink.abort()
            self._sink = None


def run_segments(jobs: list[SegmentJob], method: Method | None = None,
                 on_segment: Callable[[SegmentResult], None] = lambda result: None,
                 on_progress: Callable[[RunStats], None] | None = None,
                 on_start: Callable[[Pipeline], None] | None = None) -> list[SegmentResult]:
    """Produce the files of consecutive segments: their frames upscaled and encoded (video only).

    The decoder seeks to the first segment's keyframe and runs on to the last; neighbour
    frames are decoded and fed to the scene-cut detector and the windows as in a whole-file
    run, but never upscaled or written, so each written frame is computed from the same
    window as in a whole-file run.

    Args:
        jobs: consecutive segments of one job, in order.
        method: the method already built (reused across calls); ``None`` builds it from
            ``jobs[0]``.
        on_segment: called with each segment as soon as its file is complete.
        on_progress: called about twice a second with the running stats.
        on_start: called with the :class:`~vsr.engine.queues.Pipeline` before it runs (to
            cancel it; its sink is the :class:`SegmentWriter`).

    Returns:
        The finished segments, in order.

    Raises:
        Cancelled: the pipeline was cancelled; the segments finished before stay.
        PipelineError: the frames produced differ from the plan (count or pts).
        InputError, ConfigError, CodecError, OutputError: as for a whole-file run.
    """
    job = jobs[0].recipe
    if method is None:
        device = "cuda" if job.device.startswith("cuda:") else job.device  # Ray shows its GPU as the only one
        method = build_method(job.method, job.scale, job.params, device, job.size)
    first, last = jobs[0].segment, jobs[-1].segment
    span = Segment(id=first.id, first_pts=first.first_pts, last_pts=last.last_pts,
                   frames=sum(j.segment.frames for j in jobs), context_first_pts=first.context_first_pts,
                   context_last_pts=last.context_last_pts, seek_pts=first.seek_pts)
    decoder = Decoder(job.source, video_stream=job.video_stream, roi=job.roi, options=job.open_options,
                      accept_partial=job.accept_partial)
    try:
        info = decoder.info
        in_h, in_w = (job.roi.h, job.roi.w) if job.roi else (info.height, info.width)
        output_size = None
        if job.size is not None and method.output_size(in_h, in_w) != (job.size[1], job.size[0]):
            output_size = (job.size[1], job.size[0])
        stats: list[RunStats] = []
        writer = SegmentWriter(jobs, info, on_segment, lambda: (stats[0].frames_decoded, stats[0].scene_cuts))
        pipeline = Pipeline(decoder, method, writer, output_size=output_size, scene_cuts=job.scene_cuts,
                            passthrough=False, frames=lambda stop: decode_segment(decoder, span, stop),
                            keep=lambda frame: not span.is_context(frame.pts))
        stats.append(pipeline.stats)
    except BaseException:
        decoder.close()
        raise
    if on_start is not None:
        on_start(pipeline)
    pipeline.run(on_progress, interval=_REPORT_INTERVAL)
    if len(writer.results) != len(jobs):
        raise PipelineError(f"segments {first.id}..{last.id}: {len(writer.results)} of {len(jobs)} were produced; "
                            "the input's timestamps are not regular enough to split it: run it without --ray or "
                            "--resume")
    return writer.results


def run_segment(job: SegmentJob, method: Method | None = None,
                on_progress: Callable[[RunStats], None] | None = None) -> SegmentResult:
    """Produce one segment's file (see :func:`run_segments`)."""
    return run_segments([job], method, on_progress=on_progress)[0]
