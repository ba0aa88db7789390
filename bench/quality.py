"""Reconstruction quality on Vid4: PSNR / SSIM (Y) and temporal consistency, per sequence.

Protocol of /work/shared/data/README.md: BI = MATLAB bicubic shrink of the ground truth,
BD = Gaussian sigma 1.6 (13x13) then every s-th pixel; metrics on Y (BT.601 studio swing,
float), no border crop unless ``--crop``; per-frame values averaged per sequence, then over
sequences. ``bicubic-matlab`` is the published baseline (23.78 dB at x4 BI on all frames).

    python bench/quality.py [--scale 4] [--degradation bi|bd] [--frames N]
                            [--methods bicubic-matlab,bicubic,lanczos,misr] [--param key=value ...]
    python bench/quality.py --synthetic [--scale 4]

``--synthetic``: frames made from a real photograph (a Vid4 ground-truth frame) shifted by
known sub-pixel translations, then degraded; misr with estimated flow against the same
fusion given the true motion.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED, print_table

SEQUENCES = ("calendar", "city", "foliage", "walk")


def load_sequence(name: str, frames: int | None, scale: int) -> list[np.ndarray]:
    """Ground-truth RGB uint8 frames, cropped to a multiple of ``scale``."""
    import cv2

    paths = sorted((SHARED / "vid4" / "GT" / name).glob("*.png"))[:frames]
    out = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)[:, :, ::-1]
        h, w = img.shape[:2]
        out.append(np.ascontiguousarray(img[: h - h % scale, : w - w % scale]))
    return out


def degrade(gt: np.ndarray, scale: int, kind: str) -> np.ndarray:
    from vsr.quality import degrade_bd, imresize

    return imresize(gt, 1 / scale) if kind == "bi" else degrade_bd(gt, scale)


def to_tensor(img: np.ndarray):
    import torch

    return torch.from_numpy(img).permute(2, 0, 1).float() / 255


def to_uint8(t) -> np.ndarray:
    return (t.float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def windows(lr: list[np.ndarray], radius: int):
    """Centred windows padded at the ends by repeating the edge frame, as the pipeline does."""
    import torch

    from vsr.methods.base import Window

    tensors = [to_tensor(x) for x in lr]
    n = len(tensors)
    for t in range(n):
        idx = tuple(min(max(t + o, 0), n - 1) for o in range(-radius, radius + 1))
        yield Window(torch.stack([tensors[i] for i in idx]), radius, idx)


def run_method(name: str, lr: list[np.ndarray], scale: int, params: dict) -> list[np.ndarray]:
    from vsr.methods.registry import get_method
    from vsr.quality import imresize

    if name == "bicubic-matlab":
        return [imresize(x, float(scale)) for x in lr]
    method = get_method(name, scale=scale, **(params if name == "misr" else {}))
    return [to_uint8(y) for y in method.stream(windows(lr, method.radius))]


def parse_params(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def vid4(args: argparse.Namespace) -> None:
    from vsr.quality import psnr_y, ssim_y, temporal_error_change

    params = parse_params(args.param)
    if args.degradation == "bd":
        params.setdefault("psf", "gaussian")
    methods = args.methods.split(",")
    table: dict[str, dict[str, tuple[float, float, float, float]]] = {m: {} for m in methods}
    for seq in args.sequences.split(","):
        gt = load_sequence(seq, args.frames, args.scale)
        lr = [degrade(g, args.scale, args.degradation) for g in gt]
        for m in methods:
            t = time.perf_counter()
            out = run_method(m, lr, args.scale, params)
            dt = time.perf_counter() - t
            p = float(np.mean([psnr_y(o, g, args.crop) for o, g in zip(out, gt)]))
            s = float(np.mean([ssim_y(o, g, args.crop) for o, g in zip(out, gt)]))
            table[m][seq] = (p, s, temporal_error_change(out, gt), dt / len(gt))
    seqs = args.sequences.split(",")
    rows = []
    for m in methods:
        cells = [f"{table[m][q][0]:.2f} / {table[m][q][1]:.4f}" for q in seqs]
        avg_p = np.mean([table[m][q][0] for q in seqs])
        avg_s = np.mean([table[m][q][1] for q in seqs])
        tc = np.mean([table[m][q][2] for q in seqs])
        sec = np.mean([table[m][q][3] for q in seqs])
        rows.append([m, *cells, f"{avg_p:.2f} / {avg_s:.4f}", f"{tc:.3f}", f"{sec:.2f}"])
    title = (f"Vid4 x{args.scale} {args.degradation.upper()}, PSNR/SSIM on Y, crop {args.crop}, "
             f"frames {'all' if args.frames is None else args.frames}" + (f", misr {params}" if params else ""))
    print_table(title, ["method", *seqs, "average", "temporal |dErr|", "s/frame"], rows)


def synthetic(args: argparse.Namespace) -> None:
    import cv2
    import torch

    from vsr.methods.registry import get_method
    from vsr.quality import psnr_y

    s = args.scale
    rng = np.random.default_rng(0)
    rows = []
    for seq in args.sequences.split(","):
        photo = load_sequence(seq, 1, s)[0]
        h, w = photo.shape[:2]
        # Shifts in low-resolution pixels, reference first (no shift).
        shifts = np.concatenate([[[0.0, 0.0]], rng.uniform(-1.5, 1.5, size=(4, 2))])
        frames = []
        for dx, dy in shifts:
            m = np.float32([[1, 0, dx * s], [0, 1, dy * s]])
            moved = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REFLECT)
            frames.append(degrade(moved, s, "bi"))
        params = parse_params(args.param)
        method = get_method("misr", scale=s, window=len(frames), **params)
        stack = torch.stack([to_tensor(f) for f in frames])
        estimated = to_uint8(method(stack, 0))
        lh, lw = frames[0].shape[:2]
        ys, xs = np.mgrid[0:lh, 0:lw].astype(np.float32)
        pos = np.stack([np.stack([xs + dx, ys + dy], -1) for dx, dy in shifts]).astype(np.float32)
        inside = (pos[..., 0] >= 0) & (pos[..., 0] <= lw - 1) & (pos[..., 1] >= 0) & (pos[..., 1] <= lh - 1)
        truth = to_uint8(method.fuse_aligned(stack, pos, inside.astype(np.float32)))
        single = to_uint8(get_method("misr", scale=s, window=1, **params)(stack[:1], 0))
        bicubic = frames[0]
        from vsr.quality import imresize

        crop = 4 * s
        row = [psnr_y(imresize(bicubic, float(s)), photo, crop), psnr_y(single, photo, crop),
               psnr_y(estimated, photo, crop), psnr_y(truth, photo, crop)]
        rows.append([seq, *(f"{v:.2f}" for v in row), f"{row[3] - row[2]:+.2f}"])
    print_table(f"Synthetic sub-pixel translations x{s} BI (5 frames, PSNR Y dB, crop {4 * s})",
                ["photo", "bicubic", "misr 1 frame", "misr flow", "misr true motion", "true - flow"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--degradation", choices=("bi", "bd"), default="bi")
    ap.add_argument("--frames", type=int, default=None, help="first N frames of each sequence")
    ap.add_argument("--sequences", default=",".join(SEQUENCES))
    ap.add_argument("--methods", default="bicubic-matlab,bicubic,lanczos,misr")
    ap.add_argument("--crop", type=int, default=0, help="border pixels excluded from the metrics")
    ap.add_argument("--param", action="append", default=[], help="misr parameter key=value (repeatable)")
    ap.add_argument("--synthetic", action="store_true", help="known-motion check instead of Vid4")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    (synthetic if args.synthetic else vid4)(args)


if __name__ == "__main__":
    main()
