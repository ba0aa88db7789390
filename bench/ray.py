"""Scaling out with --ray: the same clip on 1 and 2 local Ray workers, frames/s and speed-up.

The clip is re-encoded from the sample with a keyframe every second so it splits into
segments. Each worker count runs in a fresh child process that starts a local Ray
cluster with that many CPUs (one task per CPU, one torch thread per task) and times
the job from planning to the stitched output; starting Ray is not counted.

    nice python bench/ray.py [--clip PATH] [--seconds 6] [--method misr] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))

from common import ROOT, ffmpeg_exe, machine, print_table  # noqa: E402

# This script is named like the Ray package: keep its folder off the path so `import ray` finds Ray.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]


def make_clip(source: str, out: str, seconds: float, width: int) -> None:
    """Re-encode ``seconds`` of ``source`` at ``width`` pixels wide with a keyframe every 25 frames."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", source, "-t", str(seconds),
                    "-vf", f"scale={width}:-2", "-c:v", "libx264", "-preset", "veryfast", "-g", "25",
                    "-c:a", "copy", out], check=True)


def child(clip: str, workers: int, method: str, segment_seconds: float) -> None:
    """Run one job on a fresh local cluster of ``workers`` CPUs; print its figures as JSON."""
    import ray

    from vsr.distributed import run_on_ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        stats = run_on_ray(clip, str(Path(tmp) / "out.mp4"), method=method, scale=2, device="cpu",
                           segment_seconds=segment_seconds)
        seconds = time.perf_counter() - t
    ray.shutdown()
    print(json.dumps({"frames": stats.frames_written, "decoded": stats.frames_decoded, "seconds": seconds,
                      "segments": stats.queues["segments"][1]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=str(ROOT / "samples" / "chaplin.mp4"))
    parser.add_argument("--seconds", type=float, default=6.0, help="length of the clip cut from --clip")
    parser.add_argument("--width", type=int, default=320, help="width of the clip cut from --clip")
    parser.add_argument("--method", default="misr")
    parser.add_argument("--segment-seconds", type=float, default=1.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--child", nargs=2, metavar=("CLIP", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.method, args.segment_seconds)
        return

    with tempfile.TemporaryDirectory() as tmp:
        clip = str(Path(tmp) / "clip.mp4")
        make_clip(args.clip, clip, args.seconds, args.width)
        rows, base = [], None
        for workers in args.workers:
            out = subprocess.run([sys.executable, __file__, "--method", args.method, "--segment-seconds",
                                  str(args.segment_seconds), "--child", clip, str(workers)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            fps = result["frames"] / result["seconds"]
            base = base or fps
            rows.append([str(workers), str(result["segments"]), str(result["frames"]), str(result["decoded"]),
                         f"{result['seconds']:.1f}", f"{fps:.2f}", f"{fps / base:.2f}x"])
    print(machine() + "; load average (1 min) at the end: %.1f" % os.getloadavg()[0])
    print_table(f"--ray, {args.method} x2, {args.seconds:g} s at {args.width} px wide, "
                f"{args.segment_seconds:g} s segments",
                ["workers", "segments", "frames", "decoded", "seconds", "frames/s", "speed-up"], rows)


if __name__ == "__main__":
    main()
