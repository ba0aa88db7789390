"""misr against bicubic on real footage: the gain measured on Vid4 is not the gain everywhere.

Protocol: from each clip, the middle ``--frames`` frames (RGB, centre crop of at most 960x540,
even size) are the ground truth; each is shrunk x2 with OpenCV's area filter (a camera-like
box average, not the bicubic kernel misr's defaults assume) and upscaled back by each method;
PSNR on Y (vsr/quality.py), averaged over the frames.

    python bench/real_clips.py [--frames 30] [--methods bicubic,misr] [CLIP ...]

Without CLIP: samples/*.mp4, samples/*.mkv and ../shared/data/clips/*.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED, print_table
from quality import run_method


def middle_frames(path: Path, count: int) -> list[np.ndarray]:
    """The middle ``count`` frames of ``path`` as RGB uint8, centre-cropped to at most 960x540 (even)."""
    import av

    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = stream.frames or int((container.duration or 0) / 1e6 * float(stream.average_rate or 25))
        skip = max(0, total // 2 - count // 2)
        for k, frame in enumerate(container.decode(stream)):
            if k < skip:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            ch, cw = min(h, 540) // 2 * 2, min(w, 960) // 2 * 2
            y0, x0 = (h - ch) // 2, (w - cw) // 2
            frames.append(np.ascontiguousarray(rgb[y0:y0 + ch, x0:x0 + cw]))
            if len(frames) == count:
                break
    return frames


def main() -> None:
    import cv2
    import torch

    from vsr.quality import psnr_y

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--methods", default="bicubic,misr")
    args = ap.parse_args()
    clips = args.clips or sorted([*ROOT.glob("samples/*.mp4"), *ROOT.glob("samples/*.mkv"),
                                  *(p for p in (SHARED / "clips").glob("*") if p.suffix in (".mp4", ".mkv", ".webm"))])
    methods = args.methods.split(",")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for clip in clips:
        gt = middle_frames(clip, args.frames)
        lr = [cv2.resize(g, (g.shape[1] // 2, g.shape[0] // 2), interpolation=cv2.INTER_AREA) for g in gt]
        with torch.inference_mode():
            scores = [float(np.mean([psnr_y(o, g) for o, g in zip(run_method(m, lr, 2, {}), gt)])) for m in methods]
        rows.append([clip.name, f"{gt[0].shape[1]}x{gt[0].shape[0]}", str(len(gt)), *(f"{s:.2f}" for s in scores),
                     f"{scores[-1] - scores[0]:+.2f}"])
        print(*rows[-1], flush=True)
    print_table(f"x2 area-downscaled, middle {args.frames} frames, PSNR Y dB",
                ["clip", "ground truth", "frames", *methods, f"{methods[-1]} - {methods[0]}"], rows)


if __name__ == "__main__":
    main()
