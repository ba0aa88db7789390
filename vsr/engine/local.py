"""The local executor of a segmented job (``--resume``): segments one after another, in this process.

The unfinished segments run through the same pipeline as a whole-file run: a run of
consecutive segments is decoded in one pass that starts with a seek to the keyframe
before the first of them, so what is finished is not decoded again. Each segment is
recorded in the manifest as soon as its file is complete; at the end the segments and
the source's audio and subtitles are joined without re-encoding, and the work directory
is removed. The work directory is locked for the whole run, so two runs never share it.

Stopping:
- an interrupt finishes the frames in flight of the current segment, joins what is
  done into the output (which plays) and keeps the work directory: the same command
  continues from the last finished segment;
- a failure keeps every finished segment and says where they are.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from vsr.engine.job import JobPlan
from vsr.engine.manifest import Manifest, locked
from vsr.engine.queues import Pipeline, RunStats, sigint_cancels
from vsr.engine.task import SegmentJob, SegmentResult, run_segments
from vsr.errors import Cancelled, InputError, OutputError, VsrError
from vsr.io.stitch import stitch
from vsr.methods.base import Method

log = logging.getLogger(__name__)


class LocalExecutor:
    """Runs the segments of ``plan`` with ``method`` in this process.

    Args:
        plan: the job's segments (:func:`~vsr.engine.job.plan_job`).
        method: the method, built once and used for every segment.

    Attributes:
        on_notice: called with a one-line message when a cancel starts to take effect.
    """

    def __init__(self, plan: JobPlan, method: Method) -> None:
        self.plan = plan
        self.method = method
        self.on_notice: Callable[[str], None] | None = None
        self._current: Pipeline | None = None
        self._cancelled = False

    def cancel(self) -> None:
        """As :meth:`Pipeline.cancel`, for the segment running now; no later segment starts."""
        self._cancelled = True
        if self._current is not None:
            self._current.cancel()

    def _attach(self, pipeline: Pipeline) -> None:
        self._current = pipeline
        pipeline.on_notice = self.on_notice
        if self._cancelled:
            pipeline.cancel()

    def run(self, on_progress: Callable[[RunStats], None] | None = None) -> RunStats:
        """Run every unfinished segment, then join them all into the output.

        Returns:
            The stats of the whole output (``frames_written`` counts every frame of it).

        Raises:
            Cancelled: interrupted; the output holds the frames done so far and the work
                directory keeps the segments for the next run.
            OutputError: the work directory is used by another run or holds another job.
            VsrError: a segment failed; the message says where the finished segments are.
        """
        plan = self.plan
        with locked(plan.folder), sigint_cancels(self):
            manifest = Manifest.load(plan.folder, plan.key)
            done, todo = plan.take_stock(manifest)
            stats = RunStats(frame_count=plan.frames)
            stats.frames_written = manifest.frames
            if done:
                log.info("resuming: %d of %d segments already done", len(done), len(plan.segments))
            for group in _consecutive(todo):
                if self._cancelled:
                    self._stop(manifest, None, stats)
                before = (stats.frames_written, stats.frames_decoded, stats.frames_processed)

                def finished(result: SegmentResult) -> None:
                    manifest.segments[result.id] = result
                    manifest.save(plan.folder)

                def report(s: RunStats, before=before) -> None:
                    stats.frames_written, stats.frames_decoded, stats.frames_processed = (
                        before[0] + s.frames_written, before[1] + s.frames_decoded, before[2] + s.frames_processed)
                    stats.queues = {**s.queues, "segments": (len(manifest.segments), len(plan.segments))}
                    stats.cancelled = s.cancelled
                    if on_progress is not None:
                        on_progress(stats)

                try:
                    run_segments(group, self.method, on_segment=finished, on_progress=report, on_start=self._attach)
                except Cancelled:
                    self._stop(manifest, self._current.sink.partial if self._current else None, stats)
                except (VsrError, OSError) as exc:
                    self._fail(exc, manifest)
                finally:
                    # An interrupt that came after the group's last frame still stops the run.
                    self._cancelled = self._cancelled or (self._current is not None and self._current.cancel_requested)
                    self._current = None
            self._join(manifest, [], stats)
            shutil.rmtree(plan.folder, ignore_errors=True)
        stats.finished = time.monotonic()
        if on_progress is not None:
            on_progress(stats)
        return stats

    def _paths(self, manifest: Manifest) -> list[Path]:
        return [self.plan.folder / Path(manifest.segments[s.id].path).name
                for s in self.plan.segments if s.id in manifest.segments]

    def _join(self, manifest: Manifest, extra: list[Path], stats: RunStats) -> None:
        """Join the finished segments (and ``extra``, a partial one) into the output."""
        plan = self.plan
        try:
            recipe = plan.recipe
            result = stitch(self._paths(manifest) + extra, recipe.source, plan.output, format=recipe.encode.format,
                            video_stream=recipe.video_stream, open_options=recipe.open_options)
        except InputError as exc:  # the source went away before its audio was copied
            raise InputError(f"{exc}; the upscaled video is kept in {plan.folder}: put the input back, "
                             "unchanged, and run the same command to finish") from exc
        stats.packets_passed = result.passthrough_packets
        stats.dropped_streams = list(result.dropped_streams)
        stats.scene_cuts = sum(r.scene_cuts for r in manifest.segments.values())

    def _stop(self, manifest: Manifest, partial: Path | None, stats: RunStats) -> None:
        """After an interrupt: the output gets what is done, the work directory stays."""
        extra = [partial] if partial is not None and partial.is_file() else []
        stats.cancelled = True
        if manifest.segments or extra:
            self._join(manifest, extra, stats)
        raise Cancelled(f"stopped after {stats.frames_written} frames; the output holds them, and "
                        f"{self.plan.folder} keeps the finished segments: run the same command to continue")

    def _fail(self, exc: VsrError | OSError, manifest: Manifest) -> None:
        note = (f"; the {manifest.frames} frames done are kept in {self.plan.folder}: "
                "run the same command to continue")
        if isinstance(exc, VsrError):
            raise type(exc)(f"{exc}{note}") from exc
        raise OutputError(f"{exc.strerror or exc}{note}") from exc


def _consecutive(jobs: list[SegmentJob]) -> list[list[SegmentJob]]:
    """``jobs`` in runs of consecutive segments, each run decoded in one pass."""
    groups: list[list[SegmentJob]] = []
    for job in jobs:
        if groups and groups[-1][-1].segment.id + 1 == job.segment.id:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups
