"""Running one upscaling job across a Ray cluster.

The driver (this process) plans segments at keyframes, submits one Ray task per
segment not already done, records each finished segment in the work directory's
manifest, and finally stitches the segments and the source's audio/subtitles into
the output. A rerun of the same command skips the segments already done.

Every worker opens the input by the path given, so the input (and the work
directory beside the output) must be reachable under the same path on every node
of the cluster (a shared filesystem), as on a single machine.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from vsr.engine.job import plan_job
from vsr.engine.manifest import Manifest, locked
from vsr.engine.queues import RunStats
from vsr.engine.record import write_record
from vsr.engine.task import SegmentJob, SegmentResult, run_segment
from vsr.errors import Cancelled, CodecError, ConfigError, InputError, ModelError, PipelineError, VsrError
from vsr.io.decode import Roi
from vsr.io.encode import EncodeSettings, check_output, container_format
from vsr.io.source import OpenOptions, is_url
from vsr.io.stitch import stitch
from vsr.methods.base import Method
from vsr.methods.build import build_method

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'vsr[ray]'"


def import_ray():
    """Import Ray, or raise a one-line :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


def connect(address: str) -> bool:
    """Join (or start) a Ray cluster; returns true when this call initialised Ray.

    Args:
        address: ``"auto"`` (the cluster this machine belongs to), ``"local"`` (start a
            cluster on this machine), or ``"ray://host:10001"`` / ``"host:6379"``.

    Raises:
        ConfigError: Ray is missing, or no cluster answers at ``address``.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"no Ray cluster at {address!r} ({exc}); start one with `ray start --head`, "
                          "or use --ray local") from exc
    return True


class ProgressBoard:
    """A Ray actor's state: frames written so far by each segment task (a retry starts again from 0)."""

    def __init__(self) -> None:
        self.frames: dict[int, int] = {}

    def report(self, segment_id: int, frames: int) -> None:
        self.frames[segment_id] = frames

    def snapshot(self) -> dict[int, int]:
        return dict(self.frames)


#: Errors a rerun would only repeat (bad input, options, codec or model): a task hands them
#: back as its result, so Ray does not retry them. Any other exception (a method's error, a
#: full or flaky disk, out of memory, a lost file server) is raised and retried.
FINAL_ERRORS = (InputError, ConfigError, CodecError, ModelError)


def _remote_segment(job: SegmentJob, board) -> SegmentResult | VsrError:
    try:
        return run_segment(job, on_progress=lambda s: board.report.remote(job.segment.id, s.frames_written))
    except FINAL_ERRORS as exc:
        return exc


def gpus_per_task(ray, device: str, wants_gpu: bool) -> int:
    """GPUs each task asks Ray for: one for a named CUDA device, or with ``"auto"`` for a method
    that gains from a GPU on a cluster that has one; otherwise none (the task runs on the CPU)."""
    if device.startswith("cuda"):
        return 1
    if device in ("auto", "") and wants_gpu and ray.cluster_resources().get("GPU", 0) > 0:
        return 1
    return 0


def run_on_ray(
    source: str,
    output: str,
    method: str | Method = "misr",
    scale: int | None = None,
    *,
    address: str = "auto",
    segment_seconds: float = 10.0,
    size: tuple[int, int] | None = None,
    params: dict[str, Any] | None = None,
    encode: EncodeSettings | None = None,
    video_stream: int | None = None,
    roi: Roi | str | None = None,
    overwrite: bool = False,
    record: str | None = None,
    device: str | None = "auto",
    max_retries: int = 3,
    open_options: OpenOptions | None = None,
    accept_partial: bool = False,
    on_progress: Callable[[RunStats], None] | None = None,
    interval: float = 0.25,
) -> RunStats:
    """Upscale ``source`` into ``output`` with one Ray task per segment; same output as :func:`vsr.api.upscale`.

    Args:
        source: input file, readable under this path by every worker.
        output: output file (not ``-`` or a URL); its folder holds the work directory.
        method: registered name, built inside each task, or a :class:`Method` instance
            (pickled to the workers).
        scale, size, params, encode, video_stream, roi, record, overwrite, open_options, accept_partial:
            as :func:`vsr.api.upscale` (a region writes its JSON record, as there).
        address: Ray cluster to use (:func:`connect`).
        segment_seconds: target segment duration; segments start at keyframes.
        device: ``"auto"`` (each task of a method that gains from a GPU asks for one when the
            cluster has GPUs; others run on the CPU), ``"cpu"`` or ``"cuda"`` (each task asks
            Ray for one GPU).
        max_retries: times Ray reruns a segment whose worker died or raised an error that a
            rerun may not repeat (see :data:`FINAL_ERRORS` for those it does not retry).
        on_progress: called about every ``interval`` seconds with the running stats;
            ``queues["segments"]`` holds ``(done, total)``.

    Returns:
        The final :class:`RunStats`; ``frames_written`` counts every frame of the output.

    Raises:
        ConfigError: Ray missing, no cluster, bad options, or an input that cannot be split.
        InputError, OutputError, CodecError, ModelError: as for a plain run.
        PipelineError: a segment failed (after Ray's retries).
        Cancelled: interrupted; finished segments stay in the work directory and the same
            command resumes from them.
    """
    if source == "-" or is_url(source):
        raise ConfigError("--ray needs an input file that every worker can open, not a stream")
    if output == "-" or is_url(output):
        raise ConfigError("--ray writes a file: give -o a path, not a stream")
    import_ray()
    if isinstance(roi, str):
        try:
            roi = Roi.parse(roi)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    encode = encode or EncodeSettings()
    encode.validate()
    container_format(output, encode.format)
    check_output(source, output, overwrite)
    params = dict(params or {})
    device = device or "auto"

    probe_method = build_method(method, scale, params, "cpu", size)
    plan = plan_job(source, output, method, probe_method, scale=scale, params=params, size=size, encode=encode,
                    video_stream=video_stream, roi=roi, open_options=open_options, device=device,
                    segment_seconds=segment_seconds, accept_partial=accept_partial)
    folder = plan.folder
    with locked(folder):
        manifest = Manifest.load(folder, plan.key)
        done, todo = plan.take_stock(manifest)
        stats = RunStats(frame_count=plan.frames)
        stats.frames_written = manifest.frames
        stats.queues = {"segments": (len(done), len(plan.segments))}
        resumed = stats.frames_written
        if done:
            log.info("resuming: %d of %d segments already done", len(done), len(plan.segments))
        if todo:
            _run_tasks({job.segment.id: job for job in todo}, manifest, folder, stats, len(plan.segments), address,
                       device, probe_method.wants_gpu, max_retries, on_progress, interval, resumed)
        paths = [folder / Path(manifest.segments[s.id].path).name for s in plan.segments]
        result = stitch(paths, source, output, format=encode.format, video_stream=video_stream,
                        open_options=open_options)
        stats.packets_passed = result.passthrough_packets
        stats.dropped_streams = list(result.dropped_streams)
        stats.scene_cuts = sum(r.scene_cuts for r in manifest.segments.values())
        stats.frames_processed = stats.frames_written
        stats.finished = time.monotonic()
        shutil.rmtree(folder, ignore_errors=True)
    if roi is not None or record is not None:
        from vsr.io.source import probe

        write_record(record or f"{output}.json", source, output, probe_method,
                     roi, encode, stats, probe(source, video_stream, open_options))
    if on_progress is not None:
        on_progress(stats)
    return stats


