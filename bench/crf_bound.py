"""How much could a quantiser-aware misr gain on compressed input? An upper bound.

The shipped clips (centre crop of at most 640x360, frames 60 to 60 + N, or the last N of a
shorter clip) are shrunk x4 with MATLAB's bicubic (Vid4's BI protocol) and sent through
libx264 at each crf (4:2:0). Per clip and crf, PSNR-Y of the x4 output against the clip:

- bicubic-matlab, misr with its defaults, and misr on the reference frame alone (window 1):
  what the neighbours add once the codec has coded them;
- misr, oracle: every low-resolution sample weighed by ``exp(-(e / sigma)^2)``, ``e`` the
  true coding error of its frame there (RMS luma over 4x4 pixels, known from the clean
  frame): what any per-frame or per-block weighting from the quantiser (QP, block edges,
  a noise estimate) could at best do, since it can only know less than this;
- misr, clean alignment: the coded frames fused along the flow (and robustness tests) of the
  clean ones: what deblocking or denoising the frames before alignment could at best do;
- bicubic-matlab and misr on the clean low-resolution frames: what compression costs.

The mean rows give each column's gain over bicubic-matlab on the same input (coded or clean).

    python bench/crf_bound.py [--frames 12] [--crfs 18,23,28] [--sigmas 0.01,0.02] [--param key=value ...]
    python bench/crf_bound.py --vid4 --frames 10 --crfs 23   # the same on the report set (tunes nothing)

``--param`` sets misr parameters in every misr column.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED, print_table
from quality import (
    CLIPS,
    SEQUENCES,
    load_sequence,
    parse_params,
    run_method,
    to_uint8,
    windows,
)


def oracle_misr(errors: np.ndarray, sigma: float, params: dict):
    """misr whose samples are weighed by their true coding error ``errors`` (``(N, h, w)``, by decode index)."""
    import torch

    from vsr.methods.misr.method import Misr, MisrParams

    class Oracle(Misr):
        def _finish(self, window, future, cache, cfg):
            align = future.result()
            conf = align.conf * np.exp(-np.square(errors[list(align.order)] / sigma))
            planes = torch.stack([cache[i] for i in align.order])
            return self.fuse_ycc(planes, align.pos, conf.astype(np.float32), cfg)[0]

    return Oracle(4, MisrParams(**params))


def clean_alignment_misr(lumas: np.ndarray, params: dict):
    """misr that aligns the frames by the uint8 lumas ``lumas`` (``(N, h, w)``, by decode index)
    and fuses the frames it is given."""
    from vsr.methods.misr.method import Misr, MisrParams

    class CleanAlignment(Misr):
        def flow_bank(self):
            bank = super().flow_bank()
            add = bank.add
            bank.add = lambda index, luma: add(index, lumas[index])
            return bank

    return CleanAlignment(4, MisrParams(**params))


def clip_frames(name: str, count: int) -> list[np.ndarray]:
    """Frames 60 to 60 + ``count`` of a shipped clip (its last ``count`` if shorter), centre crop of at most 640x360."""
    from vsr.quality import read_frames

    clip = read_frames(str(SHARED / "clips" / name), 60 + count)
    start = max(0, min(60, len(clip) - count))
    h, w = clip[0].shape[:2]
    ch, cw = min(360, h - h % 4), min(640, w - w % 4)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return [np.ascontiguousarray(f[y0: y0 + ch, x0: x0 + cw]) for f in clip[start: start + count]]


def score(method, lr: list[np.ndarray], gt: list[np.ndarray]) -> float:
    """Mean PSNR-Y of ``method`` streamed over ``lr`` against ``gt``."""
    from vsr.quality import psnr_y

    return float(np.mean([psnr_y(to_uint8(y), g) for y, g in zip(method.stream(windows(lr, method.radius)), gt)]))


def luma(frames: list[np.ndarray]) -> np.ndarray:
    """``(N, H, W)`` full-range BT.601 luma in [0, 1], as misr computes it."""
    return np.stack([f.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) / 255 for f in frames])


def main() -> None:
    import cv2

    from vsr.quality import compress, imresize, psnr_y

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--crfs", default="18,23,28")
    ap.add_argument("--sigmas", default="0.01,0.02", help="oracle tolerances (intensity 0..1)")
    ap.add_argument("--vid4", action="store_true", help="Vid4's first --frames frames instead of the clips (a check)")
    ap.add_argument("--param", action="append", default=[], help="misr parameter key=value (repeatable)")
    args = ap.parse_args()
    params = parse_params(args.param)
    sigmas = [float(s) for s in args.sigmas.split(",")]
    header = ["clip", "crf", "bicubic-matlab", "misr", "misr, 1 frame", *(f"oracle {s}" for s in sigmas),
              "misr, clean alignment", "bicubic-matlab, clean", "misr, clean"]
    crfs = [int(c) for c in args.crfs.split(",")]
    rows, gains = [], {c: [] for c in crfs}
    for name in SEQUENCES if args.vid4 else CLIPS[:5]:  # the test pattern has no coding error worth the name
        gt = load_sequence(name, args.frames, 4) if args.vid4 else clip_frames(name, args.frames)
        clean = [imresize(g, 0.25) for g in gt]
        clean_lumas = np.round(luma(clean) * 255).clip(0, 255).astype(np.uint8)
        clean_scores = [np.mean([psnr_y(o, g) for o, g in zip(run_method(m, clean, 4, params), gt)])
                        for m in ("bicubic-matlab", "misr")]
        for crf in crfs:
            lr = compress(clean, crf)
            errors = np.stack([np.sqrt(cv2.blur(np.square(e), (4, 4))) for e in luma(lr) - luma(clean)])
            scores = [np.mean([psnr_y(o, g) for o, g in zip(run_method(m, lr, 4, {**params, **p}), gt)])
                      for m, p in (("bicubic-matlab", {}), ("misr", {}), ("misr", {"window": 1}))]
            scores += [score(oracle_misr(errors, s, params), lr, gt) for s in sigmas]
            scores.append(score(clean_alignment_misr(clean_lumas, params), lr, gt))
            gains[crf].append([v - scores[0] for v in scores] + [0.0, clean_scores[1] - clean_scores[0]])
            scores += clean_scores
            rows.append([name, str(crf), *(f"{v:.2f}" for v in scores)])
    for crf in crfs:
        rows.append(["mean, dB over bicubic-matlab", str(crf), *(f"{v:+.3f}" for v in np.mean(gains[crf], axis=0))])
    what = f"Vid4, first {args.frames} frames," if args.vid4 else f"Shipped clips, frames 60..{60 + args.frames},"
    print_table(f"{what} x4 BI through libx264, PSNR-Y dB"
                + (f", misr {params}" if params else ""), header, rows)


if __name__ == "__main__":
    main()
