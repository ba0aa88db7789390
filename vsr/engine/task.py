"""The work of one segment: decode with context, upscale, encode the segment's frames to a file.

This runs inside a Ray worker but knows nothing of Ray: it is a plain function of a
picklable :class:`SegmentJob`, so it can be tested and run in-process too.
"""

from __future__ import annotations

import collections
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vsr.engine.segments import Segment, decode_segment
from vsr.errors import PipelineError
from vsr.io.decode import Decoder, Roi
from vsr.io.encode import EncodeSettings, Sink
from vsr.io.source import OpenOptions
from vsr.engine.scenecut import SceneCutDetector
from vsr.engine.window import WindowAssembler, frame_windows, to_integer_hwc

_REPORT_INTERVAL = 0.5


@dataclass(frozen=True)
class SegmentJob:
    """Everything a worker needs to produce one segment file.

    Attributes:
        source: input path; every worker must be able to open it under this name.
        segment: which frames to produce.
        path: segment file to write (its suffix picks the container, as the output's).
        method: registry name, or a :class:`~vsr.methods.base.Method` instance shipped to
            the worker by pickling.
        scale, params, size: as :func:`vsr.api.upscale`; ``size`` is ``(W, H)``.
        encode: encoder settings of the output.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (the GPU Ray assigned, if any).
        video_stream, roi, open_options: as :func:`vsr.api.upscale`.
        scene_cuts: detect shots, as the plain pipeline does for windowed methods.
    """

    source: str
    segment: Segment
    path: str
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


@dataclass(frozen=True)
class SegmentResult:
    """What a finished segment reports back to the driver.

    Attributes:
        id: the segment's id.
        path: the segment file.
        frames: frames written (equals the plan's count).
        first_pts, last_pts: pts of the first and last frame written.
        sha256: hex digest of the segment file.
        decoded: frames decoded, context included.
        scene_cuts: shot boundaries the detector found among the decoded frames.
    """

    id: int
    path: str
    frames: int
    first_pts: int
    last_pts: int
    sha256: str
    decoded: int
    scene_cuts: int = 0


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_segment(job: SegmentJob, on_frames: Callable[[int], None] | None = None) -> SegmentResult:
    """Produce ``job.path``: the segment's frames upscaled and encoded (video only).

    ``on_frames`` is called with the number of frames written so far, at most about
    twice a second and once at the end (for progress displays).

    Context frames are decoded and fed to the scene-cut detector and the window
    builder as real neighbours, but never upscaled or written; so each written frame
    is computed from the same window as in a single-process run.

    Raises:
        PipelineError: the frames produced differ from the plan (count or pts).
        InputError, ConfigError, CodecError, OutputError: as for a plain run.
    """
    import torch

    from vsr.api import build_method

    device = job.device
    if device.startswith("cuda:"):
        device = "cuda"  # Ray makes the GPU it assigned the only visible one
    method = build_method(job.method, job.scale, job.params, device, job.size)
    segment = job.segment
    decoder = Decoder(job.source, video_stream=job.video_stream, roi=job.roi, options=job.open_options)
    sink = None
    try:
        info = decoder.info
        in_h, in_w = (job.roi.h, job.roi.w) if job.roi else (info.height, info.width)
        output_size = None
        if job.size is not None and method.output_size(in_h, in_w) != (job.size[1], job.size[0]):
            output_size = (job.size[1], job.size[0])
        sink = Sink(job.path, info, job.encode)
        detector = SceneCutDetector() if job.scene_cuts and method.radius > 0 else None
        cuts = [0]

        def is_cut(frame) -> bool:
            cut = detector.is_cut(frame)
            if cut and not segment.is_context(frame.pts):  # each cut counted by one segment only
                cuts[0] += 1
            return cut

        assembler = WindowAssembler(method.device, method.dtype, integer=method.integer_io)
        references: collections.deque = collections.deque()
        decoded = [0]

        def counted():
            for frame in decode_segment(decoder, segment):
                decoded[0] += 1
                yield frame

        def feed():
            windows = frame_windows(counted(), method.radius, method.causal,
                                    is_cut if detector else None)
            for ref, slots in windows:
                if segment.is_context(ref.pts):
                    continue
                references.append(ref)
                yield assembler.assemble(slots, len(slots) - 1 if method.causal else len(slots) // 2)

        written: list[int] = []
        reported = [time.monotonic()]
        with torch.inference_mode():
            for image in method.stream(feed()):
                ref = references.popleft()
                if output_size is not None and tuple(image.shape[-2:]) != output_size:
                    from vsr.methods.interp import resize

                    image = resize(image, output_size, "lanczos")
                array = to_integer_hwc(image, info.bit_depth)
                if sink.container is None:
                    sink.open(array.shape[1], array.shape[0])
                    sink.set_rotation(decoder.rotation)  # known once the first frame is decoded
                sink.write_frame(array, ref.pts, ref.duration)
                written.append(ref.pts)
                if on_frames is not None and time.monotonic() - reported[0] >= _REPORT_INTERVAL:
                    reported[0] = time.monotonic()
                    on_frames(len(written))
        if len(written) != segment.frames or written[0] != segment.first_pts or written[-1] != segment.last_pts:
            raise PipelineError(
                f"segment {segment.id}: produced {len(written)} frames "
                f"(pts {written[0] if written else '-'}..{written[-1] if written else '-'}), planned "
                f"{segment.frames} (pts {segment.first_pts}..{segment.last_pts}); the input's timestamps are "
                "not regular enough to split it: run without --ray")
        sink.close()
        if on_frames is not None:
            on_frames(len(written))
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    finally:
        decoder.close()
    return SegmentResult(id=segment.id, path=job.path, frames=len(written), first_pts=written[0],
                         last_pts=written[-1], sha256=sha256_file(job.path), decoded=decoded[0],
                         scene_cuts=cuts[0])
