"""What round-trip verification costs, beside the bicubic run it checks, measured in the same run.

For each clip: ``vsr.upscale`` with bicubic x2 (libx264 medium crf 18, audio copied: the
default run), then :func:`vsr.verify.verify` on its output (a demux of input and output, one
frame decoded from each, sha256 of every audio/subtitle packet). The run is timed once per
repeat, the verification several times; the table gives medians and verification as a
percentage of the run (target: under 5 %).

    python bench/verify.py [--clips PATH ...] [--repeats 3] [--preset medium]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED, machine, print_table, time_call  # noqa: E402

DEFAULT_CLIPS = [ROOT / "samples" / "chaplin.mp4", ROOT / "samples" / "vfr_audio.mp4",
                 ROOT / "samples" / "full_range_10bit.mkv", SHARED / "clips" / "nasa_13013.mp4",
                 SHARED / "clips" / "realshort.mp4", SHARED / "clips" / "cockatoo.mp4"]


def main() -> None:
    import vsr
    from vsr.io.encode import EncodeSettings
    from vsr.verify import RunFacts, verify

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", type=Path, default=[c for c in DEFAULT_CLIPS if c.is_file()])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="medium")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            out = str(Path(tmp) / f"{clip.stem}{'.mkv' if clip.suffix == '.mkv' else '.mp4'}")
            runs, checks = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                stats = vsr.upscale(str(clip), out, method="bicubic", scale=2, overwrite=True,
                                    encode=EncodeSettings(preset=args.preset))
                runs.append(time.perf_counter() - t)
                facts = RunFacts(frames_written=stats.frames_written, dropped_streams=len(stats.dropped_streams))
                result = verify(str(clip), out, facts=facts)
                assert result.ok, result.problems
                checks.append(time_call(lambda: verify(str(clip), out, facts=facts), repeats=3))
            run, check = statistics.median(runs), statistics.median(checks)
            streams = len(result.checks["streams"])
            rows.append([clip.name, str(stats.frames_written), str(streams), f"{run:.2f}", f"{1000 * check:.1f}",
                         f"{100 * check / run:.2f} %"])
    print(f"machine: {machine()}")
    print_table("verification beside a bicubic x2 run (median seconds)",
                ["clip", "frames", "audio/sub streams", "bicubic run s", "verify ms", "verify / run"], rows)


if __name__ == "__main__":
    main()