def _run_tasks(jobs: dict[int, SegmentJob], manifest: Manifest, folder: Path, stats: RunStats, total: int,
               address: str, device: str, wants_gpu: bool, max_retries: int, on_progress, interval: float,
               resumed: int) -> None:
    """Submit ``jobs`` to Ray and wait for them, recording each finished segment in the manifest.

    ``stats.frames_written`` counts the frames of finished segments plus those the running
    tasks report, so the display moves within long segments too.
    """
    ray = import_ray()
    started_here = connect(address)
    board = None
    try:
        gpus = gpus_per_task(ray, device, wants_gpu)
        if gpus and not ray.cluster_resources().get("GPU", 0):
            raise ConfigError(f"--device {device} asked for, but the Ray cluster has no GPU; use --device auto or cpu")
        if not gpus:  # no GPU reserved: a task must not use one it shares with others
            jobs = {i: replace(job, recipe=replace(job.recipe, device="cpu")) for i, job in jobs.items()}
        board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        task = ray.remote(_remote_segment).options(num_gpus=gpus, max_retries=max_retries, retry_exceptions=True)
        pending = {task.remote(job, board): job.segment.id for job in jobs.values()}
        finished = resumed
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=interval)
                for ref in ready:
                    pending.pop(ref)
                    result = _get(ray, ref)
                    manifest.segments[result.id] = result
                    manifest.save(folder)
                    finished += result.frames
                    stats.frames_decoded += result.decoded
                    stats.queues = {"segments": (len(manifest.segments), total)}
                running = _running_frames(ray, board, set(pending.values()), interval)
                if running is not None:
                    stats.frames_written = finished + running
                stats.frames_processed = stats.frames_written - resumed
                if on_progress is not None:
                    on_progress(stats)
        except BaseException as exc:
            for ref in pending:
                ray.cancel(ref, force=True)
            if pending:
                # Return only once the cancelled workers are gone, so none still writes to the work directory.
                ray.wait(list(pending), num_returns=len(pending), timeout=30)
            if isinstance(exc, KeyboardInterrupt):
                stats.cancelled = True
                raise Cancelled(f"stopped with {len(manifest.segments)} of {total} segments done; they are kept "
                                f"in {folder}: run the same command again to resume") from exc
            raise
        stats.frames_written = finished
    finally:
        if board is not None:
            ray.kill(board)
        if started_here:
            ray.shutdown()


def _running_frames(ray, board, running: set[int], timeout: float) -> int | None:
    """Frames written so far by the segments still running; ``None`` if the board does not answer in time."""
    if not running:
        return 0
    try:
        counts = ray.get(board.snapshot.remote(), timeout=timeout)
    except ray.exceptions.GetTimeoutError:
        return None
    return sum(n for segment_id, n in counts.items() if segment_id in running)


def _get(ray, ref) -> SegmentResult:
    try:
        result = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, VsrError):
            raise cause from None
        raise PipelineError(f"a segment failed: {type(cause).__name__ if cause else 'error'}: {cause or exc}") from exc
    except ray.exceptions.RayError as exc:
        raise PipelineError(f"a segment failed after {type(exc).__name__}: {exc}") from exc
    if isinstance(result, BaseException):
        raise result
    return result
