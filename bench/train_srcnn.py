"""Train the SRCNN shipped with vsr, reproducibly, on frames of the bundled real clips.

Data: frames of the clips in ``../shared/data/clips`` (the film, the camera, the NASA and
the animation clips; the synthetic test pattern is left out), never a Vid4 frame or any
benchmark image. Each clip's first 80 % gives the training frames, its last 15 % the
validation frames (the 5 % between keeps near-duplicates apart). Low-resolution inputs are
made as the protocols say: ``bi`` = MATLAB bicubic shrink (:func:`vsr.quality.imresize`);
``x264`` = the same, then runs of consecutive frames through libx264 at a crf drawn from 18 to
28 in 4:2:0 (:func:`vsr.quality.compress`).

Training: 48x48 luma patches, batches of 16, scales cycling 4, 2, 4, 3 (``--scales``), random flips and
transposes, L1 loss, Adam with a cosine learning rate, one CPU thread, a fixed seed: the same
command gives the same weights. The log (validation PSNR of the network beside bicubic's on
the held-out frames) goes to ``--log``; the weights to ``--out`` as safetensors, with their
sha256 in the log.

    python bench/train_srcnn.py [--steps 3000] [--scales 4,2,4,3] [--degradation bi|x264] [--kernels 9,1,5]
                                [--out vsr/methods/weights/srcnn.safetensors] [--log bench/logs/srcnn.log]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, SHARED

#: (file, video stream index) of the training clips.
CLIPS = (("chaplin.mp4", 0), ("cockatoo.mp4", 0), ("nasa_13013.mp4", 1), ("realshort.mp4", 0),
         ("big_buck_bunny_0_30.webm", 0))
PATCH = 48  # high-resolution patch side, a multiple of every scale
SCALE_CYCLE = (4, 2, 4, 3)
MARGIN = 2  # low-resolution pixels read around a patch so the bicubic upscale has no border
RUN = 5  # consecutive frames compressed together for the x264 degradation
VAL_CROP = 240  # centre crop of validation frames (high resolution)


@dataclass
class Sample:
    """One high-resolution luma frame and its low-resolution luma per scale, all float32 in [0, 1]."""

    hr: np.ndarray
    lr: dict[int, np.ndarray]


def count_frames(path: Path, stream: int) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[stream]) if p.size)


def decode_indices(path: Path, stream: int, wanted: set[int]) -> dict[int, np.ndarray]:
    """RGB uint8 frames of ``path`` at the decode indices in ``wanted``."""
    import av

    out = {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[stream])):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
            if len(out) == len(wanted):
                break
    return out


def y01(rgb: np.ndarray) -> np.ndarray:
    from vsr.quality import rgb_to_y

    return (rgb_to_y(rgb) / 255.0).astype(np.float32)


def make_samples(frames: list[np.ndarray], degradation: str, scales: tuple[int, ...],
                 rng: np.random.Generator) -> list[Sample]:
    """Samples from a run of consecutive RGB frames (one frame for ``bi``)."""
    from vsr.quality import compress, imresize

    lr: dict[int, list[np.ndarray]] = {}
    for s in sorted(set(scales)):
        cropped = [f[: f.shape[0] // 12 * 12, : f.shape[1] // 12 * 12] for f in frames]
        small = [imresize(f, 1 / s) for f in cropped]
        if degradation == "x264":
            small = compress(small, crf=int(rng.integers(18, 29)))
        lr[s] = [y01(x) for x in small]
    keep = range(len(frames)) if degradation == "bi" else range(0, len(frames), 2)
    return [Sample(y01(frames[k][: frames[k].shape[0] // 12 * 12, : frames[k].shape[1] // 12 * 12]),
                   {s: lr[s][k] for s in lr}) for k in keep]


def build_data(degradation: str, scales: tuple[int, ...], per_clip: int, rng: np.random.Generator,
               log) -> tuple[list[Sample], list[Sample]]:
    """Training and validation samples from every clip in :data:`CLIPS`."""
    train, val = [], []
    run = RUN if degradation == "x264" else 1
    for name, stream in CLIPS:
        path = SHARED / "clips" / name
        n = count_frames(path, stream)
        starts = np.linspace(0, int(0.8 * n) - run, per_clip).astype(int)
        val_starts = np.linspace(int(0.85 * n), n - run, 3).astype(int)
        wanted = {int(s) + k for s in (*starts, *val_starts) for k in range(run)}
        frames = decode_indices(path, stream, wanted)
        for s in starts:
            train += make_samples([frames[int(s) + k] for k in range(run)], degradation, scales, rng)
        for s in val_starts:
            f = [frames[int(s) + k] for k in range(run)]
            h, w = f[0].shape[:2]
            c = min(VAL_CROP, h // 12 * 12, w // 12 * 12)
            y, x = (h - c) // 2, (w - c) // 2
            val += make_samples([g[y:y + c, x:x + c] for g in f], degradation, scales, rng)[-1:]
        log(f"{name}: {n} frames, {len(starts)} training runs of {run}, {len(val_starts)} validation frames")
    return train, val


def bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
    """The method's own bicubic upscale (vsr.methods.interp.resize) of a luma plane."""
    import torch

    from vsr.methods.interp import resize

    t = torch.from_numpy(np.ascontiguousarray(lr))[None]
    return resize(t, (lr.shape[0] * scale, lr.shape[1] * scale), "bicubic")[0].numpy()


