"""Pictures of neural SR you can trust: side-by-side crops and 2-second flicker strips.

For Vid4 walk (x4 BI, with the ground truth) and a real clip (samples/chaplin.mp4, x4 of the
frames as they are), one 20x20 crop is upscaled over 2 seconds of frames by the per-frame network,
by the same network with ``--temporal`` and by ``misr+NETWORK`` (data consistency); misr
alone is the reference row. Only a window around the crop is upscaled (16 input pixels of
context each side), so this runs in minutes on a CPU.

    python bench/neural_figures.py [--network realesrgan] [--out bench/figures]

Writes ``OUT/NAME_crops.png`` (one frame, methods side by side) and ``OUT/NAME_strip.png``
(rows: methods; columns: every ``--strip-step``-th frame of the same crop, at full output
resolution; flicker shows as detail that changes from column to column where the scene does
not). Every method runs on all the frames; only the strip skips columns, which keeps each PNG
under 1 MB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED
from quality import load_sequence, to_uint8, windows

from vsr.quality import read_frames

CONTEXT = 16  # input pixels around the crop, so the crop's edges see what the whole frame would


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` under a white bar with ``text``, padded white on the right to the text's width."""
    import cv2

    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.42
    width = max(image.shape[1], cv2.getTextSize(text, font, size, 1)[0][0] + 8)
    image = np.pad(image, ((0, 0), (0, width - image.shape[1]), (0, 0)), constant_values=255)
    bar = np.full((18, width, 3), 255, np.uint8)
    cv2.putText(bar, text, (3, 13), font, size, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, image])


def _upscale(method_name: str, lr: list[np.ndarray], scale: int) -> list[np.ndarray]:
    from vsr.methods.registry import get_method

    if method_name.endswith("+temporal"):
        method = get_method(method_name.removesuffix("+temporal"), scale=scale, temporal=True)
    else:
        method = get_method(method_name, scale=scale)
    return [to_uint8(y) for y in method.stream(windows(lr, method.radius))]


def figure(name: str, frames: list[np.ndarray], box: tuple[int, int, int, int], scale: int, network: str,
           out_dir: Path, truth: list[np.ndarray] | None = None, step: int = 3) -> None:
    """Upscale ``box`` = ``(x, y, w, h)`` (input pixels) of ``frames`` by each method; write the two PNGs
    (the strip shows every ``step``-th frame)."""
    import cv2

    x, y, w, h = box
    fh, fw = frames[0].shape[:2]
    x0, y0 = max(0, x - CONTEXT), max(0, y - CONTEXT)
    x1, y1 = min(fw, x + w + CONTEXT), min(fh, y + h + CONTEXT)
    lr = [np.ascontiguousarray(f[y0:y1, x0:x1]) for f in frames]
    rows = {"misr": None, network: None, f"{network} --temporal": None, f"misr+{network}": None}
    for label in rows:
        method = label.replace(" --temporal", "+temporal")
        outs = _upscale(method, lr, scale)
        cy, cx = (y - y0) * scale, (x - x0) * scale
        rows[label] = [o[cy: cy + h * scale, cx: cx + w * scale] for o in outs]
    if truth is not None:
        rows = {"ground truth": [t[y * scale:(y + h) * scale, x * scale:(x + w) * scale] for t in truth], **rows}
    middle = len(frames) // 2
    crops = np.concatenate([_label(np.pad(v[middle], ((0, 0), (0, 4), (0, 0)), constant_values=255), k)
                            for k, v in rows.items()], axis=1)
    strip = np.concatenate([_label(np.concatenate(v[::step], axis=1), k) for k, v in rows.items()], axis=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = [cv2.IMWRITE_PNG_COMPRESSION, 9]
    cv2.imwrite(str(out_dir / f"{name}_crops.png"), crops[:, :, ::-1], png)
    cv2.imwrite(str(out_dir / f"{name}_strip.png"), strip[:, :, ::-1], png)
    print(out_dir / f"{name}_crops.png", out_dir / f"{name}_strip.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--network", default="realesrgan", help="the per-frame method (span, realesrgan...)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "figures")
    ap.add_argument("--strip-step", type=int, default=3, help="strip columns: every N-th frame")
    args = ap.parse_args()

    from vsr.quality import imresize

    s = args.scale
    gt = load_sequence("walk", 47, s)  # 47 frames: about 2 seconds
    figure("walk", [imresize(g, 1 / s) for g in gt], (62, 42, 20, 20), s, args.network, args.out, truth=gt,
           step=args.strip_step)
    chaplin = SHARED / "clips" / "chaplin.mp4"
    if not chaplin.is_file():
        chaplin = ROOT / "samples" / "chaplin.mp4"
    figure("chaplin", read_frames(chaplin, 50), (302, 122, 20, 20), s, args.network, args.out,
           step=args.strip_step)


if __name__ == "__main__":
    main()
