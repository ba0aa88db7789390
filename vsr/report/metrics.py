"""Per-frame quality against a reference: PSNR and SSIM on Y, VMAF, and temporal flicker.

PSNR, SSIM and flicker use :mod:`vsr.quality` (the protocol of the benchmark tables); VMAF
runs in the ffmpeg binary's libvmaf (the one ``imageio-ffmpeg`` ships, or ``ffmpeg`` on the
PATH).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vsr.errors import ConfigError
from vsr.io.transport import find_ffmpeg
from vsr.report.frames import _EPSILON, pictures


@dataclass
class Series:
    """Per-frame figures of one video against the reference.

    Attributes:
        times: presentation time of each reference frame (seconds).
        psnr: PSNR on Y in dB (``inf`` for identical frames).
        ssim: SSIM on Y, 0..1.
        flicker: mean absolute change of the Y error from the previous frame (0 for the first);
            lower is steadier.
        vmaf: VMAF 0..100 per frame, empty when libvmaf is not available.
    """

    times: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    flicker: list[float] = field(default_factory=list)
    vmaf: list[float] = field(default_factory=list)

    def means(self) -> dict[str, float | None]:
        """Mean of each figure over the frames (``None`` where there is none)."""
        finite = [p for p in self.psnr if p != float("inf")]
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        return {"psnr": mean(finite), "ssim": mean(self.ssim), "flicker": mean(self.flicker[1:]),
                "vmaf": mean(self.vmaf)}


def against_reference(video: str, reference: str) -> Series:
    """Compare every frame of ``video`` with the reference frame at the same presentation time.

    Raises:
        ConfigError: the two videos differ in size (metrics need the same grid).
    """
    from vsr.quality import psnr_y, ssim_y, temporal_error_change

    series = Series()
    frames = pictures(video)
    current = next(frames, None)
    upcoming = next(frames, None)
    previous = None
    for ref in pictures(reference):
        while upcoming is not None and upcoming.time <= ref.time + _EPSILON:
            current, upcoming = upcoming, next(frames, None)
        if current is None:
            break
        if current.image.shape != ref.image.shape:
            h, w = current.image.shape[:2]
            rh, rw = ref.image.shape[:2]
            raise ConfigError(f"{video} is {w}x{h}, the reference {rw}x{rh}: metrics need the same size")
        series.times.append(ref.time)
        series.psnr.append(psnr_y(current.image, ref.image))
        series.ssim.append(ssim_y(current.image, ref.image))
        series.flicker.append(0.0 if previous is None else
                              temporal_error_change([previous[0], current.image], [previous[1], ref.image]))
        previous = (current.image, ref.image)
    return series


def vmaf(video: str, reference: str, threads: int = 2) -> list[float] | None:
    """Per-frame VMAF of ``video`` against ``reference`` (same size), or ``None`` when no
    ffmpeg with libvmaf is at hand or it fails (the message is logged)."""
    import logging

    binary = find_ffmpeg()
    if binary is None:
        logging.getLogger(__name__).warning("no ffmpeg binary: VMAF left out")
        return None
    with tempfile.TemporaryDirectory(prefix="vsr-vmaf-") as tmp:
        log = Path(tmp) / "vmaf.json"
        graph = (f"[0:v]setpts=PTS-STARTPTS[d];[1:v]setpts=PTS-STARTPTS[r];"
                 f"[d][r]libvmaf=log_fmt=json:log_path={log}:n_threads={threads}")
        done = subprocess.run([binary, "-nostdin", "-v", "error", "-i", video, "-i", reference, "-lavfi", graph,
                               "-f", "null", "-"], capture_output=True, text=True)
        if done.returncode != 0 or not log.is_file():
            logging.getLogger(__name__).warning("VMAF failed: %s", done.stderr.strip()[-300:])
            return None
        frames = json.loads(log.read_text())["frames"]
    return [float(f["metrics"]["vmaf"]) for f in frames]