def batch(samples: list[Sample], scale: int, size: int, rng: np.random.Generator):
    """``size`` (bicubic input, target) patch pairs at ``scale``: two ``(size, 1, 48, 48)`` tensors."""
    import torch

    p = PATCH // scale
    xs, ys = [], []
    for _ in range(size):
        smp = samples[int(rng.integers(len(samples)))]
        lr = smp.lr[scale]
        i = int(rng.integers(MARGIN, lr.shape[0] - p - MARGIN + 1))
        j = int(rng.integers(MARGIN, lr.shape[1] - p - MARGIN + 1))
        up = bicubic_up(lr[i - MARGIN:i + p + MARGIN, j - MARGIN:j + p + MARGIN], scale)
        x = up[MARGIN * scale:MARGIN * scale + PATCH, MARGIN * scale:MARGIN * scale + PATCH]
        y = smp.hr[i * scale:i * scale + PATCH, j * scale:j * scale + PATCH]
        k = int(rng.integers(8))
        if k & 1:
            x, y = x[:, ::-1], y[:, ::-1]
        if k & 2:
            x, y = x[::-1], y[::-1]
        if k & 4:
            x, y = x.T, y.T
        xs.append(np.ascontiguousarray(x))
        ys.append(np.ascontiguousarray(y))
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys))[:, None]


def validate(net, samples: list[Sample], scales: tuple[int, ...]) -> dict[int, tuple[float, float]]:
    """Mean PSNR-Y (dB) of bicubic and of the network per scale on the held-out frames."""
    import torch

    from vsr.quality import psnr_y

    out = {}
    for s in sorted(set(scales)):
        bic, ours = [], []
        for smp in samples:
            up = bicubic_up(smp.lr[s], s)
            with torch.inference_mode():
                pred = net(torch.from_numpy(up)[None, None])[0, 0].numpy()
            bic.append(psnr_y(np.clip(up, 0, 1) * 255, smp.hr * 255))
            ours.append(psnr_y(np.clip(pred, 0, 1) * 255, smp.hr * 255))
        out[s] = (float(np.mean(bic)), float(np.mean(ours)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--degradation", choices=("bi", "x264"), default="bi")
    ap.add_argument("--scales", default=",".join(map(str, SCALE_CYCLE)), help="scale of each step, cycled")
    ap.add_argument("--kernels", default="9,1,5", help="f1,f2,f3 of SRCNN (9,1,5 or 9,5,5)")
    ap.add_argument("--per-clip", type=int, default=40, help="training frames (runs) per clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validate-every", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=ROOT / "vsr" / "methods" / "weights" / "srcnn.safetensors")
    ap.add_argument("--log", type=Path, default=ROOT / "bench" / "logs" / "srcnn.log")
    args = ap.parse_args()

    import cv2
    import torch
    from safetensors.torch import save_file

    from vsr.methods.srcnn import make_net

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    logfile = args.log.open("w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        logfile.write(msg + "\n")
        logfile.flush()

    t0 = time.perf_counter()
    log(f"train_srcnn {' '.join(sys.argv[1:])}")
    scales = tuple(int(s) for s in args.scales.split(","))
    train, val = build_data(args.degradation, scales, args.per_clip, rng, log)
    log(f"{len(train)} training frames, {len(val)} validation frames, data ready in {time.perf_counter() - t0:.0f} s")

    f1, f2, f3 = (int(k) for k in args.kernels.split(","))
    net = make_net(f1, f2, f3)
    torch.nn.init.zeros_(net.conv3.weight)  # starts as bicubic
    torch.nn.init.zeros_(net.conv3.bias)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps, eta_min=args.lr / 100)
    running = 0.0
    for step in range(1, args.steps + 1):
        x, y = batch(train, scales[step % len(scales)], args.batch, rng)
        loss = torch.nn.functional.l1_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if step % 100 == 0:
            log(f"step {step} loss {running / 100:.5f} lr {sched.get_last_lr()[0]:.2e} "
                f"{time.perf_counter() - t0:.0f} s")
            running = 0.0
        if step % args.validate_every == 0 or step == args.steps:
            net.eval()
            scores = validate(net, val, scales)
            net.train()
            log(f"step {step} validation PSNR-Y bicubic/srcnn: " + ", ".join(
                f"x{s} {b:.2f}/{o:.2f} ({o - b:+.2f})" for s, (b, o) in scores.items()))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    meta = {"arch": f"srcnn {f1}-{f2}-{f3}", "degradation": args.degradation, "steps": str(args.steps),
            "seed": str(args.seed), "scales": ",".join(map(str, sorted(set(scales))))}
    save_file(state, str(args.out), metadata=meta)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    log(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out} "
        f"({args.out.stat().st_size} bytes) sha256 {digest}")
    log(f"training took {time.perf_counter() - t0:.0f} s on {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
