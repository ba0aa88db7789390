"""Side-by-side crops of several methods on a real clip, as one labelled PNG.

The clip's frames are upscaled as they are (no ground truth: what a user sees), by each
method with its own window of neighbours, and the same region of one frame is cut from
every output and laid side by side, each shown at ``--zoom`` times with nearest-neighbour
pixels so that grain, blocks and ringing stay visible.

    python bench/crops.py CLIP [--frame 12] [--scale 2] [--region x,y,w,h] [--zoom 2]
                          [--methods bicubic,misr,srcnn] [--param key=value ...] [-o crops.png]

``--region`` is in output pixels (default: a centred 160x120).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from misr import decode
from quality import parse_params, run_method


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """``tile`` (RGB uint8) with ``text`` on a black band above it."""
    import cv2

    band = np.zeros((22, tile.shape[1], 3), np.uint8)
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([band, tile])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", type=Path)
    ap.add_argument("--frame", type=int, default=12, help="decode index of the frame shown")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--region", default=None, help="x,y,w,h in output pixels")
    ap.add_argument("--zoom", type=int, default=2)
    ap.add_argument("--methods", default="bicubic,misr,srcnn")
    ap.add_argument("--param", action="append", default=[], help="misr parameter key=value (repeatable)")
    ap.add_argument("-o", "--output", type=Path, default=Path("crops.png"))
    args = ap.parse_args()
    import cv2

    radius = 3  # enough neighbours on each side for any misr window up to 7
    frames = decode(str(args.clip), args.frame + radius + 1)
    first = max(0, args.frame - radius)
    frames = frames[first:]
    at = args.frame - first
    h, w = frames[0].shape[:2]
    if args.region:
        x, y, rw, rh = (int(v) for v in args.region.split(","))
    else:
        rw, rh = 160, 120
        x, y = (w * args.scale - rw) // 2, (h * args.scale - rh) // 2
    params = parse_params(args.param)
    tiles = []
    for m in args.methods.split(","):
        out = run_method(m, frames, args.scale, params)[at]
        crop = out[y:y + rh, x:x + rw]
        tiles.append(label(cv2.resize(crop, None, fx=args.zoom, fy=args.zoom, interpolation=cv2.INTER_NEAREST), m))
    sheet = np.concatenate([np.concatenate([t, np.zeros((t.shape[0], 4, 3), np.uint8)], 1) for t in tiles], 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), sheet[:, :-4, ::-1])
    print(f"wrote {args.output}: {args.clip.name} frame {args.frame}, region {x},{y},{rw},{rh} of x{args.scale}")


if __name__ == "__main__":
    main()
