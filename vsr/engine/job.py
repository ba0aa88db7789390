"""A job cut into segments: the plan both executors (local ``--resume`` and Ray) run.

The plan splits the input at keyframes (:func:`~vsr.engine.segments.plan_segments`),
names the job by a digest of everything that shapes the output
(:func:`~vsr.engine.manifest.job_key`) and places its segment files in the work
directory beside the output (:func:`~vsr.engine.manifest.work_dir`). Who runs the
segments, and whether segments must start at keyframes, are the only differences
between the executors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vsr.engine.manifest import Manifest, job_key, work_dir
from vsr.engine.segments import Segment, plan_segments, scan_stream
from vsr.engine.task import Recipe, SegmentJob, SegmentResult
from vsr.io.decode import Roi
from vsr.io.encode import EncodeSettings, container_format
from vsr.io.source import OpenOptions
from vsr.methods.base import Method
from vsr.methods.params import as_dict
from vsr.methods.registry import parse_params


@dataclass(frozen=True)
class JobPlan:
    """The segments of one job and where they go.

    Attributes:
        recipe: how each segment is made.
        output: the final output.
        segments: every segment of the input, in order.
        key: the job's id (:func:`~vsr.engine.manifest.job_key`).
        folder: the work directory (segment files, manifest, lock).
        frames: frames in the input.
    """

    recipe: Recipe
    output: str
    segments: list[Segment]
    key: str
    folder: Path
    frames: int

    @property
    def suffix(self) -> str:
        """Segment files' extension: the output's container, or Matroska for streaming formats."""
        fmt = container_format(self.output, self.recipe.encode.format)
        return Path(self.output).suffix if fmt in ("mp4", "mov", "matroska") else ".mkv"

    def job(self, segment: Segment) -> SegmentJob:
        """The work of one segment."""
        return SegmentJob(self.recipe, segment, str(self.folder / f"segment-{segment.id:05d}{self.suffix}"))

    def take_stock(self, manifest: Manifest) -> tuple[dict[int, SegmentResult], list[SegmentJob]]:
        """Segments already done (their files verified) and the work left; the manifest keeps
        only the former and is saved."""
        done: dict[int, SegmentResult] = {}
        todo: list[SegmentJob] = []
        for segment in self.segments:
            kept = manifest.verified(segment, self.folder)
            if kept is not None:
                done[segment.id] = kept
            else:
                todo.append(self.job(segment))
        manifest.segments = dict(done)
        manifest.save(self.folder)
        return done, todo


def plan_job(source: str, output: str, method: str | Method, built: Method, *, scale: int | None = None,
             params: dict[str, Any] | None = None, size: tuple[int, int] | None = None,
             encode: EncodeSettings | None = None, video_stream: int | None = None, roi: Roi | None = None,
             open_options: OpenOptions | None = None, device: str = "auto",
             segment_seconds: float = 10.0, at_keyframes: bool = True, accept_partial: bool = False) -> JobPlan:
    """Plan a job: read the input's timestamps (no decoding) and cut it into segments.

    Args:
        source: the input file.
        output: the final output file.
        method: what each segment builds (a registry name) or ships (an instance).
        built: the method built once, for its radius, causality and description.
        scale, params, size, encode, video_stream, roi, open_options, device, accept_partial: as
            :func:`vsr.api.upscale`.
        segment_seconds: target length of a segment.
        at_keyframes: segments start at keyframes (for workers that each seek to one), or at
            any frame (for one process that runs them in a row).

    Raises:
        InputError: the input cannot be read or split.
        ConfigError: ``segment_seconds <= 0``.
    """
    encode = encode or EncodeSettings()
    params = dict(params or {})
    before, after = (2 * built.radius, 0) if built.causal else (built.radius, built.radius)
    scan = scan_stream(source, video_stream, open_options)
    segments = plan_segments(scan, segment_seconds, before, after, at_keyframes)
    key = job_key(source, {
        "method": method if isinstance(method, str) else None, "describe": built.describe(), "scale": scale,
        # Every parameter with its default filled in: the same job whether a default is given or not.
        "params": as_dict(parse_params(method, params)) if isinstance(method, str) else params,
        "size": size, "encode": asdict(encode), "video_stream": video_stream,
        "roi": asdict(roi) if roi else None, "segments": [asdict(s) for s in segments],
        "suffix": Path(output).suffix,
    })
    recipe = Recipe(source=source, method=method, scale=scale, params=params, size=size, encode=encode,
                    device=device, video_stream=video_stream, roi=roi, open_options=open_options,
                    accept_partial=accept_partial)
    return JobPlan(recipe=recipe, output=output, segments=segments, key=key, folder=work_dir(output),
                   frames=len(scan.pts))
