"""Reconstruction quality on Vid4 and on the shipped clips: what users see, for every method.

Vid4 (protocol of /work/shared/data/README.md): BI = MATLAB bicubic shrink of the ground
truth, BD = Gaussian sigma 1.6 (13x13) then every s-th pixel; ``--crf N`` then sends the
low-resolution frames through libx264 at that crf in 4:2:0 (the compressed protocol:
``--crf 23``). Metrics on Y (BT.601 studio swing, float), no border crop unless ``--crop``;
per-frame values averaged per sequence, then over sequences. Beside PSNR / SSIM: tOF
(TecoGAN's, pixels), the occlusion-masked warping error (Lai et al., x1000, motion from the
ground truth), VMAF (ffmpeg's libvmaf, v0.6.1) and the mean change of the error between
frames. ``bicubic-matlab`` is the published baseline (23.78 dB at x4 BI on all frames).

    python bench/quality.py [--scale 4] [--degradation bi|bd] [--crf 23] [--frames N]
                            [--methods bicubic-matlab,bicubic,lanczos,misr,srcnn] [--param key=value ...]
    python bench/quality.py --clips [--frames 30] [--scale 2] [--crf 23] [--methods ...]
    python bench/quality.py --synthetic [--scale 4]

``--clips``: the shipped clips of ../shared/data/clips, each frame area-downscaled by
``--scale`` (2 unless given; with ``--crf N`` the small frames then go through libx264 at that
crf in 4:2:0, as on Vid4) and upscaled back by each method: PSNR-Y against the clip, the
still-region change (mean
frame-to-frame luma change where the clip itself never changes by more than one level,
eroded by 2 pixels; "-" where under 1 % of the picture is still) beside the clip's own, and
the bytes the output costs through libx264 at ``--size-crf`` (23) against bicubic's.

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
    from vsr.quality import compress, psnr_y, ssim_y, temporal_error_change, tof, vmaf, warping_error

    params = parse_params(args.param)
    if args.degradation == "bd":
        params.setdefault("psf", "gaussian")
    methods = args.methods.split(",")
    table: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for seq in args.sequences.split(","):
        gt = load_sequence(seq, args.frames, args.scale)
        lr = [degrade(g, args.scale, args.degradation) for g in gt]
        if args.crf is not None:
            lr = compress(lr, args.crf)
        for m in methods:
            t = time.perf_counter()
            out = run_method(m, lr, args.scale, params)
            dt = time.perf_counter() - t
            p = float(np.mean([psnr_y(o, g, args.crop) for o, g in zip(out, gt)]))
            s = float(np.mean([ssim_y(o, g, args.crop) for o, g in zip(out, gt)]))
            v = vmaf(out, gt) if args.vmaf else float("nan")
            table[m][seq] = [p, s, tof(out, gt), 1000 * warping_error(out, gt), v,
                             temporal_error_change(out, gt), dt / len(gt)]
    seqs = args.sequences.split(",")
    rows = []
    for m in methods:
        cells = [f"{table[m][q][0]:.2f} / {table[m][q][1]:.4f}" for q in seqs]
        avg = np.mean([table[m][q] for q in seqs], axis=0)
        rows.append([m, *cells, f"{avg[0]:.2f} / {avg[1]:.4f}", f"{avg[2]:.3f}", f"{avg[3]:.3f}", f"{avg[4]:.2f}",
                     f"{avg[5]:.3f}", f"{avg[6]:.2f}"])
    crf = "" if args.crf is None else f", LR through libx264 crf {args.crf} 4:2:0"
    title = (f"Vid4 x{args.scale} {args.degradation.upper()}{crf}, PSNR/SSIM on Y, crop {args.crop}, "
             f"frames {'all' if args.frames is None else args.frames}" + (f", misr {params}" if params else ""))
    print_table(title, ["method", *seqs, "average", "tOF", "warp err x1e3", "VMAF", "temporal |dErr|", "s/frame"],
                rows)


CLIPS = ("chaplin.mp4", "nasa_13013.mp4", "cockatoo.mp4", "realshort.mp4", "big_buck_bunny_0_30.webm",
         "smpte-2997.mp4")


def clips(args: argparse.Namespace) -> None:
    """Down, (compressed,) up on each shipped clip: PSNR, still-region change and output bytes per method."""
    import cv2

    from misr import decode
    from vsr.quality import compress, encode, psnr_y, still_change, still_mask

    params = parse_params(args.param)
    # bicubic first: the other sizes are given relative to it.
    methods = ["bicubic", *(m for m in args.methods.split(",") if m not in ("bicubic", "bicubic-matlab"))]
    s = args.scale or 2
    rows = []
    for name in args.clips.split(","):
        frames = [f[: f.shape[0] // s * s, : f.shape[1] // s * s] for f in decode(str(SHARED / "clips" / name),
                                                                                   args.frames or 30)]
        h, w = frames[0].shape[:2]
        lr = [cv2.resize(f, (w // s, h // s), interpolation=cv2.INTER_AREA) for f in frames]
        if args.crf is not None:
            lr = compress(lr, args.crf)
        mask = still_mask(frames)
        still = mask.mean() >= 0.01
        own = f"{still_change(frames, mask):.3f}" if still else "-"
        bicubic_bytes = 0
        for m in methods:
            out = run_method(m, lr, s, params)
            p = float(np.mean([psnr_y(o, g) for o, g in zip(out, frames)]))
            size = len(encode(out, crf=args.size_crf))
            bicubic_bytes = bicubic_bytes or size
            change = f"{still_change(out, mask):.3f}" if still else "-"
            rows.append([name, m, f"{p:.2f}", change, own, f"{size / 1024:.0f}", f"{size / bicubic_bytes:.2f}"])
    crf = "" if args.crf is None else f", through libx264 crf {args.crf} 4:2:0"
    print_table(f"Shipped clips, first {args.frames or 30} frames, area-downscaled x{s}{crf} then x{s} back"
                + (f", misr {params}" if params else ""),
                ["clip", "method", "PSNR-Y", "still change", "clip's own", f"KiB at crf {args.size_crf}",
                 "x bicubic"], rows)


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
    ap.add_argument("--scale", type=int, default=None, help="4 on Vid4 and --synthetic, 2 on --clips")
    ap.add_argument("--degradation", choices=("bi", "bd"), default="bi")
    ap.add_argument("--frames", type=int, default=None, help="first N frames of each sequence")
    ap.add_argument("--sequences", default=",".join(SEQUENCES))
    ap.add_argument("--methods", default="bicubic-matlab,bicubic,lanczos,misr,srcnn")
    ap.add_argument("--crf", type=int, default=None, help="low-resolution frames through libx264 at this crf")
    ap.add_argument("--no-vmaf", dest="vmaf", action="store_false", help="skip VMAF (the slowest metric)")
    ap.add_argument("--clips", nargs="?", const=",".join(CLIPS), default=None,
                    help="the shipped-clips check instead of Vid4 (comma-separated names; default all)")
    ap.add_argument("--size-crf", type=int, default=23, help="crf of the output-size check")
    ap.add_argument("--crop", type=int, default=0, help="border pixels excluded from the metrics")
    ap.add_argument("--param", action="append", default=[], help="misr parameter key=value (repeatable)")
    ap.add_argument("--synthetic", action="store_true", help="known-motion check instead of Vid4")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    if args.scale is None and not args.clips:
        args.scale = 4
    (synthetic if args.synthetic else clips if args.clips else vid4)(args)


if __name__ == "__main__":
    main()
