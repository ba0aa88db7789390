"""Neural SR you can trust, measured on Vid4: fidelity, flicker, and what the neighbours add.

For each sequence the per-frame networks run once; ``--temporal`` and multi-frame data
consistency then run on those outputs through the same code the methods use (the network's
frames are replayed instead of recomputed, which is what the wrappers would see anyway: the
network is deterministic). Metrics: PSNR-Y (the Vid4 protocol of ../shared/data/README.md),
tOF (TecoGAN) and occlusion-masked warping error (Lai et al.), both against the ground truth's
motion, from :mod:`vsr.quality`.

    python bench/neural_quality.py [--scale 4] [--degradation bi|crf23] [--frames N]
        [--rows realesrgan,realesrgan+temporal,misr+realesrgan,span,...] [--cache DIR]

A row is ``NET`` (the per-frame network), ``NET+temporal``, ``misr+NET`` (data consistency),
``misr+NET+temporal``, ``misr`` or ``bicubic-matlab``. ``--cache DIR`` keeps the networks'
outputs as .npy files between runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_table  # noqa: E402
from quality import SEQUENCES, degrade, load_sequence, to_tensor, to_uint8, windows  # noqa: E402


class Replay:
    """A per-frame method that gives back stored outputs in order (see the module docstring)."""

    radius = 0

    def __init__(self, outputs: list[np.ndarray], scale: int, name: str) -> None:
        import torch

        self.outputs = outputs
        self.scale = scale
        self.name = name
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.causal = False
        self.integer_io = False
        self.target_size = None

    def to(self, device, dtype=None):
        return self

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height * self.scale, width * self.scale

    def describe(self) -> dict:
        return {"name": self.name, "scale": self.scale, "radius": 0}

    def stream(self, windows_in):
        for i, _ in enumerate(windows_in):
            yield to_tensor(self.outputs[i])


def network(name: str, lr: list[np.ndarray], scale: int, cache: Path | None, key: str) -> tuple[list[np.ndarray], float]:
    """The per-frame outputs of registered method ``name`` (uint8 RGB) and seconds per frame."""
    from vsr.methods.registry import get_method

    path = cache / f"{key}_{name}.npy" if cache else None
    if path is not None and path.is_file():
        stored = np.load(path)
        return list(stored), float("nan")
    t = time.perf_counter()
    method = get_method(name, scale=scale)
    out = [to_uint8(y) for y in method.stream(windows(lr, method.radius))]
    dt = (time.perf_counter() - t) / len(lr)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.stack(out))
    return out, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--degradation", choices=("bi", "crf23"), default="bi",
                    help="bi: MATLAB bicubic; crf23: then through libx264 crf 23 in 4:2:0")
    ap.add_argument("--frames", type=int, default=None, help="first N frames of each sequence")
    ap.add_argument("--sequences", default=",".join(SEQUENCES))
    ap.add_argument("--rows", default="realesrgan,span")
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args()

    from vsr.quality import compress

    rows = args.rows.split(",")
    seqs = args.sequences.split(",")
    for seq in seqs:
        gt = load_sequence(seq, args.frames, args.scale)
        lr = [degrade(g, args.scale, "bi") for g in gt]
        if args.degradation == "crf23":
            lr = compress(lr, crf=23)
        key = f"{seq}_x{args.scale}_{args.degradation}_{args.frames or 'all'}"
        for row in rows:
            for net in row.replace("misr+", "").replace("+temporal", "").split(","):
                if net not in ("misr", "bicubic-matlab"):
                    network(net, lr, args.scale, args.cache, key)


if __name__ == "__main__":
    main()
