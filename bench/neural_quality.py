"""Neural SR you can trust, measured on Vid4: fidelity, flicker, and what the neighbours add.

For each sequence every per-frame network runs once; ``--temporal`` and multi-frame data
consistency then run on its outputs through the methods' own code (:class:`Replay` hands the
stored frames to the wrappers instead of running the network again: it is deterministic, so
the wrappers see exactly what they would). Metrics from :mod:`vsr.quality`: PSNR-Y (the Vid4
protocol of ../shared/data/README.md), tOF (TecoGAN) and occlusion-masked warping error (Lai
et al.) with the motion of the ground truth, per sequence, then averaged over sequences.

    python bench/neural_quality.py [--scale 4] [--degradation bi|crf23] [--frames N]
        [--rows bicubic-matlab,misr,span,span+temporal,misr+span] [--cache DIR] [--param key=value ...]
    python bench/neural_quality.py --clips [--frames 12] ...    # tuning set: the shipped clips

A row is ``bicubic-matlab``, ``misr``, a per-frame method ``NET`` (``span``, ``realesrgan``...),
``NET+temporal``, ``misr+NET`` (data consistency) or ``misr+NET+temporal`` (data consistency
started from ``NET --temporal``). ``--cache DIR`` keeps the networks'
outputs as .npy files between runs. ``crf23``: the BI frames through libx264 crf 23 (4:2:0)
before upscaling (:func:`vsr.quality.compress`). The s/frame column is the wrapper's own time
on top of the network (the network's time where the row is the network alone; blank when
its outputs came from the cache). ``--param key=value`` sets a parameter of the ``misr+NET``
rows (on top of the method's own defaults: ``vsr methods misr+span``). ``--net-param key=value``
sets a parameter of every network the rows run (``ensemble=8``, ``channels=52``); the cache
keeps each setting's outputs apart.

``--clips``: the same rows on the shipped clips instead of Vid4, the set the data-consistency
step is tuned on (Vid4 tunes nothing): each clip's first frames area-shrunk to 640x360 at
most (the ground truth), then MATLAB-bicubic x1/scale as for Vid4 BI; by default every
shipped clip but big_buck_bunny, whose first frames are black.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHARED, print_table
from quality import (
    CLIPS,
    SEQUENCES,
    degrade,
    load_sequence,
    parse_params,
    to_tensor,
    to_uint8,
    windows,
)

TUNING_CLIPS = tuple(c for c in CLIPS if not c.startswith("big_buck_bunny"))  # its first frames are black


class Replay:
    """A per-frame method that gives back stored outputs, found by their input frame."""

    radius = 0
    causal = False
    integer_io = False
    target_size = None

    def __init__(self, lr: list[np.ndarray], outputs: list[np.ndarray], scale: int, name: str) -> None:
        import torch

        self.outputs = {self._key(to_tensor(x)): y for x, y in zip(lr, outputs)}
        self.scale = scale
        self.name = name
        self.device = torch.device("cpu")
        self.dtype = torch.float32

    @staticmethod
    def _key(frame) -> bytes:
        return frame.float().cpu().numpy().tobytes()

    def to(self, device, dtype=None):
        return self

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height * self.scale, width * self.scale

    def describe(self) -> dict:
        return {"name": self.name, "scale": self.scale, "radius": 0}

    def __call__(self, frames, ref: int):
        return to_tensor(self.outputs[self._key(frames[ref])])

    def stream(self, windows_in):
        for window in windows_in:
            yield self(window.frames, window.ref)


def network(name: str, lr: list[np.ndarray], scale: int, cache: Path | None, key: str,
            net_params: dict | None = None) -> tuple[list[np.ndarray], float]:
    """The per-frame outputs of registered method ``name`` (uint8 RGB) and seconds per frame (NaN if cached);
    ``net_params``: the method's parameters."""
    from vsr.methods.registry import get_method

    net_params = net_params or {}
    setting = "".join(f"_{k}{v}" for k, v in sorted(net_params.items()))
    path = cache / f"{key}_{name}{setting}.npy" if cache else None
    if path is not None and path.is_file():
        return list(np.load(path)), float("nan")
    t = time.perf_counter()
    method = get_method(name, scale=scale, **net_params)
    out = [to_uint8(y) for y in method.stream(windows(lr, method.radius))]
    dt = (time.perf_counter() - t) / len(lr)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.stack(out))
    return out, dt


