"""MISR speed: frames/s of misr x2 (window 5) on a 640x360 clip, beside bicubic on the same frames.

Frames are decoded with PyAV up front, so the figures are the method alone; the shares of
flow (DIS, on its own thread) and fusion (torch) are timed separately on the same frames.

    python bench/misr.py [--clip PATH] [--frames 40] [--scale 2] [--param key=value ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED, machine, print_table
from quality import parse_params, windows


def decode(clip: str, limit: int) -> list:
    """The first ``limit`` frames of ``clip`` as ``(H, W, 3)`` uint8 RGB arrays."""
    import av

    out = []
    with av.open(clip) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == limit:
                break
    return out


def run(frames: list, scale: int, params: dict, method_name: str = "misr") -> dict[str, float]:
    """Time ``method_name`` over ``frames`` (list of uint8 RGB arrays) through ``stream``.

    Returns:
        ``fps`` of the whole method, and for misr ``flow_ms`` (one DIS pair per frame plus the
        composition, measured alone) and ``fuse_ms`` (fusion alone, per frame).
    """
    from vsr.methods.registry import get_method

    method = get_method(method_name, scale=scale, **(params if method_name == "misr" else {}))
    wins = list(windows(frames, method.radius))
    t = time.perf_counter()
    for _ in method.stream(wins):
        pass
    total = time.perf_counter() - t
    result = {"fps": len(frames) / total}
    if method_name == "misr":
        result.update(_shares(method, wins))
    return result


def _shares(method, wins: list) -> dict[str, float]:
    """Flow and fusion timed apart (no overlap), ms per frame."""
    bank = method.flow_bank()
    cache: dict = {}
    starts = []
    t = time.perf_counter()
    for w in wins:
        started = method._start(bank, w, cache)
        started[1].result()
        starts.append(started)
    flow = time.perf_counter() - t
    cfg = method._fuse_config()
    t = time.perf_counter()
    for win, fut in starts:
        method._finish(win, fut, cache, cfg)
    fuse = time.perf_counter() - t
    bank.close()
    n = len(wins)
    return {"flow_ms": 1000 * flow / n, "fuse_ms": 1000 * fuse / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=str(SHARED / "clips" / "chaplin.mp4"))
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--param", action="append", default=[], help="misr parameter key=value (repeatable)")
    args = ap.parse_args()
    import torch

    frames = decode(args.clip, args.frames)
    h, w = frames[0].shape[:2]
    params = parse_params(args.param)
    rows = []
    bic = run(frames, args.scale, {}, "bicubic")
    rows.append(["bicubic", f"{bic['fps']:.1f}", "", ""])
    presets = [("misr defaults", {})] if not params else [("misr " + str(params), params)]
    if not params:
        presets.append(("misr fast (ultrafast flow, 3 iterations)", {"flow_preset": "ultrafast", "iterations": 3}))
    for label, p in presets:
        r = run(frames, args.scale, p)
        rows.append([label, f"{r['fps']:.2f}", f"{r['flow_ms']:.0f}", f"{r['fuse_ms']:.0f}"])
    print_table(f"{len(frames)} frames {w}x{h} -> x{args.scale}, window 5; {machine()}, "
                f"torch threads {torch.get_num_threads()}",
                ["method", "frames/s", "flow ms/frame (alone)", "fusion ms/frame (alone)"], rows)


if __name__ == "__main__":
    main()
