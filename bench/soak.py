"""Soak: a long synthetic stream through the live path, resident memory sampled as it runs.

An FFmpeg ``testsrc2`` graph of the given length is decoded, upscaled x2 in live mode and
encoded; memory must stay flat (no growth with the number of frames).

    python bench/soak.py [--minutes 60] [--speed 1] [--size 320x180] [--method nearest] [--every 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table  # noqa: E402


def rss_mib() -> float:
    """Resident memory of this process in MiB, from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the synthetic stream")
    parser.add_argument("--size", default="320x180")
    parser.add_argument("--rate", type=int, default=25)
    parser.add_argument("--method", default="nearest")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="source pace relative to real time (1: a real live stream; 10: an hour in 6 minutes)")
    args = parser.parse_args()

    import vsr
    from vsr.io.source import OpenOptions

    # `realtime` paces the synthetic source like a camera: frames arrive at the stream's rate.
    graph = (f"testsrc2=size={args.size}:rate={args.rate}:duration={args.minutes * 60:g},"
             f"realtime=speed={args.speed:g}")
    samples: list[tuple[float, int, float]] = []
    next_sample = [0.0]

    def on_progress(stats) -> None:
        now = time.monotonic()
        if now >= next_sample[0]:
            samples.append((stats.elapsed, stats.frames_written, rss_mib()))
            next_sample[0] = now + args.every

    with tempfile.TemporaryDirectory() as tmp:
        stats = vsr.upscale(graph, os.path.join(tmp, "soak.ts"), method=args.method, scale=2, live=True,
                            open_options=OpenOptions(format="lavfi"), encode=vsr.EncodeSettings(preset="ultrafast"),
                            on_progress=on_progress)
    samples.append((stats.elapsed, stats.frames_written, rss_mib()))
    start = samples[min(2, len(samples) - 1)][2]  # after warm-up (allocator pools, codec buffers)
    peak = max(s[2] for s in samples)
    end = samples[-1][2]
    rows = [[f"{t:.0f}", str(n), f"{m:.1f}"] for t, n, m in samples[:: max(1, len(samples) // 12)]]
    print_table(f"soak: {args.minutes:g} min of {args.size}@{args.rate} at {args.speed:g}x real time through "
                f"--live {args.method} x2 -- {machine()}",
                ["elapsed s", "frames", "RSS MiB"], rows)
    print(f"frames {stats.frames_written} (dropped {stats.frames_dropped}) in {stats.elapsed:.0f} s; "
          f"RSS after warm-up {start:.1f} MiB, max {peak:.1f} MiB, end {end:.1f} MiB "
          f"(growth {end - start:+.1f} MiB); latency mean {1000 * (stats.latency_mean or 0):.1f} ms, "
          f"max {1000 * stats.latency_max:.1f} ms")


if __name__ == "__main__":
    main()