def run_row(row: str, lr: list[np.ndarray], scale: int, cache: Path | None, key: str,
            params: dict | None = None, net_params: dict | None = None) -> tuple[list[np.ndarray], float]:
    """Outputs of one table row and its seconds per frame (see the module docstring);
    ``params`` set parameters of a ``misr+NET`` row over the method's own defaults, ``net_params``
    those of its network."""
    from vsr.methods.consistent import ConsistentParams, DataConsistent
    from vsr.methods.params import parse
    from vsr.methods.registry import METHODS, get_method
    from vsr.methods.registry import parse_params as method_params
    from vsr.methods.temporal import Temporal
    from vsr.quality import imresize

    if row == "bicubic-matlab":
        return [imresize(x, float(scale)) for x in lr], float("nan")
    if row == "misr":
        method = get_method("misr", scale=scale)
    elif row.startswith("misr+"):
        net = row.removeprefix("misr+").removesuffix("+temporal")
        prior = Replay(lr, network(net, lr, scale, cache, key, net_params)[0], scale, net)
        if row.endswith("+temporal"):
            prior = Temporal(prior)
        name = f"misr+{net}"  # a registered misr+NET's defaults, else those for any network
        dc_params = (method_params(name, params or {}, text=True) if name in METHODS
                     else parse(ConsistentParams, params or {}, method=name, text=True))
        method = DataConsistent(scale, dc_params, prior)
    elif row.endswith("+temporal"):
        net = row.removesuffix("+temporal")
        method = Temporal(Replay(lr, network(net, lr, scale, cache, key, net_params)[0], scale, net))
    else:
        return network(row, lr, scale, cache, key, net_params)
    t = time.perf_counter()
    out = [to_uint8(y) for y in method.stream(windows(lr, method.radius))]
    return out, (time.perf_counter() - t) / len(lr)


def load_clip(name: str, frames: int, scale: int) -> list[np.ndarray]:
    """The first ``frames`` frames of shipped clip ``name``, area-shrunk to fit 640x360 and
    cropped to a multiple of ``scale``: RGB uint8 ground truth."""
    import cv2

    from vsr.quality import read_frames

    out = []
    for f in read_frames(str(SHARED / "clips" / name), frames):
        h, w = f.shape[:2]
        shrink = max(1.0, w / 640, h / 360)
        if shrink > 1:
            f = cv2.resize(f, (round(w / shrink), round(h / shrink)), interpolation=cv2.INTER_AREA)
        h, w = f.shape[:2]
        out.append(np.ascontiguousarray(f[: h - h % scale, : w - w % scale]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--degradation", choices=("bi", "crf23"), default="bi")
    ap.add_argument("--frames", type=int, default=None, help="first N frames of each sequence (default all)")
    ap.add_argument("--sequences", default=",".join(SEQUENCES))
    ap.add_argument("--rows", default="bicubic-matlab,misr,span,span+temporal,misr+span")
    ap.add_argument("--cache", type=Path, default=None, help="directory keeping the networks' outputs")
    ap.add_argument("--param", action="append", default=[], help="misr+NET parameter key=value (repeatable)")
    ap.add_argument("--net-param", action="append", default=[],
                    help="parameter key=value of the rows' networks, e.g. ensemble=8 (repeatable)")
    ap.add_argument("--clips", nargs="?", const=",".join(TUNING_CLIPS), default=None,
                    help="the shipped clips instead of Vid4 (comma-separated names; default all but "
                         "big_buck_bunny, whose first frames are black); --frames 12")
    args = ap.parse_args()

    from vsr.quality import compress, psnr_y, tof, warping_error

    rows = args.rows.split(",")
    params = parse_params(args.param)
    net_params = parse_params(args.net_param)
    if args.clips:
        args.frames = args.frames or 12
    seqs = [Path(c).stem for c in args.clips.split(",")] if args.clips else args.sequences.split(",")
    table: dict[str, dict[str, tuple[float, float, float, float]]] = {r: {} for r in rows}
    for i, seq in enumerate(seqs):
        if args.clips:
            gt = load_clip(args.clips.split(",")[i], args.frames, args.scale)
        else:
            gt = load_sequence(seq, args.frames, args.scale)
        lr = [degrade(g, args.scale, "bi") for g in gt]
        if args.degradation == "crf23":
            lr = compress(lr, crf=23)
        key = f"{seq}_x{args.scale}_{args.degradation}_{args.frames or 'all'}"
        for row in rows:
            out, dt = run_row(row, lr, args.scale, args.cache, key, params, net_params)
            psnr = float(np.mean([psnr_y(o, g) for o, g in zip(out, gt)]))
            table[row][seq] = (psnr, tof(out, gt), warping_error(out, gt), dt)
            print(f"{seq} {row}: PSNR-Y {psnr:.2f} tOF {table[row][seq][1]:.3f} "
                  f"warp {table[row][seq][2] * 1e3:.3f}e-3", file=sys.stderr, flush=True)
    out_rows = []
    for row in rows:
        cells = [f"{table[row][q][0]:.2f}" for q in seqs]
        mean = [float(np.mean([table[row][q][i] for q in seqs])) for i in range(4)]
        out_rows.append([row, *cells, f"{mean[0]:.2f}", f"{mean[1]:.3f}", f"{mean[2] * 1e3:.3f}",
                         "" if np.isnan(mean[3]) else f"{mean[3]:.2f}"])
    title = (f"{'Shipped clips' if args.clips else 'Vid4'} x{args.scale} {args.degradation.upper()}, "
             f"frames {args.frames or 'all'}: PSNR-Y per sequence and average, tOF and warping error (x1e-3) "
             "averaged over sequences" + (f", misr+NET {params}" if params else "")
             + (f", networks {net_params}" if net_params else ""))
    print_table(title, ["row", *seqs, "PSNR-Y", "tOF", "warp e-3", "s/frame"], out_rows)


if __name__ == "__main__":
    main()
